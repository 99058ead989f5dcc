/* The sans-I/O core: asyncio's stream transport semantics (write buffer,
 * watermarks, EOF, close/abort, the deferred connection_lost, protocol
 * switching, trace lines) with no system call of its own.
 *
 * The core is driven, it drives nothing. Two small tables connect it to the
 * world (docs/embedding.md has the full contract and three complete hosts):
 *
 *   - a host (pg_host_ops): runs deferred calls in order, soon after the
 *     current callback returns, runs timers and tells the time. The built-in loop is one
 *     host; a libuv loop or the user's own poll() loop are others.
 *   - a driver, one per connection: moves the bytes (pg_stream_driver_ops:
 *     writev, shutdown_write; pg_datagram_driver_ops: send), watches
 *     readiness when the core asks (want_read, want_write) and releases the
 *     connection at the end (close). The fd drivers of the built-in loop are
 *     one kind; a libuv stream, the user's own socket or the in-memory test
 *     drivers are others. A subprocess is a process driver
 *     (pg_process_driver_ops: signals, release) plus a stream driver per pipe.
 *
 * The driver reports what happened with the pg_stream_* / pg_datagram_*
 * event functions below (bytes or datagrams read, EOF, writable, error); the
 * protocol sees exactly the callbacks, in exactly the order, that asyncio
 * would give it.
 *
 * Integer results are 0 or a negative errno value. */
#ifndef PROTOGEN_CORE_H
#define PROTOGEN_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "protogen/datagram.h"
#include "protogen/protocol.h"
#include "protogen/subprocess.h"
#include "protogen/timer.h"
#include "protogen/transport.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- hosts -------------------------------------------------------------- */

typedef struct pg_host_ops {
    /* Makes room for one more deferred call, so that defer() can never fail
     * when it is needed (a transport reserves what it will defer when it is
     * made). 0 or -ENOMEM. */
    int (*reserve)(void *self);
    /* Gives back a reservation that will not be used. */
    void (*unreserve)(void *self);
    /* Calls fn(arg) soon: never from inside defer() itself, always from the
     * host's own dispatch, in the order of the defer() calls. Uses one
     * reservation; cannot fail. */
    void (*defer)(void *self, pg_callback_fn fn, void *arg);
    /* Monotonic milliseconds (asyncio's loop.time()). */
    uint64_t (*now_ms)(void *self);
    /* Timers (protogen/timer.h), optional: both or neither (NULL:
     * pg_host_timer_start gives -ENOTSUP). timer_start gets an inactive
     * timer whose host and callback the core has set, due delay_ms after
     * now_ms(): 0 or -ENOMEM. timer_cancel gets an active one. A host that
     * keeps them in a pg_timer_queue (below) follows every rule of timer.h. */
    int (*timer_start)(void *self, pg_timer *timer, uint64_t delay_ms);
    void (*timer_cancel)(void *self, pg_timer *timer);
} pg_host_ops;

/* A host as the core sees it: the table, its pointer, and what the core keeps
 * per host (a spare write buffer, and the memory of its transports' blocks,
 * reused but given back only here, so that a handle kept past
 * connection_lost is always told apart and dropped). Made once per loop,
 * freed after its last transport is gone. */
typedef struct pg_host pg_host;

int pg_host_new(const pg_host_ops *ops, void *self, pg_host **out);
void pg_host_free(pg_host *host);
/* The host's clock (its now_ms). */
uint64_t pg_host_now_ms(pg_host *host);

/* Calls cb(arg) from the host's dispatch in delay_ms milliseconds: a
 * one-shot timer on a caller-owned record (protogen/timer.h), rescheduled if
 * it is active, cancelled with pg_timer_cancel(). 0, -EINVAL, -ENOMEM, or
 * -ENOTSUP when the host has no timers. */
int pg_host_timer_start(pg_host *host, pg_timer *timer, uint64_t delay_ms, pg_callback_fn cb, void *arg);

/* ---- for hosts: a timer queue --------------------------------------------
 * What protogen's own hosts keep their timers in, for a host of one's own
 * too: a heap by deadline, then start order. Each waiting timer holds one
 * reservation of its host (pg_host_ops.reserve), so that expiring is a
 * defer() that cannot fail: one deferred call runs the timers that fell due
 * (and skips those cancelled meanwhile). The host wakes itself for
 * pg_timer_queue_next() and then calls pg_timer_queue_expire(). The queue
 * must outlive that deferred call. */
typedef struct pg_timer_queue { /* fields private */
    pg_timer **items_; /* the heap */
    size_t len_;
    size_t cap_;
    uint64_t seq_;
    pg_timer **due_; /* fell due, their callbacks to run (NULL: cancelled) */
    size_t due_len_;
    size_t due_cap_;
    bool due_queued_; /* the call that runs them is deferred */
} pg_timer_queue;

void pg_timer_queue_init(pg_timer_queue *q);
/* For timer_start: queues an inactive timer (its host set), due at due_ms
 * on the host's clock. 0 or -ENOMEM (the timer stays inactive). */
int pg_timer_queue_add(pg_timer_queue *q, pg_timer *timer, uint64_t due_ms);
/* For timer_cancel: makes an active timer inactive. */
void pg_timer_queue_remove(pg_timer_queue *q, pg_timer *timer);
/* The earliest deadline; false when no timer waits. */
bool pg_timer_queue_next(const pg_timer_queue *q, uint64_t *due_ms);
/* Moves the timers due at now_ms to the list one deferred call runs, in
 * (deadline, start) order, behind the calls deferred before; returns how
 * many calls it deferred (0 or 1). */
size_t pg_timer_queue_expire(pg_timer_queue *q, uint64_t now_ms);
/* Frees the queue: timers still in it are left inactive and give their
 * reservations back. */
void pg_timer_queue_free(pg_timer_queue *q);

/* ---- stream drivers ----------------------------------------------------- */

typedef struct pg_stream_driver_ops {
    /* Sends what can go now of iov[0..iovcnt): the bytes taken (possibly
     * fewer than given), 0 when nothing can go now (the core then asks for
     * want_write and waits for pg_stream_writable), or a negative errno: the
     * connection is broken and the core will end it. */
    ssize_t (*writev)(void *self, const struct iovec *iov, int iovcnt);
    /* Shuts the write side down (SHUT_WR) once the buffer drained: 0 or a
     * negative errno. Only called on transports made with
     * PG_STREAM_CAN_WRITE_EOF. */
    int (*shutdown_write)(void *self);
    /* Starts or stops reporting readability (pg_stream_read_*) and
     * writability (pg_stream_writable). 0 or a negative errno, which ends the
     * connection. A driver that cannot stop reading at once (a read already
     * under way) reports what it still reads with pg_stream_received, and the
     * core holds it until the protocol reads again; a driver that reports
     * with pg_stream_read holds what that did not take itself. */
    int (*want_read)(void *self, bool on);
    int (*want_write)(void *self, bool on);
    /* The transport is done (after connection_lost): release the connection.
     * The last call the driver gets; the transport is gone once it returns. */
    void (*close)(void *self);
    /* Optional (NULL: -ENOENT for every key). */
    int (*get_extra_info)(void *self, pg_extra_key key, pg_extra_info *out);
} pg_stream_driver_ops;

/* What kind of stream the driver moves. */
enum pg_stream_flags {
    PG_STREAM_CAN_WRITE_EOF = 1, /* write_eof() shuts the write side down */
    PG_STREAM_READ_ONLY = 2,     /* asyncio's read pipe: no writing; EOF ends it */
    PG_STREAM_WRITE_ONLY = 4,    /* asyncio's write pipe: no reading; write_eof closes */
    PG_STREAM_UNTRACED = 8,      /* part of another traced instance: no trace lines */
};

/* Makes a stream transport over a driver: factory(arg) makes the protocol
 * (last, once nothing can fail), connection_made and the first want_read
 * follow through the host's defer. On error no protocol callback is ever
 * called and the driver is not called. */
int pg_stream_new(pg_host *host, const pg_stream_driver_ops *ops, void *driver, unsigned flags,
                  pg_protocol_factory factory, void *arg, pg_transport **out);

/* ---- events from the driver --------------------------------------------- */

/* Where the next read goes. Returns 1 with *buf and *len set: read into the
 * protocol's own memory (a buffered protocol), then pg_stream_read_done(t, n).
 * Returns 0: read into the driver's own memory, then pg_stream_read(t, data, n).
 * Returns a negative errno: do not read now (the protocol closed or paused the
 * transport, or gave no buffer: the transport is ending). */
int pg_stream_read_buffer(pg_transport *t, size_t size_hint, uint8_t **buf, size_t *len);
/* n (> 0) bytes were read into the buffer from pg_stream_read_buffer. */
void pg_stream_read_done(pg_transport *t, size_t n);
/* n bytes were read into the driver's memory (valid during the call); a
 * buffered protocol gets them copied through get_buffer/buffer_updated.
 * Returns how many were taken: fewer than n only when the protocol paused
 * reading meanwhile; the driver holds the rest and gives it again after
 * want_read(true) (pg_stream_received below leaves that to the core). Once the transport is closing every byte is "taken"
 * (dropped: nothing more is read, as in asyncio). */
size_t pg_stream_read(pg_transport *t, const uint8_t *data, size_t n);
/* The peer shut its write side down (read returned 0). */
void pg_stream_read_eof(pg_transport *t);
/* For a driver that cannot stop reading at once (a completion-based one,
 * e.g. libuv or io_uring, whose read was under way when want_read(false)
 * came): n bytes it read (its memory, valid during the call; n may be 0),
 * then end: 0 (more may come), PG_STREAM_END (the peer's EOF) or a negative
 * errno (the connection broke). The protocol gets now what it reads now; the
 * core holds the rest, and the end after it, and delivers them in order from
 * the host's dispatch (never from inside resume_reading) once the protocol
 * reads again, and only then asks want_read(true). Dropped once the
 * transport is closing. */
#define PG_STREAM_END 1
void pg_stream_received(pg_transport *t, const uint8_t *data, size_t n, int end);
/* The driver can take more bytes (after want_write(true)). */
void pg_stream_writable(pg_transport *t);
/* The connection broke (error < 0), or the driver ends it (0: as abort). */
void pg_stream_fail(pg_transport *t, int error);

/* ---- for protocols ------------------------------------------------------ */

/* Ends the connection with an error, as an exception raised in an asyncio
 * protocol callback does (the transport's _fatal_error): the write buffer is
 * dropped, nothing more is read, and connection_lost(error) follows from the
 * host's dispatch, never from inside this call. error is a negative errno
 * (e.g. -EPROTO for a peer that broke the protocol). 0, -EINVAL for a
 * non-negative error, -ENOTSUP for a transport the core did not make.
 * After connection_lost, or through a stale handle, it does nothing (0). */
int pg_transport_fail(pg_transport *t, int error);

/* asyncio's set_protocol done whole: the next protocol (made by factory(arg))
 * takes the transport over, its connection_made is called, and the bytes the
 * current protocol already read but that belong to the next one (pending,
 * len) are delivered to it (copied through get_buffer for a buffered one).
 * While writing is paused the next protocol gets pause_writing right after
 * connection_made (before the pending bytes), and resume_writing once the
 * buffer drains. -EINVAL before connection_made or after connection_lost,
 * -ENOTSUP when the transport cannot switch, or the factory's error.
 * The current protocol gets no further callback. */
int pg_transport_switch_protocol(pg_transport *t, pg_protocol_factory factory, void *arg, const void *pending,
                                 size_t len);

/* ---- datagram drivers --------------------------------------------------- */

/* One datagram to send: addr is NULL on a connected endpoint. */
typedef struct pg_datagram_out {
    const void *data;
    size_t len;
    const struct sockaddr *addr;
    socklen_t addrlen;
} pg_datagram_out;

typedef struct pg_datagram_driver_ops {
    /* Sends what can go now of msgs[0..n) (n >= 1), in order: how many were
     * sent, 0 when none can go now (the core queues the rest, asks for
     * want_write and waits for pg_datagram_writable), or a negative errno when
     * msgs[0] failed (the core drops it, tells error_received, and the
     * transport stays open). */
    int (*send)(void *self, const pg_datagram_out *msgs, int n);
    /* As for streams: start or stop reporting datagrams (pg_datagram_received)
     * and writability (pg_datagram_writable); 0 or a negative errno, which
     * ends the endpoint. Datagrams reported after want_read(false) (the rest
     * of a batch already read) are kept by the core and delivered once the
     * protocol reads again. */
    int (*want_read)(void *self, bool on);
    int (*want_write)(void *self, bool on);
    /* The transport is done (after connection_lost): release the endpoint.
     * The last call the driver gets. */
    void (*close)(void *self);
    /* Optional (NULL: -ENOENT for every key). PG_EXTRA_PEERNAME is the core's
     * (the peer given to pg_datagram_new). */
    int (*get_extra_info)(void *self, pg_extra_key key, pg_extra_info *out);
} pg_datagram_driver_ops;

/* Makes a datagram transport over a driver. peer (peerlen bytes) is a
 * connected endpoint's peer, NULL for an unconnected one. factory(arg) makes
 * the protocol (last, once nothing can fail); connection_made and the first
 * want_read follow through the host's defer. On error no protocol callback is
 * ever called and the driver is not called. */
int pg_datagram_new(pg_host *host, const pg_datagram_driver_ops *ops, void *driver, const struct sockaddr *peer,
                    socklen_t peerlen, pg_datagram_protocol_factory factory, void *arg,
                    pg_datagram_transport **out);

/* ---- events from the datagram driver ------------------------------------ */

/* One datagram of len bytes (0 allowed) from addr (NULL: unknown); the
 * memory is the driver's, valid during the call. Dropped once the transport
 * is closing. */
void pg_datagram_received(pg_datagram_transport *t, const uint8_t *data, size_t len, const struct sockaddr *addr,
                          socklen_t addrlen);
/* An error of the receive path that the protocol hears through
 * error_received, in order with the datagrams (-EMSGSIZE: a datagram did not
 * fit; -ECONNREFUSED: an ICMP error on a connected endpoint). The transport
 * stays open. */
void pg_datagram_receive_error(pg_datagram_transport *t, int error);
/* The driver can take more datagrams (after want_write(true)). May end the
 * transport (a close() that drained): callers touch it no more. */
void pg_datagram_writable(pg_datagram_transport *t);
/* The endpoint broke (error < 0), or the driver ends it (0: as abort). */
void pg_datagram_fail(pg_datagram_transport *t, int error);

/* ---- process drivers ----------------------------------------------------- */

typedef struct pg_process_driver_ops {
    /* Sends signo to the child, which has not been reaped yet: 0 or a
     * negative errno. */
    int (*send_signal)(void *self, int signo);
    /* The transport is done with the child (after connection_lost, so after
     * pg_subprocess_exited): release it. The last call the driver gets. */
    void (*close)(void *self);
    /* Optional: PG_EXTRA_SUBPROCESS (e.g. the pidfd in .fd), asked only
     * while the child has not been reaped. */
    int (*get_extra_info)(void *self, pg_extra_key key, pg_extra_info *out);
} pg_process_driver_ops;

/* Makes a subprocess transport for a child that runs (pid) behind a process
 * driver, with a pipe to each fd whose pipe_drivers[fd] is not NULL (moved by
 * pipe_ops: stdin a write pipe, stdout and stderr read pipes). protocol hears
 * about all of it in asyncio's order; connection_made follows through the
 * host's defer. With out, the caller holds the transport until
 * pg_subprocess_release(), as with pg_subprocess_spawn. On error no callback
 * is ever called and no driver is called: the child is the caller's. */
int pg_subprocess_new(pg_host *host, const pg_process_driver_ops *ops, void *driver, pid_t pid,
                      const pg_stream_driver_ops *pipe_ops, void *const pipe_drivers[3],
                      const pg_subprocess_protocol *protocol, pg_subprocess **out);

/* The child was reaped: returncode as pg_subprocess_get_returncode() tells
 * it (the exit status, -N for signal N). Once. */
void pg_subprocess_exited(pg_subprocess *proc, int returncode);

#ifdef __cplusplus
}
#endif
#endif
