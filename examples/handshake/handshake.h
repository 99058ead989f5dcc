/* What the handshake server's main and its two protocols share. */
#ifndef HANDSHAKE_H
#define HANDSHAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protogen/protogen.h>

#define HANDSHAKE_MAX_CONNECTIONS 64
#define HANDSHAKE_MAX_LINE 256

struct handshake_server {
    pg_loop *loop;
    bool stop_when_idle; /* --inetd: one connection, then exit */
    /* Open connections, whichever protocol has them now (the server aborts
     * them on shutdown with pg_server_abort_clients). */
    size_t n_open;
};

/* A checksum both ends compute the same way: the sum of the bytes, mod 2^32. */
static inline uint32_t handshake_checksum(uint32_t sum, const uint8_t *data, size_t len)
{
    for (size_t i = 0; i < len; i++)
        sum += data[i];
    return sum;
}

/* A connection opens (false: too many) and ends. */
bool handshake_track(struct handshake_server *server);
void handshake_untrack(struct handshake_server *server);

#endif
