/* Non-blocking stream connects for every address family: the addresses are
 * tried in order until one connects (asyncio's create_connection), within one
 * timeout for the whole attempt, and the result always goes through done,
 * never synchronously. The protocol is made only once the socket is connected
 * and its transport allocated, so a failed connect makes no protocol.
 *
 * Every connect is on its loop's list from start to report, so that
 * pg_connect_cancel() can find it by its done and done_arg, and
 * pg_loop_close() can cancel what is still pending (asyncio.run cancels the
 * tasks left over). A cancelled connect reports -ECANCELED, as a cancelled
 * create_connection task raises CancelledError. */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

struct pg__connect {
    pg_loop *loop;
    pg__connect *prev, *next; /* the loop's connects */
    pg__io io; /* the socket of the current attempt; fd -1 between attempts */
    pg_timer timeout;
    unsigned flags; /* PG__STREAM_* for the transport */
    pg_protocol_factory factory;
    void *factory_arg;
    pg_connect_cb done;
    void *done_arg;
    pg__resolve *resolve; /* the lookup running for it, or NULL */
    pg__sockaddr *addrs;
    size_t naddrs;
    size_t next_addr;
    pg_transport *transport;
    int error;
    bool reported; /* the outcome is decided: the report is queued or has run */
};

static void pg__connect_complete(pg__connect *c, int error);

static void pg__connect_on_timeout(void *arg)
{
    pg__connect_complete(arg, -ETIMEDOUT);
}

static void pg__connect_unlink(pg__connect *c)
{
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        c->loop->connects = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
}

int pg__connect_new(pg_loop *loop, uint32_t timeout_ms, unsigned flags, pg_protocol_factory factory,
                    void *factory_arg, pg_connect_cb done, void *done_arg, pg__connect **out)
{
    pg__connect *c = calloc(1, sizeof *c);
    if (c == NULL)
        return -ENOMEM;
    c->loop = loop;
    c->flags = flags;
    c->factory = factory;
    c->factory_arg = factory_arg;
    c->done = done;
    c->done_arg = done_arg;
    pg_timer_init(&c->timeout);
    pg__io_init(&c->io, -1, NULL);
    int r = pg__loop_reserve(loop); /* for the report */
    if (r < 0) {
        free(c);
        return r;
    }
    if (timeout_ms == 0)
        timeout_ms = PG_CONNECT_DEFAULT_TIMEOUT_MS;
    if (timeout_ms != PG_CONNECT_NO_TIMEOUT) {
        r = pg_loop_call_later(loop, &c->timeout, timeout_ms, pg__connect_on_timeout, c);
        if (r < 0) {
            pg__loop_unreserve(loop);
            free(c);
            return r;
        }
    }
    c->next = loop->connects;
    if (c->next != NULL)
        c->next->prev = c;
    loop->connects = c;
    *out = c;
    return 0;
}

static void pg__connect_free(pg__connect *c)
{
    free(c->addrs);
    free(c);
}

/* Off the list first: from done on, a cancel finds nothing (-ENOENT). */
static void pg__connect_report(void *arg)
{
    pg__connect *c = arg;
    pg__connect_unlink(c);
    c->done(c->done_arg, c->transport, c->error);
    pg__connect_free(c);
}

static void pg__connect_close_socket(pg__connect *c)
{
    if (c->io.fd < 0)
        return;
    pg__io_stop(c->loop, &c->io, PG__IO_WRITE);
    close(c->io.fd);
    c->io.fd = -1;
}

/* Connected: the transport first, the protocol last. */
static int pg__connect_make_transport(pg__connect *c)
{
    int fd = c->io.fd;
    pg__io_stop(c->loop, &c->io, PG__IO_WRITE);
    int family = c->addrs[c->next_addr - 1].ss.ss_family; /* the address that connected */
    if (family == AF_INET || family == AF_INET6)
        pg__socket_nodelay(fd);
    int r = pg__fdstream_open(c->loop, fd, c->flags, c->factory, c->factory_arg, &c->transport);
    if (r == 0)
        c->io.fd = -1; /* the transport's now */
    return r;
}

/* The attempt is over: report through done on the ready queue, after
 * connection_made (asyncio's create_connection returns once connection_made
 * has run). Decided first, so that a cancel from the factory finds it so. */
static void pg__connect_complete(pg__connect *c, int error)
{
    assert(!c->reported);
    c->reported = true;
    pg_timer_cancel(&c->timeout);
    if (c->resolve != NULL) {
        pg__resolve_abandon(c->resolve); /* its thread ends on its own */
        c->resolve = NULL;
    }
    if (error == 0)
        error = pg__connect_make_transport(c);
    pg__connect_close_socket(c);
    c->error = error;
    pg__loop_call_soon_reserved(c->loop, pg__connect_report, c);
}

static void pg__connect_on_io(pg__io *io, uint32_t events);

/* Starts the next address; completes when none is left. */
static void pg__connect_try_next(pg__connect *c, int error)
{
    while (c->next_addr < c->naddrs) {
        const pg__sockaddr *a = &c->addrs[c->next_addr++];
        int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            error = -errno;
            continue;
        }
        pg__io_init(&c->io, fd, pg__connect_on_io);
        /* EINTR: the connect goes on asynchronously, like EINPROGRESS. (A
         * Unix socket's EAGAIN, a full backlog, is a failure: no connect is
         * in progress then.) */
        if (connect(fd, (const struct sockaddr *)&a->ss, a->len) < 0 && errno != EINPROGRESS && errno != EINTR) {
            error = -errno;
            close(fd);
            c->io.fd = -1;
            continue;
        }
        /* Connected or in progress: writable tells, SO_ERROR says how. */
        int r = pg__io_start(c->loop, &c->io, PG__IO_WRITE);
        if (r == 0)
            return;
        error = r;
        close(fd);
        c->io.fd = -1;
    }
    pg__connect_complete(c, error);
}

static void pg__connect_on_io(pg__io *io, uint32_t events)
{
    pg__connect *c = PG__CONTAINER_OF(io, pg__connect, io);
    int soerr = 0;
    socklen_t len = sizeof soerr;
    (void)events;
    if (getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
        soerr = errno;
    if (soerr == EINPROGRESS || soerr == EALREADY)
        return; /* spurious wake-up */
    if (soerr == 0) {
        pg__connect_complete(c, 0);
        return;
    }
    pg__connect_close_socket(c);
    pg__connect_try_next(c, -soerr);
}

void pg__connect_start(pg__connect *c, const pg__sockaddr *addrs, size_t n)
{
    assert(!c->reported);
    c->resolve = NULL;
    c->addrs = n > 0 ? malloc(n * sizeof *addrs) : NULL;
    if (n > 0 && c->addrs == NULL) {
        pg__connect_complete(c, -ENOMEM);
        return;
    }
    if (n > 0)
        memcpy(c->addrs, addrs, n * sizeof *addrs);
    c->naddrs = n;
    pg__connect_try_next(c, -EADDRNOTAVAIL);
}

void pg__connect_fail(pg__connect *c, int error)
{
    assert(!c->reported);
    c->resolve = NULL;
    pg__connect_complete(c, error);
}

void pg__connect_set_resolve(pg__connect *c, pg__resolve *job)
{
    c->resolve = job;
}

void pg__connect_discard(pg__connect *c)
{
    assert(!c->reported && c->io.fd < 0 && c->resolve == NULL);
    pg_timer_cancel(&c->timeout);
    pg__loop_unreserve(c->loop);
    pg__connect_unlink(c);
    pg__connect_free(c);
}

int pg_connect_cancel(pg_loop *loop, pg_connect_cb done, void *done_arg)
{
    if (loop == NULL || done == NULL)
        return -EINVAL;
    int r = -ENOENT;
    for (pg__connect *c = loop->connects; c != NULL; c = c->next) {
        if (c->done != done || c->done_arg != done_arg)
            continue;
        if (c->reported) {
            if (r == -ENOENT)
                r = -EALREADY;
            continue;
        }
        pg__connect_complete(c, -ECANCELED); /* c stays listed until its report */
        r = 0;
    }
    return r;
}

void pg__connects_held(const pg_loop *loop, size_t *reserved, size_t *watched)
{
    *reserved = *watched = 0;
    for (const pg__connect *c = loop->connects; c != NULL; c = c->next) {
        if (c->reported)
            continue; /* its report is queued: the queue's, not a reservation */
        ++*reserved;
        *watched += (c->io.events != 0) + (c->resolve != NULL);
    }
}

void pg__connects_cancel_all(pg_loop *loop)
{
    for (pg__connect *c = loop->connects; c != NULL; c = c->next)
        if (!c->reported)
            pg__connect_complete(c, -ECANCELED);
}
