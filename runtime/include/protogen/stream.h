/* Stream transports over sockets the caller already has (asyncio's
 * connect_accepted_socket): a socketpair, a socket accepted or connected
 * elsewhere. The transport behaves exactly like a TCP one. */
#ifndef PROTOGEN_STREAM_H
#define PROTOGEN_STREAM_H

#include "protogen/loop.h"
#include "protogen/protocol.h"
#include "protogen/transport.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Wraps a connected SOCK_STREAM socket (Unix or TCP) in a transport. The fd is
 * made non-blocking (and TCP_NODELAY for TCP); factory(arg) makes the protocol.
 * On success the transport owns the fd (closed after connection_lost),
 * connection_made follows on the next iteration, and *out (if not NULL) is the
 * transport. On error (-ENOTSOCK, -EINVAL for a non-stream socket, the
 * factory's error, -ENOMEM) the fd stays the caller's (possibly made
 * non-blocking already) and no protocol callback is called. */
int pg_stream_adopt_fd(pg_loop *loop, int fd, pg_protocol_factory factory, void *arg, pg_transport **out);

#ifdef __cplusplus
}
#endif
#endif
