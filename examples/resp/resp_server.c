/* resp_server: a Redis-protocol server built on the protocol generated from
 * resp.spec and the commands of commands.c.
 *
 *   resp_server [--host HOST] [--port PORT]
 *
 * Prints "listening on HOST:PORT" once it accepts connections (PORT 0 picks a
 * free port), and stops cleanly on SIGINT or SIGTERM. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "resp.h"
#include "resp_server.h"
#include "options.h"
#include "serve.h"

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

    serve_print_listening(listener);
    rc = serve_until_signal(loop, listener, &server.open_connections);
    resp_reply_free(&server.reply);
    resp_inline_free(&server.words);
    resp_store_free(server.store);
    return rc == 0 ? 0 : 1;
}
