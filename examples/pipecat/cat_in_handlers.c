/* cat_in_handlers.c — stdin's side: every byte read goes to stdout's write
 * pipe; at EOF, stdout is closed once it has flushed. */
#include "pipecat.h"

struct cat_in_session {
    char unused;
};

const size_t cat_in_session_size = sizeof(struct cat_in_session);

void cat_in_on_data_received(cat_in_conn *conn, struct cat_in_session *session, const uint8_t *data, size_t len)
{
    struct pipecat *cat = cat_in_context(conn);
    (void)session;
    cat->bytes += len;
    if (cat->out != NULL)
        (void)cat_out_write(cat->out, data, len); /* dropped once stdout is gone */
}

bool cat_in_on_eof_received(cat_in_conn *conn, struct cat_in_session *session)
{
    struct pipecat *cat = cat_in_context(conn);
    (void)session;
    cat->input_done = true;
    if (cat->out != NULL)
        (void)cat_out_write_eof(cat->out); /* a pipe's EOF: flush, then close */
    return false; /* ignored: a read pipe always ends at EOF */
}

void cat_in_on_connection_lost(cat_in_conn *conn, struct cat_in_session *session, int error)
{
    struct pipecat *cat = cat_in_context(conn);
    (void)session;
    cat->in = NULL;
    cat->in_error = error;
    if (cat->out == NULL)
        pg_loop_stop(cat->loop);
}
