/* UDP endpoints over IPv4 and IPv6 (asyncio's create_datagram_endpoint):
 * bound ones that talk to any peer, and connected ones that talk to one.
 *
 * Hosts are numeric IPv4 or IPv6 addresses (brackets allowed) or "localhost"
 * (127.0.0.1); binding also takes NULL or "" for any IPv4 address. An IPv6
 * endpoint carries IPv6 only. Both functions work synchronously: on success
 * the endpoint exists and connection_made follows on the next iteration; on
 * error no protocol callback is ever called. */
#ifndef PROTOGEN_UDP_H
#define PROTOGEN_UDP_H

#include <stdbool.h>
#include <stdint.h>

#include "protogen/datagram.h"
#include "protogen/loop.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pg_udp_options {
    int send_buffer_size;   /* SO_SNDBUF; 0: the kernel's */
    int recv_buffer_size;   /* SO_RCVBUF; 0: the kernel's */
    bool reuse_port;        /* SO_REUSEPORT, as asyncio's reuse_port */
    bool allow_broadcast;   /* SO_BROADCAST, as asyncio's allow_broadcast */
    const char *local_host; /* pg_udp_connect: bind here first (asyncio's local_addr); NULL: the kernel picks */
    uint16_t local_port;
} pg_udp_options;

/* A bound endpoint on host:port (port 0: any free port; PG_EXTRA_SOCKNAME
 * tells which). Every datagram_received names its sender; sendto needs an
 * address. opts may be NULL. */
int pg_udp_bind(pg_loop *loop, const char *host, uint16_t port, const pg_udp_options *opts,
                pg_datagram_protocol_factory factory, void *arg, pg_datagram_transport **out);

/* A connected endpoint: it sends to host:port only (sendto's address NULL or
 * that one) and receives from it only. Errors the peer's host reports, such as
 * -ECONNREFUSED when nothing listens on the port, come to error_received. */
int pg_udp_connect(pg_loop *loop, const char *host, uint16_t port, const pg_udp_options *opts,
                   pg_datagram_protocol_factory factory, void *arg, pg_datagram_transport **out);

#ifdef __cplusplus
}
#endif
#endif
