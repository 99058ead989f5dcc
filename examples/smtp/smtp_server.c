/* smtp_server: an SMTP receiver built on the protocol generated from
 * smtp.spec; every accepted message goes to a Maildir.
 *
 *   smtp_server [--host HOST] [--port PORT] --maildir DIR [--idle-timeout SECONDS]
 *               [--max-size BYTES] [--hostname NAME]
 *
 * Prints "listening on HOST:PORT" once it accepts connections (PORT 0 picks a
 * free port), and stops cleanly on SIGINT or SIGTERM. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "maildir.h"
#include "options.h"
#include "serve.h"
#include "smtp.h"
#include "smtp_server.h"

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    long port = 2525, idle = 300, max_size = 10L << 20;
    struct smtp_server server = { .hostname = "localhost" };
    for (int i = 1; i < argc; i++) {
        if (option_string(argc, argv, &i, "--host", &host) || option_long(argc, argv, &i, "--port", 0, 65535, &port)
            || option_string(argc, argv, &i, "--maildir", &server.maildir)
            || option_string(argc, argv, &i, "--hostname", &server.hostname)
            || option_long(argc, argv, &i, "--idle-timeout", 1, 86400, &idle)
            || option_long(argc, argv, &i, "--max-size", 1, 1L << 30, &max_size))
            continue;
        server.maildir = NULL;
        break;
    }
    if (server.maildir == NULL) {
        fprintf(stderr, "usage: %s [--host HOST] [--port PORT] --maildir DIR [--idle-timeout SECONDS] "
                        "[--max-size BYTES] [--hostname NAME]\n", argv[0]);
        return 2;
    }
    server.idle_timeout_ms = (uint64_t)idle * 1000;
    server.max_size = (size_t)max_size;
    int rc = maildir_open(server.maildir);
    if (rc < 0) {
        fprintf(stderr, "smtp_server: cannot use the Maildir %s: %s\n", server.maildir, strerror(-rc));
        return 1;
    }

    pg_loop *loop = NULL;
    pg_server *listener = NULL;
    rc = pg_loop_new(&loop);
    if (rc == 0)
        rc = smtp_listen(loop, host, (uint16_t)port, NULL, &server, &listener);
    if (rc < 0) {
        fprintf(stderr, "smtp_server: cannot listen on %s:%ld: %s\n", host, port, strerror(-rc));
        if (loop != NULL)
            pg_loop_close(loop);
        return 1;
    }
    serve_print_listening(listener);
    rc = serve_until_signal(loop, listener, &server.open_connections);
    return rc == 0 ? 0 : 1;
}
