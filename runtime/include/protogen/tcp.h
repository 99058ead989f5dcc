/* TCP servers and clients. Addresses are numeric IPv4 or IPv6 literals, or
 * "localhost". */
#ifndef PROTOGEN_TCP_H
#define PROTOGEN_TCP_H

#include <stddef.h>
#include <stdint.h>

#include "protogen/loop.h"
#include "protogen/protocol.h"
#include "protogen/transport.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pg_server pg_server;

typedef struct pg_listen_options {
    int backlog;          /* 0: 100, as asyncio */
    int send_buffer_size; /* SO_SNDBUF for accepted sockets; 0: the kernel's */
    int recv_buffer_size; /* SO_RCVBUF for accepted sockets; 0: the kernel's */
} pg_listen_options;

/* Listens on host:port (port 0: any free port) and calls factory(arg) for each
 * accepted connection. opts may be NULL. */
int pg_tcp_listen(pg_loop *loop, const char *host, uint16_t port,
                  const pg_listen_options *opts, pg_protocol_factory factory,
                  void *arg, pg_server **out);

/* The bound address, e.g. to learn the port chosen for port 0. */
int pg_server_sockname(const pg_server *server, struct sockaddr_storage *addr, socklen_t *len);

/* Stops accepting and frees the server (on the next iteration). Connections
 * already accepted stay open. */
void pg_server_close(pg_server *server);

/* Called once when a connect attempt ends. On success transport is set and
 * the protocol's connection_made follows; on failure error is a negative errno
 * (-ECONNREFUSED, -ETIMEDOUT, ...) and no protocol instance was made. */
typedef void (*pg_connect_cb)(void *arg, pg_transport *transport, int error);

/* Connects without blocking. factory is called once the socket is connected.
 * timeout_ms 0: no timeout other than the kernel's. Returns an error at once
 * for a bad address; everything later is reported through done. */
int pg_tcp_connect(pg_loop *loop, const char *host, uint16_t port,
                   uint32_t timeout_ms, pg_protocol_factory factory,
                   void *factory_arg, pg_connect_cb done, void *done_arg);

/* Formats an address as "HOST:PORT" ("[HOST]:PORT" for IPv6). Returns the
 * length, or a negative errno. */
int pg_format_address(const struct sockaddr *addr, char *buf, size_t size);

#ifdef __cplusplus
}
#endif
#endif
