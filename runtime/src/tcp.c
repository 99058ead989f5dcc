/* TCP: listening sockets and connects over IPv4 and IPv6, address parsing and
 * formatting. Accepting is server.c's, connecting connect.c's (shared with
 * Unix sockets), name resolution resolve.c's, address formatting the core's
 * (format_address.c); connected sockets become stream transports. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "protogen/tcp.h"

#include "internal.h"

#define PG__DEFAULT_BACKLOG 100

#define PG__TCP_FLAGS (PG__STREAM_SOCKET | PG__STREAM_CAN_WRITE_EOF)

/* ---- servers ------------------------------------------------------------ */

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

    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
        goto fail_errno;
    /* Before bind: every socket sharing the port must have it set. */
    if (opts != NULL && opts->reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)
        goto fail_errno;
    /* One family per socket, as asyncio's create_server. */
    if (ss.ss_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) < 0)
        goto fail_errno;
    /* Accepted sockets inherit the listening socket's buffer sizes. */
    if ((r = pg__socket_buffer_sizes(fd, opts)) < 0)
        goto fail;
    if (bind(fd, (struct sockaddr *)&ss, sslen) < 0 || listen(fd, backlog) < 0)
        goto fail_errno;
    r = pg__server_new(loop, fd, backlog, PG__TCP_FLAGS, factory, arg, out);
    if (r < 0)
        goto fail;
    return 0;

fail_errno:
    r = -errno;
fail:
    close(fd);
    return r;
}

/* ---- connecting --------------------------------------------------------- */

/* A host name as RFC 1123 spells it: letters, digits, '-' and '.', labels of
 * 1 to 63 characters, at most 253 in all, and not made of digits and dots
 * alone (that would be a malformed IPv4 address, not a name). Anything else
 * is refused at once instead of being sent to a resolver. */
static bool pg__valid_host_name(const char *host)
{
    size_t n = strlen(host), label = 0;
    bool all_numeric = true;
    if (n == 0 || n > 253)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = host[i];
        if (ch == '.') {
            if (label == 0)
                return false;
            label = 0;
            continue;
        }
        bool alpha = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
        bool digit = ch >= '0' && ch <= '9';
        if (!alpha && !digit && ch != '-')
            return false;
        if (!digit)
            all_numeric = false;
        if (++label > 63)
            return false;
    }
    return !all_numeric;
}

int pg_tcp_connect(pg_loop *loop, const char *host, uint16_t port, uint32_t timeout_ms,
                   pg_protocol_factory factory, void *factory_arg, pg_connect_cb done, void *done_arg)
{
    if (loop == NULL || host == NULL || host[0] == '\0' || factory == NULL || done == NULL || port == 0)
        return -EINVAL;
    pg__sockaddr addr;
    bool numeric = pg__parse_address(host, port, false, &addr.ss, &addr.len) == 0;
    if (!numeric && !pg__valid_host_name(host))
        return -EINVAL;

    pg__connect *c;
    int r = pg__connect_new(loop, timeout_ms, PG__TCP_FLAGS, factory, factory_arg, done, done_arg, &c);
    if (r < 0)
        return r;
    if (numeric) {
        /* The fast path: no thread, no lookup. */
        pg__connect_start(c, &addr, 1);
        return 0;
    }
    r = pg__resolve_and_connect(c, loop, host, port);
    if (r < 0)
        pg__connect_discard(c);
    return r;
}
