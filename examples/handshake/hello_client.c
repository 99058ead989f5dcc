/* hello_client: the client side of the handshake over a Unix socket.
 *
 *   hello_client --path PATH [--bytes N]
 *
 * Says HELLO, sends N bytes (default 1 MiB) once welcomed, then EOF, and
 * checks that the server counted the same bytes and checksum. Prints
 * "ok N bytes" and exits 0 when they match. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../echo/options.h"
#include "handshake.h"
#include "hello_client.h"

struct client_app {
    pg_loop *loop;
    size_t bytes;
    uint32_t checksum;
    int error;
    bool ok;
};

struct hello_client_session {
    char reply[HANDSHAKE_MAX_LINE];
    size_t len;
    bool welcomed;
};

const size_t hello_client_session_size = sizeof(struct hello_client_session);

void hello_client_on_connection_made(hello_client_conn *conn, struct hello_client_session *state)
{
    (void)state;
    (void)hello_client_write(conn, "HELLO client\n", 13);
}

static void send_payload(hello_client_conn *conn, struct client_app *app)
{
    static uint8_t chunk[64 * 1024];
    for (size_t i = 0; i < sizeof chunk; i++)
        chunk[i] = (uint8_t)(i * 7 + 3);
    /* Everything at once: the transport buffers what the socket does not take. */
    for (size_t sent = 0; sent < app->bytes;) {
        size_t n = app->bytes - sent < sizeof chunk ? app->bytes - sent : sizeof chunk;
        (void)hello_client_write(conn, chunk, n);
        app->checksum = handshake_checksum(app->checksum, chunk, n);
        sent += n;
    }
    (void)hello_client_write_eof(conn);
}

void hello_client_on_data_received(hello_client_conn *conn, struct hello_client_session *state, const uint8_t *data,
                                   size_t len)
{
    struct client_app *app = hello_client_context(conn);
    for (size_t i = 0; i < len; i++) {
        if (state->len + 1 >= sizeof state->reply) {
            hello_client_abort(conn);
            return;
        }
        state->reply[state->len++] = (char)data[i];
        if (data[i] != '\n')
            continue;
        state->reply[state->len] = '\0';
        state->len = 0;
        if (!state->welcomed && strcmp(state->reply, "WELCOME client\n") == 0) {
            state->welcomed = true;
            send_payload(conn, app);
        } else if (state->welcomed) {
            char expect[64];
            snprintf(expect, sizeof expect, "RECEIVED %zu %lu\n", app->bytes, (unsigned long)app->checksum);
            app->ok = strcmp(state->reply, expect) == 0;
            if (!app->ok)
                fprintf(stderr, "hello_client: expected %s got %s", expect, state->reply);
        } else {
            fprintf(stderr, "hello_client: unexpected reply: %s", state->reply);
        }
    }
}

bool hello_client_on_eof_received(hello_client_conn *conn, struct hello_client_session *state)
{
    (void)conn;
    (void)state;
    return false;
}

void hello_client_on_connection_lost(hello_client_conn *conn, struct hello_client_session *state, int error)
{
    struct client_app *app = hello_client_context(conn);
    (void)state;
    app->error = error;
    pg_loop_stop(app->loop);
}

static void connected(void *context, hello_client_conn *conn, int error)
{
    struct client_app *app = context;
    if (conn == NULL) {
        fprintf(stderr, "hello_client: cannot connect: %s\n", strerror(-error));
        app->error = error;
        pg_loop_stop(app->loop);
    }
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    long bytes = 1 << 20;
    for (int i = 1; i < argc; i++) {
        if (option_string(argc, argv, &i, "--path", &path) || option_long(argc, argv, &i, "--bytes", 0, 1L << 30, &bytes))
            continue;
        path = NULL;
        break;
    }
    if (path == NULL) {
        fprintf(stderr, "usage: %s --path PATH [--bytes N]\n", argv[0]);
        return 2;
    }
    struct client_app app = { .bytes = (size_t)bytes };
    int rc = pg_loop_new(&app.loop);
    if (rc == 0)
        rc = hello_client_connect(app.loop, path, 10000, &app, connected);
    if (rc == 0)
        rc = pg_loop_run(app.loop);
    if (app.loop != NULL)
        pg_loop_close(app.loop);
    if (rc < 0 || app.error < 0 || !app.ok) {
        if (app.error < 0)
            fprintf(stderr, "hello_client: %s\n", strerror(-app.error));
        return 1;
    }
    printf("ok %zu bytes\n", app.bytes);
    return 0;
}
