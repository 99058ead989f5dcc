/* UDP endpoints (asyncio's create_datagram_endpoint with local_addr or
 * remote_addr): the socket, its options, bind or connect. The endpoint itself
 * is a datagram transport (fd_datagram.c, over the core's datagram.c). */
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "protogen/udp.h"

#include "internal.h"

static int pg__udp_check_options(const pg_udp_options *opts)
{
    if (opts != NULL && (opts->send_buffer_size < 0 || opts->recv_buffer_size < 0))
        return -EINVAL;
    return 0;
}

/* A non-blocking UDP socket of addr's family, with the options set. */
static int pg__udp_socket(const struct sockaddr_storage *addr, const pg_udp_options *opts, int *out)
{
    int fd = socket(addr->ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    /* One family per socket, as the TCP servers. */
    if (addr->ss_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) < 0)
        goto fail;
    if (opts != NULL) {
        if (opts->reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)
            goto fail;
        if (opts->allow_broadcast && setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof one) < 0)
            goto fail;
        if (opts->send_buffer_size > 0
            && setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &opts->send_buffer_size, sizeof(int)) < 0)
            goto fail;
        if (opts->recv_buffer_size > 0
            && setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &opts->recv_buffer_size, sizeof(int)) < 0)
            goto fail;
    }
    *out = fd;
    return 0;

fail:;
    int r = -errno;
    close(fd);
    return r;
}

int pg_udp_bind(pg_loop *loop, const char *host, uint16_t port, const pg_udp_options *opts,
                pg_datagram_protocol_factory factory, void *arg, pg_datagram_transport **out)
{
    if (loop == NULL || factory == NULL)
        return -EINVAL;
    int r = pg__udp_check_options(opts);
    if (r < 0)
        return r;
    struct sockaddr_storage ss;
    socklen_t sslen;
    r = pg__parse_address(host, port, true, &ss, &sslen);
    if (r < 0)
        return r;
    int fd;
    r = pg__udp_socket(&ss, opts, &fd);
    if (r < 0)
        return r;
    if (bind(fd, (struct sockaddr *)&ss, sslen) < 0) {
        r = -errno;
        goto fail;
    }
    r = pg__datagram_open(loop, fd, factory, arg, out);
    if (r < 0)
        goto fail;
    return 0;

fail:
    close(fd);
    return r;
}

int pg_udp_connect(pg_loop *loop, const char *host, uint16_t port, const pg_udp_options *opts,
                   pg_datagram_protocol_factory factory, void *arg, pg_datagram_transport **out)
{
    if (loop == NULL || factory == NULL || port == 0 || host == NULL || host[0] == '\0')
        return -EINVAL;
    int r = pg__udp_check_options(opts);
    if (r < 0)
        return r;
    /* "localhost" too: connecting a UDP socket only sets its peer, so there
     * is no asynchronous step in which a name could be resolved. */
    struct sockaddr_storage ss;
    socklen_t sslen;
    r = pg__parse_address(strcmp(host, "localhost") == 0 ? "127.0.0.1" : host, port, false, &ss, &sslen);
    if (r < 0)
        return r;
    struct sockaddr_storage local;
    socklen_t locallen = 0;
    if (opts != NULL && opts->local_host != NULL) {
        r = pg__parse_address(opts->local_host, opts->local_port, true, &local, &locallen);
        if (r < 0)
            return r;
        if (local.ss_family != ss.ss_family)
            return -EAFNOSUPPORT; /* asyncio: "local and remote addresses must be of the same family" */
    }
    int fd;
    r = pg__udp_socket(&ss, opts, &fd);
    if (r < 0)
        return r;
    if ((locallen > 0 && bind(fd, (struct sockaddr *)&local, locallen) < 0)
        || connect(fd, (struct sockaddr *)&ss, sslen) < 0) {
        r = -errno;
        goto fail;
    }
    r = pg__datagram_open(loop, fd, factory, arg, out);
    if (r < 0)
        goto fail;
    return 0;

fail:
    close(fd);
    return r;
}
