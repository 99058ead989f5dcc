/* Non-blocking stream connects for every address family: the addresses are
 * tried in order until one connects (asyncio's create_connection), within one
 * timeout for the whole attempt, and the result always goes through done,
 * never synchronously. The protocol is made only once the socket is connected
 * and its transport allocated, so a failed connect makes no protocol. */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

struct pg__connect {
    pg_loop *loop;
    pg__io io; /* the socket of the current attempt; fd -1 between attempts */
    pg_timer timeout;
    unsigned flags; /* PG__STREAM_* for the transport */
    pg_protocol_factory factory;
    void *factory_arg;
    pg_connect_cb done;
    void *done_arg;
    pg__sockaddr *addrs;
    size_t naddrs;
    size_t next;
    pg_transport *transport;
    int error;
    bool reported;   /* the report is queued or has run */
    bool report_ran; /* done has been called */
    bool resolving;  /* a resolver still refers to this connect */
};

static void pg__connect_complete(pg__connect *c, int error);

static void pg__connect_on_timeout(void *arg)
{
    pg__connect_complete(arg, -ETIMEDOUT);
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
    if (timeout_ms > 0) {
        r = pg_loop_call_later(loop, &c->timeout, timeout_ms, pg__connect_on_timeout, c);
        if (r < 0) {
            pg__loop_unreserve(loop);
            free(c);
            return r;
        }
    }
    *out = c;
    return 0;
}

static void pg__connect_free(pg__connect *c)
{
    free(c->addrs);
    free(c);
}

static void pg__connect_report(void *arg)
{
    pg__connect *c = arg;
    c->report_ran = true;
    c->done(c->done_arg, c->transport, c->error);
    if (!c->resolving)
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
    int family = c->addrs[c->next - 1].ss.ss_family; /* the address that connected */
    if (family == AF_INET || family == AF_INET6)
        pg__socket_nodelay(fd);
    int r = pg__fdstream_open(c->loop, fd, c->flags, c->factory, c->factory_arg, &c->transport);
    if (r == 0)
        c->io.fd = -1; /* the transport's now */
    return r;
}

/* The attempt is over: report through done on the ready queue, after
 * connection_made (asyncio's create_connection returns once connection_made
 * has run). */
static void pg__connect_complete(pg__connect *c, int error)
{
    assert(!c->reported);
    pg_timer_cancel(&c->timeout);
    if (error == 0)
        error = pg__connect_make_transport(c);
    pg__connect_close_socket(c);
    c->error = error;
    c->reported = true;
    pg__loop_call_soon_reserved(c->loop, pg__connect_report, c);
}

static void pg__connect_on_io(pg__io *io, uint32_t events);

/* Starts the next address; completes when none is left. */
static void pg__connect_try_next(pg__connect *c, int error)
{
    while (c->next < c->naddrs) {
        const pg__sockaddr *a = &c->addrs[c->next++];
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
    c->resolving = false;
    if (c->reported) {
        /* Timed out while resolving: done has been told (or will be). */
        if (c->report_ran)
            pg__connect_free(c);
        return;
    }
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
    c->resolving = false;
    if (c->reported) {
        if (c->report_ran)
            pg__connect_free(c);
        return;
    }
    pg__connect_complete(c, error);
}

void pg__connect_set_resolving(pg__connect *c)
{
    c->resolving = true;
}

void pg__connect_discard(pg__connect *c)
{
    assert(!c->reported && c->io.fd < 0);
    pg_timer_cancel(&c->timeout);
    pg__loop_unreserve(c->loop);
    pg__connect_free(c);
}
