/* The split harness: a generated protocol, with its handlers unchanged, run
 * on the manual host (protogen/manual.h) with one input fed whole, byte by
 * byte, at every 2-way split point and at seeded random splits, at several
 * output capacities. Every run must give the same output bytes, the same
 * end (closed, write side shut, still open), the same normalised trace and
 * the same report, and all of them must be what the case's fixture file
 * says. README.md has the fixture format and how to add a protocol. */
#ifndef SPLIT_H
#define SPLIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protogen/core.h"

/* A growing byte string (always NUL-terminated, for printing). */
typedef struct split_text {
    char *data;
    size_t len, cap;
} split_text;

void split_text_add(split_text *t, const void *data, size_t len);
void split_text_printf(split_text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends data with C escapes (\n, \xHH, ...): the fixture's notation. */
void split_text_escaped(split_text *t, const uint8_t *data, size_t len);
void split_text_free(split_text *t);

/* A protocol the harness can run: one entry per generated protocol that
 * starts a connection (a protocol it switches to needs none). */
typedef struct split_protocol {
    const char *name;            /* the fixture's "protocol NAME" */
    unsigned flags;              /* PG_STREAM_* of the manual stream */
    pg_protocol_factory factory; /* the generated NAME_protocol_factory */
    /* The handlers' context (NAME_context) for one run, from the fixture's
     * "arg" line (NULL without one); NULL context_new: a NULL context. */
    void *(*context_new)(const char *arg);
    /* Optional: what the handlers observed, as lines of text, after the
     * connection ended. Only what does not depend on the cut. */
    void (*report)(void *context, split_text *out);
    void (*context_free)(void *context);
} split_protocol;

/* Runs every fixture file named on the command line, each a cmocka group,
 * on the protocols of the table; the exit status of the tests. */
int split_main(int argc, char **argv, const split_protocol *protocols, size_t n_protocols);

#endif
