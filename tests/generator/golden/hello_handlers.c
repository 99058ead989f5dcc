/* hello_handlers.c — your side of the hello protocol.
 *
 * protogen 0.1.0 wrote this skeleton once from hello.spec; it is yours now and
 * protogen never overwrites it. Fill in the callbacks; everything you can do to a
 * connection is declared in hello.h (hello_write, hello_close, ...). */
#include "hello.h"

/* Per-connection session: protogen allocates it with each connection, zero-filled,
 * and passes it to every callback. Put your fields here. */
struct hello_session {
    size_t bytes_received;
};

const size_t hello_session_size = sizeof(struct hello_session);

/* The connection is ready. No data arrives before this returns. */
void hello_on_connection_made(hello_conn *conn, struct hello_session *session)
{
    (void)conn;
    (void)session;
}

/* Bytes from the peer. The memory is the loop's: copy what you keep. */
void hello_on_data_received(hello_conn *conn, struct hello_session *session, const uint8_t *data, size_t len)
{
    (void)conn;
    (void)data;
    session->bytes_received += len;
}

/* The connection is closed: error is 0, or a negative errno (-ECONNRESET).
 * The connection and its state are freed when this returns.
 */
void hello_on_connection_lost(hello_conn *conn, struct hello_session *session, int error)
{
    (void)conn;
    (void)session;
    (void)error;
}
