/* examples/http's routes: what a request gets, whatever the protocol did to read it. */
#ifndef HTTP_ROUTES_H
#define HTTP_ROUTES_H

#include <stddef.h>
#include <stdint.h>

struct http_response {
    int status;
    const char *reason;
    const char *content_type;
    const uint8_t *body;
    size_t len;
    uint8_t *owned; /* the body's memory when the route allocated it (free it) */
};

/* GET / (a fixed text), GET /files/PATH (from root; no path escapes it),
 * POST /echo (the request's body); HEAD as GET; 404 and 405 otherwise. */
void route(const char *root, const char *method, const char *target, size_t target_len, const uint8_t *body,
           size_t body_len, struct http_response *out);

#endif
