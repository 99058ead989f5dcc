/* monitored_handlers.c — your side of the monitored subprocess protocol.
 *
 * protogen 0.1.0 wrote this skeleton once from monitored.spec; it is yours now and
 * protogen never overwrites it. Fill in the callbacks; everything you can do to a
 * process is declared in monitored.h (monitored_write, monitored_kill, monitored_close, ...). */
#include "monitored.h"

/* Per-process state: protogen allocates it with each child process, zero-filled,
 * and passes it to every callback. Put your fields here. */
struct monitored_session {
    size_t bytes_received[3];
};

const size_t monitored_session_size = sizeof(struct monitored_session);

/* The child runs and its pipes are ready. No other callback comes before this. */
void monitored_on_connection_made(monitored_conn *conn, struct monitored_session *session)
{
    (void)conn;
    (void)session;
}

/* Bytes the child wrote to its stdout (fd 1) or stderr (fd 2).
 * The memory is the loop's: copy what you keep.
 */
void monitored_on_pipe_data_received(monitored_conn *conn, struct monitored_session *session, int fd, const uint8_t *data, size_t len)
{
    (void)conn;
    (void)data;
    session->bytes_received[fd] += len;
}

/* The pipe to the child's fd (0, 1 or 2) is closed: error is 0, or a negative errno
 * (-EPIPE: the child stopped reading while bytes for its stdin were still buffered).
 */
void monitored_on_pipe_connection_lost(monitored_conn *conn, struct monitored_session *session, int fd, int error)
{
    (void)conn;
    (void)session;
    (void)fd;
    (void)error;
}

/* The child has exited and was reaped: get_returncode tells how. */
void monitored_on_process_exited(monitored_conn *conn, struct monitored_session *session)
{
    (void)conn;
    (void)session;
}

/* The last callback: the child is reaped and every pipe is closed (error is 0).
 * The process's conn and state are freed when this returns.
 */
void monitored_on_connection_lost(monitored_conn *conn, struct monitored_session *session, int error)
{
    (void)conn;
    (void)session;
    (void)error;
}

/* The child's stdin buffer went above the high watermark: stop writing. */
void monitored_on_pause_writing(monitored_conn *conn, struct monitored_session *session)
{
    (void)conn;
    (void)session;
}

/* The child's stdin buffer drained to the low watermark: writing may go on. */
void monitored_on_resume_writing(monitored_conn *conn, struct monitored_session *session)
{
    (void)conn;
    (void)session;
}
