/* Stream socket servers, whatever the address family (TCP, Unix): accepting
 * (asyncio's _accept_connection), clients beyond the fd limit closed at once
 * (libuv's spare descriptor), back-off when that cannot help, the list of
 * accepted connections (asyncio's Server._clients, for close_clients and
 * abort_clients), closing, and the Unix socket file's removal on close. */
#include <fcntl.h>
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
    /* Held while listening, to be closed when out of fds: it makes room to
     * accept a waiting client and close it at once. -1: none. */
    int spare_fd;
    uint64_t shed; /* connections closed so, in all */
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

static int pg__spare_open(void)
{
    return open("/dev/null", O_RDONLY | O_CLOEXEC);
}

/* Out of fds (EMFILE, ENFILE), a client would wait unanswered in the
 * backlog. Give up the spare descriptor, accept the waiting clients one by
 * one (as many as a readiness event takes) and close each at once, then
 * take the spare back. True when that emptied the backlog or made room; false
 * when it cannot help (no spare, or accept still fails). */
static bool pg__server_shed(pg_server *server)
{
    if (server->spare_fd < 0)
        return false;
    close(server->spare_fd);
    int fd = -1;
    size_t n = 0;
    while (n < (size_t)server->backlog) {
        PG__RETRY_EINTR(fd, accept4(server->io.fd, NULL, NULL, SOCK_CLOEXEC));
        if (fd < 0)
            break;
        close(fd);
        n++;
    }
    bool emptied = fd < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    server->spare_fd = pg__spare_open();
    server->shed += n;
    if (n > 0 && pg__trace_fd >= 0)
        pg__trace_write_size(0, "connections_shed", n);
    return emptied || n > 0;
}

static void pg__server_resume(void *arg)
{
    pg_server *server = arg;
    assert(server->state == PG__SERVER_RETRY_WAIT);
    server->state = PG__SERVER_LISTENING;
    if (server->spare_fd < 0)
        server->spare_fd = pg__spare_open();
    if (pg__io_start(server->loop, &server->io, PG__IO_READ) < 0) {
        /* Still short of resources: wait again. */
        server->state = PG__SERVER_RETRY_WAIT;
        (void)pg_loop_call_later(server->loop, &server->retry, PG__ACCEPT_RETRY_MS, pg__server_resume, server);
    }
}

/* Level-triggered epoll would report the socket again at once: stop
 * accepting for a while (asyncio does the same). */
static void pg__server_back_off(pg_server *server)
{
    if (pg_loop_call_later(server->loop, &server->retry, PG__ACCEPT_RETRY_MS, pg__server_resume, server) == 0) {
        pg__io_stop(server->loop, &server->io, PG__IO_READ);
        server->state = PG__SERVER_RETRY_WAIT;
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
            if (!pg__server_shed(server)) /* epoll says so again if more are waiting */
                pg__server_back_off(server);
            return;
        case ENOBUFS:
        case ENOMEM:
            pg__server_back_off(server);
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
    server->spare_fd = pg__spare_open(); /* none (-1) only costs the back-off */
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
    if (server->spare_fd >= 0)
        close(server->spare_fd);
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
    if (server->spare_fd >= 0)
        close(server->spare_fd);
    server->spare_fd = -1;
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

uint64_t pg_server_connections_shed(const pg_server *server)
{
    return server != NULL ? server->shed : 0;
}
