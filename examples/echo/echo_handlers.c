/* echo_handlers.c — the echo server's side of the echo protocol.
 *
 * Started from the skeleton protogen wrote from echo.spec. Every byte received
 * is written back. When the peer reads slower than it sends, the write buffer
 * grows past the high watermark: we stop reading until it drains, so memory
 * stays bounded whatever the peer does. */
#include "echo.h"
#include "echo_server.h"

struct echo_session {
    echo_conn *conn;
    struct echo_session *prev, *next; /* in the server's list of open connections */
};

const size_t echo_session_size = sizeof(struct echo_session);

void echo_on_connection_made(echo_conn *conn, struct echo_session *session)
{
    struct echo_server *server = echo_context(conn);
    session->conn = conn;
    session->next = server->connections;
    if (session->next != NULL)
        session->next->prev = session;
    server->connections = session;
    server->open_connections++;
    server->accepted++;
}

void echo_on_data_received(echo_conn *conn, struct echo_session *session, const uint8_t *data, size_t len)
{
    (void)session;
    (void)echo_write(conn, data, len); /* cannot fail before write_eof, which we never call */
}

/* The client finished sending: close once everything is echoed back. */
bool echo_on_eof_received(echo_conn *conn, struct echo_session *session)
{
    (void)conn;
    (void)session;
    return false;
}

void echo_on_connection_lost(echo_conn *conn, struct echo_session *session, int error)
{
    struct echo_server *server = echo_context(conn);
    (void)error;
    if (session->prev != NULL)
        session->prev->next = session->next;
    else
        server->connections = session->next;
    if (session->next != NULL)
        session->next->prev = session->prev;
    server->open_connections--;
}

void echo_on_pause_writing(echo_conn *conn, struct echo_session *session)
{
    (void)session;
    echo_pause_reading(conn);
}

void echo_on_resume_writing(echo_conn *conn, struct echo_session *session)
{
    (void)session;
    echo_resume_reading(conn);
}

void echo_server_abort_all(struct echo_server *server)
{
    for (struct echo_session *s = server->connections; s != NULL; s = s->next)
        echo_abort(s->conn);
}
