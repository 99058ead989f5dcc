/* echo_server: a TCP echo server built on the protocol generated from echo.spec.
 *
 *   echo_server [--host HOST] [--port PORT] [--sndbuf BYTES] [--nest]
 *
 * Prints "listening on HOST:PORT" once it accepts connections (PORT 0 picks a
 * free port), and stops cleanly on SIGINT or SIGTERM. --sndbuf shrinks the
 * kernel's send buffer of each connection, so back-pressure shows with little
 * data. --nest runs the loop inside a poll() loop of the program's own
 * (pg_loop_backend_fd, pg_loop_backend_timeout), as a program with a loop of
 * its own would embed it. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "echo.h"
#include "echo_server.h"
#include "options.h"

static bool nested, stopped;

static void stop_loop(void *arg)
{
    stopped = true;
    pg_loop_stop(arg);
}

/* pg_loop_run(), the way an outer loop nests it: wait for the loop's fd as
 * long as it allows, then one iteration that does not wait. */
static int run_nested(pg_loop *loop)
{
    int rc = 0;
    int fd = pg_loop_backend_fd(loop);
    if (fd < 0)
        return fd;
    while (!stopped && rc == 0) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, pg_loop_backend_timeout(loop)) < 0 && errno != EINTR)
            return -errno;
        rc = pg_loop_run_once(loop, 0);
    }
    return rc;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    long port = 7777, sndbuf = 0;
    for (int i = 1; i < argc; i++) {
        if (option_string(argc, argv, &i, "--host", &host) || option_long(argc, argv, &i, "--port", 0, 65535, &port)
            || option_long(argc, argv, &i, "--sndbuf", 0, 1 << 30, &sndbuf))
            continue;
        if (strcmp(argv[i], "--nest") == 0) {
            nested = true;
            continue;
        }
        fprintf(stderr, "usage: %s [--host HOST] [--port PORT] [--sndbuf BYTES] [--nest]\n", argv[0]);
        return 2;
    }

    pg_loop *loop = NULL;
    pg_server *listener = NULL;
    struct echo_server server = { 0 };
    pg_listen_options opts = { .send_buffer_size = (int)sndbuf };
    int rc = pg_loop_new(&loop);
    if (rc == 0)
        rc = echo_listen(loop, host, (uint16_t)port, &opts, &server, &listener);
    if (rc < 0) {
        fprintf(stderr, "echo_server: cannot listen on %s:%ld: %s\n", host, port, strerror(-rc));
        if (loop != NULL)
            pg_loop_close(loop);
        return 1;
    }

    struct sockaddr_storage addr;
    socklen_t addrlen = sizeof addr;
    char where[128];
    if (pg_server_sockname(listener, &addr, &addrlen) == 0
        && pg_format_address((struct sockaddr *)&addr, where, sizeof where) > 0)
        printf("listening on %s\n", where);
    fflush(stdout);

    pg_loop_add_signal_handler(loop, SIGINT, stop_loop, loop);
    pg_loop_add_signal_handler(loop, SIGTERM, stop_loop, loop);
    rc = nested ? run_nested(loop) : pg_loop_run(loop);

    /* Shut down: stop accepting, abort what is still open, let connection_lost run. */
    pg_server_close(listener);
    pg_server_abort_clients(listener);
    while (server.open_connections > 0 && rc == 0)
        rc = pg_loop_run_once(loop, -1);
    pg_loop_remove_signal_handler(loop, SIGINT);
    pg_loop_remove_signal_handler(loop, SIGTERM);
    pg_loop_close(loop);
    return rc == 0 ? 0 : 1;
}
