/* The subprocess transport's semantics (asyncio's BaseSubprocessTransport,
 * in Lib/asyncio/base_subprocess.py): a child, up to three pipe transports to
 * its stdin, stdout and stderr, and the protocol that hears about all of them.
 * No system call: the child is behind a process driver (pg_process_driver_ops:
 * signals, the pidfd, release), which reports its exit with
 * pg_subprocess_exited; spawning and reaping are the driver's (the built-in
 * loop's in runtime/src/subprocess*.c).
 *
 * The pipes are ordinary stream transports (stream.c's read and write pipe
 * modes) over any stream driver, each with a small internal protocol that
 * forwards its callbacks to the subprocess protocol with the pipe's fd added
 * (asyncio's WriteSubprocessPipeProto / ReadSubprocessPipeProto).
 *
 * Order, as asyncio: connection_made first; events that happen before it (a
 * child that exits at once, a close() straight after spawning) wait in a
 * small queue and are replayed right after it; connection_lost last, from its
 * own host turn, once the child is reaped and every pipe has been lost.
 *
 * Lifetime: the transport is the runtime's until connection_lost has run, and
 * also the caller's while it holds it (pg_subprocess_spawn's out); its block
 * goes back to the host's pool when both are done, and its generation moves
 * on then: a call through a handle of it is stale from there, detected at
 * the entry of every pg_subprocess_* function and dropped, whoever holds the
 * block next (core_internal.h, "handles and blocks"). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core_internal.h"

/* The events asyncio passes through _call(): queued before connection_made. */
typedef enum pg__subevent_kind {
    PG__SUBEV_PIPE_LOST,
    PG__SUBEV_EXITED,
    PG__SUBEV_LOST,
} pg__subevent_kind;

typedef struct pg__subevent {
    uint8_t kind; /* pg__subevent_kind */
    uint8_t fd;
    int error;
} pg__subevent;

/* At most: three pipes lost, the exit, connection_lost. Pipe data cannot
 * come before connection_made: it runs in the host turn that starts reading. */
#define PG__SUBPROCESS_MAX_PENDING 5

/* One of the child's stdin, stdout, stderr, when it is a pipe. */
typedef struct pg__subpipe {
    struct pg__subproc *proc;
    pg_transport *transport; /* NULL before spawning and after its connection_lost */
    uint8_t fd;
    bool piped; /* the child's fd is a pipe to us (it may be closed since) */
    bool open;  /* a pipe whose connection_lost has not come yet */
    size_t high, low; /* stdin: its write buffer limits, kept once it is gone */
} pg__subpipe;

/* The transport's block; a pg_subprocess * is a handle of it. */
typedef struct pg__subproc {
    /* What a stale handle reads of its block, first (block_pool.c keeps
     * these bytes of a free block intact): */
    const pg_process_driver_ops *drv_ops;
    pg_host *host;
    uint16_t gen; /* this transport's generation: its handles carry it */
    void *drv;
    pg_subprocess_protocol protocol;
    pg__subpipe pipes[3];
    pid_t pid;
    int returncode;
    uint32_t trace_id;
    bool exited;    /* reaped: returncode is set */
    bool closed;    /* close() was called */
    bool connected; /* connection_made has run */
    bool finished;  /* connection_lost is scheduled (asyncio's _finished) */
    bool lost;      /* connection_lost has returned */
    bool held;      /* the caller holds the transport */
    bool stdin_paused; /* the stdin pipe's flow control, as the protocol was told */
    bool pause_held;   /* stdin paused before connection_made: told right after it */
    uint8_t npending;
    pg__subevent pending[PG__SUBPROCESS_MAX_PENDING];
} pg__subproc;

_Static_assert(offsetof(pg__subproc, gen) == PG__BLOCK_GEN_OFFSET, "the generation where the pool keeps it");
_Static_assert(offsetof(pg__subproc, host) + sizeof(pg_host *) <= PG__BLOCK_KEPT, "a stale call reads only the kept bytes");
_Static_assert(sizeof(pg__subproc) <= PG__SUBPROC_BLOCK, "the transport fits in a block");

#define PG__SUBPROC(h) ((pg__subproc *)((uintptr_t)(h) & PG__HANDLE_ADDR_MASK))

static pg_subprocess *pg__subproc_handle(const pg__subproc *p)
{
    return (pg_subprocess *)((uintptr_t)p | (uintptr_t)p->gen << PG__HANDLE_GEN_SHIFT);
}

/* ---- stale handles ------------------------------------------------------ */

/* The transport behind the handle of a pg_subprocess_* call, or NULL when
 * the handle is stale (kept past connection_lost without a hold, or past
 * pg_subprocess_release): a bug of the caller, counted, and debug builds
 * stop here. */
static pg__subproc *pg__subproc_live(const pg_subprocess *h)
{
    pg__subproc *p = PG__SUBPROC(h);
    if (p->gen == (uint16_t)((uintptr_t)h >> PG__HANDLE_GEN_SHIFT))
        return p;
    p->host->stale_calls++;
    assert(!p->host->stale_assert && "a pg_subprocess used after its connection_lost (or release)");
    return NULL;
}

/* ---- tracing: "<conn> <callback> [<fd>] [<detail>]" ---------------------- */

/* The callback's name with a number after it: the trace writers' <callback>. */
static const char *pg__subprocess_trace_name(char *buf, size_t size, const char *callback, int n)
{
    snprintf(buf, size, "%s %d", callback, n);
    return buf;
}

static void pg__subprocess_trace_data(const pg__subproc *p, int fd, size_t len)
{
    if (pg__trace_fd < 0)
        return;
    char name[48];
    PG__TRACE_SIZE(p->trace_id, pg__subprocess_trace_name(name, sizeof name, "pipe_data_received", fd), len);
}

static void pg__subprocess_trace_pipe_lost(const pg__subproc *p, int fd, int error)
{
    if (pg__trace_fd < 0)
        return;
    char name[48];
    PG__TRACE_ERROR(p->trace_id, pg__subprocess_trace_name(name, sizeof name, "pipe_connection_lost", fd), error);
}

static void pg__subprocess_trace_exited(const pg__subproc *p)
{
    if (pg__trace_fd < 0)
        return;
    char name[48];
    PG__TRACE(p->trace_id, pg__subprocess_trace_name(name, sizeof name, "process_exited", p->returncode));
}

/* ---- the protocol's callbacks, in order ---------------------------------- */

/* The memory would go here: every handle is stale from now on. */
static void pg__subprocess_free(pg__subproc *p)
{
    p->gen++;
    pg__block_put(p->host, PG__BLOCK_SUBPROC, p);
}

/* asyncio's _call_connection_lost: the last callback. Lost only once it has
 * returned, as asyncio clears _proc in its finally: inside it a signal is
 * still a no-op (not -ESRCH), and a pg_subprocess_release() there only drops
 * the hold, the memory going here, after the callback. */
static void pg__subprocess_lost_cb(void *arg)
{
    pg__subproc *p = arg;
    assert(p->connected && p->finished && !p->lost);
    PG__TRACE_ERROR(p->trace_id, "connection_lost", 0);
    if (p->protocol.ops->connection_lost != NULL)
        p->protocol.ops->connection_lost(p->protocol.self, 0);
    p->lost = true;
    p->drv_ops->close(p->drv); /* the child was reaped: the driver lets go */
    if (!p->held)
        pg__subprocess_free(p);
}

static void pg__subprocess_deliver(pg__subproc *p, const pg__subevent *ev)
{
    const pg_subprocess_protocol_ops *ops = p->protocol.ops;
    switch ((pg__subevent_kind)ev->kind) {
    case PG__SUBEV_PIPE_LOST:
        pg__subprocess_trace_pipe_lost(p, ev->fd, ev->error);
        if (ops->pipe_connection_lost != NULL)
            ops->pipe_connection_lost(p->protocol.self, ev->fd, ev->error);
        break;
    case PG__SUBEV_EXITED:
        pg__subprocess_trace_exited(p);
        if (ops->process_exited != NULL)
            ops->process_exited(p->protocol.self);
        break;
    case PG__SUBEV_LOST:
        /* From a turn of its own, as asyncio's call_soon: the callbacks
         * before it have all returned. */
        pg__host_defer(p->host, pg__subprocess_lost_cb, p);
        break;
    }
}

/* asyncio's _call: now, or after connection_made when it has not run yet. */
static void pg__subprocess_call(pg__subproc *p, pg__subevent_kind kind, int fd, int error)
{
    pg__subevent ev = { .kind = (uint8_t)kind, .fd = (uint8_t)fd, .error = error };
    if (p->connected) {
        pg__subprocess_deliver(p, &ev);
        return;
    }
    assert(p->npending < PG__SUBPROCESS_MAX_PENDING);
    p->pending[p->npending++] = ev;
}

/* asyncio's _try_finish: connection_lost once the child is reaped and every
 * pipe is lost. */
static void pg__subprocess_try_finish(pg__subproc *p)
{
    if (p->finished || !p->exited)
        return;
    for (int fd = 0; fd < 3; fd++)
        if (p->pipes[fd].open)
            return;
    p->finished = true;
    pg__subprocess_call(p, PG__SUBEV_LOST, 0, 0);
}

static void pg__subprocess_pause_writing(pg__subproc *p);

static void pg__subprocess_connection_made(void *arg)
{
    pg__subproc *p = arg;
    assert(!p->connected);
    p->connected = true;
    PG__TRACE(p->trace_id, "connection_made");
    if (p->protocol.ops->connection_made != NULL)
        p->protocol.ops->connection_made(p->protocol.self, pg__subproc_handle(p));
    /* Replay what happened before. Whatever happens from now on is
     * delivered directly, and it can only come later: from the host or the driver. */
    for (uint8_t i = 0; i < p->npending; i++)
        pg__subprocess_deliver(p, &p->pending[i]);
    p->npending = 0;
    if (p->pause_held && p->pipes[0].transport != NULL) {
        p->pause_held = false;
        pg__subprocess_pause_writing(p);
    }
}

void pg_subprocess_exited(pg_subprocess *proc, int returncode)
{
    pg__subproc *p = pg__subproc_live(proc);
    if (p == NULL)
        return;
    assert(!p->exited);
    if (p->exited)
        return;
    p->exited = true;
    p->returncode = returncode;
    pg__subprocess_call(p, PG__SUBEV_EXITED, 0, 0);
    pg__subprocess_try_finish(p);
}

/* ---- the pipes' protocol (asyncio's *SubprocessPipeProto) ---------------- */

static void pg__subpipe_connection_made(void *self, pg_transport *transport)
{
    pg__subpipe *pipe = self;
    assert(pipe->transport == transport);
    (void)pipe;
    (void)transport;
}

static void pg__subpipe_data_received(void *self, const uint8_t *data, size_t len)
{
    pg__subpipe *pipe = self;
    pg__subproc *p = pipe->proc;
    /* The pipes start reading after the subprocess's connection_made. */
    assert(p->connected);
    pg__subprocess_trace_data(p, pipe->fd, len);
    if (p->protocol.ops->pipe_data_received != NULL)
        p->protocol.ops->pipe_data_received(p->protocol.self, pipe->fd, data, len);
}

static bool pg__subpipe_eof_received(void *self)
{
    (void)self;
    return false; /* a read pipe closes at EOF; pipe_connection_lost tells */
}

static void pg__subpipe_connection_lost(void *self, int error)
{
    pg__subpipe *pipe = self;
    pg__subproc *p = pipe->proc;
    /* Still valid here: keep what asyncio's closed pipe object still tells. */
    pg_transport_get_write_buffer_limits(pipe->transport, &pipe->high, &pipe->low);
    pipe->transport = NULL;
    pipe->open = false;
    pg__subprocess_call(p, PG__SUBEV_PIPE_LOST, pipe->fd, error);
    pg__subprocess_try_finish(p);
}

static void pg__subprocess_pause_writing(pg__subproc *p)
{
    p->stdin_paused = true;
    PG__TRACE_SIZE(p->trace_id, "pause_writing", pg_transport_get_write_buffer_size(p->pipes[0].transport));
    if (p->protocol.ops->pause_writing != NULL)
        p->protocol.ops->pause_writing(p->protocol.self);
}

static void pg__subpipe_pause_writing(void *self)
{
    pg__subpipe *pipe = self;
    pg__subproc *p = pipe->proc;
    if (!p->connected) {
        /* Written to between spawning and the first host turn: the pause
         * waits for connection_made, which comes in this same turn. */
        p->pause_held = true;
        return;
    }
    pg__subprocess_pause_writing(p);
}

static void pg__subpipe_resume_writing(void *self)
{
    pg__subpipe *pipe = self;
    pg__subproc *p = pipe->proc;
    if (!p->stdin_paused) {
        p->pause_held = false; /* a pause the protocol never heard of */
        return;
    }
    p->stdin_paused = false;
    PG__TRACE_SIZE(p->trace_id, "resume_writing", pg_transport_get_write_buffer_size(pipe->transport));
    if (p->protocol.ops->resume_writing != NULL)
        p->protocol.ops->resume_writing(p->protocol.self);
}

static const pg_protocol_ops pg__subpipe_ops = {
    .connection_made = pg__subpipe_connection_made,
    .data_received = pg__subpipe_data_received,
    .eof_received = pg__subpipe_eof_received,
    .connection_lost = pg__subpipe_connection_lost,
    .pause_writing = pg__subpipe_pause_writing,
    .resume_writing = pg__subpipe_resume_writing,
};

/* stdin is a write pipe; stdout and stderr are read pipes. None is traced:
 * its events are the subprocess's. */
unsigned pg__subprocess_pipe_flags(int fd)
{
    if (fd == 0)
        return PG_STREAM_WRITE_ONLY | PG_STREAM_CAN_WRITE_EOF | PG_STREAM_UNTRACED;
    return PG_STREAM_READ_ONLY | PG_STREAM_UNTRACED;
}

/* ---- creation ------------------------------------------------------------ */

/* Two deferred calls: connection_made and connection_lost. */
#define PG__SUBPROCESS_SLOTS 2

int pg__subprocess_alloc(pg_host *host, pg_subprocess **out)
{
    pg__subproc *p = pg__block_get(host, PG__BLOCK_SUBPROC);
    if (p == NULL)
        return -ENOMEM;
    uint16_t gen = p->gen; /* the block's: older handles stay stale */
    memset(p, 0, sizeof *p);
    p->gen = gen;
    for (int reserved = 0; reserved < PG__SUBPROCESS_SLOTS; reserved++) {
        int r = pg__host_reserve(host);
        if (r < 0) {
            while (reserved-- > 0)
                pg__host_unreserve(host);
            pg__block_put(host, PG__BLOCK_SUBPROC, p); /* the handle never got out */
            return r;
        }
    }
    p->host = host;
    for (int fd = 0; fd < 3; fd++) {
        p->pipes[fd].proc = p;
        p->pipes[fd].fd = (uint8_t)fd;
    }
    *out = pg__subproc_handle(p);
    return 0;
}

/* Only the driver had the handle: the generation stays. */
void pg__subprocess_discard(pg_subprocess *proc)
{
    pg__subproc *p = PG__SUBPROC(proc);
    for (int i = 0; i < PG__SUBPROCESS_SLOTS; i++)
        pg__host_unreserve(p->host);
    pg__block_put(p->host, PG__BLOCK_SUBPROC, p);
}

pg_protocol pg__subprocess_pipe_protocol(pg_subprocess *proc, int fd)
{
    pg__subproc *p = PG__SUBPROC(proc);
    assert(fd >= 0 && fd <= 2);
    return (pg_protocol){ .ops = &pg__subpipe_ops, .self = &p->pipes[fd] };
}

void pg__subprocess_start(pg_subprocess *proc, const pg_process_driver_ops *ops, void *drv, pid_t pid,
                          pg_transport *const pipes[3], const pg_subprocess_protocol *protocol, bool held)
{
    pg__subproc *p = PG__SUBPROC(proc);
    p->drv_ops = ops;
    p->drv = drv;
    p->protocol = *protocol;
    p->pid = pid;
    p->held = held;
    p->trace_id = pg__trace_new_conn();
    /* The pipes were started first, as asyncio connects them before the
     * protocol's connection_made: a write to stdin inside it then pauses at
     * once. The pipes' connection_made, first reads and this connection_made
     * all run in the same host turn, so no pipe data can come before it. */
    for (int fd = 0; fd < 3; fd++) {
        pg__subpipe *pipe = &p->pipes[fd];
        if (pipes[fd] == NULL)
            continue;
        pipe->piped = true;
        pipe->open = true;
        pipe->transport = pipes[fd];
    }
    pg__host_defer(p->host, pg__subprocess_connection_made, p);
}

int pg_subprocess_new(pg_host *host, const pg_process_driver_ops *ops, void *driver, pid_t pid,
                      const pg_stream_driver_ops *pipe_ops, void *const pipe_drivers[3],
                      const pg_subprocess_protocol *protocol, pg_subprocess **out)
{
    if (host == NULL || ops == NULL || ops->send_signal == NULL || ops->close == NULL || protocol == NULL
        || protocol->ops == NULL)
        return -EINVAL;
    bool any_pipe = pipe_drivers != NULL
        && (pipe_drivers[0] != NULL || pipe_drivers[1] != NULL || pipe_drivers[2] != NULL);
    if (any_pipe && (pipe_ops == NULL || pipe_ops->writev == NULL || pipe_ops->shutdown_write == NULL
                     || pipe_ops->want_read == NULL || pipe_ops->want_write == NULL || pipe_ops->close == NULL))
        return -EINVAL;
    pg_subprocess *p;
    int r = pg__subprocess_alloc(host, &p);
    if (r < 0)
        return r;
    /* Every pipe made before any is started: nothing to undo after. */
    pg__stream *streams[3] = { NULL, NULL, NULL };
    for (int fd = 0; fd < 3 && any_pipe; fd++) {
        if (pipe_drivers[fd] == NULL)
            continue;
        /* From the host's pool, as every stream's block: the core gives it
         * back there when the pipe ends (PG__STREAM_OWNED). */
        streams[fd] = pg__stream_block_get(host);
        if (streams[fd] == NULL)
            r = -ENOMEM;
        else if ((r = pg__stream_init(streams[fd], host, pipe_ops, pipe_drivers[fd],
                                      pg__subprocess_pipe_flags(fd) | PG__STREAM_OWNED)) < 0) {
            pg__stream_block_put(host, streams[fd]);
            streams[fd] = NULL;
        }
        if (r < 0) {
            for (int i = 0; i < fd; i++) {
                if (streams[i] != NULL) {
                    pg__stream_discard(streams[i]);
                    pg__stream_block_put(host, streams[i]);
                }
            }
            pg__subprocess_discard(p);
            return r;
        }
    }
    pg_transport *pipes[3] = { NULL, NULL, NULL };
    for (int fd = 0; fd < 3; fd++) {
        if (streams[fd] != NULL) {
            pg_protocol adapter = pg__subprocess_pipe_protocol(p, fd);
            pipes[fd] = pg__stream_start(streams[fd], &adapter);
        }
    }
    pg__subprocess_start(p, ops, driver, pid, pipes, protocol, out != NULL);
    if (out != NULL)
        *out = p;
    return 0;
}

void pg_subprocess_release(pg_subprocess *proc)
{
    pg__subproc *p = pg__subproc_live(proc);
    if (p == NULL)
        return;
    assert(p->held && "pg_subprocess_release without a hold");
    p->held = false;
    if (p->lost)
        pg__subprocess_free(p);
}

/* ---- the transport's methods --------------------------------------------- *
 * Each checks its handle once, here; a stale one answers as a transport that
 * is gone: no pid (-1), no returncode, closing, signals -ESRCH (asyncio's
 * ProcessLookupError), -EBADF for the rest. */

pid_t pg_subprocess_get_pid(const pg_subprocess *proc)
{
    const pg__subproc *p = pg__subproc_live(proc);
    return p != NULL ? p->pid : -1;
}

bool pg_subprocess_get_returncode(const pg_subprocess *proc, int *returncode)
{
    const pg__subproc *p = pg__subproc_live(proc);
    if (p == NULL || !p->exited)
        return false;
    if (returncode != NULL)
        *returncode = p->returncode;
    return true;
}

pg_transport *pg_subprocess_get_pipe_transport(pg_subprocess *proc, int fd)
{
    const pg__subproc *p = pg__subproc_live(proc);
    if (p == NULL || fd < 0 || fd > 2)
        return NULL;
    return p->pipes[fd].transport;
}

static int pg__subprocess_signal(pg__subproc *p, int signo)
{
    if (signo < 0 || signo >= NSIG)
        return -EINVAL;
    if (p->lost)
        return -ESRCH; /* asyncio: ProcessLookupError once the transport is done */
    if (p->exited)
        return 0; /* asyncio (Popen.send_signal): nothing to signal any more */
    return p->drv_ops->send_signal(p->drv, signo);
}

int pg_subprocess_send_signal(pg_subprocess *proc, int signo)
{
    pg__subproc *p = pg__subproc_live(proc);
    return p != NULL ? pg__subprocess_signal(p, signo) : -ESRCH;
}

int pg_subprocess_terminate(pg_subprocess *proc)
{
    return pg_subprocess_send_signal(proc, SIGTERM);
}

int pg_subprocess_kill(pg_subprocess *proc)
{
    return pg_subprocess_send_signal(proc, SIGKILL);
}

void pg_subprocess_close(pg_subprocess *proc)
{
    pg__subproc *p = pg__subproc_live(proc);
    if (p == NULL || p->closed)
        return;
    p->closed = true;
    for (int fd = 0; fd < 3; fd++)
        if (p->pipes[fd].transport != NULL)
            pg_transport_close(p->pipes[fd].transport);
    /* asyncio kills a child that has not exited yet, and does not wait. */
    if (!p->exited)
        (void)p->drv_ops->send_signal(p->drv, SIGKILL);
}

bool pg_subprocess_is_closing(const pg_subprocess *proc)
{
    const pg__subproc *p = pg__subproc_live(proc);
    return p == NULL || p->closed;
}

int pg_subprocess_get_extra_info(const pg_subprocess *proc, pg_extra_key key, pg_extra_info *out)
{
    const pg__subproc *p = pg__subproc_live(proc);
    if (p == NULL)
        return -EBADF;
    if (out == NULL)
        return -EINVAL;
    if (key != PG_EXTRA_SUBPROCESS)
        return -ENOENT;
    memset(out, 0, sizeof *out);
    out->fd = -1;
    if (p->exited || p->drv_ops->get_extra_info == NULL)
        return 0;
    return p->drv_ops->get_extra_info(p->drv, key, out);
}

/* ---- the pipes' methods (asyncio's get_pipe_transport(fd).method()) ------ *
 * asyncio keeps a closed pipe transport around, which drops writes and still
 * answers; here the pipe transport is freed with its pipe_connection_lost, so
 * these answer for it: writes once the pipe is closed are dropped (0), and
 * its limits are the last ones it had. Through a stale handle, writes are
 * dropped (0) too. */

static int pg__subprocess_writelines(pg__subproc *p, const struct iovec *iov, int iovcnt)
{
    const pg__subpipe *in = &p->pipes[0];
    if (in->transport != NULL)
        return pg_transport_writelines(in->transport, iov, iovcnt);
    return in->piped ? 0 : -EPIPE;
}

int pg_subprocess_write(pg_subprocess *proc, const void *data, size_t len)
{
    pg__subproc *p = pg__subproc_live(proc);
    struct iovec iov = { .iov_base = (void *)data, .iov_len = len };
    if (p == NULL)
        return 0;
    if (len > 0 && data == NULL)
        return -EINVAL;
    return pg__subprocess_writelines(p, &iov, 1);
}

int pg_subprocess_writelines(pg_subprocess *proc, const struct iovec *iov, int iovcnt)
{
    pg__subproc *p = pg__subproc_live(proc);
    return p != NULL ? pg__subprocess_writelines(p, iov, iovcnt) : 0;
}

int pg_subprocess_write_eof(pg_subprocess *proc)
{
    const pg__subproc *p = pg__subproc_live(proc);
    if (p == NULL)
        return 0;
    const pg__subpipe *in = &p->pipes[0];
    if (in->transport != NULL)
        return pg_transport_write_eof(in->transport);
    return in->piped ? 0 : -EPIPE;
}

size_t pg_subprocess_get_write_buffer_size(const pg_subprocess *proc)
{
    const pg__subproc *p = pg__subproc_live(proc);
    if (p == NULL)
        return 0;
    const pg__subpipe *in = &p->pipes[0];
    return in->transport != NULL ? pg_transport_get_write_buffer_size(in->transport) : 0;
}

int pg_subprocess_get_write_buffer_limits(const pg_subprocess *proc, size_t *high, size_t *low)
{
    const pg__subproc *p = pg__subproc_live(proc);
    if (p == NULL)
        return -EBADF;
    const pg__subpipe *in = &p->pipes[0];
    size_t h = in->high, l = in->low;
    if (!in->piped)
        return -EPIPE;
    if (in->transport != NULL)
        pg_transport_get_write_buffer_limits(in->transport, &h, &l);
    if (high != NULL)
        *high = h;
    if (low != NULL)
        *low = l;
    return 0;
}

int pg_subprocess_set_write_buffer_limits(pg_subprocess *proc, size_t high, size_t low)
{
    pg__subproc *p = pg__subproc_live(proc);
    if (p == NULL)
        return -EBADF;
    pg__subpipe *in = &p->pipes[0];
    if (in->transport != NULL)
        return pg_transport_set_write_buffer_limits(in->transport, high, low);
    if (!in->piped)
        return -EPIPE;
    return pg__write_buffer_limits(high, low, &in->high, &in->low);
}

/* stdout (1) or stderr (2) while its pipe is open; NULL otherwise (and
 * through a stale handle). */
static pg_transport *pg__subprocess_read_pipe(const pg_subprocess *proc, int fd)
{
    const pg__subproc *p = pg__subproc_live(proc);
    return p != NULL && (fd == 1 || fd == 2) ? p->pipes[fd].transport : NULL;
}

bool pg_subprocess_is_reading(const pg_subprocess *proc, int fd)
{
    const pg_transport *out = pg__subprocess_read_pipe(proc, fd);
    return out != NULL && pg_transport_is_reading(out);
}

void pg_subprocess_pause_reading(pg_subprocess *proc, int fd)
{
    pg_transport *out = pg__subprocess_read_pipe(proc, fd);
    if (out != NULL)
        pg_transport_pause_reading(out);
}

void pg_subprocess_resume_reading(pg_subprocess *proc, int fd)
{
    pg_transport *out = pg__subprocess_read_pipe(proc, fd);
    if (out != NULL)
        pg_transport_resume_reading(out);
}
