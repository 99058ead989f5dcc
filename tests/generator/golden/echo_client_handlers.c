/* echo_client_handlers.c — your side of the echo_client protocol.
 *
 * protogen 0.1.0 wrote this skeleton once from echo_client.spec; it is yours now and
 * protogen never overwrites it. Fill in the callbacks; everything you can do to a
 * connection is declared in echo_client.h (echo_client_write, echo_client_close, ...). */
#include "echo_client.h"

/* Per-connection session: protogen allocates it with each connection, zero-filled,
 * and passes it to every callback. Put your fields here. */
struct echo_client_session {
    size_t bytes_received;
};

const size_t echo_client_session_size = sizeof(struct echo_client_session);

/* The connection is ready. No data arrives before this returns. */
void echo_client_on_connection_made(echo_client_conn *conn, struct echo_client_session *session)
{
    (void)conn;
    (void)session;
}

/* Bytes from the peer. The memory is the loop's: copy what you keep. */
void echo_client_on_data_received(echo_client_conn *conn, struct echo_client_session *session, const uint8_t *data, size_t len)
{
    (void)conn;
    (void)data;
    session->bytes_received += len;
}

/* The peer closed its write side. Return true to stay open for writing,
 * false to close once the write buffer drains.
 */
bool echo_client_on_eof_received(echo_client_conn *conn, struct echo_client_session *session)
{
    (void)conn;
    (void)session;
    return false;
}

/* The connection is closed: error is 0, or a negative errno (-ECONNRESET).
 * The connection and its state are freed when this returns.
 */
void echo_client_on_connection_lost(echo_client_conn *conn, struct echo_client_session *session, int error)
{
    (void)conn;
    (void)session;
    (void)error;
}

/* The write buffer went above the high watermark: stop writing. */
void echo_client_on_pause_writing(echo_client_conn *conn, struct echo_client_session *session)
{
    (void)conn;
    (void)session;
}

/* The write buffer drained to the low watermark: writing may go on. */
void echo_client_on_resume_writing(echo_client_conn *conn, struct echo_client_session *session)
{
    (void)conn;
    (void)session;
}
