/* sw_line's handlers for test_switch.c: count, and switch at the first '\n'. */
#include <string.h>

#include "switch_test.h"

struct sw_line_session {
    char unused;
};

const size_t sw_line_session_size = sizeof(struct sw_line_session);

void sw_line_on_connection_made(sw_line_conn *conn, struct sw_line_session *session)
{
    struct switch_test *t = sw_line_context(conn);
    (void)session;
    t->line = conn;
    t->line_made++;
}

void sw_line_on_data_received(sw_line_conn *conn, struct sw_line_session *session, const uint8_t *data, size_t len)
{
    struct switch_test *t = sw_line_context(conn);
    (void)session;
    t->line_data++;
    const uint8_t *nl = memchr(data, '\n', len);
    if (!t->switch_on_newline || nl == NULL)
        return;
    size_t used = (size_t)(nl - data) + 1;
    t->switch_rc = sw_line_switch_protocol(conn, sw_bulk_protocol_factory, t, data + used, len - used);
    if (t->switch_rc == 0)
        t->line = NULL;
    /* state is still valid here: conn is freed after this handler returns. */
    session->unused = 1;
}

void sw_line_on_connection_lost(sw_line_conn *conn, struct sw_line_session *session, int error)
{
    struct switch_test *t = sw_line_context(conn);
    (void)session;
    (void)error;
    t->line_lost++;
    t->line = NULL;
}

void sw_line_on_pause_writing(sw_line_conn *conn, struct sw_line_session *session)
{
    struct switch_test *t = sw_line_context(conn);
    (void)session;
    t->line_pauses++;
}

void sw_line_on_resume_writing(sw_line_conn *conn, struct sw_line_session *session)
{
    (void)conn;
    (void)session;
}
