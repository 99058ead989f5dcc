/* sw_line's handlers for test_switch.c: count, and switch at the first '\n'. */
#include <string.h>

#include "switch_test.h"

struct sw_line_state {
    char unused;
};

const size_t sw_line_state_size = sizeof(struct sw_line_state);

void sw_line_on_connection_made(sw_line_conn *conn, struct sw_line_state *state)
{
    struct switch_test *t = sw_line_context(conn);
    (void)state;
    t->line = conn;
    t->line_made++;
}

void sw_line_on_data_received(sw_line_conn *conn, struct sw_line_state *state, const uint8_t *data, size_t len)
{
    struct switch_test *t = sw_line_context(conn);
    (void)state;
    t->line_data++;
    const uint8_t *nl = memchr(data, '\n', len);
    if (!t->switch_on_newline || nl == NULL)
        return;
    size_t used = (size_t)(nl - data) + 1;
    t->switch_rc = sw_line_switch_protocol(conn, sw_bulk_protocol_factory, t, data + used, len - used);
    if (t->switch_rc == 0)
        t->line = NULL;
    /* state is still valid here: conn is freed after this handler returns. */
    state->unused = 1;
}

void sw_line_on_connection_lost(sw_line_conn *conn, struct sw_line_state *state, int error)
{
    struct switch_test *t = sw_line_context(conn);
    (void)state;
    (void)error;
    t->line_lost++;
    t->line = NULL;
}

void sw_line_on_pause_writing(sw_line_conn *conn, struct sw_line_state *state)
{
    struct switch_test *t = sw_line_context(conn);
    (void)state;
    t->line_pauses++;
}

void sw_line_on_resume_writing(sw_line_conn *conn, struct sw_line_state *state)
{
    (void)conn;
    (void)state;
}
