/* mach_handlers.c — logs every handler as "name@state|", and does what
 * test_machine.c asks (start and cancel the timer, choose targets). */
#include <stdio.h>
#include <string.h>

#include "mach.h"
#include "mach_test.h"

struct mach_state {
    char unused;
};

const size_t mach_state_size = sizeof(struct mach_state);

static void log_event(mach_conn *conn, const char *what)
{
    struct mach_log *log = mach_context(conn);
    size_t n = strlen(log->text);
    snprintf(log->text + n, sizeof log->text - n, "%s@%s|", what, mach_state_name(mach_current_state(conn)));
}

void mach_on_connection_lost(mach_conn *conn, struct mach_state *state, int error)
{
    (void)state;
    log_event(conn, error == 0 ? "lost" : "lost-error");
}

bool mach_on_protocol_error(mach_conn *conn, struct mach_state *state, int code, uint64_t pos, const char *reason)
{
    (void)state;
    (void)pos;
    (void)reason;
    log_event(conn, code == -EPROTO ? "error-EPROTO" : "error");
    return false;
}

void mach_on_go(mach_conn *conn, struct mach_state *state, const mach_go_msg *msg)
{
    (void)state;
    (void)msg;
    log_event(conn, "go");
}

void mach_on_stay(mach_conn *conn, struct mach_state *state, const mach_stay_msg *msg)
{
    struct mach_log *log = mach_context(conn);
    (void)state;
    (void)msg;
    log_event(conn, "stay");
    if (log->cancel_tick)
        mach_cancel_timer(conn, MACH_TIMER_TICK);
}

void mach_on_later(mach_conn *conn, struct mach_state *state, const mach_later_msg *msg)
{
    (void)state;
    (void)msg;
    log_event(conn, "later");
}

void mach_on_bad(mach_conn *conn, struct mach_state *state, const mach_bad_msg *msg)
{
    struct mach_log *log = mach_context(conn);
    (void)state;
    (void)msg;
    log_event(conn, "bad");
    if (log->choose_undeclared)
        (void)mach_next_state(conn, MACH_STATE_CLOSED); /* declared: working only */
}

void mach_on_start(mach_conn *conn, struct mach_state *state, const mach_start_msg *msg)
{
    (void)state;
    (void)msg;
    log_event(conn, "start");
    (void)mach_start_timer(conn, MACH_TIMER_TICK, 0);
}

void mach_on_body(mach_conn *conn, struct mach_state *state, const mach_body_msg *msg)
{
    (void)state;
    (void)msg;
    log_event(conn, "body");
}

void mach_on_quit(mach_conn *conn, struct mach_state *state, const mach_quit_msg *msg)
{
    (void)state;
    (void)msg;
    log_event(conn, "quit");
    (void)mach_write(conn, "bye\n", 4);
}

/* A line of the chunks state's own framing: "end" leaves it. */
void mach_on_chunk(mach_conn *conn, struct mach_state *state, const uint8_t *data, size_t len)
{
    (void)state;
    char what[32];
    snprintf(what, sizeof what, "chunk:%.*s", (int)len, (const char *)data);
    log_event(conn, what);
    if (len == 3 && memcmp(data, "end", 3) == 0)
        (void)mach_next_state(conn, MACH_STATE_PASSING);
}

void mach_on_tick(mach_conn *conn, struct mach_state *state)
{
    (void)state;
    log_event(conn, "tick");
}

void mach_on_idle(mach_conn *conn, struct mach_state *state)
{
    (void)state;
    log_event(conn, "idle");
}

void mach_on_waiting_timeout(mach_conn *conn, struct mach_state *state)
{
    (void)state;
    log_event(conn, "waiting_timeout");
}

void mach_on_unexpected(mach_conn *conn, struct mach_state *state, enum mach_message_id message, pg_slice raw)
{
    (void)state;
    char what[64];
    snprintf(what, sizeof what, "unexpected:%s:%zu", mach_message_name(message), raw.len);
    log_event(conn, what);
}
