/* What test_length.c and lenp_handlers.c share: a log of the messages. */
#ifndef LENP_TEST_H
#define LENP_TEST_H

#include <stddef.h>
#include <stdint.h>

struct lenp_log {
    char text[4096]; /* "<len>@<pos>|" per message */
    size_t used;
    uint64_t payload_bytes;
};

#endif
