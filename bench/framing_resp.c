/* framing_resp.c — framing_bench's handlers for examples/resp/resp.spec: the
 * generated RESP framer with handlers that only count what arrives, so that
 * the framer alone is measured (the RESP server's commands are not run). */
#include "framing_resp.h"

#include "resp.h"

struct resp_session {
    int unused;
};

const size_t resp_session_size = sizeof(struct resp_session);

void resp_on_connection_made(resp_conn *conn, struct resp_session *state)
{
    (void)conn;
    (void)state;
}

void resp_on_connection_lost(resp_conn *conn, struct resp_session *state, int error)
{
    (void)conn;
    (void)state;
    (void)error;
}

bool resp_on_protocol_error(resp_conn *conn, struct resp_session *state, int code, uint64_t pos, const char *reason)
{
    (void)state;
    (void)code;
    (void)pos;
    (void)reason;
    ((struct framing_resp_counts *)resp_context(conn))->errors++;
    return false;
}

void resp_on_command(resp_conn *conn, struct resp_session *state, const resp_command_msg *msg)
{
    (void)state;
    struct framing_resp_counts *c = resp_context(conn);
    c->messages++;
    c->args += msg->arg_count;
    c->arg_bytes += msg->arg_count > 0 ? msg->arg[msg->arg_count - 1].len : 0;
}

void resp_on_inline_command(resp_conn *conn, struct resp_session *state, const resp_inline_command_msg *msg)
{
    (void)state;
    (void)msg;
    ((struct framing_resp_counts *)resp_context(conn))->messages++;
}

void resp_on_blank(resp_conn *conn, struct resp_session *state, const resp_blank_msg *msg)
{
    (void)state;
    (void)msg;
    ((struct framing_resp_counts *)resp_context(conn))->messages++;
}

/* resp.spec's two messages for counts redis-server treats apart: never in the bench's input. */
void resp_on_negative_count(resp_conn *conn, struct resp_session *state, const resp_negative_count_msg *msg)
{
    (void)state;
    (void)msg;
    ((struct framing_resp_counts *)resp_context(conn))->messages++;
}

void resp_on_zero_led_count(resp_conn *conn, struct resp_session *state, const resp_zero_led_count_msg *msg)
{
    (void)state;
    (void)msg;
    ((struct framing_resp_counts *)resp_context(conn))->messages++;
}

int framing_resp_factory(void *context, pg_protocol *out)
{
    return resp_protocol_factory(context, out);
}
