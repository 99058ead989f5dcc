/* The core's internals, shared with the built-in loop and drivers of the
 * runtime (never installed). */
#ifndef PROTOGEN_CORE_INTERNAL_H
#define PROTOGEN_CORE_INTERNAL_H

#include <assert.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "protogen/core.h"

/* Under AddressSanitizer the block pool poisons its free blocks. */
#if defined(__SANITIZE_ADDRESS__)
#define PG__ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PG__ASAN 1
#endif
#endif

#define PG__CONTAINER_OF(ptr, type, field) ((type *)(void *)((char *)(ptr)-offsetof(type, field)))

/* A function for the rare branch of a per-message one, kept out of it: its
 * registers and stack are not the hot path's to save (bench/ counts them). */
#if defined(__GNUC__)
#define PG__COLD __attribute__((cold, noinline))
#else
#define PG__COLD
#endif

/* A test the per-message path almost never passes: its branch, not a select. */
#if defined(__GNUC__)
#define PG__UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define PG__UNLIKELY(x) (x)
#endif

/* Retries a system call while it fails with EINTR; r gets the result. */
#define PG__RETRY_EINTR(r, call) \
    do {                         \
        (r) = (call);            \
    } while ((r) == -1 && errno == EINTR)

/* ---- hosts (host.c) ----------------------------------------------------- */

struct pg_host {
    const pg_host_ops *ops;
    void *self;
    /* A drained write buffer kept for the next transport that needs one, so
     * that a connection at the edge of back-pressure fills and drains without
     * allocating while idle connections hold none. */
    uint8_t *spare_wbuf;
    size_t spare_wbuf_cap;
    /* The transport blocks (block_pool.c): free ones of each class
     * (pg__block_class, PG__BLOCK_CLASSES of them), and every slab. */
    void *free_blocks[3];
    void *slabs;
    /* Calls through stale handles, dropped; debug builds assert on them
     * unless stale_assert is off (tests of the drop turn it off). */
    uint64_t stale_calls;
    bool stale_assert;
};

#define PG__SPARE_WBUF_MAX ((size_t)1024 * 1024)

/* For hosts that embed their pg_host (the built-in loop). */
void pg__host_init(pg_host *host, const pg_host_ops *ops, void *self);
void pg__host_cleanup(pg_host *host);

static inline int pg__host_reserve(pg_host *h) { return h->ops->reserve(h->self); }
static inline void pg__host_unreserve(pg_host *h) { h->ops->unreserve(h->self); }
static inline void pg__host_defer(pg_host *h, pg_callback_fn fn, void *arg) { h->ops->defer(h->self, fn, arg); }

/* pg_timer_queue_next for the built-in loop's iteration, inline: a loop
 * without timers pays one test for them. */
static inline bool pg__timer_queue_next(const pg_timer_queue *q, uint64_t *due_ms)
{
    if (q->len_ == 0)
        return false;
    *due_ms = q->items_[0]->due_ms_;
    return true;
}

/* Keeps buf (the largest, up to PG__SPARE_WBUF_MAX bytes) or frees it. */
void pg__host_give_wbuf(pg_host *host, uint8_t *buf, size_t cap);
/* The kept buffer and its capacity, or NULL and 0. */
uint8_t *pg__host_take_wbuf(pg_host *host, size_t *cap);

/* ---- write buffer limits (limits.c) ------------------------------------- */

/* asyncio's _set_write_buffer_limits: PG_LIMIT_DEFAULT means "not given";
 * only high → low = high/4; only low → high = 4*low; high < low → -EINVAL. */
int pg__write_buffer_limits(size_t high, size_t low, size_t *out_high, size_t *out_low);

/* ---- stream transports (stream.c) --------------------------------------- */

/* The connection as a whole (asyncio's _closing and _conn_lost). */
typedef enum pg__stream_state {
    PG__STREAM_OPEN,
    PG__STREAM_CLOSING, /* close() called, flushing the buffer */
    PG__STREAM_LOST,    /* connection_lost is scheduled or running */
} pg__stream_state;

/* The write side (asyncio's _eof). */
typedef enum pg__write_state {
    PG__WRITE_OPEN,
    PG__WRITE_EOF_PENDING, /* write_eof() called, shutdown once the buffer drains */
    PG__WRITE_EOF_WRITTEN,
} pg__write_state;

typedef enum pg__read_state {
    PG__READ_ACTIVE,
    PG__READ_PAUSED,
    PG__READ_EOF, /* the peer's EOF was kept open (half-close): never read again */
} pg__read_state;

typedef enum pg__flow_state {
    PG__FLOW_RUNNING,
    PG__FLOW_PAUSED_PROTOCOL,
} pg__flow_state;

/* Which protocol callbacks have run. */
typedef enum pg__proto_state {
    PG__PROTO_NEW,
    PG__PROTO_CONNECTED,
    PG__PROTO_LOST,
} pg__proto_state;

/* Interests asked of the driver (pg__stream.want). */
#define PG__WANT_READ 1u
#define PG__WANT_WRITE 2u

/* pg__stream.flags: the public PG_STREAM_* and these. */
#define PG__STREAM_OWNED 16u /* made by pg_stream_new: the core gives the block back */
/* Bits the core leaves to a driver that embeds it (the fd driver's). */
#define PG__STREAM_DRIVER_BITS 0x60u
/* The driver has a closing handshake of its own (TLS's close_notify): its
 * table is a pg__linger_driver_ops. close() tells the driver at once
 * (closing(drained false) while plaintext waits, closing(true) once the
 * buffer drained); the transport then stays closing until the driver ends it
 * with pg_stream_fail(t, 0 or -errno), so connection_lost comes after the
 * handshake, as asyncio's SSL transport calls it after its shutdown. */
#define PG__STREAM_LINGER 128u

typedef struct pg__linger_driver_ops {
    pg_stream_driver_ops base; /* first: the core reaches it as drv_ops */
    void (*closing)(void *self, bool drained);
} pg__linger_driver_ops;

typedef struct pg__held_input pg__held_input;

typedef struct pg__stream {
    /* What a stale handle reads of its block, first (block_pool.c keeps
     * these bytes of a free block intact): */
    pg_transport base; /* the public header */
    pg_host *host;
    uint16_t gen;      /* this connection's generation: its handles carry it */
    int16_t lost_error; /* a negative errno, or 0 */
    uint32_t trace_id;
    uint8_t state;  /* pg__stream_state */
    uint8_t wstate; /* pg__write_state */
    uint8_t rstate; /* pg__read_state */
    uint8_t flow;   /* pg__flow_state */
    uint8_t proto;  /* pg__proto_state */
    uint8_t flags;  /* PG_STREAM_*, PG__STREAM_* */
    uint8_t want;   /* PG__WANT_*: what the driver was last asked for */
    uint8_t corked; /* pg__stream_cork depth: writes wait for the last uncork */
    const pg_stream_driver_ops *drv_ops;
    void *drv;
    pg_protocol protocol;
    /* Write buffer: bytes [whead, wlen) of wbuf are pending; given back to the
     * host when drained (pg__host_give_wbuf). */
    uint8_t *wbuf;
    size_t whead;
    size_t wlen;
    size_t wcap;
    size_t high;
    size_t low;
    /* Bytes a completion driver took and has not finished sending (an
     * io_uring send): buffered as far as the watermarks, the write buffer's
     * size and a close's drain are concerned (pg__stream_sending/sent). */
    uint32_t inflight;
    pg__held_input *held; /* read while the protocol did not read (held_input.c); NULL: none */
} pg__stream;

/* ---- held input (held_input.c) ----------------------------------------- */

/* What a driver read: n bytes, then status (0, PG_STREAM_END, or -errno).
 * The protocol gets what it reads now; the rest, and the status after it,
 * is held for when it reads again (pg_stream_received). */
void pg__stream_take(pg__stream *s, const uint8_t *data, size_t n, int status);
/* Reading resumes with input held: its delivery is deferred (once), and
 * want_read(true) follows it. */
void pg__held_schedule(pg__stream *s);
/* The transport is finished: frees what is held (its delivery, if deferred,
 * frees it instead). */
void pg__held_free(pg__stream *s);
/* Asks the driver to read again (stream.c): held input first, if any. */
void pg__stream_start_reading_now(pg__stream *s);

/* ---- handles and blocks (block_pool.c) ----------------------------------- *
 * A handle (pg_transport *, pg_datagram_transport *, pg_subprocess *) is the block's address
 * with the transport's generation in the top 16 bits (PG__HANDLE_ADDR_MASK,
 * transport.h). The block's generation moves on once connection_lost has
 * run, so every handle of that transport is stale from then on, whatever
 * uses the block next. Blocks come from a pool of the host, one free list
 * per size class, and go back to malloc only with the host: a stale handle
 * always points to a block with a generation to compare, never to freed
 * memory. A block whose 16 bits are used up (generation 0) is retired, never
 * reused: no handle ever matches a later transport. Every block starts with
 * its table, its host and (at PG__BLOCK_GEN_OFFSET) its generation. */

#define PG__HANDLE_GEN_SHIFT 48
#define PG__BLOCK_GEN_OFFSET 16
/* The bytes of a free block the pool leaves alone; its list link follows. */
#define PG__BLOCK_KEPT 24

typedef enum pg__block_class {
    PG__BLOCK_STREAM, /* pg__stream and a driver's fields after it */
    PG__BLOCK_DGRAM,  /* the core's datagram endpoint (datagram.c) */
    PG__BLOCK_SUBPROC, /* the core's subprocess transport (subprocess.c) */
    PG__BLOCK_CLASSES
} pg__block_class;

/* Bytes per block: the core's pg__stream and a driver's fields after it
 * (the fd driver's watcher, its server's list of connections, what it holds). */
#define PG__STREAM_BLOCK 176
/* The core's datagram endpoint (drivers keep theirs apart). */
#define PG__DGRAM_BLOCK 304
/* The core's subprocess transport (its pipes are stream blocks). */
#define PG__SUBPROC_BLOCK 240

/* A free block of class c (its generation set, the rest for the caller to
 * fill), or NULL when out of memory. */
void *pg__block_get(pg_host *host, pg__block_class c);
/* Gives a block back to its host's pool (retired instead at generation 0). */
void pg__block_put(pg_host *host, pg__block_class c, void *block);
/* Frees every block of the host (all free by then). */
void pg__blocks_free(pg_host *host);

static inline pg__stream *pg__stream_of(const pg_transport *t)
{
    return (pg__stream *)((uintptr_t)t & PG__HANDLE_ADDR_MASK);
}

static inline pg_transport *pg__stream_handle(const pg__stream *s)
{
    return (pg_transport *)((uintptr_t)s | (uintptr_t)s->gen << PG__HANDLE_GEN_SHIFT);
}

/* A free stream block (PG__STREAM_BLOCK bytes, for pg__stream_init), or
 * NULL when out of memory. */
static inline pg__stream *pg__stream_block_get(pg_host *host)
{
    return pg__block_get(host, PG__BLOCK_STREAM);
}

static inline void pg__stream_block_put(pg_host *host, pg__stream *s)
{
    pg__block_put(host, PG__BLOCK_STREAM, s);
}

/* A driver that keeps the transport inside its own block (a block from
 * pg__stream_block_get, one per connection) makes it in two steps, so that
 * a protocol is made only once nothing can fail any more: pg__stream_init()
 * reserves the host's deferred calls (it may fail, and then no protocol
 * exists yet); pg__stream_start() attaches the protocol and defers
 * connection_made and the first read (it cannot fail). pg__stream_discard()
 * undoes an init that is never started. Such a driver's close() gives the
 * block back (pg__stream_block_put). */
int pg__stream_init(pg__stream *s, pg_host *host, const pg_stream_driver_ops *ops, void *drv, unsigned flags);
pg_transport *pg__stream_start(pg__stream *s, const pg_protocol *protocol);
void pg__stream_discard(pg__stream *s);

/* For a driver whose sends complete later (io_uring): writev took n bytes
 * that are still in flight, then they were sent (error 0) or failed (a
 * negative errno: the connection is broken). In flight, they count as
 * buffered, as asyncio's proactor transport counts its pending write;
 * while a send is in flight such a driver's writev takes nothing (0) and
 * the core waits for sent(), not for writable. sent() may free the
 * transport. */
void pg__stream_sending(pg__stream *s, size_t n);
void pg__stream_sent(pg__stream *s, size_t n, int error);

/* Corking (the framer's, around the messages of one read): while corked,
 * writes are buffered without a system call, and the last uncork sends them
 * in one; a buffer above the high watermark is sent at once, and closing or
 * write_eof flush first. Nests; a stale handle is ignored. */
void pg__stream_cork(pg_transport *t);
void pg__stream_uncork(pg_transport *t);

/* The protocol made by factory(arg), checked: 0 or a negative errno. */
int pg__make_protocol(pg_protocol_factory factory, void *arg, pg_protocol *out);

/* ---- runs of datagrams (datagram_run.c) --------------------------------- */

/* Datagrams stored back to back in one buffer: a datagram transport's send
 * queue and the datagrams it holds while the protocol does not read, the
 * memory driver's output. Each record is a header, the address, the payload
 * (or an error in the payload's place), padded to 8 bytes; records
 * [head, len) of buf are live. An empty run holds no memory. */
typedef struct pg__dgram_run {
    uint8_t *buf;
    size_t head;
    size_t len;
    size_t cap;
    size_t count; /* records */
} pg__dgram_run;

/* One record, as pointers into the run. */
typedef struct pg__dgram_view {
    const uint8_t *data;
    size_t len;
    const struct sockaddr *addr; /* NULL: none */
    socklen_t addrlen;
    int error; /* not 0: an error in the datagram's place (data, len unused) */
    size_t size; /* the record's bytes in the run */
} pg__dgram_view;

/* Appends a datagram (error 0) or an error; -ENOMEM or -EMSGSIZE leave the
 * run as it was. */
int pg__run_push(pg__dgram_run *run, const void *data, size_t len, const struct sockaddr *addr, socklen_t addrlen,
                 int error);
/* The record at offset at (head for the first); the next is at at + v->size. */
void pg__run_peek(const pg__dgram_run *run, size_t at, pg__dgram_view *v);
/* Drops the first record, of size bytes. */
void pg__run_pop(pg__dgram_run *run, size_t size);
void pg__run_clear(pg__dgram_run *run);

/* ---- datagram transports (datagram.c) ----------------------------------- */

/* The bytes of the core's per-endpoint transport (its block), for tests
 * and reports. */
size_t pg__datagram_core_sizeof(void);

/* ---- subprocess transports (subprocess.c) ------------------------------ */

/* The pg_subprocess * below (alloc's out, the arguments) are handles with
 * the generation: the driver keeps alloc's for pg_subprocess_exited. */

/* A driver that makes its pipes' stream transports itself (the built-in
 * loop's fd pipes live in the fd driver's blocks) makes a subprocess in
 * steps, so that nothing can fail once the child runs: pg__subprocess_alloc()
 * (may fail; pg__subprocess_discard() undoes it), the pipes' transports
 * started with pg__subprocess_pipe_protocol() and the PG_STREAM_* flags of
 * pg__subprocess_pipe_flags(), then pg__subprocess_start() (cannot fail). */
int pg__subprocess_alloc(pg_host *host, pg_subprocess **out);
void pg__subprocess_discard(pg_subprocess *p);
unsigned pg__subprocess_pipe_flags(int fd);
pg_protocol pg__subprocess_pipe_protocol(pg_subprocess *p, int fd);
/* pipes[fd]: the pipe's transport, NULL where fd is not a pipe. held: the
 * caller holds the transport (pg_subprocess_release). */
void pg__subprocess_start(pg_subprocess *p, const pg_process_driver_ops *ops, void *drv, pid_t pid,
                          pg_transport *const pipes[3], const pg_subprocess_protocol *protocol, bool held);

/* ---- writes without SIGPIPE (nosigpipe.c) ------------------------------ */

/* writev() that never raises SIGPIPE in the process. */
ssize_t pg__write_nosigpipe(int fd, const struct iovec *iov, int iovcnt);

/* ---- tracing (trace.c) -------------------------------------------------- */

/* -1 when PROTOGEN_TRACE is unset: every trace point is one branch. */
extern int pg__trace_fd;

/* Reads PROTOGEN_TRACE once per process. */
void pg__trace_init(void);
/* For tests: closes the trace file, re-reads PROTOGEN_TRACE and numbers
 * connections from 1 again. */
void pg__trace_reset(void);
/* The next protocol instance number (from 1); 0 when tracing is off. The
 * trace macros write nothing for instance 0. */
uint32_t pg__trace_new_conn(void);

void pg__trace_write(uint32_t conn, const char *callback);
void pg__trace_write_size(uint32_t conn, const char *callback, size_t n);
/* error 0 → "ok", else the errno's name. */
void pg__trace_write_error(uint32_t conn, const char *callback, int error);
/* "<conn> <callback> <a>[ <b>]" (machine.c: state changes, timeouts). */
void pg__trace_write_text(uint32_t conn, const char *callback, const char *a, const char *b);
/* "<conn> protocol_error <ERRNO> <pos>" (framing.c). */
void pg__trace_write_protocol_error(uint32_t conn, int code, uint64_t pos);
/* The driver of a live core stream transport whose driver table is ops:
 * 0, -ENOTSUP for any other transport, -EBADF for a stale handle. */
int pg__transport_driver(const pg_transport *t, const pg_stream_driver_ops *ops, void **out);
/* The trace number of a core stream transport's instance; 0 for others. */
uint32_t pg__transport_trace_id(const pg_transport *t);

/* The instance's number first: 0 when tracing was off as it was made (most
 * programs), and read from what the caller has at hand, not a global. */
#define PG__TRACE(conn, cb)                         \
    do {                                            \
        if ((conn) != 0 && pg__trace_fd >= 0)       \
            pg__trace_write((conn), (cb));          \
    } while (0)
#define PG__TRACE_SIZE(conn, cb, n)                  \
    do {                                             \
        if ((conn) != 0 && pg__trace_fd >= 0)        \
            pg__trace_write_size((conn), (cb), (n)); \
    } while (0)
#define PG__TRACE_ERROR(conn, cb, err)                  \
    do {                                                \
        if ((conn) != 0 && pg__trace_fd >= 0)           \
            pg__trace_write_error((conn), (cb), (err)); \
    } while (0)

/* ---- the read fast path of drivers that embed the core ------------------ */

/* asyncio's is_reading(), except after a kept-open EOF: asyncio still says
 * true there, and a pause/resume would make it read the EOF and call
 * eof_received a second time. Here EOF ends reading for good. */
static inline bool pg__stream_reads(const pg__stream *s)
{
    return s->state == PG__STREAM_OPEN && s->rstate == PG__READ_ACTIVE && !(s->flags & PG_STREAM_WRITE_ONLY);
}

/* pg__stream_data_received of a traced instance (stream.c). */
void pg__stream_data_received_traced(pg__stream *s, const uint8_t *data, size_t n);

/* pg_stream_read for a plain protocol (no get_buffer) that the driver saw
 * reading just before its read: what pg_stream_read would do, inline. The
 * protocol's call is the last thing done, in both branches (a tail call:
 * the caller keeps nothing across it). */
static inline void pg__stream_data_received(pg__stream *s, const uint8_t *data, size_t n)
{
    if (PG__UNLIKELY(s->trace_id != 0)) {
        pg__stream_data_received_traced(s, data, n);
        return;
    }
    if (s->protocol.ops->data_received != NULL)
        s->protocol.ops->data_received(s->protocol.self, data, n);
}

/* A server's close_clients closes a connection through the layer on it, if
 * any: when lower's protocol is a TLS layer with a protocol above, closes
 * that one instead (close_notify once its buffer drained, then lower) and
 * returns true. tls.c sets it as it makes its first layer, so that a program
 * without TLS links no OpenSSL; NULL until then (stream.c). */
typedef bool (*pg__close_above_fn)(pg_transport *lower);
extern _Atomic(pg__close_above_fn) pg__close_above;

#endif
