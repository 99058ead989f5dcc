/* The protocols that need nothing but the core (protogen_generate(...
 * CORE_ONLY)), each with its handlers unchanged: examples/echo's server,
 * examples/handshake's hello and sink, the conformance suite's conform and
 * conform_buffered, examples/lines, resp, smtp and http, tests/generated's sw_line,
 * sw_bulk, sw_framed, the rules framing's kv, the length framing's lenp and
 * the states machine's mach. split_core runs the cases on them; the fuzzers
 * (tests/fuzz) take them from here too. */
#ifndef SPLIT_PROTOCOLS_H
#define SPLIT_PROTOCOLS_H

#include <stddef.h>

#include "split.h"

extern const split_protocol split_core_protocols[];
extern const size_t split_core_n_protocols;

#endif
