/* hello_handlers.c — the handshake's first phase. Reads one line; "HELLO
 * <name>" is answered with "WELCOME <name>" and the connection switches to
 * the sink protocol, with whatever came after the line; anything else gets
 * "ERROR" and the connection closes. */
#include <string.h>

#include "handshake.h"
#include "hello.h"
#include "sink.h"

struct hello_session {
    char line[HANDSHAKE_MAX_LINE];
    size_t len;
};

const size_t hello_session_size = sizeof(struct hello_session);

void hello_on_connection_made(hello_conn *conn, struct hello_session *session)
{
    (void)session;
    if (!handshake_track(hello_context(conn)))
        hello_abort(conn); /* too many connections */
}

void hello_on_data_received(hello_conn *conn, struct hello_session *session, const uint8_t *data, size_t len)
{
    const uint8_t *nl = memchr(data, '\n', len);
    size_t take = nl != NULL ? (size_t)(nl - data) + 1 : len;
    if (session->len + take > sizeof session->line) {
        (void)hello_write(conn, "ERROR line too long\n", 20);
        hello_close(conn);
        return;
    }
    memcpy(session->line + session->len, data, take);
    session->len += take;
    if (nl == NULL)
        return; /* the rest of the line comes later */
    if (session->len < 7 || memcmp(session->line, "HELLO ", 6) != 0) {
        (void)hello_write(conn, "ERROR expected HELLO\n", 21);
        hello_close(conn);
        return;
    }
    struct iovec reply[2] = { { .iov_base = "WELCOME ", .iov_len = 8 },
                              { .iov_base = session->line + 6, .iov_len = session->len - 6 } };
    (void)hello_writelines(conn, reply, 2);
    /* Everything after the line is the sink's already. conn is gone once
     * this handler returns. */
    int rc = hello_switch_protocol(conn, sink_protocol_factory, hello_context(conn), data + take, len - take);
    if (rc < 0)
        hello_abort(conn);
}

void hello_on_connection_lost(hello_conn *conn, struct hello_session *session, int error)
{
    (void)session;
    (void)error;
    handshake_untrack(hello_context(conn));
}
