/* sw_bulk's handlers for test_switch.c: collect every byte. */
#include <string.h>

#include "switch_test.h"

struct sw_bulk_session {
    uint8_t buffer[256];
};

const size_t sw_bulk_session_size = sizeof(struct sw_bulk_session);

void sw_bulk_on_connection_made(sw_bulk_conn *conn, struct sw_bulk_session *session)
{
    struct switch_test *t = sw_bulk_context(conn);
    (void)session;
    t->bulk = conn;
    t->bulk_made++;
}

uint8_t *sw_bulk_on_get_buffer(sw_bulk_conn *conn, struct sw_bulk_session *session, size_t size_hint, size_t *len)
{
    struct switch_test *t = sw_bulk_context(conn);
    (void)size_hint;
    *len = t->buffer_size ? t->buffer_size : sizeof session->buffer;
    return session->buffer;
}

void sw_bulk_on_buffer_updated(sw_bulk_conn *conn, struct sw_bulk_session *session, size_t nbytes)
{
    struct switch_test *t = sw_bulk_context(conn);
    if (t->rx_len + nbytes <= sizeof t->rx) {
        memcpy(t->rx + t->rx_len, session->buffer, nbytes);
        t->rx_len += nbytes;
    }
}

bool sw_bulk_on_eof_received(sw_bulk_conn *conn, struct sw_bulk_session *session)
{
    struct switch_test *t = sw_bulk_context(conn);
    (void)session;
    t->bulk_eof++;
    return false;
}

void sw_bulk_on_connection_lost(sw_bulk_conn *conn, struct sw_bulk_session *session, int error)
{
    struct switch_test *t = sw_bulk_context(conn);
    (void)session;
    (void)error;
    t->bulk_lost++;
    t->bulk = NULL;
}
