/* What the RESP server's main and its handlers share. */
#ifndef RESP_SERVER_H
#define RESP_SERVER_H

#include <stddef.h>

#include "commands.h"
#include "inline.h"

struct resp_server {
    resp_store *store;       /* the keyspace, every connection's */
    resp_reply reply;        /* one command's reply, written and cleared at once */
    resp_inline words;       /* an inline command's arguments */
    size_t open_connections; /* to wait for on shutdown */
};

#endif
