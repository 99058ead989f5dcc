/* hello_handlers.c — the handshake's first phase. Reads one line; "HELLO
 * <name>" is answered with "WELCOME <name>" and the connection switches to
 * the sink protocol, with whatever came after the line; anything else gets
 * "ERROR" and the connection closes. */
#include <string.h>

#include "handshake.h"
#include "hello.h"
#include "sink.h"

struct hello_state {
    char line[HANDSHAKE_MAX_LINE];
    size_t len;
};

const size_t hello_state_size = sizeof(struct hello_state);

void hello_on_connection_made(hello_conn *conn, struct hello_state *state)
{
    (void)state;
    if (!handshake_track(hello_context(conn)))
        hello_abort(conn); /* too many connections */
}

void hello_on_data_received(hello_conn *conn, struct hello_state *state, const uint8_t *data, size_t len)
{
    const uint8_t *nl = memchr(data, '\n', len);
    size_t take = nl != NULL ? (size_t)(nl - data) + 1 : len;
    if (state->len + take > sizeof state->line) {
        (void)hello_write(conn, "ERROR line too long\n", 20);
        hello_close(conn);
        return;
    }
    memcpy(state->line + state->len, data, take);
    state->len += take;
    if (nl == NULL)
        return; /* the rest of the line comes later */
    if (state->len < 7 || memcmp(state->line, "HELLO ", 6) != 0) {
        (void)hello_write(conn, "ERROR expected HELLO\n", 21);
        hello_close(conn);
        return;
    }
    struct iovec reply[2] = { { .iov_base = "WELCOME ", .iov_len = 8 },
                              { .iov_base = state->line + 6, .iov_len = state->len - 6 } };
    (void)hello_writelines(conn, reply, 2);
    /* Everything after the line is the sink's already. conn is gone once
     * this handler returns. */
    int rc = hello_switch_protocol(conn, sink_protocol_factory, hello_context(conn), data + take, len - take);
    if (rc < 0)
        hello_abort(conn);
}

void hello_on_connection_lost(hello_conn *conn, struct hello_state *state, int error)
{
    (void)state;
    (void)error;
    handshake_untrack(hello_context(conn));
}
