/* cat_out_handlers.c — stdout's side: when its buffer is full, stdin stops
 * being read; when its reader goes away, stdin is closed too. */
#include <errno.h>

#include "pipecat.h"

struct cat_out_session {
    char unused;
};

const size_t cat_out_session_size = sizeof(struct cat_out_session);

void cat_out_on_pause_writing(cat_out_conn *conn, struct cat_out_session *session)
{
    struct pipecat *cat = cat_out_context(conn);
    (void)session;
    if (cat->in != NULL)
        cat_in_pause_reading(cat->in);
}

void cat_out_on_resume_writing(cat_out_conn *conn, struct cat_out_session *session)
{
    struct pipecat *cat = cat_out_context(conn);
    (void)session;
    if (cat->in != NULL)
        cat_in_resume_reading(cat->in);
}

void cat_out_on_connection_lost(cat_out_conn *conn, struct cat_out_session *session, int error)
{
    struct pipecat *cat = cat_out_context(conn);
    (void)session;
    cat->out = NULL;
    cat->out_error = error;
    /* The reader left before the end of the input: with nothing buffered at
     * that moment the transport reports no error (as asyncio), but for a copy
     * it is a broken pipe all the same. */
    if (error == 0 && !cat->input_done)
        cat->out_error = -EPIPE;
    if (cat->in != NULL)
        cat_in_close(cat->in); /* nobody to write to any more (idempotent) */
    else
        pg_loop_stop(cat->loop);
}
