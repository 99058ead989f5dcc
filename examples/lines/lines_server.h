/* What the lines server's main and its handlers share. */
#ifndef LINES_SERVER_H
#define LINES_SERVER_H

#include <stddef.h>

struct lines_session;

struct lines_server {
    struct lines_session *connections; /* open connections, to close them on shutdown */
    size_t open_connections;
};

/* Aborts every open connection; each one's connection_lost follows. */
void lines_server_abort_all(struct lines_server *server);

#endif
