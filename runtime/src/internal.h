/* libprotogen internals: shared between the runtime's source files (and the
 * runtime's own tests). Nothing here is part of the public API. */
#ifndef PROTOGEN_INTERNAL_H
#define PROTOGEN_INTERNAL_H

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>

#include "protogen/loop.h"
#include "protogen/protocol.h"
#include "protogen/transport.h"

#define PG__CONTAINER_OF(ptr, type, field) ((type *)(void *)((char *)(ptr)-offsetof(type, field)))

/* Retries a system call while it fails with EINTR; r gets the result. */
#define PG__RETRY_EINTR(r, call) \
    do {                         \
        (r) = (call);            \
    } while ((r) == -1 && errno == EINTR)

/* One read per readiness event, as asyncio's max_size. */
#define PG__READ_BUFFER_SIZE ((size_t)256 * 1024)

/* ---- fd watchers (loop.c) ------------------------------------------------ */

#define PG__IO_READ ((uint32_t)EPOLLIN)
#define PG__IO_WRITE ((uint32_t)EPOLLOUT)

typedef struct pg__io pg__io;

/* events holds the interests that are set and ready at once (PG__IO_*).
 * Called only for interests still set when the event is dispatched. */
typedef void (*pg__io_cb)(pg__io *io, uint32_t events);

struct pg__io {
    int fd;
    uint32_t events; /* current interest; 0: not in the epoll set */
    pg__io_cb cb;
};

void pg__io_init(pg__io *io, int fd, pg__io_cb cb);
/* Adds interests; 0 or a negative errno. */
int pg__io_start(pg_loop *loop, pg__io *io, uint32_t events);
/* Removes interests; the fd leaves the epoll set when none is left. */
void pg__io_stop(pg_loop *loop, pg__io *io, uint32_t events);

/* ---- the ready queue (loop.c) ------------------------------------------- *
 * Runtime objects reserve the ready-queue slots they will need later (e.g. the
 * deferred connection_lost), so that scheduling it can never fail. Invariant:
 * queued + reserved <= capacity. */

int pg__loop_reserve(pg_loop *loop);
void pg__loop_unreserve(pg_loop *loop);
/* Queues cb(arg) in a slot reserved earlier; cannot fail. */
void pg__loop_call_soon_reserved(pg_loop *loop, pg_callback_fn cb, void *arg);
/* Replaces every queued cb(arg) with a no-op. */
void pg__loop_cancel_queued(pg_loop *loop, pg_callback_fn cb, void *arg);

/* The loop-owned read buffer (PG__READ_BUFFER_SIZE bytes), allocated on first
 * use; NULL when out of memory. */
uint8_t *pg__loop_read_buffer(pg_loop *loop);

/* ---- timers (timer.c) --------------------------------------------------- */

typedef struct pg__timer_heap {
    pg_timer **items;
    size_t len;
    size_t cap;
    uint64_t seq;
} pg__timer_heap;

/* A timer whose callback sits in the ready queue (still active). */
#define PG__TIMER_QUEUED (SIZE_MAX - 1)

/* The due time of the earliest timer, false when there is none. */
bool pg__timers_next(const pg_loop *loop, uint64_t *due_ms);
/* Moves the timers due at now_ms to the ready queue, in (due, seq) order. */
void pg__timers_run_due(pg_loop *loop);
void pg__timers_free(pg_loop *loop);

/* ---- signals (signal.c) ------------------------------------------------- */

typedef struct pg__signals pg__signals;
void pg__signals_free(pg_loop *loop);

/* ---- the loop ----------------------------------------------------------- */

typedef struct pg__callback {
    pg_callback_fn fn;
    void *arg;
} pg__callback;

#define PG__MAX_EVENTS 64

struct pg_loop {
    int epfd;
    bool stopping;
    uint64_t now_ms;
    /* ready queue: a ring of cap (a power of two) entries */
    pg__callback *ready;
    size_t ready_head;
    size_t ready_len;
    size_t ready_cap;
    size_t ready_reserved;
    pg__timer_heap timers;
    uint8_t *read_buf;
    pg__signals *signals;
    struct epoll_event events[PG__MAX_EVENTS];
};

/* ---- stream transports (stream.c) --------------------------------------- */

enum pg__stream_flags {
    PG__STREAM_SOCKET = 1, /* send/recv with MSG_NOSIGNAL; extra info */
    PG__STREAM_CAN_WRITE_EOF = 2,
};

/* Makes a stream transport over a connected non-blocking fd, owned from now
 * on: connection_made and the first read are scheduled with call_soon. On
 * error nothing is scheduled and the fd is left open. */
int pg__stream_new(pg_loop *loop, int fd, const pg_protocol *protocol, unsigned flags, pg_transport **out);

/* sizeof the per-connection transport struct, for tests and reports. */
size_t pg__stream_sizeof(void);

/* ---- tracing (trace.c) -------------------------------------------------- */

/* -1 when PROTOGEN_TRACE is unset: every trace point is one branch. */
extern int pg__trace_fd;

/* Reads PROTOGEN_TRACE once per process. */
void pg__trace_init(void);
/* For tests: closes the trace file, re-reads PROTOGEN_TRACE and numbers
 * connections from 1 again. */
void pg__trace_reset(void);
/* The next protocol instance number (from 1); 0 when tracing is off. */
uint32_t pg__trace_new_conn(void);

void pg__trace_write(uint32_t conn, const char *callback);
void pg__trace_write_size(uint32_t conn, const char *callback, size_t n);
/* error 0 → "ok", else the errno's name. */
void pg__trace_write_error(uint32_t conn, const char *callback, int error);

#define PG__TRACE(conn, cb)                  \
    do {                                     \
        if (pg__trace_fd >= 0)               \
            pg__trace_write((conn), (cb));   \
    } while (0)
#define PG__TRACE_SIZE(conn, cb, n)                  \
    do {                                             \
        if (pg__trace_fd >= 0)                       \
            pg__trace_write_size((conn), (cb), (n)); \
    } while (0)
#define PG__TRACE_ERROR(conn, cb, err)                  \
    do {                                                \
        if (pg__trace_fd >= 0)                          \
            pg__trace_write_error((conn), (cb), (err)); \
    } while (0)

#endif
