/* resp_server: a Redis-protocol server built on the protocol generated from
 * resp.spec and the commands of commands.c.
 *
 *   resp_server [--host HOST] [--port PORT]
 *
 * Prints "listening on HOST:PORT" once it accepts connections (PORT 0 picks a
 * free port), and stops cleanly on SIGINT or SIGTERM. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "resp.h"
#include "resp_server.h"
#include "options.h"

static void stop_loop(void *arg)
{
    pg_loop_stop(arg);
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    long port = 6379;
    for (int i = 1; i < argc; i++) {
        if (option_string(argc, argv, &i, "--host", &host) || option_long(argc, argv, &i, "--port", 0, 65535, &port))
            continue;
        fprintf(stderr, "usage: %s [--host HOST] [--port PORT]\n", argv[0]);
        return 2;
    }

    struct resp_server server = { .store = resp_store_new() };
    pg_loop *loop = NULL;
    pg_server *listener = NULL;
    int rc = server.store != NULL ? pg_loop_new(&loop) : -ENOMEM;
    if (rc == 0)
        rc = resp_listen(loop, host, (uint16_t)port, NULL, &server, &listener);
    if (rc < 0) {
        fprintf(stderr, "resp_server: cannot listen on %s:%ld: %s\n", host, port, strerror(-rc));
        if (loop != NULL)
            pg_loop_close(loop);
        resp_store_free(server.store);
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
    rc = pg_loop_run(loop);

    /* Shut down: stop accepting, abort what is still open, let connection_lost run. */
    pg_server_abort_clients(listener);
    pg_server_close(listener);
    while (server.open_connections > 0 && rc == 0)
        rc = pg_loop_run_once(loop, -1);
    pg_loop_remove_signal_handler(loop, SIGINT);
    pg_loop_remove_signal_handler(loop, SIGTERM);
    pg_loop_close(loop);
    resp_reply_free(&server.reply);
    resp_inline_free(&server.words);
    resp_store_free(server.store);
    return rc == 0 ? 0 : 1;
}
