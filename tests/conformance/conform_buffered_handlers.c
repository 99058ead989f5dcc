/* conform_buffered_handlers.c — conform_handlers.c's behaviour, reading into
 * a 64 KiB buffer of the connection's own, as asyncio_server.py --buffered. */
#include <stdio.h>

#include "conform_buffered.h"

struct conform_buffered_state {
    uint8_t buffer[64 * 1024];
    unsigned long long received;
};

const size_t conform_buffered_state_size = sizeof(struct conform_buffered_state);

void conform_buffered_on_connection_made(conform_buffered_conn *conn, struct conform_buffered_state *state)
{
    (void)conn;
    (void)state;
}

uint8_t *conform_buffered_on_get_buffer(conform_buffered_conn *conn, struct conform_buffered_state *state,
                                        size_t size_hint, size_t *len)
{
    (void)conn;
    (void)size_hint;
    *len = sizeof state->buffer;
    return state->buffer;
}

void conform_buffered_on_buffer_updated(conform_buffered_conn *conn, struct conform_buffered_state *state,
                                        size_t nbytes)
{
    state->received += nbytes;
    (void)conform_buffered_write(conn, state->buffer, nbytes);
}

bool conform_buffered_on_eof_received(conform_buffered_conn *conn, struct conform_buffered_state *state)
{
    char line[64];
    int n = snprintf(line, sizeof line, "total %llu\n", state->received);
    (void)conform_buffered_write(conn, line, (size_t)n);
    return false;
}

void conform_buffered_on_connection_lost(conform_buffered_conn *conn, struct conform_buffered_state *state,
                                         int error)
{
    (void)conn;
    (void)state;
    (void)error;
}

void conform_buffered_on_pause_writing(conform_buffered_conn *conn, struct conform_buffered_state *state)
{
    (void)state;
    conform_buffered_pause_reading(conn);
}

void conform_buffered_on_resume_writing(conform_buffered_conn *conn, struct conform_buffered_state *state)
{
    (void)state;
    conform_buffered_resume_reading(conn);
}
