/* hello_client_handlers.c — your side of the hello_client protocol.
 *
 * protogen 0.1.0 wrote this skeleton once from hello_client.spec; it is yours now and
 * protogen never overwrites it. Fill in the callbacks; everything you can do to a
 * connection is declared in hello_client.h (hello_client_write, hello_client_close, ...). */
#include "hello_client.h"

/* Per-connection session: protogen allocates it with each connection, zero-filled,
 * and passes it to every callback. Put your fields here. */
struct hello_client_session {
    size_t bytes_received;
};

const size_t hello_client_session_size = sizeof(struct hello_client_session);

/* The connection is ready. No data arrives before this returns. */
void hello_client_on_connection_made(hello_client_conn *conn, struct hello_client_session *session)
{
    (void)conn;
    (void)session;
}

/* Bytes from the peer. The memory is the loop's: copy what you keep. */
void hello_client_on_data_received(hello_client_conn *conn, struct hello_client_session *session, const uint8_t *data, size_t len)
{
    (void)conn;
    (void)data;
    session->bytes_received += len;
}

/* The peer closed its write side. Return true to stay open for writing,
 * false to close once the write buffer drains.
 */
bool hello_client_on_eof_received(hello_client_conn *conn, struct hello_client_session *session)
{
    (void)conn;
    (void)session;
    return false;
}

/* The connection is closed: error is 0, or a negative errno (-ECONNRESET).
 * The connection and its state are freed when this returns.
 */
void hello_client_on_connection_lost(hello_client_conn *conn, struct hello_client_session *session, int error)
{
    (void)conn;
    (void)session;
    (void)error;
}
