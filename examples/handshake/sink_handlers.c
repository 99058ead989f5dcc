/* sink_handlers.c — the handshake's second phase, a buffered protocol: the
 * client's bytes are read straight into this connection's buffer; at EOF the
 * count and checksum go back and the connection closes. */
#include <stdio.h>

#include "handshake.h"
#include "sink.h"

struct sink_session {
    uint8_t buffer[16 * 1024];
    uint64_t bytes;
    uint32_t checksum;
};

const size_t sink_session_size = sizeof(struct sink_session);

uint8_t *sink_on_get_buffer(sink_conn *conn, struct sink_session *session, size_t size_hint, size_t *len)
{
    (void)conn;
    (void)size_hint;
    *len = sizeof session->buffer;
    return session->buffer;
}

void sink_on_buffer_updated(sink_conn *conn, struct sink_session *session, size_t nbytes)
{
    (void)conn;
    session->bytes += nbytes;
    session->checksum = handshake_checksum(session->checksum, session->buffer, nbytes);
}

bool sink_on_eof_received(sink_conn *conn, struct sink_session *session)
{
    char reply[64];
    int n = snprintf(reply, sizeof reply, "RECEIVED %llu %lu\n", (unsigned long long)session->bytes,
                     (unsigned long)session->checksum);
    (void)sink_write(conn, reply, (size_t)n);
    return false; /* close once the reply is sent */
}

void sink_on_connection_lost(sink_conn *conn, struct sink_session *session, int error)
{
    (void)session;
    (void)error;
    handshake_untrack(sink_context(conn));
}
