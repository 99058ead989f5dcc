/* conform_server --host libuv: the same generated protocols served by the
 * libuv host (protogen/uv.h), for the conformance suite's second run. */
#define _POSIX_C_SOURCE 200809L /* uv.h needs POSIX under -std=c11 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "conform_uv.h"
#include "protogen/tcp.h"
#include "protogen/uv.h"

static struct {
    pg_uv_host *host;
    pg_protocol_factory factory;
    union {
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } listener;
    uv_signal_t sigterm;
} conform;

static void on_connection(uv_stream_t *listener, int status)
{
    if (status == 0)
        (void)pg_uv_accept(conform.host, listener, conform.factory, NULL, NULL);
}

static void on_sigterm(uv_signal_t *signal, int signum)
{
    (void)signum;
    /* Every scenario has ended its connections before the server is stopped. */
    uv_close((uv_handle_t *)&conform.listener, NULL);
    uv_close((uv_handle_t *)signal, NULL);
}

int conform_serve_libuv(pg_protocol_factory factory, const char *unix_path)
{
    uv_loop_t loop;
    if (uv_loop_init(&loop) < 0 || pg_uv_host_new(&loop, &conform.host) < 0)
        return 1;
    conform.factory = factory;
    uv_stream_t *listener = (uv_stream_t *)&conform.listener;
    int rc;
    char where[128];
    if (unix_path != NULL) {
        rc = uv_pipe_init(&loop, &conform.listener.pipe, 0);
        if (rc == 0)
            rc = uv_pipe_bind(&conform.listener.pipe, unix_path);
        snprintf(where, sizeof where, "%s", unix_path);
    } else {
        struct sockaddr_in sin;
        uv_ip4_addr("127.0.0.1", 0, &sin);
        rc = uv_tcp_init(&loop, &conform.listener.tcp);
        if (rc == 0)
            rc = uv_tcp_bind(&conform.listener.tcp, (const struct sockaddr *)&sin, 0);
        struct sockaddr_storage ss;
        int len = sizeof ss;
        memset(&ss, 0, sizeof ss);
        if (rc == 0)
            rc = uv_tcp_getsockname(&conform.listener.tcp, (struct sockaddr *)&ss, &len);
        if (rc == 0 && pg_format_address((struct sockaddr *)&ss, where, sizeof where) < 0)
            rc = UV_EINVAL;
    }
    if (rc == 0)
        rc = uv_listen(listener, SOMAXCONN, on_connection);
    if (rc < 0) {
        fprintf(stderr, "conform_server: %s\n", uv_strerror(rc));
        return 1;
    }
    printf("listening on %s\n", where);
    fflush(stdout);
    uv_signal_init(&loop, &conform.sigterm);
    uv_signal_start(&conform.sigterm, on_sigterm, SIGTERM);
    rc = uv_run(&loop, UV_RUN_DEFAULT);
    pg_uv_host_free(conform.host);
    uv_run(&loop, UV_RUN_DEFAULT);
    return uv_loop_close(&loop) == 0 && rc == 0 ? 0 : 1;
}
