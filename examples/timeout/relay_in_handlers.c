/* relay_in_handlers.c — pgtimeout's own stdin, read by a read pipe transport
 * and relayed to the child's stdin. */
#include "pgtimeout.h"

struct relay_in_session {
    char unused;
};

const size_t relay_in_session_size = sizeof(struct relay_in_session);

void relay_in_on_data_received(relay_in_conn *conn, struct relay_in_session *session, const uint8_t *data, size_t len)
{
    struct pgtimeout *app = relay_in_context(conn);
    (void)session;
    /* Once the child closes its stdin, its pipe_connection_lost(0) closes us
     * (writes meanwhile are dropped, as asyncio's); an error means no stdin. */
    if (app->child == NULL || monitored_write(app->child, data, len) < 0)
        relay_in_close(conn);
}

void relay_in_on_connection_lost(relay_in_conn *conn, struct relay_in_session *session, int error)
{
    struct pgtimeout *app = relay_in_context(conn);
    (void)session;
    (void)error;
    app->in = NULL;
    if (app->child != NULL)
        (void)monitored_write_eof(app->child); /* the child reads EOF once its buffer drains */
    pgtimeout_maybe_finish(app);
}
