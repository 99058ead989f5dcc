/* tls_srv's handlers for test_tls_spec.c: echo, and record the lifecycle. */
#include <string.h>

#include "tls_spec_test.h"

struct tls_srv_session {
    char unused;
};

const size_t tls_srv_session_size = sizeof(struct tls_srv_session);

void tls_srv_on_connection_made(tls_srv_conn *conn, struct tls_srv_session *session)
{
    struct tls_side *side = tls_srv_context(conn);
    (void)session;
    side->made++;
}

void tls_srv_on_data_received(tls_srv_conn *conn, struct tls_srv_session *session, const uint8_t *data, size_t len)
{
    struct tls_side *side = tls_srv_context(conn);
    (void)session;
    side->received += len;
    (void)tls_srv_write(conn, data, len);
}

void tls_srv_on_connection_lost(tls_srv_conn *conn, struct tls_srv_session *session, int error)
{
    struct tls_side *side = tls_srv_context(conn);
    (void)session;
    side->lost++;
    side->lost_error = error;
}
