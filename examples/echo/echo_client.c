/* echo_client: sends a payload to an echo server, reads it back and checks it.
 *
 *   echo_client [--host HOST] --port PORT [--bytes N] [--hold-ms MS] [--hold-until-signal]
 *
 * --hold-ms stops reading for MS milliseconds after connecting, and
 * --hold-until-signal until SIGUSR1 arrives: the server's write buffer then
 * fills and its flow control (pause_writing, resume_writing) comes into play.
 * Exits 0 when every byte came back intact. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "echo_client.h"
#include "echo_client_app.h"
#include "options.h"

static void connected(void *context, echo_client_conn *conn, int error)
{
    struct echo_client_app *app = context;
    (void)conn;
    if (error < 0) {
        app->error = error;
        app->finished = true;
        pg_loop_stop(app->loop);
    }
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    long port = -1, bytes = 1 << 20, hold_ms = 0;
    bool hold_until_signal = false;
    for (int i = 1; i < argc; i++) {
        if (option_string(argc, argv, &i, "--host", &host) || option_long(argc, argv, &i, "--port", 1, 65535, &port)
            || option_long(argc, argv, &i, "--bytes", 0, 1L << 40, &bytes)
            || option_long(argc, argv, &i, "--hold-ms", 0, 3600000, &hold_ms))
            continue;
        if (strcmp(argv[i], "--hold-until-signal") == 0) {
            hold_until_signal = true;
            continue;
        }
        port = -1;
        break;
    }
    if (port < 0) {
        fprintf(stderr, "usage: %s [--host HOST] --port PORT [--bytes N] [--hold-ms MS] [--hold-until-signal]\n",
                argv[0]);
        return 2;
    }

    struct echo_client_app app = {
        .total = (size_t)bytes,
        .hold_reading = hold_ms > 0 || hold_until_signal,
        .hold_ms = (uint32_t)hold_ms,
    };
    pg_timer_init(&app.hold_timer);
    int rc = pg_loop_new(&app.loop);
    if (rc == 0 && hold_until_signal)
        rc = pg_loop_add_signal_handler(app.loop, SIGUSR1, echo_client_resume_reading_now, &app);
    if (rc == 0)
        rc = echo_client_connect(app.loop, host, (uint16_t)port, 10000, &app, connected);
    if (rc == 0)
        rc = pg_loop_run(app.loop);
    if (app.loop != NULL) {
        if (hold_until_signal)
            pg_loop_remove_signal_handler(app.loop, SIGUSR1);
        pg_loop_close(app.loop);
    }
    if (rc < 0 || app.error < 0) {
        fprintf(stderr, "echo_client: %s:%ld: %s\n", host, port, strerror(rc < 0 ? -rc : -app.error));
        return 1;
    }
    if (app.received != app.total || app.mismatch) {
        fprintf(stderr, "echo_client: sent %zu bytes, got %zu back%s\n", app.total, app.received,
                app.mismatch ? ", some of them wrong" : "");
        return 1;
    }
    printf("echoed %zu bytes: all came back intact\n", app.received);
    return 0;
}
