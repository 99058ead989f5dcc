/* pg_format_address (protogen/tcp.h): text for an address, in the core
 * because the datagram trace lines need it. No system call. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "protogen/tcp.h"

#include "core_internal.h"

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
    } else if (addr->sa_family == AF_UNIX) {
        const struct sockaddr_un *sun = (const struct sockaddr_un *)(const void *)addr;
        if (sun->sun_path[0] == '\0' && sun->sun_path[1] != '\0') /* abstract: not NUL-terminated */
            n = snprintf(buf, size, "@%.*s", (int)strnlen(sun->sun_path + 1, sizeof sun->sun_path - 1),
                         sun->sun_path + 1);
        else
            n = snprintf(buf, size, "%.*s", (int)strnlen(sun->sun_path, sizeof sun->sun_path), sun->sun_path);
    } else {
        return -EAFNOSUPPORT;
    }
    if (n < 0)
        return -EINVAL;
    if ((size_t)n >= size)
        return -ENOSPC;
    return n;
}
