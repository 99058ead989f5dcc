/* What the echo server's main and its handlers share. */
#ifndef ECHO_SERVER_H
#define ECHO_SERVER_H

#include <stddef.h>

struct echo_session;

struct echo_server {
    /* Open connections, to close them on shutdown where no pg_server knows
     * them (examples/embed-libuv and embed-poll listen on their own);
     * echo_server asks its server instead (pg_server_abort_clients). */
    struct echo_session *connections;
    size_t open_connections;
    size_t accepted; /* connections made, ever (echo_server --threads reports them) */
};

/* Aborts every open connection; each one's connection_lost follows. */
void echo_server_abort_all(struct echo_server *server);

#endif
