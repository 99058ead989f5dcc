/* starttls's handlers for test_tls.c: answer lines, upgrade at STARTTLS. */
#include <string.h>

#include "starttls_test.h"

struct starttls_session {
    char unused;
};

const size_t starttls_session_size = sizeof(struct starttls_session);

void starttls_on_message_received(starttls_conn *conn, struct starttls_session *session, const uint8_t *data, size_t len)
{
    struct starttls_test *t = starttls_context(conn);
    (void)session;
    if (len == 8 && memcmp(data, "STARTTLS", 8) == 0) {
        (void)starttls_write(conn, "220 ready\r\n", 11);
        /* The framer's rest (what came after this line) goes to TLS first. */
        t->switch_rc = starttls_start_tls(conn, t->tls->tls, t->tls->factory, t->tls->arg);
        t->switched = t->switch_rc == 0;
        return;
    }
    t->lines++;
    const struct iovec iov[3] = { { "250 ", 4 }, { (void *)data, len }, { "\r\n", 2 } };
    (void)starttls_writelines(conn, iov, 3);
}

void starttls_on_connection_lost(starttls_conn *conn, struct starttls_session *session, int error)
{
    (void)conn;
    (void)session;
    (void)error;
}
