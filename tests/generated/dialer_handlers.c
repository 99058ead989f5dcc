/* Handlers of dialer.spec: they count what the connection saw, in the
 * context the test gives (test_connect_cancel.c). */
#include "dialer.h"
#include "dialer_test.h"

struct dialer_session {
    int unused;
};

const size_t dialer_session_size = sizeof(struct dialer_session);

void dialer_on_connection_made(dialer_conn *conn, struct dialer_session *session)
{
    (void)session;
    struct dialer_log *log = dialer_context(conn);
    log->made++;
    dialer_close(conn);
}

void dialer_on_connection_lost(dialer_conn *conn, struct dialer_session *session, int error)
{
    (void)session;
    (void)error;
    struct dialer_log *log = dialer_context(conn);
    log->lost++;
}
