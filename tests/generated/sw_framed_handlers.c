/* sw_framed's handlers: count lines, and switch to sw_bulk at "BULK". */
#include <string.h>

#include "sw_framed.h"
#include "switch_test.h"

struct sw_framed_session {
    char unused;
};

const size_t sw_framed_session_size = sizeof(struct sw_framed_session);

void sw_framed_on_connection_made(sw_framed_conn *conn, struct sw_framed_session *session)
{
    struct switch_test *t = sw_framed_context(conn);
    (void)session;
    t->framed_made++;
}

void sw_framed_on_message_received(sw_framed_conn *conn, struct sw_framed_session *session, const uint8_t *data,
                                   size_t len)
{
    struct switch_test *t = sw_framed_context(conn);
    (void)session;
    t->framed_messages++;
    if (len == 4 && memcmp(data, "BULK", 4) == 0)
        t->switch_rc = sw_framed_switch_protocol(conn, sw_bulk_protocol_factory, t, NULL, 0);
}

void sw_framed_on_connection_lost(sw_framed_conn *conn, struct sw_framed_session *session, int error)
{
    struct switch_test *t = sw_framed_context(conn);
    (void)session;
    (void)error;
    t->framed_lost++;
}
