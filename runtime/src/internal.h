/* libprotogen internals: shared between the runtime's source files (and the
 * runtime's own tests). Nothing here is part of the public API. */
#ifndef PROTOGEN_INTERNAL_H
#define PROTOGEN_INTERNAL_H

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "protogen/datagram.h"
#include "protogen/loop.h"
#include "protogen/protocol.h"
#include "protogen/transport.h"
#include "protogen/server.h"

#include "core_internal.h"

/* One read per readiness event, as asyncio's max_size. */
#define PG__READ_BUFFER_SIZE ((size_t)256 * 1024)
/* An io_uring receive's buffer (PG__IO_RECV): one that comes full is topped
 * up by a recv of the rest, up to PG__READ_BUFFER_SIZE (fd_stream.c). */
#define PG__RECV_BUFFER_SIZE ((size_t)16 * 1024)

/* ---- fd watchers (loop.c) ------------------------------------------------ */

#define PG__IO_READ ((uint32_t)EPOLLIN)
#define PG__IO_WRITE ((uint32_t)EPOLLOUT)
/* io_uring only (pg__loop_can_recv): the socket's bytes come in completions,
 * the callback gets PG__IO_RECV and reads them with pg__loop_recv_result. */
#define PG__IO_RECV ((uint32_t)1 << 30)
/* io_uring only (pg__loop_send): a send in the ring completed; the callback
 * gets PG__IO_SENT and its outcome from pg__loop_send_result. */
#define PG__IO_SENT ((uint32_t)1 << 29)

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
/* Removes interests; the fd leaves the epoll set when none is left. A
 * negative errno when the set could not be changed (a failed MOD): the fd is
 * then out of the set altogether (never a stale interest that spins the
 * loop), which its owner must treat as an error of its transport. */
int pg__io_stop(pg_loop *loop, pg__io *io, uint32_t events);
/* Stops everything, before the fd's close: what the backend still has of
 * the fd in flight (a receive) is forgotten, its bytes dropped. */
void pg__io_close(pg_loop *loop, pg__io *io);
/* True when the loop's backend receives for PG__IO_RECV (io_uring with
 * buffer rings, Linux 5.19); set up at the first ask. */
bool pg__loop_can_recv(pg_loop *loop);
/* In a PG__IO_RECV callback: the bytes (> 0), the end (0) or the error
 * (-errno) received; *data valid during the callback only. */
ssize_t pg__loop_recv_result(const pg_loop *loop, const uint8_t **data);
/* True when the loop's backend sends through completions (io_uring). */
bool pg__loop_can_send(const pg_loop *loop);
/* io_uring: whether io's next write is a send system call of its own
 * (a quiet loop, nothing of the fd's in flight) rather than one through the
 * ring; what that call leaves goes through the ring (pg__loop_send). */
bool pg__loop_sends_now(const pg_loop *loop, const pg__io *io);
/* io_uring: a copy of what can go of iov[0..iovcnt), past its first skip
 * bytes, is sent through the ring for io's fd, submitted with the
 * iteration's wait (at once when the loop does not run): the bytes taken, 0
 * while the fd's last send is still in flight, or -errno. io's callback
 * gets PG__IO_SENT when it completed. */
ssize_t pg__loop_send(pg_loop *loop, pg__io *io, const struct iovec *iov, int iovcnt, size_t skip);
/* In a PG__IO_SENT callback: 0 or -errno, and the bytes of the send. */
int pg__loop_send_result(const pg_loop *loop, size_t *len);

/* ---- the ready queue (loop.c) ------------------------------------------- *
 * Runtime objects reserve the ready-queue slots they will need later (e.g. the
 * deferred connection_lost), so that scheduling it can never fail. Invariant:
 * queued + reserved <= capacity. */

int pg__loop_reserve(pg_loop *loop);
void pg__loop_unreserve(pg_loop *loop);
/* Queues cb(arg) in a slot reserved earlier; cannot fail. */
void pg__loop_call_soon_reserved(pg_loop *loop, pg_callback_fn cb, void *arg);
/* Replaces every queued cb(arg) with a no-op; how many it replaced. */
size_t pg__loop_cancel_queued(pg_loop *loop, pg_callback_fn cb, void *arg);

/* For the few functions of the per-message path that must be inlined into
 * their caller for the caller's branches to fold (bench/ counts them). */
#if defined(__GNUC__)
#define PG__HOT_INLINE __attribute__((always_inline))
#else
#define PG__HOT_INLINE
#endif

/* The loop-owned read buffer (PG__READ_BUFFER_SIZE bytes), allocated on first
 * use; NULL when out of memory. pg__loop_read_buffer (below the loop's
 * struct) is the inline fast path of every read. */
uint8_t *pg__loop_read_buffer_alloc(pg_loop *loop);

/* ---- nesting the loop (loop_nest.c) ------------------------------------ */

/* The fd an outer loop waits on: the epoll fd, or an eventfd the ring
 * signals (loop.c); -errno when it cannot be made. */
int pg__loop_backend_fd(pg_loop *loop);
/* io_uring: submits what is queued (epoll: nothing to do, its changes are
 * made at once); settle: the loop hands control back (pg__uring_flush). */
void pg__loop_backend_flush(pg_loop *loop, bool settle);

/* Once pg_loop_backend_fd() was asked for, a timerfd in the epoll set wakes
 * it for the earliest timer: re-arms it when that changed. */
void pg__loop_nest_sync(pg_loop *loop);
void pg__loop_nest_free(pg_loop *loop);

/* ---- the io_uring backend (loop_uring.c) ------------------------------- *
 * Built when liburing is (PROTOGEN_HAVE_URING); loop.c picks it or epoll in
 * pg_loop_new. The same contract as the epoll backend's functions there. */
typedef struct pg__uring pg__uring;
#ifdef PROTOGEN_HAVE_URING
int pg__uring_new(pg__uring **out); /* -errno: the kernel refuses io_uring (ENOSYS, EPERM) */
void pg__uring_free(pg__uring *u);
int pg__uring_nest_fd(pg__uring *u); /* the fd for pg_loop_backend_fd, or -errno */
int pg__uring_set(pg__uring *u, pg__io *io, uint32_t old_events, uint32_t new_events);
/* Submits what is queued and waits; stopping (NULL: none) ends an EINTR'd wait. */
int pg__uring_wait(pg__uring *u, int timeout_ms, const atomic_int *stopping);
void pg__uring_dispatch(pg__uring *u);
bool pg__uring_can_recv(pg__uring *u);
void pg__uring_close(pg__uring *u, pg__io *io);
ssize_t pg__uring_recv_result(const pg__uring *u, const uint8_t **data);
bool pg__uring_sends_now(const pg__uring *u, const pg__io *io);
ssize_t pg__uring_send(pg__uring *u, pg__io *io, const struct iovec *iov, int iovcnt, size_t skip);
int pg__uring_send_result(const pg__uring *u, size_t *len);
/* Submits what is queued; settle (the loop hands control back: a run
 * returns): also waits for its cancelled polls to complete, so that the
 * kernel closes their files, and, when nested, leaves the nest fd readable
 * only when completions wait. */
void pg__uring_flush(pg__uring *u, bool settle);
#endif

/* ---- signals (signal.c) ------------------------------------------------- */

typedef struct pg__signals pg__signals;
void pg__signals_free(pg_loop *loop);

/* ---- the loop ----------------------------------------------------------- */

typedef struct pg__callback {
    pg_callback_fn fn;
    void *arg;
} pg__callback;

/* ---- callbacks from other threads (loop_threadsafe.c) -------------------- *
 * pg_loop_call_soon_threadsafe queues under the loop's mutex and writes the
 * wake-up eventfd when the queue was empty; the loop runs the batch when the
 * eventfd fires. Open loops are listed in a registry, so that a call racing
 * with pg_loop_close finds the loop gone (-EBADF) instead of freed memory. */
typedef struct pg__threadsafe {
    pthread_mutex_t lock; /* guards queue and len (and cap) */
    pg__callback *queue;
    size_t len, cap;
    pg__callback *batch; /* the loop's thread only: the batch being run */
    size_t batch_cap;
    pg_loop *next; /* in the registry of open loops */
} pg__threadsafe;

void pg__threadsafe_init(pg_loop *loop); /* and registers the loop */
/* Runs what other threads have queued so far, in their order; how many. */
size_t pg__threadsafe_run(pg_loop *loop);
/* The wake-up eventfd was emptied for a stop's sake: written again when
 * callbacks from other threads wait, so that they are not forgotten. */
void pg__threadsafe_rewake(pg_loop *loop);
/* pg_loop_close: unregister (later calls get -EBADF); register again when
 * the close gives up (-EBUSY); free once it is done. */
void pg__threadsafe_close(pg_loop *loop);
void pg__threadsafe_reopen(pg_loop *loop);
void pg__threadsafe_free(pg_loop *loop);

/* stopping is set from signal handlers and other threads: a lock-free atomic
 * is safe in both (C11 7.14.1.1), and its loads cost a plain load. */
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "pg_loop_stop needs a lock-free int");

#define PG__MAX_EVENTS 64

struct pg_loop {
    int epfd;         /* the epoll backend's; -1 on io_uring */
    pg__uring *uring; /* the io_uring backend; NULL on epoll */
    atomic_int stopping; /* set by pg_loop_stop, maybe from a signal handler or another thread */
    pg__io wake;                    /* the eventfd pg_loop_stop writes then */
    bool running;     /* inside an iteration (or pg_loop_close's): no nesting */
    size_t nwatched;  /* watchers in the backend's set */
    pg_server *closed_servers; /* kept until pg_loop_close (server.c) */
    struct pg__connect *connects; /* connects not yet reported to done (connect.c) */
    int nevents; /* events[0..nevents) is the batch being dispatched */
    uint64_t now_ms;
    /* ready queue: a ring of cap (a power of two) entries */
    pg__callback *ready;
    size_t ready_head;
    size_t ready_len;
    size_t ready_cap;
    size_t ready_reserved;
    pg_timer_queue timers; /* pg_loop_call_later's and the host's (loop_host.c) */
    pg__io timerfd;        /* fd -1 until the loop is nested (loop_nest.c) */
    uint64_t timerfd_due;  /* what it is armed for; UINT64_MAX: disarmed */
    pg_host host; /* the loop as the core's host (loop_host.c) */
    uint8_t *read_buf;
    uint8_t *dgram_buf; /* datagram receive area (pg__loop_datagram_buffer) */
    pg__signals *signals;
    struct epoll_event events[PG__MAX_EVENTS];
    pg__threadsafe threadsafe; /* last: off the per-message path's cache lines */
};

/* ---- addresses (address.c) --------------------------------------------- */

/* Numeric IPv4/IPv6 (optionally in brackets); when passive (binding) also
 * "localhost", and an empty or NULL host for "any". -EINVAL otherwise (a
 * name, for connects: resolved elsewhere). */
int pg__parse_address(const char *host, uint16_t port, bool passive, struct sockaddr_storage *ss, socklen_t *len);

/* ---- socket options (sockopt.c) ----------------------------------------- */

/* TCP_NODELAY, as asyncio sets on every TCP transport (failure is harmless). */
void pg__socket_nodelay(int fd);
/* SO_SNDBUF/SO_RCVBUF from opts (NULL or 0: the kernel's); 0 or -errno. */
int pg__socket_buffer_sizes(int fd, const pg_listen_options *opts);

/* ---- the loop as a host of the core (loop_host.c) ----------------------- */

/* Sets up loop->host: deferred calls go to the ready queue. */
void pg__loop_host_init(pg_loop *loop);
static inline pg_host *pg__loop_host(pg_loop *loop) { return &loop->host; }

static inline uint8_t *pg__loop_read_buffer(pg_loop *loop)
{
    return loop->read_buf != NULL ? loop->read_buf : pg__loop_read_buffer_alloc(loop);
}

/* ---- fd stream transports (fd_stream.c) --------------------------------- */

/* The core's PG_STREAM_* flags, and the fd driver's own. */
enum pg__stream_flags {
    PG__STREAM_CAN_WRITE_EOF = PG_STREAM_CAN_WRITE_EOF,
    PG__STREAM_READ_PIPE = PG_STREAM_READ_ONLY,   /* asyncio's _UnixReadPipeTransport: no writing */
    PG__STREAM_WRITE_PIPE = PG_STREAM_WRITE_ONLY, /* asyncio's _UnixWritePipeTransport: no reading */
    PG__STREAM_UNTRACED = PG_STREAM_UNTRACED, /* part of another protocol instance (a subprocess's pipe) */
    /* the fd driver's, in the core's PG__STREAM_DRIVER_BITS */
    PG__STREAM_SOCKET = 32,       /* send/recv with MSG_NOSIGNAL; socket extra info */
    PG__STREAM_WATCH_READER = 64, /* write pipe: readable means the reader is gone */
};

typedef struct pg__fdstream pg__fdstream;

/* Two steps, so that a protocol is made only once nothing can fail any more
 * (pg__stream_init/pg__stream_start in the core): pg__fdstream_alloc() may
 * fail, and then no protocol exists yet; pg__fdstream_start() cannot.
 * pg__fdstream_discard() undoes an alloc that is never started; the fd stays
 * the caller's. */
int pg__fdstream_alloc(pg_loop *loop, int fd, unsigned flags, pg__fdstream **out);
pg_transport *pg__fdstream_start(pg__fdstream *f, const pg_protocol *protocol);
void pg__fdstream_discard(pg__fdstream *f);

/* alloc, factory(arg), start: the factory is called last. On error the fd
 * stays the caller's and no protocol callback will ever be called. */
int pg__fdstream_open(pg_loop *loop, int fd, unsigned flags, pg_protocol_factory factory, void *arg,
                      pg_transport **out);

/* sizeof the per-connection transport block, for tests and reports. */
size_t pg__stream_sizeof(void);

/* Puts t (an fd stream) first on a server's list of connections; it leaves
 * the list when it ends, after its connection_lost. */
void pg__fdstream_join(pg_transport *t, pg__fdstream **list);
/* Closes (or aborts) every transport on the list, newest first. */
void pg__fdstream_close_list(pg__fdstream *list, bool abort);

/* ---- listening and connecting stream sockets (server.c, connect.c) ------ */

/* Makes a server of a bound, listening, non-blocking socket (taken over on
 * success): accepted connections become stream transports with flags. */
int pg__server_new(pg_loop *loop, int fd, int backlog, unsigned flags, pg_protocol_factory factory, void *arg,
                   pg_server **out);
/* Frees the closed servers kept so that a second close is told (-EBADF). */
void pg__servers_free(pg_loop *loop);
/* Unix servers: the socket file to remove on close, if it is still ours. */
int pg__server_set_unlink(pg_server *server, const char *path);

/* A non-blocking connect that tries addrs[0..n) in order until one connects
 * (asyncio's create_connection), within timeout_ms in all (0: the default,
 * PG_CONNECT_NO_TIMEOUT: none). Copies the addresses. Everything after a
 * successful return goes through done. */
typedef struct pg__sockaddr {
    struct sockaddr_storage ss;
    socklen_t len;
} pg__sockaddr;

typedef struct pg__connect pg__connect;
typedef struct pg__resolve pg__resolve;
int pg__connect_new(pg_loop *loop, uint32_t timeout_ms, unsigned flags, pg_protocol_factory factory,
                    void *factory_arg, pg_connect_cb done, void *done_arg, pg__connect **out);
/* Starts connecting to the addresses (copied); the connect reports through done. */
void pg__connect_start(pg__connect *c, const pg__sockaddr *addrs, size_t n);
/* The attempt failed before connecting (e.g. resolution): reports error. */
void pg__connect_fail(pg__connect *c, int error);
/* The lookup running for c: abandoned if c ends first (timeout, cancel);
 * otherwise it ends with pg__connect_start or pg__connect_fail. */
void pg__connect_set_resolve(pg__connect *c, pg__resolve *job);
/* Frees a connect that was never started (nothing has been reported). */
void pg__connect_discard(pg__connect *c);
/* What the loop's pending connects hold: ready-queue reservations (besides
 * their timers') and watched fds (sockets, lookups' eventfds). */
void pg__connects_held(const pg_loop *loop, size_t *reserved, size_t *watched);
/* Cancels every pending connect: each reports -ECANCELED. */
void pg__connects_cancel_all(pg_loop *loop);

/* ---- name resolution (resolve.c) ---------------------------------------- */

/* Resolves host:port for a stream connect on a helper thread, without
 * blocking the loop; then calls pg__connect_start or pg__connect_fail. */
int pg__resolve_and_connect(pg__connect *c, pg_loop *loop, const char *host, uint16_t port);
/* The connect no longer waits for this lookup: the loop stops watching it,
 * and its thread frees it when getaddrinfo returns. */
void pg__resolve_abandon(pg__resolve *job);
/* Lookup threads that have not ended yet (abandoned ones too), for tests. */
size_t pg__resolve_in_flight(void);

/* ---- fd datagram transports (fd_datagram.c) ----------------------------- */

/* Datagrams read per readiness event (one recvmmsg), and the size of each
 * one's slot in the loop's receive area: every UDP datagram fits. */
#define PG__DGRAM_BATCH 16
#define PG__DGRAM_SLOT ((size_t)64 * 1024)

/* The loop-owned receive area: PG__DGRAM_BATCH slots of PG__DGRAM_SLOT bytes,
 * allocated on first use (pages the kernel never writes stay unbacked); NULL
 * when out of memory. */
uint8_t *pg__loop_datagram_buffer(pg_loop *loop);

/* Makes a datagram transport over a non-blocking SOCK_DGRAM fd, connected or
 * not; factory(arg) is called last, once nothing can fail. On error the fd
 * stays the caller's and no protocol callback is ever called. */
int pg__datagram_open(pg_loop *loop, int fd, pg_datagram_protocol_factory factory, void *arg,
                      pg_datagram_transport **out);

/* sizeof an endpoint (the core's transport and the fd driver), for tests and reports. */
size_t pg__datagram_sizeof(void);

#endif
