/* framing_resp.h — what framing_bench.c sees of the generated RESP protocol
 * (framing_resp.c): a protocol factory and what its handlers count. */
#ifndef FRAMING_RESP_H
#define FRAMING_RESP_H

#include <stddef.h>

#include "protogen/core.h"

/* The context of every connection the factory makes. */
struct framing_resp_counts {
    size_t messages, args, arg_bytes, errors;
};

/* examples/resp/resp.spec's protocol, its handlers counting into context. */
int framing_resp_factory(void *context, pg_protocol *out);

#endif
