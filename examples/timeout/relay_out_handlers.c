/* relay_out_handlers.c — pgtimeout's own stdout or stderr, written by a write
 * pipe transport with what the child writes to its own. */
#include "pgtimeout.h"

struct relay_out_session {
    char unused;
};

const size_t relay_out_session_size = sizeof(struct relay_out_session);

void relay_out_on_connection_lost(relay_out_conn *conn, struct relay_out_session *session, int error)
{
    struct relay_end *end = relay_out_context(conn);
    struct pgtimeout *app = end->app;
    (void)session;
    app->out[end->fd] = NULL;
    (void)error; /* 0 too when our reader left with nothing buffered: asyncio's rule */
    if (app->child != NULL) {
        /* Nowhere to relay the child's output any more (our reader went
         * away): close its pipe, so that its next write fails (SIGPIPE), as
         * it would have without pgtimeout in between. After the child's own
         * pipe closed first, there is none left to close. */
        pg_transport *pipe = monitored_get_pipe_transport(app->child, end->fd);
        if (pipe != NULL)
            pg_transport_close(pipe);
    }
    pgtimeout_maybe_finish(app);
}

void relay_out_on_pause_writing(relay_out_conn *conn, struct relay_out_session *session)
{
    struct relay_end *end = relay_out_context(conn);
    (void)session;
    if (end->app->child != NULL)
        monitored_pause_reading(end->app->child, end->fd);
}

void relay_out_on_resume_writing(relay_out_conn *conn, struct relay_out_session *session)
{
    struct relay_end *end = relay_out_context(conn);
    (void)session;
    if (end->app->child != NULL)
        monitored_resume_reading(end->app->child, end->fd);
}
