/* Socket options several transports set the same way. */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "internal.h"

void pg__socket_nodelay(int fd)
{
    int one = 1;
    /* asyncio does this for every TCP transport; failure is harmless. */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

int pg__socket_buffer_sizes(int fd, const pg_listen_options *opts)
{
    if (opts == NULL)
        return 0;
    if (opts->send_buffer_size > 0
        && setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &opts->send_buffer_size, sizeof(int)) < 0)
        return -errno;
    if (opts->recv_buffer_size > 0
        && setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &opts->recv_buffer_size, sizeof(int)) < 0)
        return -errno;
    return 0;
}
