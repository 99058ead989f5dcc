/* echo_handlers.c — the echo server's side of the echo protocol.
 *
 * Started from the skeleton protogen wrote from echo.spec. Every byte received
 * is written back. When the peer reads slower than it sends, the write buffer
 * grows past the high watermark: we stop reading until it drains, so memory
 * stays bounded whatever the peer does. */
#include "echo.h"
#include "echo_server.h"

struct echo_state {
    echo_conn *conn;
    struct echo_state *prev, *next; /* in the server's list of open connections */
};

const size_t echo_state_size = sizeof(struct echo_state);

void echo_on_connection_made(echo_conn *conn, struct echo_state *state)
{
    struct echo_server *server = echo_context(conn);
    state->conn = conn;
    state->next = server->connections;
    if (state->next != NULL)
        state->next->prev = state;
    server->connections = state;
    server->open_connections++;
    server->accepted++;
}

void echo_on_data_received(echo_conn *conn, struct echo_state *state, const uint8_t *data, size_t len)
{
    (void)state;
    (void)echo_write(conn, data, len); /* cannot fail before write_eof, which we never call */
}

/* The client finished sending: close once everything is echoed back. */
bool echo_on_eof_received(echo_conn *conn, struct echo_state *state)
{
    (void)conn;
    (void)state;
    return false;
}

void echo_on_connection_lost(echo_conn *conn, struct echo_state *state, int error)
{
    struct echo_server *server = echo_context(conn);
    (void)error;
    if (state->prev != NULL)
        state->prev->next = state->next;
    else
        server->connections = state->next;
    if (state->next != NULL)
        state->next->prev = state->prev;
    server->open_connections--;
}

void echo_on_pause_writing(echo_conn *conn, struct echo_state *state)
{
    (void)state;
    echo_pause_reading(conn);
}

void echo_on_resume_writing(echo_conn *conn, struct echo_state *state)
{
    (void)state;
    echo_resume_reading(conn);
}

void echo_server_abort_all(struct echo_server *server)
{
    for (struct echo_state *s = server->connections; s != NULL; s = s->next)
        echo_abort(s->conn);
}
