/* udp_echo_server: a UDP echo server built on the protocol generated from udp_echo.spec.
 *
 *   udp_echo_server [--host HOST] [--port PORT] [--rcvbuf BYTES]
 *
 * Prints "listening on HOST:PORT" once it receives (PORT 0 picks a free
 * port), and stops cleanly on SIGINT or SIGTERM: the endpoint closes after
 * sending what is queued. --rcvbuf sets the kernel's receive buffer. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "options.h"
#include "udp_echo.h"
#include "udp_echo_server.h"

static void stop_loop(void *arg)
{
    pg_loop_stop(arg);
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    long port = 7777, rcvbuf = 0;
    for (int i = 1; i < argc; i++) {
        if (option_string(argc, argv, &i, "--host", &host) || option_long(argc, argv, &i, "--port", 0, 65535, &port)
            || option_long(argc, argv, &i, "--rcvbuf", 0, 1 << 30, &rcvbuf))
            continue;
        fprintf(stderr, "usage: %s [--host HOST] [--port PORT] [--rcvbuf BYTES]\n", argv[0]);
        return 2;
    }

    struct udp_echo_server server = { 0 };
    pg_udp_options opts = { .recv_buffer_size = (int)rcvbuf };
    udp_echo_conn *endpoint = NULL;
    int rc = pg_loop_new(&server.loop);
    if (rc == 0)
        rc = udp_echo_bind(server.loop, host, (uint16_t)port, &opts, &server, &endpoint);
    if (rc < 0) {
        fprintf(stderr, "udp_echo_server: cannot bind %s:%ld: %s\n", host, port, strerror(-rc));
        if (server.loop != NULL)
            pg_loop_close(server.loop);
        return 1;
    }

    pg_extra_info info;
    char where[128];
    if (udp_echo_get_extra_info(endpoint, PG_EXTRA_SOCKNAME, &info) == 0
        && pg_format_address((struct sockaddr *)&info.addr, where, sizeof where) > 0)
        printf("listening on %s\n", where);
    fflush(stdout);

    pg_loop_add_signal_handler(server.loop, SIGINT, stop_loop, server.loop);
    pg_loop_add_signal_handler(server.loop, SIGTERM, stop_loop, server.loop);
    rc = pg_loop_run(server.loop);

    /* Shut down: close (the queued replies go first), let connection_lost run. */
    if (server.endpoint != NULL)
        udp_echo_close(server.endpoint);
    else if (!server.lost)
        udp_echo_close(endpoint); /* stopped before connection_made ran */
    while (!server.lost && rc == 0)
        rc = pg_loop_run_once(server.loop, -1);
    pg_loop_remove_signal_handler(server.loop, SIGINT);
    pg_loop_remove_signal_handler(server.loop, SIGTERM);
    pg_loop_close(server.loop);
    return rc == 0 && server.lost_error == 0 ? 0 : 1;
}
