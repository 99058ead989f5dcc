/* Unix domain stream sockets: servers and clients (asyncio's
 * create_unix_server / create_unix_connection).
 *
 * A path starting with '@' names a socket in Linux's abstract namespace
 * ("@name": no file; gone when the last socket closes). */
#ifndef PROTOGEN_UNIX_H
#define PROTOGEN_UNIX_H

#include <stdint.h>

#include "protogen/loop.h"
#include "protogen/protocol.h"
#include "protogen/server.h"
#include "protogen/transport.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Listens on path and calls factory(arg) for each accepted connection. A
 * socket file left at path by a dead server is removed first; a live one
 * (something accepts connections on it) gives -EADDRINUSE, and a file that is
 * not a socket -EEXIST. opts->unix_mode sets the file's permissions (not for
 * abstract sockets: -EINVAL). The file is removed by pg_server_close().
 * -ENAMETOOLONG when path does not fit a sockaddr_un. */
int pg_unix_listen(pg_loop *loop, const char *path, const pg_listen_options *opts,
                   pg_protocol_factory factory, void *arg, pg_server **out);

/* Connects without blocking; as pg_tcp_connect (timeout_ms 0: the default;
 * pg_connect_cancel cancels). -ENOENT (no such file) and -ECONNREFUSED
 * (nobody listens) are reported through done. */
int pg_unix_connect(pg_loop *loop, const char *path, uint32_t timeout_ms,
                    pg_protocol_factory factory, void *factory_arg,
                    pg_connect_cb done, void *done_arg);

#ifdef __cplusplus
}
#endif
#endif
