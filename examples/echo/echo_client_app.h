/* What the echo client's main and its handlers share. */
#ifndef ECHO_CLIENT_APP_H
#define ECHO_CLIENT_APP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protogen/protogen.h>

struct echo_client_app {
    pg_loop *loop;
    size_t total;            /* bytes to send and expect back */
    size_t sent, received;
    bool writing_paused;
    bool mismatch;           /* a byte came back different */
    bool hold_reading;       /* don't read until resume_reading_now() */
    uint32_t hold_ms;        /* ...or until this many ms have passed (0: no timer) */
    pg_timer hold_timer;
    int error;               /* connection_lost's error */
    bool finished;
    struct echo_client_conn *conn;
};

/* The byte at offset i of the payload: a pattern that catches lost or reordered data. */
static inline uint8_t echo_client_payload_byte(size_t i)
{
    return (uint8_t)(i % 251u);
}

/* Starts reading again after --hold-ms or SIGUSR1. */
void echo_client_resume_reading_now(void *app);

#endif
