/* TCP servers and clients over IPv4 and IPv6. */
#ifndef PROTOGEN_TCP_H
#define PROTOGEN_TCP_H

#include <stddef.h>
#include <stdint.h>

#include "protogen/loop.h"
#include "protogen/protocol.h"
#include "protogen/server.h"
#include "protogen/transport.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Listens on host:port (port 0: any free port) and calls factory(arg) for each
 * accepted connection. host is a numeric IPv4 or IPv6 address (brackets
 * allowed), "localhost" (127.0.0.1), or NULL/"" for any IPv4 address. opts may
 * be NULL. */
int pg_tcp_listen(pg_loop *loop, const char *host, uint16_t port,
                  const pg_listen_options *opts, pg_protocol_factory factory,
                  void *arg, pg_server **out);

/* Connects without blocking. A numeric host is used as it is; a name is
 * resolved on a helper thread (getaddrinfo), and its addresses are tried in
 * order until one connects, as asyncio's create_connection. factory is called
 * once the socket is connected. timeout_ms covers resolution and every
 * attempt: 0 is PG_CONNECT_DEFAULT_TIMEOUT_MS (60 s), PG_CONNECT_NO_TIMEOUT
 * leaves it to the kernel (and a lookup that is never answered then never
 * ends). Returns an error at once only for bad arguments; everything later
 * (-ECONNREFUSED, -ENETUNREACH, -ETIMEDOUT, -ENOENT for an unknown name,
 * -ECANCELED after pg_connect_cancel or pg_loop_close, ...) is reported
 * through done, exactly once and never synchronously. */
int pg_tcp_connect(pg_loop *loop, const char *host, uint16_t port,
                   uint32_t timeout_ms, pg_protocol_factory factory,
                   void *factory_arg, pg_connect_cb done, void *done_arg);

/* Formats an address as "HOST:PORT" ("[HOST]:PORT" for IPv6; the path, or
 * "@name" for an abstract socket, for AF_UNIX). An abstract name ends at its
 * first NUL byte (or the end of sun_path): zero the address before filling it,
 * as pg_server_sockname and get_extra_info do. Returns the length, or a
 * negative errno. */
int pg_format_address(const struct sockaddr *addr, char *buf, size_t size);

#ifdef __cplusplus
}
#endif
#endif
