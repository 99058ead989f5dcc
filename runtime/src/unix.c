/* Unix domain stream sockets: path and abstract ("@name") addresses, stale
 * socket files, the socket file's permissions. Accepting and connecting are
 * server.c's and connect.c's, as for TCP. */
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "protogen/unix.h"

#include "internal.h"

#define PG__DEFAULT_BACKLOG 100
#define PG__UNIX_FLAGS (PG__STREAM_SOCKET | PG__STREAM_CAN_WRITE_EOF)

/* "@name" is Linux's abstract namespace: a NUL, then the name, and a length
 * that counts exactly the name's bytes (no terminating NUL). */
static int pg__unix_address(const char *path, pg__sockaddr *out, bool *abstract)
{
    if (path == NULL || path[0] == '\0')
        return -EINVAL;
    struct sockaddr_un *sun = (struct sockaddr_un *)&out->ss;
    memset(out, 0, sizeof *out);
    sun->sun_family = AF_UNIX;
    size_t n = strlen(path);
    *abstract = path[0] == '@';
    if (*abstract) {
        if (n > sizeof sun->sun_path)
            return -ENAMETOOLONG;
        memcpy(sun->sun_path + 1, path + 1, n - 1);
        out->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
        return 0;
    }
    if (n >= sizeof sun->sun_path)
        return -ENAMETOOLONG;
    memcpy(sun->sun_path, path, n + 1);
    out->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    return 0;
}

/* A socket file at the path: removed when nobody accepts on it any more (a
 * dead server's leftover), -EADDRINUSE when something does, -EEXIST when it
 * is not a socket. asyncio removes any socket file; asking first keeps a
 * second server from silently stealing a live one's address. */
static int pg__unix_remove_stale(const char *path, const pg__sockaddr *addr)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : -errno;
    if (!S_ISSOCK(st.st_mode))
        return -EEXIST;
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (probe < 0)
        return -errno;
    int r;
    PG__RETRY_EINTR(r, connect(probe, (const struct sockaddr *)&addr->ss, addr->len));
    int err = r < 0 ? errno : 0;
    close(probe);
    if (err == ECONNREFUSED)
        return unlink(path) < 0 && errno != ENOENT ? -errno : 0;
    /* Connected, or its backlog is full (EAGAIN): somebody listens. */
    return -EADDRINUSE;
}

int pg_unix_listen(pg_loop *loop, const char *path, const pg_listen_options *opts, pg_protocol_factory factory,
                   void *arg, pg_server **out)
{
    if (loop == NULL || factory == NULL || out == NULL)
        return -EINVAL;
    if (opts != NULL && (opts->backlog < 0 || opts->send_buffer_size < 0 || opts->recv_buffer_size < 0
                         || opts->unix_mode > 07777 || opts->reuse_port))
        return -EINVAL;
    int backlog = opts != NULL && opts->backlog > 0 ? opts->backlog : PG__DEFAULT_BACKLOG;
    unsigned mode = opts != NULL ? opts->unix_mode : 0;
    pg__sockaddr addr;
    bool abstract;
    int r = pg__unix_address(path, &addr, &abstract);
    if (r < 0)
        return r;
    if (abstract && mode != 0)
        return -EINVAL; /* no file to set permissions on */
    if (!abstract && (r = pg__unix_remove_stale(path, &addr)) < 0)
        return r;

    bool bound = false;
    pg_server *server = NULL;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if ((r = pg__socket_buffer_sizes(fd, opts)) < 0)
        goto fail;
    if (bind(fd, (const struct sockaddr *)&addr.ss, addr.len) < 0)
        goto fail_errno;
    bound = !abstract;
    /* Before listen(): until then every connect is refused, so nobody gets
     * in under the umask's permissions. */
    if (mode != 0 && chmod(path, (mode_t)mode) < 0)
        goto fail_errno;
    if (listen(fd, backlog) < 0)
        goto fail_errno;
    r = pg__server_new(loop, fd, backlog, PG__UNIX_FLAGS, factory, arg, &server);
    if (r < 0)
        goto fail;
    if (bound && (r = pg__server_set_unlink(server, path)) < 0) {
        pg_server_close(server); /* closes fd */
        unlink(path);
        return r;
    }
    *out = server;
    return 0;

fail_errno:
    r = -errno;
fail:
    close(fd);
    if (bound)
        unlink(path);
    return r;
}

int pg_unix_connect(pg_loop *loop, const char *path, uint32_t timeout_ms, pg_protocol_factory factory,
                    void *factory_arg, pg_connect_cb done, void *done_arg)
{
    if (loop == NULL || factory == NULL || done == NULL)
        return -EINVAL;
    pg__sockaddr addr;
    bool abstract;
    int r = pg__unix_address(path, &addr, &abstract);
    if (r < 0)
        return r;
    pg__connect *c;
    r = pg__connect_new(loop, timeout_ms, PG__UNIX_FLAGS, factory, factory_arg, done, done_arg, &c);
    if (r < 0)
        return r;
    pg__connect_start(c, &addr, 1);
    return 0;
}
