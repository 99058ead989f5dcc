/* What examples/http's handlers share with the program around them. */
#ifndef HTTP_SERVER_H
#define HTTP_SERVER_H

#include <stddef.h>
#include <stdint.h>

/* The server: settings, given to every connection as its context. */
struct http_server {
    const char *root;           /* GET /files/... serves from here (NULL: no files) */
    uint64_t header_timeout_ms; /* a request not whole this long after the last response: 408 */
    uint64_t idle_timeout_ms;   /* a keep-alive connection without a byte this long: closed */
    size_t max_body;            /* a request body above this: 413 */
    size_t open_connections;
    size_t requests;
};

#endif
