/* What the example servers' mains share (resp, smtp, lines, tls-echo): say
 * where they listen, run until SIGINT or SIGTERM, shut down cleanly.
 * serve_threads.h: the same with one loop per thread (echo, http). */
#ifndef EXAMPLES_SERVE_H
#define EXAMPLES_SERVE_H

#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>

#include <protogen/protogen.h>

static void serve_stop_loop(void *arg)
{
    pg_loop_stop(arg);
}

/* "listening on HOST:PORT" on stdout, flushed: what the tests and scripts wait for. */
static inline void serve_print_listening(pg_server *listener)
{
    struct sockaddr_storage addr;
    socklen_t addrlen = sizeof addr;
    char where[128];
    if (pg_server_sockname(listener, &addr, &addrlen) == 0
        && pg_format_address((struct sockaddr *)&addr, where, sizeof where) > 0)
        printf("listening on %s\n", where);
    fflush(stdout);
}

/* Runs loop until SIGINT or SIGTERM; then stops accepting, aborts the
 * connections still open and runs on until *open_connections (which their
 * connection_lost counts down) is 0; closes the loop. 0 on a clean stop. */
static inline int serve_until_signal(pg_loop *loop, pg_server *listener, const size_t *open_connections)
{
    pg_loop_add_signal_handler(loop, SIGINT, serve_stop_loop, loop);
    pg_loop_add_signal_handler(loop, SIGTERM, serve_stop_loop, loop);
    int rc = pg_loop_run(loop);
    pg_server_abort_clients(listener);
    pg_server_close(listener);
    while (*open_connections > 0 && rc == 0)
        rc = pg_loop_run_once(loop, -1);
    pg_loop_remove_signal_handler(loop, SIGINT);
    pg_loop_remove_signal_handler(loop, SIGTERM);
    pg_loop_close(loop);
    return rc;
}

#endif
