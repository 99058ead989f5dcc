/* TCP: listening and accepting (asyncio's _accept_connection), non-blocking
 * connect with an optional timeout, numeric address parsing and formatting.
 * Connected sockets become stream transports (stream.c). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "protogen/tcp.h"

#include "internal.h"

#define PG__DEFAULT_BACKLOG 100
/* asyncio's ACCEPT_RETRY_DELAY: out of fds, try again in a second. */
#define PG__ACCEPT_RETRY_MS 1000

#define PG__TCP_FLAGS (PG__STREAM_SOCKET | PG__STREAM_CAN_WRITE_EOF)

/* ---- addresses ---------------------------------------------------------- */

/* Numeric IPv4/IPv6 (optionally in brackets) or "localhost". An empty or NULL
 * host means "any" when listening. */
static int pg__parse_address(const char *host, uint16_t port, bool passive, struct sockaddr_storage *ss,
                             socklen_t *len)
{
    memset(ss, 0, sizeof *ss);
    if (host == NULL || host[0] == '\0') {
        if (!passive)
            return -EINVAL;
        host = "0.0.0.0";
    }
    if (strcmp(host, "localhost") == 0)
        host = "127.0.0.1";

    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        *len = sizeof *sin;
        return 0;
    }

    char buf[INET6_ADDRSTRLEN];
    size_t n = strlen(host);
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
        if (n - 2 >= sizeof buf)
            return -EINVAL;
        memcpy(buf, host + 1, n - 2);
        buf[n - 2] = '\0';
        host = buf;
    }
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        *len = sizeof *sin6;
        return 0;
    }
    return -EINVAL;
}

int pg_format_address(const struct sockaddr *addr, char *buf, size_t size)
{
    if (addr == NULL || (buf == NULL && size > 0))
        return -EINVAL;
    char host[INET6_ADDRSTRLEN];
    int n;
    if (addr->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)addr;
        if (inet_ntop(AF_INET, &sin->sin_addr, host, sizeof host) == NULL)
            return -errno;
        n = snprintf(buf, size, "%s:%u", host, (unsigned)ntohs(sin->sin_port));
    } else if (addr->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)addr;
        if (inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof host) == NULL)
            return -errno;
        n = snprintf(buf, size, "[%s]:%u", host, (unsigned)ntohs(sin6->sin6_port));
    } else {
        return -EAFNOSUPPORT;
    }
    if (n < 0)
        return -EINVAL;
    if ((size_t)n >= size)
        return -ENOSPC;
    return n;
}

static void pg__set_nodelay(int fd)
{
    int one = 1;
    /* asyncio does this for every TCP transport; failure is harmless. */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* ---- servers ------------------------------------------------------------ */

typedef enum pg__server_state {
    PG__SERVER_LISTENING,
    PG__SERVER_RETRY_WAIT, /* out of fds: not accepting for a while */
    PG__SERVER_CLOSED,
} pg__server_state;

struct pg_server {
    pg_loop *loop;
    pg__io io;
    pg_timer retry;
    pg_protocol_factory factory;
    void *arg;
    int backlog;
    pg__server_state state;
};

static void pg__server_accept_one(pg_server *server, int fd)
{
    pg__set_nodelay(fd);
    pg_protocol protocol = { 0 };
    int r = server->factory(server->arg, &protocol);
    if (r == 0)
        r = pg__stream_new(server->loop, fd, &protocol, PG__TCP_FLAGS, NULL);
    if (r < 0)
        close(fd); /* refused by the factory, or no memory */
}

static void pg__server_resume(void *arg)
{
    pg_server *server = arg;
    assert(server->state == PG__SERVER_RETRY_WAIT);
    server->state = PG__SERVER_LISTENING;
    if (pg__io_start(server->loop, &server->io, PG__IO_READ) < 0) {
        /* Still short of resources: wait again. */
        server->state = PG__SERVER_RETRY_WAIT;
        (void)pg_loop_call_later(server->loop, &server->retry, PG__ACCEPT_RETRY_MS, pg__server_resume, server);
    }
}

/* Accepts up to backlog connections per readiness event, as asyncio. */
static void pg__server_on_io(pg__io *io, uint32_t events)
{
    pg_server *server = PG__CONTAINER_OF(io, pg_server, io);
    (void)events;
    for (int i = 0; i < server->backlog && server->state == PG__SERVER_LISTENING; i++) {
        int fd;
        PG__RETRY_EINTR(fd, accept4(io->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC));
        if (fd >= 0) {
            pg__server_accept_one(server, fd); /* the factory may close the server */
            continue;
        }
        switch (errno) {
        case EAGAIN:
#if EWOULDBLOCK != EAGAIN
        case EWOULDBLOCK:
#endif
            return;
        case ECONNABORTED: /* gone before we accepted it */
        case EPROTO:       /* Linux reports pending network errors here: retry */
        case ENETDOWN:
        case ENOPROTOOPT:
        case EHOSTDOWN:
        case ENONET:
        case EHOSTUNREACH:
        case EOPNOTSUPP:
        case ENETUNREACH:
        case EPERM: /* refused by a firewall rule */
            continue;
        case EMFILE:
        case ENFILE:
        case ENOBUFS:
        case ENOMEM:
            /* Level-triggered epoll would report the socket again at once:
             * stop accepting for a while (asyncio does the same). */
            if (pg_loop_call_later(server->loop, &server->retry, PG__ACCEPT_RETRY_MS, pg__server_resume,
                                   server)
                == 0) {
                pg__io_stop(server->loop, &server->io, PG__IO_READ);
                server->state = PG__SERVER_RETRY_WAIT;
            }
            return;
        default:
            return;
        }
    }
}

int pg_tcp_listen(pg_loop *loop, const char *host, uint16_t port, const pg_listen_options *opts,
                  pg_protocol_factory factory, void *arg, pg_server **out)
{
    if (loop == NULL || factory == NULL || out == NULL)
        return -EINVAL;
    int backlog = opts != NULL && opts->backlog > 0 ? opts->backlog : PG__DEFAULT_BACKLOG;
    if (opts != NULL && (opts->backlog < 0 || opts->send_buffer_size < 0 || opts->recv_buffer_size < 0))
        return -EINVAL;

    struct sockaddr_storage ss;
    socklen_t sslen;
    int r = pg__parse_address(host, port, true, &ss, &sslen);
    if (r < 0)
        return r;

    pg_server *server = NULL;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
        goto fail_errno;
    /* One family per socket, as asyncio's create_server. */
    if (ss.ss_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) < 0)
        goto fail_errno;
    /* Accepted sockets inherit the listening socket's buffer sizes. */
    if (opts != NULL && opts->send_buffer_size > 0
        && setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &opts->send_buffer_size, sizeof(int)) < 0)
        goto fail_errno;
    if (opts != NULL && opts->recv_buffer_size > 0
        && setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &opts->recv_buffer_size, sizeof(int)) < 0)
        goto fail_errno;
    if (bind(fd, (struct sockaddr *)&ss, sslen) < 0 || listen(fd, backlog) < 0)
        goto fail_errno;

    server = calloc(1, sizeof *server);
    if (server == NULL) {
        r = -ENOMEM;
        goto fail;
    }
    server->loop = loop;
    server->factory = factory;
    server->arg = arg;
    server->backlog = backlog;
    server->state = PG__SERVER_LISTENING;
    pg_timer_init(&server->retry);
    pg__io_init(&server->io, fd, pg__server_on_io);
    r = pg__loop_reserve(loop); /* for the deferred free */
    if (r < 0)
        goto fail;
    r = pg__io_start(loop, &server->io, PG__IO_READ);
    if (r < 0) {
        pg__loop_unreserve(loop);
        goto fail;
    }
    *out = server;
    return 0;

fail_errno:
    r = -errno;
fail:
    free(server);
    close(fd);
    return r;
}

int pg_server_sockname(const pg_server *server, struct sockaddr_storage *addr, socklen_t *len)
{
    if (server == NULL || addr == NULL || len == NULL)
        return -EINVAL;
    if (server->state == PG__SERVER_CLOSED)
        return -EBADF;
    *len = sizeof *addr;
    return getsockname(server->io.fd, (struct sockaddr *)addr, len) < 0 ? -errno : 0;
}

static void pg__server_free(void *arg)
{
    free(arg);
}

void pg_server_close(pg_server *server)
{
    if (server == NULL || server->state == PG__SERVER_CLOSED)
        return;
    server->state = PG__SERVER_CLOSED;
    pg_timer_cancel(&server->retry);
    pg__io_stop(server->loop, &server->io, PG__IO_READ);
    close(server->io.fd);
    server->io.fd = -1;
    /* Freed next turn: the caller (maybe the factory, inside the accept loop)
     * may still hold it. */
    pg__loop_call_soon_reserved(server->loop, pg__server_free, server);
}

/* ---- connecting --------------------------------------------------------- */

typedef struct pg__connect {
    pg_loop *loop;
    pg__io io;
    pg_timer timeout;
    pg_protocol_factory factory;
    void *factory_arg;
    pg_connect_cb done;
    void *done_arg;
    pg_transport *transport;
    int error;
} pg__connect;

static void pg__connect_report(void *arg)
{
    pg__connect *c = arg;
    c->done(c->done_arg, c->transport, c->error);
    free(c);
}

/* The attempt is over: make the transport, then report through done on the
 * ready queue, after connection_made (asyncio's create_connection returns
 * once connection_made has run). */
static void pg__connect_complete(pg__connect *c, int error)
{
    pg_timer_cancel(&c->timeout);
    pg__io_stop(c->loop, &c->io, PG__IO_WRITE);
    if (error == 0) {
        pg_protocol protocol = { 0 };
        error = c->factory(c->factory_arg, &protocol);
        if (error == 0) {
            pg__set_nodelay(c->io.fd);
            error = pg__stream_new(c->loop, c->io.fd, &protocol, PG__TCP_FLAGS, &c->transport);
        }
    }
    if (error < 0)
        close(c->io.fd);
    c->io.fd = -1;
    c->error = error;
    pg__loop_call_soon_reserved(c->loop, pg__connect_report, c);
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
    pg__connect_complete(c, -soerr);
}

static void pg__connect_on_timeout(void *arg)
{
    pg__connect_complete(arg, -ETIMEDOUT);
}

int pg_tcp_connect(pg_loop *loop, const char *host, uint16_t port, uint32_t timeout_ms,
                   pg_protocol_factory factory, void *factory_arg, pg_connect_cb done, void *done_arg)
{
    if (loop == NULL || factory == NULL || done == NULL || port == 0)
        return -EINVAL;
    struct sockaddr_storage ss;
    socklen_t sslen;
    int r = pg__parse_address(host, port, false, &ss, &sslen);
    if (r < 0)
        return r;

    pg__connect *c = calloc(1, sizeof *c);
    if (c == NULL)
        return -ENOMEM;
    c->loop = loop;
    c->factory = factory;
    c->factory_arg = factory_arg;
    c->done = done;
    c->done_arg = done_arg;
    pg_timer_init(&c->timeout);
    r = pg__loop_reserve(loop); /* for the report */
    if (r < 0) {
        free(c);
        return r;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        r = -errno;
        goto fail;
    }
    pg__io_init(&c->io, fd, pg__connect_on_io);

    /* EINTR: the connect goes on asynchronously, like EINPROGRESS. */
    if (connect(fd, (struct sockaddr *)&ss, sslen) < 0 && errno != EINPROGRESS && errno != EINTR) {
        pg__connect_complete(c, -errno); /* reported through done, never synchronously */
        return 0;
    }
    /* Connected or in progress: writable tells, SO_ERROR says how. */
    r = pg__io_start(loop, &c->io, PG__IO_WRITE);
    if (r == 0 && timeout_ms > 0)
        r = pg_loop_call_later(loop, &c->timeout, timeout_ms, pg__connect_on_timeout, c);
    if (r < 0) {
        pg__io_stop(loop, &c->io, PG__IO_WRITE);
        close(fd);
        goto fail;
    }
    return 0;

fail:
    pg__loop_unreserve(loop);
    free(c);
    return r;
}
