/* The runtime side of a spec's states (protogen/machine.h): the host of a
 * connection, the trace lines of state changes and timeouts, and the queue
 * of deferred messages. The machine itself is generated: tables and a
 * dispatch per protocol (templates/stream/machine.c.j2). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core_internal.h"
#include "protogen/machine.h"

void pg_machine_trace_state(const pg_transport *t, const char *from, const char *to)
{
    uint32_t id = pg__transport_trace_id(t);
    if (id != 0 && pg__trace_fd >= 0)
        pg__trace_write_text(id, "state", from, to);
}

void pg_machine_trace_timeout(const pg_transport *t, const char *name)
{
    uint32_t id = pg__transport_trace_id(t);
    if (id != 0 && pg__trace_fd >= 0)
        pg__trace_write_text(id, "timeout", name, NULL);
}

int pg_defer_push(pg_defer_queue *q, unsigned event, const uint8_t *data, size_t len, size_t max_bytes)
{
    if (len > max_bytes || q->bytes > max_bytes - len)
        return -ENOBUFS;
    pg_deferred *d = malloc(sizeof *d + len);
    if (d == NULL)
        return -ENOMEM;
    d->next = NULL;
    d->event = event;
    d->len = len;
    if (len > 0)
        memcpy(d->data, data, len);
    if (q->tail != NULL)
        q->tail->next = d;
    else
        q->head = d;
    q->tail = d;
    q->bytes += len;
    return 0;
}

pg_deferred *pg_defer_take(pg_defer_queue *q)
{
    pg_deferred *list = q->head;
    q->head = q->tail = NULL;
    q->bytes = 0;
    return list;
}

void pg_defer_free(pg_deferred *list)
{
    while (list != NULL) {
        pg_deferred *next = list->next;
        free(list);
        list = next;
    }
}

void pg_defer_clear(pg_defer_queue *q)
{
    pg_defer_free(pg_defer_take(q));
}
