/* echo_client_handlers.c — the client's side: send a payload, read it back, check it.
 *
 * Writes respect flow control: the client stops writing on pause_writing and
 * goes on at resume_writing, so its memory use stays bounded. */
#include <string.h>

#include "echo_client.h"
#include "echo_client_app.h"

struct echo_client_session {
    char unused; /* all the client's state is in struct echo_client_app */
};

const size_t echo_client_session_size = sizeof(struct echo_client_session);

enum { CHUNK = 64 * 1024 };

static void send_more(struct echo_client_app *app, echo_client_conn *conn)
{
    uint8_t chunk[CHUNK];
    while (app->sent < app->total && !app->writing_paused) {
        size_t n = app->total - app->sent < CHUNK ? app->total - app->sent : CHUNK;
        for (size_t i = 0; i < n; i++)
            chunk[i] = echo_client_payload_byte(app->sent + i);
        app->sent += n;
        (void)echo_client_write(conn, chunk, n); /* may call pause_writing from inside */
    }
    if (app->sent == app->total)
        (void)echo_client_write_eof(conn);
}

void echo_client_on_connection_made(echo_client_conn *conn, struct echo_client_session *session)
{
    struct echo_client_app *app = echo_client_context(conn);
    (void)session;
    app->conn = conn;
    if (app->hold_reading) {
        echo_client_pause_reading(conn);
        if (app->hold_ms > 0)
            pg_loop_call_later(app->loop, &app->hold_timer, app->hold_ms, echo_client_resume_reading_now, app);
    }
    send_more(app, conn);
}

void echo_client_on_data_received(echo_client_conn *conn, struct echo_client_session *session,
                                  const uint8_t *data, size_t len)
{
    struct echo_client_app *app = echo_client_context(conn);
    (void)session;
    for (size_t i = 0; i < len; i++)
        if (data[i] != echo_client_payload_byte(app->received + i))
            app->mismatch = true;
    app->received += len;
}

/* The server closes after echoing everything: we are done too. */
bool echo_client_on_eof_received(echo_client_conn *conn, struct echo_client_session *session)
{
    (void)conn;
    (void)session;
    return false;
}

void echo_client_on_connection_lost(echo_client_conn *conn, struct echo_client_session *session, int error)
{
    struct echo_client_app *app = echo_client_context(conn);
    (void)session;
    pg_timer_cancel(&app->hold_timer);
    app->conn = NULL;
    app->error = error;
    app->finished = true;
    pg_loop_stop(app->loop);
}

void echo_client_on_pause_writing(echo_client_conn *conn, struct echo_client_session *session)
{
    struct echo_client_app *app = echo_client_context(conn);
    (void)session;
    app->writing_paused = true;
}

void echo_client_on_resume_writing(echo_client_conn *conn, struct echo_client_session *session)
{
    struct echo_client_app *app = echo_client_context(conn);
    (void)session;
    app->writing_paused = false;
    send_more(app, conn);
}

void echo_client_resume_reading_now(void *arg)
{
    struct echo_client_app *app = arg;
    pg_timer_cancel(&app->hold_timer);
    app->hold_reading = false;
    if (app->conn != NULL)
        echo_client_resume_reading(app->conn);
}
