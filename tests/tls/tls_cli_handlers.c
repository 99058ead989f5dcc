/* tls_cli's handlers for test_tls_spec.c: record the lifecycle. */
#include <string.h>

#include "tls_spec_test.h"

struct tls_cli_session {
    char unused;
};

const size_t tls_cli_session_size = sizeof(struct tls_cli_session);

void tls_cli_on_connection_made(tls_cli_conn *conn, struct tls_cli_session *session)
{
    struct tls_side *side = tls_cli_context(conn);
    (void)session;
    side->made++;
    pg_tls_info info;
    if (pg_tls_get_info(tls_cli_transport(conn), &info) == 0)
        strncpy(side->tls_version, info.version, sizeof side->tls_version - 1);
}

void tls_cli_on_data_received(tls_cli_conn *conn, struct tls_cli_session *session, const uint8_t *data, size_t len)
{
    struct tls_side *side = tls_cli_context(conn);
    (void)session;
    (void)data;
    side->received += len;
}

bool tls_cli_on_eof_received(tls_cli_conn *conn, struct tls_cli_session *session)
{
    struct tls_side *side = tls_cli_context(conn);
    (void)session;
    side->eofs++;
    return false;
}

void tls_cli_on_connection_lost(tls_cli_conn *conn, struct tls_cli_session *session, int error)
{
    struct tls_side *side = tls_cli_context(conn);
    (void)session;
    side->lost++;
    side->lost_error = error;
}
