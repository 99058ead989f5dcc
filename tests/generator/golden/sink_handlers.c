/* sink_handlers.c — your side of the sink protocol.
 *
 * protogen 0.1.0 wrote this skeleton once from sink.spec; it is yours now and
 * protogen never overwrites it. Fill in the callbacks; everything you can do to a
 * connection is declared in sink.h (sink_write, sink_close, ...). */
#include "sink.h"

/* Per-connection state: protogen allocates it with each connection, zero-filled,
 * and passes it to every callback. Put your fields here. */
struct sink_state {
    uint8_t buffer[64 * 1024]; /* get_buffer lends this; buffer_updated says how much was read into it */
    size_t bytes_received;
};

const size_t sink_state_size = sizeof(struct sink_state);

/* Where the next read may write: return a buffer and set *len to its size (at least 1).
 * size_hint is the most one read takes; any size will do. NULL or *len 0 ends
 * the connection with connection_lost(-ENOBUFS), as asyncio.
 */
uint8_t *sink_on_get_buffer(sink_conn *conn, struct sink_state *state, size_t size_hint, size_t *len)
{
    (void)conn;
    (void)size_hint; /* any size of at least 1 byte will do */
    *len = sizeof state->buffer;
    return state->buffer;
}

/* nbytes were read into the start of the buffer get_buffer returned. */
void sink_on_buffer_updated(sink_conn *conn, struct sink_state *state, size_t nbytes)
{
    (void)conn;
    state->bytes_received += nbytes; /* the bytes are at state->buffer[0 .. nbytes) */
}

/* The peer closed its write side. Return true to stay open for writing,
 * false to close once the write buffer drains.
 */
bool sink_on_eof_received(sink_conn *conn, struct sink_state *state)
{
    (void)conn;
    (void)state;
    return false;
}

/* The connection is closed: error is 0, or a negative errno (-ECONNRESET).
 * The connection and its state are freed when this returns.
 */
void sink_on_connection_lost(sink_conn *conn, struct sink_state *state, int error)
{
    (void)conn;
    (void)state;
    (void)error;
}
