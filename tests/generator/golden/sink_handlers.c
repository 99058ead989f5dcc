/* sink_handlers.c — your side of the sink protocol.
 *
 * protogen 0.1.0 wrote this skeleton once from sink.spec; it is yours now and
 * protogen never overwrites it. Fill in the callbacks; everything you can do to a
 * connection is declared in sink.h (sink_write, sink_close, ...). */
#include "sink.h"

/* Per-connection session: protogen allocates it with each connection, zero-filled,
 * and passes it to every callback. Put your fields here. */
struct sink_session {
    uint8_t buffer[64 * 1024]; /* get_buffer lends this; buffer_updated says how much was read into it */
    size_t bytes_received;
};

const size_t sink_session_size = sizeof(struct sink_session);

/* Where the next read may write: return a buffer and set *len to its size (at least 1).
 * size_hint is the most one read takes; any size will do. NULL or *len 0 ends
 * the connection with connection_lost(-ENOBUFS), as asyncio.
 */
uint8_t *sink_on_get_buffer(sink_conn *conn, struct sink_session *session, size_t size_hint, size_t *len)
{
    (void)conn;
    (void)size_hint; /* any size of at least 1 byte will do */
    *len = sizeof session->buffer;
    return session->buffer;
}

/* nbytes were read into the start of the buffer get_buffer returned. */
void sink_on_buffer_updated(sink_conn *conn, struct sink_session *session, size_t nbytes)
{
    (void)conn;
    session->bytes_received += nbytes; /* the bytes are at session->buffer[0 .. nbytes) */
}

/* The peer closed its write side. Return true to stay open for writing,
 * false to close once the write buffer drains.
 */
bool sink_on_eof_received(sink_conn *conn, struct sink_session *session)
{
    (void)conn;
    (void)session;
    return false;
}

/* The connection is closed: error is 0, or a negative errno (-ECONNRESET).
 * The connection and its state are freed when this returns.
 */
void sink_on_connection_lost(sink_conn *conn, struct sink_session *session, int error)
{
    (void)conn;
    (void)session;
    (void)error;
}
