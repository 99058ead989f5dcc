/* protogen on libuv: a host of the sans-I/O core (protogen/core.h) on a
 * uv_loop_t, a stream driver over connected libuv streams and a datagram
 * driver over datagram sockets. Any generated stream or datagram protocol
 * runs unchanged on it, with asyncio's semantics and the same
 * PROTOGEN_TRACE lines as on the built-in loop. Link protogen::uv (CMake:
 * find_package(protogen COMPONENTS uv)) or -lprotogen_uv -lprotogen_core -luv.
 *
 *     pg_uv_host *host;
 *     pg_uv_host_new(loop, &host);
 *     ...in the listener's connection callback:
 *     pg_uv_accept(host, server, echo_protocol_factory, context, NULL);
 *     ...when every transport is gone:
 *     pg_uv_host_free(host);   then let uv_run() finish closing its handles
 *
 * Listening stays the application's own libuv code (uv_tcp_bind/uv_pipe_bind,
 * uv_listen): it already chooses the address, the backlog and the socket
 * options; pg_uv_accept() is the one line that hands a connection over.
 *
 * uv.h needs POSIX declarations: under strict C (-std=c11, CMake's
 * C_EXTENSIONS OFF) define _POSIX_C_SOURCE 200809L (or _GNU_SOURCE) before
 * the first #include.
 *
 * Threads: like libuv, everything runs on the loop's thread. Integer results
 * are 0 or a negative errno (libuv's own errors are negative errno on Unix). */
#ifndef PROTOGEN_UV_H
#define PROTOGEN_UV_H

#include <uv.h>

#include "protogen/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A libuv loop as a host of the core: deferred calls run in FIFO order from
 * a uv_idle_t/uv_check_t pair (the idle handle also keeps the loop from
 * blocking in poll while calls are queued); timers (pg_host_timer_start) on
 * the loop's clock (uv_now) wait for one uv_timer_t, which keeps the loop
 * alive while one is active, and run from that dispatch. One per loop,
 * before any of its transports. */
typedef struct pg_uv_host pg_uv_host;

int pg_uv_host_new(uv_loop_t *loop, pg_uv_host **out);

/* The core's view of the host (for core-level calls such as pg_stream_new
 * with a driver of your own). */
pg_host *pg_uv_host_core(pg_uv_host *host);

uv_loop_t *pg_uv_host_loop(const pg_uv_host *host);

/* After the last transport's connection_lost (timers still active are left
 * inactive): closes the host's handles; its
 * memory is released from their close callbacks, so run the loop until it
 * returns (uv_run(loop, UV_RUN_DEFAULT)) before uv_loop_close(). */
void pg_uv_host_free(pg_uv_host *host);

/* A transport over a connected stream: a uv_tcp_t, or a uv_pipe_t on a Unix
 * socket (other streams: -ENOTSUP). The transport takes the handle over: its
 * data field and its reads belong to the transport until the end, when the
 * handle is uv_close()d and then close_cb(stream) runs with data restored
 * (the place to free the handle; NULL: nothing). factory(arg) makes the
 * protocol; connection_made follows from the loop. On error no protocol
 * callback runs and the handle is still the caller's. */
int pg_uv_stream_open(pg_uv_host *host, uv_stream_t *stream, uv_close_cb close_cb, pg_protocol_factory factory,
                      void *arg, pg_transport **out);

/* Accepts one connection from a listening uv_tcp_t or uv_pipe_t (call it from
 * the listener's uv_connection_cb) into a handle the transport owns and
 * frees, and opens a transport over it as pg_uv_stream_open does. */
int pg_uv_accept(pg_uv_host *host, uv_stream_t *server, pg_protocol_factory factory, void *arg, pg_transport **out);

/* A datagram transport over a socket the caller made (UDP or a Unix datagram
 * socket, bound and/or connected; no other libuv handle may watch the fd:
 * -EEXIST), as pg_datagram_adopt_fd does on the built-in loop: the fd is made
 * non-blocking, a connected socket gives a connected endpoint. A uv_poll_t on
 * the fd follows the core's read and write interest; datagrams move with
 * recvmsg and sendto. factory(arg) makes the protocol; connection_made
 * follows from the loop. On success the transport owns the fd (closed after
 * connection_lost, once its poll handle closed). On error (-ENOTSOCK, -EINVAL
 * for a socket that is not SOCK_DGRAM, the factory's error, -ENOMEM) no
 * protocol callback runs and the fd is still the caller's. */
int pg_uv_datagram_open(pg_uv_host *host, int fd, pg_datagram_protocol_factory factory, void *arg,
                        pg_datagram_transport **out);

#ifdef __cplusplus
}
#endif
#endif
