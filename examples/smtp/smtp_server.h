/* What examples/smtp's handlers share with the program around them. */
#ifndef SMTP_SERVER_H
#define SMTP_SERVER_H

#include <stddef.h>
#include <stdint.h>

/* The server: settings, given to every connection as its context. */
struct smtp_server {
    const char *hostname;     /* in the greeting and the replies */
    const char *maildir;      /* where accepted messages go (new/, through tmp/) */
    uint64_t idle_timeout_ms; /* 421 and close after this long without a byte in or out */
    size_t max_size;          /* a message above this is refused with 552 */
    size_t open_connections;
    size_t delivered;         /* messages written to the Maildir */
};

#endif
