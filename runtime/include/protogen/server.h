/* What every stream socket transport (TCP, Unix) shares: servers that accept
 * connections, listen options, and the completion callback of a connect. */
#ifndef PROTOGEN_SERVER_H
#define PROTOGEN_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

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
    unsigned unix_mode;   /* Unix path sockets: the socket file's permissions
                             (e.g. 0660); 0: as the umask leaves them */
    bool reuse_port;      /* TCP: SO_REUSEPORT, as asyncio's reuse_port: several
                             listeners (one per loop, per thread) on one port,
                             the kernel spreading connections among them. Unix
                             sockets: -EINVAL */
} pg_listen_options;

/* The bound address, e.g. to learn the port chosen for port 0. -EBADF once
 * the server is closed. */
int pg_server_sockname(const pg_server *server, struct sockaddr_storage *addr, socklen_t *len);

/* Stops accepting and closes the listening socket. Connections already
 * accepted stay open. A Unix server also removes its socket file, unless
 * something else has replaced it meanwhile. 0, or -EBADF when the server is
 * closed already (asyncio's Server.close is a no-op then), -EINVAL for NULL.
 * The closed server's small struct stays valid until pg_loop_close() frees
 * it, so that a late call is an error, never a use after free. */
int pg_server_close(pg_server *server);

/* asyncio 3.13's Server.close_clients() and abort_clients(): closes (or
 * aborts) every connection the server accepted that is still alive, newest
 * first; each one's connection_lost follows from the loop, as after
 * pg_transport_close() or pg_transport_abort(). A connection is the server's
 * until its connection_lost has run. Also after pg_server_close(), which
 * leaves accepted connections open (until pg_loop_close() frees the
 * server). 0, or -EINVAL for NULL. */
int pg_server_close_clients(pg_server *server);
int pg_server_abort_clients(pg_server *server);

/* Clients beyond the process's fd limit: when accept fails with EMFILE or
 * ENFILE, the server gives up a spare descriptor it holds for this, accepts
 * the waiting clients and closes each at once (they see their connection
 * closed instead of waiting in the backlog), then takes the spare back; when
 * that cannot help, it stops accepting for a second. This counts the clients
 * closed so (the trace says "0 connections_shed <n>"). 0 for NULL. */
uint64_t pg_server_connections_shed(const pg_server *server);

/* Called once when a connect attempt ends. On success transport is set and
 * the protocol's connection_made has run; on failure error is a negative
 * errno (-ECONNREFUSED, -ETIMEDOUT, -ENOENT, ...) and no protocol instance was
 * made. */
typedef void (*pg_connect_cb)(void *arg, pg_transport *transport, int error);

/* The timeout of pg_tcp_connect and pg_unix_connect when given 0: the lookup
 * and every attempt within 60 s (nginx's proxy_connect_timeout; asyncio has
 * none, and leaves it to the kernel: about 2 minutes for TCP, for ever for a
 * lookup that is never answered). PG_CONNECT_NO_TIMEOUT: none of protogen's. */
#define PG_CONNECT_DEFAULT_TIMEOUT_MS 60000u
#define PG_CONNECT_NO_TIMEOUT UINT32_MAX

/* Cancels the pending connects that were started with this done and
 * done_arg (asyncio: cancelling the create_connection task): the socket is
 * closed, a lookup still running is abandoned (its helper thread ends on its
 * own), no protocol is made, and done is called once, from the loop (never
 * from inside this call), with -ECANCELED. 0 when one was cancelled;
 * -EALREADY when its outcome is decided already (done is queued with it, and
 * gets it: a connection made stays made); -ENOENT when there is no such
 * connect (done has run, or is running). pg_loop_close() cancels every
 * pending connect alike. */
int pg_connect_cancel(pg_loop *loop, pg_connect_cb done, void *done_arg);

#ifdef __cplusplus
}
#endif
#endif
