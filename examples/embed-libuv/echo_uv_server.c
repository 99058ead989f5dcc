/* echo_uv_server: the echo protocol of examples/echo (the same spec, the same
 * echo_handlers.c) served on a libuv loop instead of protogen's own.
 *
 *   echo_uv_server [--host HOST] [--port PORT] [--sndbuf BYTES]
 *
 * Prints "listening on HOST:PORT" once it accepts connections (PORT 0 picks a
 * free port), and stops cleanly on SIGINT or SIGTERM: it stops listening,
 * aborts the connections still open and lets their connection_lost run.
 * Listening is plain libuv; pg_uv_accept() hands each connection to protogen. */
#define _POSIX_C_SOURCE 200809L /* uv.h and getaddrinfo need POSIX under -std=c11 */
#include <stdio.h>
#include <sys/socket.h>

#include "echo.h"
#include "echo_server.h"
#include "options.h"
#include "uv_serve.h"

static struct {
    struct uv_serve uv;
    struct echo_server server; /* echo_handlers.c's list of open connections */
    int sndbuf;
    bool stopping;
} app;

static void on_connection(uv_stream_t *listener, int status)
{
    if (status < 0 || app.stopping)
        return;
    pg_transport *t;
    int rc = pg_uv_accept(app.uv.host, listener, echo_protocol_factory, &app.server, &t);
    if (rc < 0) {
        fprintf(stderr, "echo_uv_server: accept: %s\n", uv_strerror(rc));
        return;
    }
    pg_extra_info info;
    if (app.sndbuf > 0 && pg_transport_get_extra_info(t, PG_EXTRA_SOCKET, &info) == 0)
        (void)setsockopt(info.fd, SOL_SOCKET, SO_SNDBUF, &app.sndbuf, sizeof app.sndbuf);
}

static void on_signal(uv_signal_t *signal, int signum)
{
    (void)signal;
    (void)signum;
    if (app.stopping)
        return;
    app.stopping = true;
    /* Stop accepting, abort what is still open: each connection_lost runs from
     * the loop, then its handle closes, and uv_run returns once all are gone. */
    uv_serve_stop(&app.uv);
    echo_server_abort_all(&app.server);
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    long port = 7777, sndbuf = 0;
    for (int i = 1; i < argc; i++) {
        if (option_string(argc, argv, &i, "--host", &host) || option_long(argc, argv, &i, "--port", 0, 65535, &port)
            || option_long(argc, argv, &i, "--sndbuf", 0, 1 << 30, &sndbuf))
            continue;
        fprintf(stderr, "usage: %s [--host HOST] [--port PORT] [--sndbuf BYTES]\n", argv[0]);
        return 2;
    }
    app.sndbuf = (int)sndbuf;
    if (uv_serve_listen(&app.uv, "echo_uv_server", host, port, on_connection) != 0)
        return 1;
    int rc = uv_serve_run(&app.uv, on_signal);
    return rc == 0 && app.server.open_connections == 0 ? 0 : 1;
}
