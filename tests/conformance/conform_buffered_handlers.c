/* conform_buffered_handlers.c — conform_handlers.c's behaviour, reading into
 * a 64 KiB buffer of the connection's own, as asyncio_server.py --buffered. */
#include <stdio.h>

#include "conform_buffered.h"

struct conform_buffered_session {
    uint8_t buffer[64 * 1024];
    unsigned long long received;
};

const size_t conform_buffered_session_size = sizeof(struct conform_buffered_session);

void conform_buffered_on_connection_made(conform_buffered_conn *conn, struct conform_buffered_session *session)
{
    (void)conn;
    (void)session;
}

uint8_t *conform_buffered_on_get_buffer(conform_buffered_conn *conn, struct conform_buffered_session *session,
                                        size_t size_hint, size_t *len)
{
    (void)conn;
    (void)size_hint;
    *len = sizeof session->buffer;
    return session->buffer;
}

void conform_buffered_on_buffer_updated(conform_buffered_conn *conn, struct conform_buffered_session *session,
                                        size_t nbytes)
{
    session->received += nbytes;
    (void)conform_buffered_write(conn, session->buffer, nbytes);
}

bool conform_buffered_on_eof_received(conform_buffered_conn *conn, struct conform_buffered_session *session)
{
    char line[64];
    int n = snprintf(line, sizeof line, "total %llu\n", session->received);
    (void)conform_buffered_write(conn, line, (size_t)n);
    return false;
}

void conform_buffered_on_connection_lost(conform_buffered_conn *conn, struct conform_buffered_session *session,
                                         int error)
{
    (void)conn;
    (void)session;
    (void)error;
}

void conform_buffered_on_pause_writing(conform_buffered_conn *conn, struct conform_buffered_session *session)
{
    (void)session;
    conform_buffered_pause_reading(conn);
}

void conform_buffered_on_resume_writing(conform_buffered_conn *conn, struct conform_buffered_session *session)
{
    (void)session;
    conform_buffered_resume_reading(conn);
}
