/* cat_in_handlers.c — your side of the cat_in protocol.
 *
 * protogen 0.1.0 wrote this skeleton once from cat_in.spec; it is yours now and
 * protogen never overwrites it. Fill in the callbacks; everything you can do to a
 * connection is declared in cat_in.h (cat_in_write, cat_in_close, ...). */
#include "cat_in.h"

/* Per-connection session: protogen allocates it with each connection, zero-filled,
 * and passes it to every callback. Put your fields here. */
struct cat_in_session {
    size_t bytes_received;
};

const size_t cat_in_session_size = sizeof(struct cat_in_session);

/* Bytes from the peer. The memory is the loop's: copy what you keep. */
void cat_in_on_data_received(cat_in_conn *conn, struct cat_in_session *session, const uint8_t *data, size_t len)
{
    (void)conn;
    (void)data;
    session->bytes_received += len;
}

/* The peer closed its write side. Return true to stay open for writing,
 * false to close once the write buffer drains.
 */
bool cat_in_on_eof_received(cat_in_conn *conn, struct cat_in_session *session)
{
    (void)conn;
    (void)session;
    return false;
}

/* The connection is closed: error is 0, or a negative errno (-ECONNRESET).
 * The connection and its state are freed when this returns.
 */
void cat_in_on_connection_lost(cat_in_conn *conn, struct cat_in_session *session, int error)
{
    (void)conn;
    (void)session;
    (void)error;
}
