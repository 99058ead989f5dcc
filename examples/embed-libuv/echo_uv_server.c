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
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <uv.h>

#include "echo.h"
#include "echo_server.h"
#include "options.h"
#include "protogen/uv.h"

static struct {
    pg_uv_host *host;
    uv_tcp_t listener;
    uv_signal_t sigint, sigterm;
    struct echo_server server; /* echo_handlers.c's list of open connections */
    int sndbuf;
    bool stopping;
} app;

static void on_connection(uv_stream_t *listener, int status)
{
    if (status < 0 || app.stopping)
        return;
    pg_transport *t;
    int rc = pg_uv_accept(app.host, listener, echo_protocol_factory, &app.server, &t);
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
    uv_close((uv_handle_t *)&app.listener, NULL);
    uv_close((uv_handle_t *)&app.sigint, NULL);
    uv_close((uv_handle_t *)&app.sigterm, NULL);
    echo_server_abort_all(&app.server);
}

/* HOST (a name or an address) and PORT as the first address getaddrinfo gives. */
static int resolve(uv_loop_t *loop, const char *host, long port, struct sockaddr_storage *out)
{
    char service[16];
    snprintf(service, sizeof service, "%ld", port);
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE };
    uv_getaddrinfo_t req;
    int rc = uv_getaddrinfo(loop, &req, NULL, host, service, &hints); /* no callback: synchronous */
    if (rc < 0)
        return rc;
    memcpy(out, req.addrinfo->ai_addr, req.addrinfo->ai_addrlen);
    uv_freeaddrinfo(req.addrinfo);
    return 0;
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

    uv_loop_t loop;
    struct sockaddr_storage addr;
    int rc = uv_loop_init(&loop);
    if (rc == 0)
        rc = pg_uv_host_new(&loop, &app.host);
    if (rc == 0)
        rc = resolve(&loop, host, port, &addr);
    if (rc == 0)
        rc = uv_tcp_init(&loop, &app.listener);
    if (rc == 0) {
        rc = uv_tcp_bind(&app.listener, (const struct sockaddr *)&addr, 0);
        if (rc == 0)
            rc = uv_listen((uv_stream_t *)&app.listener, SOMAXCONN, on_connection);
        if (rc < 0)
            uv_close((uv_handle_t *)&app.listener, NULL);
    }
    if (rc < 0) {
        fprintf(stderr, "echo_uv_server: cannot listen on %s:%ld: %s\n", host, port, uv_strerror(rc));
        if (app.host != NULL)
            pg_uv_host_free(app.host);
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
        return 1;
    }

    int addrlen = (int)sizeof addr;
    char where[128];
    memset(&addr, 0, sizeof addr);
    if (uv_tcp_getsockname(&app.listener, (struct sockaddr *)&addr, &addrlen) == 0
        && pg_format_address((struct sockaddr *)&addr, where, sizeof where) > 0)
        printf("listening on %s\n", where);
    fflush(stdout);

    uv_signal_init(&loop, &app.sigint);
    uv_signal_init(&loop, &app.sigterm);
    uv_signal_start(&app.sigint, on_signal, SIGINT);
    uv_signal_start(&app.sigterm, on_signal, SIGTERM);
    rc = uv_run(&loop, UV_RUN_DEFAULT); /* until every handle is closed */

    pg_uv_host_free(app.host);
    uv_run(&loop, UV_RUN_DEFAULT); /* the host's own handles */
    return uv_loop_close(&loop) == 0 && rc == 0 && app.server.open_connections == 0 ? 0 : 1;
}
