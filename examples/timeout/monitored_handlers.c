/* monitored_handlers.c — the child's side of pgtimeout: its stdout and stderr
 * go out through our own, our stdin comes in through its, and each side's
 * flow control holds the other back. */
#include "pgtimeout.h"

struct monitored_session {
    char unused;
};

const size_t monitored_session_size = sizeof(struct monitored_session);

void monitored_on_connection_made(monitored_conn *conn, struct monitored_session *session)
{
    struct pgtimeout *app = monitored_context(conn);
    (void)session;
    app->child = conn;
    pgtimeout_start_relays(app);
}

void monitored_on_pipe_data_received(monitored_conn *conn, struct monitored_session *session, int fd, const uint8_t *data,
                                     size_t len)
{
    struct pgtimeout *app = monitored_context(conn);
    (void)session;
    if (app->out[fd] != NULL)
        (void)relay_out_write(app->out[fd], data, len); /* buffered beyond the kernel's; flow control bounds it */
}

void monitored_on_pipe_connection_lost(monitored_conn *conn, struct monitored_session *session, int fd, int error)
{
    struct pgtimeout *app = monitored_context(conn);
    (void)session;
    (void)error;
    if (fd == 0) {
        if (app->in != NULL)
            relay_in_close(app->in); /* the child reads no more: neither do we */
    } else if (app->out[fd] != NULL) {
        relay_out_close(app->out[fd]); /* flushes what is left, then closes */
    }
}

void monitored_on_process_exited(monitored_conn *conn, struct monitored_session *session)
{
    struct pgtimeout *app = monitored_context(conn);
    (void)session;
    /* No KILL for a child that is gone; the timeout stays, for whatever it
     * left holding its pipes. */
    pg_timer_cancel(&app->grace_timer);
}

void monitored_on_connection_lost(monitored_conn *conn, struct monitored_session *session, int error)
{
    struct pgtimeout *app = monitored_context(conn);
    (void)session;
    (void)error;
    app->child = NULL;
    app->child_done = true;
    pg_timer_cancel(&app->timeout_timer);
    pg_timer_cancel(&app->grace_timer);
    if (app->in != NULL)
        relay_in_close(app->in);
    pgtimeout_maybe_finish(app);
}

void monitored_on_pause_writing(monitored_conn *conn, struct monitored_session *session)
{
    struct pgtimeout *app = monitored_context(conn);
    (void)session;
    if (app->in != NULL)
        relay_in_pause_reading(app->in);
}

void monitored_on_resume_writing(monitored_conn *conn, struct monitored_session *session)
{
    struct pgtimeout *app = monitored_context(conn);
    (void)session;
    if (app->in != NULL)
        relay_in_resume_reading(app->in);
}
