/* Stream socket servers, whatever the address family (TCP, Unix): accepting
 * (asyncio's _accept_connection), back-off when out of fds, the list of
 * accepted connections (asyncio's Server._clients, for close_clients and
 * abort_clients), closing, and the Unix socket file's removal on close. */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

/* asyncio's ACCEPT_RETRY_DELAY: out of fds, try again in a second. */
#define PG__ACCEPT_RETRY_MS 1000

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
    unsigned flags; /* PG__STREAM_* for accepted connections */
    bool nodelay;   /* TCP: accepted sockets get TCP_NODELAY */
    pg__server_state state;
    /* The accepted connections that live (fd_stream.c keeps the links);
     * kept after close, as asyncio keeps Server._clients. */
    pg__fdstream *clients;
    /* Unix path servers: the socket file, removed on close if still ours. */
    char *unlink_path;
    dev_t dev;
    ino_t ino;
    pg_server *next_closed; /* on the loop's list once closed */
};

static void pg__server_accept_one(pg_server *server, int fd)
{
    if (server->nodelay)
        pg__socket_nodelay(fd);
    pg_transport *t;
    if (pg__fdstream_open(server->loop, fd, server->flags, server->factory, server->arg, &t) < 0)
        close(fd); /* refused by the factory, or no memory: no protocol exists */
    else
        pg__fdstream_join(t, &server->clients);
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

int pg__server_new(pg_loop *loop, int fd, int backlog, unsigned flags, pg_protocol_factory factory, void *arg,
                   pg_server **out)
{
    pg_server *server = calloc(1, sizeof *server);
    if (server == NULL)
        return -ENOMEM;
    server->loop = loop;
    server->factory = factory;
    server->arg = arg;
    server->backlog = backlog;
    server->flags = flags;
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    server->nodelay = getsockname(fd, (struct sockaddr *)&ss, &len) == 0
                      && (ss.ss_family == AF_INET || ss.ss_family == AF_INET6);
    server->state = PG__SERVER_LISTENING;
    pg_timer_init(&server->retry);
    pg__io_init(&server->io, fd, pg__server_on_io);
    int r = pg__loop_reserve(loop); /* held while open: pg_loop_close() refuses until it is closed */
    if (r < 0)
        goto fail;
    r = pg__io_start(loop, &server->io, PG__IO_READ);
    if (r < 0) {
        pg__loop_unreserve(loop);
        goto fail;
    }
    *out = server;
    return 0;

fail:
    free(server);
    return r;
}

int pg__server_set_unlink(pg_server *server, const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0)
        return -errno;
    server->unlink_path = strdup(path);
    if (server->unlink_path == NULL)
        return -ENOMEM;
    server->dev = st.st_dev;
    server->ino = st.st_ino;
    return 0;
}

int pg_server_sockname(const pg_server *server, struct sockaddr_storage *addr, socklen_t *len)
{
    if (server == NULL || addr == NULL || len == NULL)
        return -EINVAL;
    if (server->state == PG__SERVER_CLOSED)
        return -EBADF;
    /* Zeroed: an abstract Unix name is not NUL-terminated, and
     * pg_format_address ends it at the first NUL. */
    memset(addr, 0, sizeof *addr);
    *len = sizeof *addr;
    return getsockname(server->io.fd, (struct sockaddr *)addr, len) < 0 ? -errno : 0;
}

void pg__servers_free(pg_loop *loop)
{
    while (loop->closed_servers != NULL) {
        pg_server *server = loop->closed_servers;
        loop->closed_servers = server->next_closed;
        free(server);
    }
}

int pg_server_close(pg_server *server)
{
    if (server == NULL)
        return -EINVAL;
    if (server->state == PG__SERVER_CLOSED)
        return -EBADF;
    server->state = PG__SERVER_CLOSED;
    pg_timer_cancel(&server->retry);
    pg__io_stop(server->loop, &server->io, PG__IO_READ);
    close(server->io.fd);
    server->io.fd = -1;
    /* asyncio (3.13) removes the socket file unless another server has
     * replaced it since: same device and inode as when we bound it. */
    struct stat st;
    if (server->unlink_path != NULL && stat(server->unlink_path, &st) == 0 && st.st_dev == server->dev
        && st.st_ino == server->ino)
        (void)unlink(server->unlink_path);
    free(server->unlink_path);
    server->unlink_path = NULL;
    /* The struct (no fd, nothing else) stays with the loop until
     * pg_loop_close: the caller (maybe the factory, inside the accept loop)
     * may still hold it, and a second close must be told, not a use after
     * free. */
    pg__loop_unreserve(server->loop);
    server->next_closed = server->loop->closed_servers;
    server->loop->closed_servers = server;
    return 0;
}

/* asyncio 3.13's Server.close_clients / abort_clients. Closing a transport
 * never ends it at once (connection_lost is deferred), so the list stays as
 * it is during the walk; the next link is read first all the same. */
int pg_server_close_clients(pg_server *server)
{
    if (server == NULL)
        return -EINVAL;
    pg__fdstream_close_list(server->clients, false);
    return 0;
}

int pg_server_abort_clients(pg_server *server)
{
    if (server == NULL)
        return -EINVAL;
    pg__fdstream_close_list(server->clients, true);
    return 0;
}
