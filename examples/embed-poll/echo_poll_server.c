/* echo_poll_server: the echo protocol of examples/echo (the same spec, the
 * same handlers) in a plain poll() loop that owns its sockets.
 *
 *   echo_poll_server [--host HOST] [--port PORT] [--sndbuf BYTES]
 *
 * The flags and the output of examples/echo's echo_server: prints
 * "listening on HOST:PORT" (PORT 0 picks a free port), stops cleanly on SIGINT
 * or SIGTERM; --sndbuf shrinks each connection's kernel send buffer.
 * protogen's built-in loop is not used at all: poll_serve.c reads and writes
 * the sockets and hands the bytes to the generated protocol through the
 * manual host (protogen/manual.h). docs/embedding.md walks through it. */
#include <stdio.h>
#include <string.h>

#include "echo.h"
#include "echo_server.h"
#include "options.h"
#include "poll_serve.h"

static void abort_all(void *arg)
{
    echo_server_abort_all(arg);
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
    char where[128];
    int lfd = poll_listen_tcp(host, port, where, sizeof where);
    if (lfd < 0) {
        fprintf(stderr, "echo_poll_server: cannot listen on %s:%ld: %s\n", host, port, strerror(-lfd));
        return 1;
    }
    printf("listening on %s\n", where);
    fflush(stdout);
    struct echo_server server = { 0 };
    poll_serve_options opts = {
        .factory = echo_protocol_factory,
        .factory_arg = &server,
        .sndbuf = (int)sndbuf,
        .tcp_nodelay = true,
        .end_all = abort_all,
        .end_all_arg = &server,
    };
    int rc = poll_serve(lfd, &opts);
    if (rc < 0)
        fprintf(stderr, "echo_poll_server: %s\n", strerror(-rc));
    return rc == 0 ? 0 : 1;
}
