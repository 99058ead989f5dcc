/* What a spec's states (generated from its `states` and `timeouts` blocks,
 * docs/spec-language.md) need from the runtime: their connection's host, on
 * which their timers run (so that an embedded protocol keeps them), their
 * trace lines, and the queue of messages a state deferred.
 *
 * Integer results are 0 or a negative errno value. */
#ifndef PROTOGEN_MACHINE_H
#define PROTOGEN_MACHINE_H

#include <stddef.h>
#include <stdint.h>

#include "protogen/core.h"
#include "protogen/transport.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What a state does with an event, in the generated tables. */
enum pg_machine_action {
    PG_MACHINE_NONE = 0, /* the event cannot come there (or has asyncio's default) */
    PG_MACHINE_HANDLE,   /* call its handler, then go to the target chosen */
    PG_MACHINE_IGNORE,   /* drop it */
    PG_MACHINE_DEFER,    /* keep it, retry it after the next state change */
    PG_MACHINE_DEFAULT,  /* a message the state does not expect: the default handler */
};

/* A state's bit in a transition's mask of targets (at most 64 states). */
#define PG_MACHINE_BIT(state) ((uint64_t)1 << (state))

/* The host a stream transport of the core runs on; NULL for another
 * transport, or a stale handle. */
pg_host *pg_transport_host(const pg_transport *t);

/* Trace lines (docs/runtime.md): "<conn> state <from> <to>" and
 * "<conn> timeout <name>". Nothing when tracing is off. */
void pg_machine_trace_state(const pg_transport *t, const char *from, const char *to);
void pg_machine_trace_timeout(const pg_transport *t, const char *name);

/* A deferred message: its event and a copy of its bytes. */
typedef struct pg_deferred {
    struct pg_deferred *next;
    unsigned event;
    size_t len;
    uint8_t data[];
} pg_deferred;

/* Messages deferred, oldest first, bounded in bytes. Zero-filled is empty. */
typedef struct pg_defer_queue {
    pg_deferred *head;
    pg_deferred *tail;
    size_t bytes;
} pg_defer_queue;

/* Appends a copy of data[0..len) as event. -ENOBUFS when the queue would
 * hold more than max_bytes (the framing's max: a peer cannot make the
 * connection keep more than one message's worth), -ENOMEM. */
int pg_defer_push(pg_defer_queue *q, unsigned event, const uint8_t *data, size_t len, size_t max_bytes);
/* Detaches every message, oldest first (the queue is empty after). */
pg_deferred *pg_defer_take(pg_defer_queue *q);
/* Frees a detached list, or what is left of it. */
void pg_defer_free(pg_deferred *list);
/* Empties the queue. */
void pg_defer_clear(pg_defer_queue *q);

#ifdef __cplusplus
}
#endif
#endif
