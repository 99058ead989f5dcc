/* cat_out_handlers.c — your side of the cat_out protocol.
 *
 * protogen 0.1.0 wrote this skeleton once from cat_out.spec; it is yours now and
 * protogen never overwrites it. Fill in the callbacks; everything you can do to a
 * connection is declared in cat_out.h (cat_out_write, cat_out_close, ...). */
#include "cat_out.h"

/* Per-connection session: protogen allocates it with each connection, zero-filled,
 * and passes it to every callback. Put your fields here. */
struct cat_out_session {
    size_t bytes_received;
};

const size_t cat_out_session_size = sizeof(struct cat_out_session);

/* The connection is closed: error is 0, or a negative errno (-ECONNRESET).
 * The connection and its state are freed when this returns.
 */
void cat_out_on_connection_lost(cat_out_conn *conn, struct cat_out_session *session, int error)
{
    (void)conn;
    (void)session;
    (void)error;
}

/* The write buffer went above the high watermark: stop writing. */
void cat_out_on_pause_writing(cat_out_conn *conn, struct cat_out_session *session)
{
    (void)conn;
    (void)session;
}

/* The write buffer drained to the low watermark: writing may go on. */
void cat_out_on_resume_writing(cat_out_conn *conn, struct cat_out_session *session)
{
    (void)conn;
    (void)session;
}
