/* http_server: an HTTP/1.1 origin server built on the protocol generated
 * from http.spec and the routes of routes.c.
 *
 *   http_server [--host HOST] [--port PORT] [--root DIR] [--header-timeout SECONDS]
 *               [--idle-timeout SECONDS] [--max-body BYTES]
 *
 * Prints "listening on HOST:PORT" once it accepts connections (PORT 0 picks a
 * free port), and stops cleanly on SIGINT or SIGTERM. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "http.h"
#include "http_server.h"
#include "options.h"
#include "serve.h"

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    long port = 8080, header_timeout = 10, idle = 5, max_body = 1L << 20;
    struct http_server server = { .root = NULL };
    for (int i = 1; i < argc; i++) {
        if (option_string(argc, argv, &i, "--host", &host) || option_long(argc, argv, &i, "--port", 0, 65535, &port)
            || option_string(argc, argv, &i, "--root", &server.root)
            || option_long(argc, argv, &i, "--header-timeout", 1, 3600, &header_timeout)
            || option_long(argc, argv, &i, "--idle-timeout", 1, 3600, &idle)
            || option_long(argc, argv, &i, "--max-body", 0, 1L << 30, &max_body))
            continue;
        fprintf(stderr, "usage: %s [--host HOST] [--port PORT] [--root DIR] [--header-timeout SECONDS] "
                        "[--idle-timeout SECONDS] [--max-body BYTES]\n", argv[0]);
        return 2;
    }
    server.header_timeout_ms = (uint64_t)header_timeout * 1000;
    server.idle_timeout_ms = (uint64_t)idle * 1000;
    server.max_body = (size_t)max_body;

    pg_loop *loop = NULL;
    pg_server *listener = NULL;
    int rc = pg_loop_new(&loop);
    if (rc == 0)
        rc = http_listen(loop, host, (uint16_t)port, NULL, &server, &listener);
    if (rc < 0) {
        fprintf(stderr, "http_server: cannot listen on %s:%ld: %s\n", host, port, strerror(-rc));
        if (loop != NULL)
            pg_loop_close(loop);
        return 1;
    }
    serve_print_listening(listener);
    rc = serve_until_signal(loop, listener, &server.open_connections);
    return rc == 0 ? 0 : 1;
}
