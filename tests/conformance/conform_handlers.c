/* conform_handlers.c — the behaviour asyncio_server.py implements too, line
 * for line: echo every byte; stop reading while writing is paused; at EOF
 * send "total <bytes received>\n" and close. */
#include <stdio.h>

#include "conform.h"

struct conform_session {
    unsigned long long received;
};

const size_t conform_session_size = sizeof(struct conform_session);

void conform_on_connection_made(conform_conn *conn, struct conform_session *session)
{
    (void)conn;
    (void)session;
}

void conform_on_data_received(conform_conn *conn, struct conform_session *session, const uint8_t *data, size_t len)
{
    session->received += len;
    (void)conform_write(conn, data, len);
}

bool conform_on_eof_received(conform_conn *conn, struct conform_session *session)
{
    char line[64];
    int n = snprintf(line, sizeof line, "total %llu\n", session->received);
    (void)conform_write(conn, line, (size_t)n);
    return false;
}

void conform_on_connection_lost(conform_conn *conn, struct conform_session *session, int error)
{
    (void)conn;
    (void)session;
    (void)error;
}

void conform_on_pause_writing(conform_conn *conn, struct conform_session *session)
{
    (void)session;
    conform_pause_reading(conn);
}

void conform_on_resume_writing(conform_conn *conn, struct conform_session *session)
{
    (void)session;
    conform_resume_reading(conn);
}
