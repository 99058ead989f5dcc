/* smtp_uv_server: the SMTP receiver of examples/smtp (the same spec, the same
 * smtp_handlers.c) served on a libuv loop instead of protogen's own: its
 * states' timeouts (the idle timeout, the close deadline) run on libuv's
 * timers through the host.
 *
 *   smtp_uv_server [--host HOST] [--port PORT] --maildir DIR [--idle-timeout SECONDS]
 *                  [--max-size BYTES]
 *
 * Prints "listening on HOST:PORT" (PORT 0 picks a free port), and on SIGINT or
 * SIGTERM stops listening and ends once the open sessions have. */
#define _POSIX_C_SOURCE 200809L /* uv.h needs POSIX under -std=c11 */
#include <stdio.h>
#include <string.h>

#include "maildir.h"
#include "options.h"
#include "smtp.h"
#include "smtp_server.h"
#include "uv_serve.h"

static struct {
    struct uv_serve uv;
    struct smtp_server server;
    bool stopping;
} app;

static void on_connection(uv_stream_t *listener, int status)
{
    if (status < 0 || app.stopping)
        return;
    int rc = pg_uv_accept(app.uv.host, listener, smtp_protocol_factory, &app.server, NULL);
    if (rc < 0)
        fprintf(stderr, "smtp_uv_server: accept: %s\n", uv_strerror(rc));
}

static void on_signal(uv_signal_t *signal, int signum)
{
    (void)signal;
    (void)signum;
    if (app.stopping)
        return;
    app.stopping = true;
    uv_serve_stop(&app.uv); /* the open sessions end by themselves */
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    long port = 2525, idle = 300, max_size = 10L << 20;
    app.server.hostname = "localhost";
    for (int i = 1; i < argc; i++) {
        if (option_string(argc, argv, &i, "--host", &host) || option_long(argc, argv, &i, "--port", 0, 65535, &port)
            || option_string(argc, argv, &i, "--maildir", &app.server.maildir)
            || option_long(argc, argv, &i, "--idle-timeout", 1, 86400, &idle)
            || option_long(argc, argv, &i, "--max-size", 1, 1L << 30, &max_size))
            continue;
        app.server.maildir = NULL;
        break;
    }
    if (app.server.maildir == NULL) {
        fprintf(stderr, "usage: %s [--host HOST] [--port PORT] --maildir DIR [--idle-timeout SECONDS] "
                        "[--max-size BYTES]\n", argv[0]);
        return 2;
    }
    app.server.idle_timeout_ms = (uint64_t)idle * 1000;
    app.server.max_size = (size_t)max_size;
    int rc = maildir_open(app.server.maildir);
    if (rc < 0) {
        fprintf(stderr, "smtp_uv_server: cannot use the Maildir %s: %s\n", app.server.maildir, strerror(-rc));
        return 1;
    }

    if (uv_serve_listen(&app.uv, "smtp_uv_server", host, port, on_connection) != 0)
        return 1;
    rc = uv_serve_run(&app.uv, on_signal); /* until every handle is closed: the sessions end first */
    return rc == 0 && app.server.open_connections == 0 ? 0 : 1;
}
