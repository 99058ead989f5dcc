/* lines_server: a line server built on the protocol generated from lines.spec.
 *
 *   lines_server [--host HOST] [--port PORT] [--sndbuf BYTES]
 *
 * Prints "listening on HOST:PORT" once it accepts connections (PORT 0 picks a
 * free port), and stops cleanly on SIGINT or SIGTERM. --sndbuf shrinks the
 * kernel's send buffer of each connection, so back-pressure shows with little data. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lines.h"
#include "lines_server.h"
#include "options.h"
#include "serve.h"

static void stop_loop(void *arg)
{
    pg_loop_stop(arg);
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    long port = 7778, sndbuf = 0;
    for (int i = 1; i < argc; i++) {
        if (option_string(argc, argv, &i, "--host", &host) || option_long(argc, argv, &i, "--port", 0, 65535, &port)
            || option_long(argc, argv, &i, "--sndbuf", 0, 1 << 30, &sndbuf))
            continue;
        fprintf(stderr, "usage: %s [--host HOST] [--port PORT] [--sndbuf BYTES]\n", argv[0]);
        return 2;
    }

    pg_loop *loop = NULL;
    pg_server *listener = NULL;
    struct lines_server server = { 0 };
    pg_listen_options opts = { .send_buffer_size = (int)sndbuf };
    int rc = pg_loop_new(&loop);
    if (rc == 0)
        rc = lines_listen(loop, host, (uint16_t)port, &opts, &server, &listener);
    if (rc < 0) {
        fprintf(stderr, "lines_server: cannot listen on %s:%ld: %s\n", host, port, strerror(-rc));
        if (loop != NULL)
            pg_loop_close(loop);
        return 1;
    }

    serve_print_listening(listener);

    pg_loop_add_signal_handler(loop, SIGINT, stop_loop, loop);
    pg_loop_add_signal_handler(loop, SIGTERM, stop_loop, loop);
    rc = pg_loop_run(loop);

    /* Shut down: stop accepting, abort what is still open, let connection_lost run. */
    pg_server_close(listener);
    lines_server_abort_all(&server);
    while (server.open_connections > 0 && rc == 0)
        rc = pg_loop_run_once(loop, -1);
    pg_loop_remove_signal_handler(loop, SIGINT);
    pg_loop_remove_signal_handler(loop, SIGTERM);
    pg_loop_close(loop);
    return rc == 0 ? 0 : 1;
}
