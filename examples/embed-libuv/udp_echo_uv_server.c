/* udp_echo_uv_server: the UDP echo protocol of examples/udp-echo (the same
 * spec, the same udp_echo_handlers.c) served on a libuv loop instead of
 * protogen's own.
 *
 *   udp_echo_uv_server [--host HOST] [--port PORT]
 *
 * Prints "listening on HOST:PORT" once it receives (PORT 0 picks a free
 * port), and stops cleanly on SIGINT or SIGTERM: the endpoint closes after
 * sending what is queued, and the loop ends once its handles are closed. The
 * socket is the program's own; pg_uv_datagram_open() hands it to protogen. */
#define _POSIX_C_SOURCE 200809L /* uv.h and getaddrinfo need POSIX under -std=c11 */
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "options.h"
#include "protogen/uv.h"
#include "udp_echo.h"
#include "uv_serve.h"
#include "udp_echo_server.h"

static struct {
    uv_signal_t sigint, sigterm;
    pg_datagram_transport *endpoint; /* until connection_lost (server.lost) */
    struct udp_echo_server server;   /* udp_echo_handlers.c's counters */
} app;

static void on_signal(uv_signal_t *signal, int signum)
{
    (void)signal;
    (void)signum;
    uv_close((uv_handle_t *)&app.sigint, NULL);
    uv_close((uv_handle_t *)&app.sigterm, NULL);
    /* The queued replies go first; then connection_lost, and the endpoint's
     * handle closes: uv_run returns once nothing is left. */
    if (!app.server.lost)
        pg_datagram_transport_close(app.endpoint);
}

/* A UDP socket bound to HOST:PORT, the first address getaddrinfo gives. */
static int bind_socket(uv_loop_t *loop, const char *host, long port, int *out)
{
    struct sockaddr_storage addr;
    socklen_t addrlen;
    int family;
    int rc = uv_serve_resolve(loop, host, port, SOCK_DGRAM, &family, &addr, &addrlen);
    if (rc < 0)
        return rc;
    int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int one = 1;
    rc = fd < 0 ? -errno : 0;
    /* One family per socket, as protogen's own pg_udp_bind. */
    if (rc == 0 && family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) < 0)
        rc = -errno;
    if (rc == 0 && bind(fd, (struct sockaddr *)&addr, addrlen) < 0)
        rc = -errno;
    if (rc < 0 && fd >= 0)
        close(fd);
    if (rc == 0)
        *out = fd;
    return rc;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    long port = 7777;
    for (int i = 1; i < argc; i++) {
        if (option_string(argc, argv, &i, "--host", &host) || option_long(argc, argv, &i, "--port", 0, 65535, &port))
            continue;
        fprintf(stderr, "usage: %s [--host HOST] [--port PORT]\n", argv[0]);
        return 2;
    }

    uv_loop_t loop;
    pg_uv_host *host_ = NULL;
    int fd = -1;
    int rc = uv_loop_init(&loop);
    if (rc == 0)
        rc = pg_uv_host_new(&loop, &host_);
    if (rc == 0)
        rc = bind_socket(&loop, host, port, &fd);
    if (rc == 0) {
        rc = pg_uv_datagram_open(host_, fd, udp_echo_protocol_factory, &app.server, &app.endpoint);
        if (rc < 0)
            close(fd); /* still ours */
    }
    if (rc < 0) {
        fprintf(stderr, "udp_echo_uv_server: cannot bind %s:%ld: %s\n", host, port, uv_strerror(rc));
        if (host_ != NULL)
            pg_uv_host_free(host_);
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
        return 1;
    }

    pg_extra_info info;
    char where[128];
    if (pg_datagram_transport_get_extra_info(app.endpoint, PG_EXTRA_SOCKNAME, &info) == 0
        && pg_format_address((struct sockaddr *)&info.addr, where, sizeof where) > 0)
        printf("listening on %s\n", where);
    fflush(stdout);

    uv_signal_init(&loop, &app.sigint);
    uv_signal_init(&loop, &app.sigterm);
    uv_signal_start(&app.sigint, on_signal, SIGINT);
    uv_signal_start(&app.sigterm, on_signal, SIGTERM);
    rc = uv_run(&loop, UV_RUN_DEFAULT); /* until every handle is closed */

    pg_uv_host_free(host_);
    uv_run(&loop, UV_RUN_DEFAULT); /* the host's own handles */
    return uv_loop_close(&loop) == 0 && rc == 0 && app.server.lost && app.server.lost_error == 0 ? 0 : 1;
}
