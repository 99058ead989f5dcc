/* order_handlers.c — each handler of order.spec counts its calls (test_order.c). */
#include "order.h"
#include "order_test.h"

struct order_session {
    int unused;
};

const size_t order_session_size = sizeof(struct order_session);

static struct order_log *log_of(order_conn *conn)
{
    return order_context(conn);
}

void order_on_connection_made(order_conn *conn, struct order_session *session)
{
    (void)session;
    log_of(conn)->made++;
}

void order_on_data_received(order_conn *conn, struct order_session *session, const uint8_t *data, size_t len)
{
    (void)session;
    (void)data;
    log_of(conn)->data++;
    log_of(conn)->bytes += len;
}

bool order_on_eof_received(order_conn *conn, struct order_session *session)
{
    (void)session;
    log_of(conn)->eof++;
    return true; /* half-open: writing goes on */
}

void order_on_connection_lost(order_conn *conn, struct order_session *session, int error)
{
    (void)session;
    (void)error;
    log_of(conn)->lost++;
}

void order_on_pause_writing(order_conn *conn, struct order_session *session)
{
    (void)session;
    log_of(conn)->pauses++;
}

void order_on_resume_writing(order_conn *conn, struct order_session *session)
{
    (void)session;
    log_of(conn)->resumes++;
}
