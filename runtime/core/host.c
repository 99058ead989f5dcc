/* Hosts: the core's view of whatever loop runs it (protogen/core.h). */
#include <stdlib.h>

#include "core_internal.h"

void pg__host_init(pg_host *host, const pg_host_ops *ops, void *self)
{
    pg__trace_init();
    host->ops = ops;
    host->self = self;
    host->spare_wbuf = NULL;
    host->spare_wbuf_cap = 0;
    for (int c = 0; c < PG__BLOCK_CLASSES; c++)
        host->free_blocks[c] = NULL;
    host->slabs = NULL;
    host->stale_calls = 0;
    host->stale_assert = true;
}

void pg__host_cleanup(pg_host *host)
{
    pg__blocks_free(host);
    free(host->spare_wbuf);
    host->spare_wbuf = NULL;
    host->spare_wbuf_cap = 0;
}

int pg_host_new(const pg_host_ops *ops, void *self, pg_host **out)
{
    if (ops == NULL || ops->reserve == NULL || ops->unreserve == NULL || ops->defer == NULL
        || ops->now_ms == NULL || (ops->timer_start == NULL) != (ops->timer_cancel == NULL) || out == NULL)
        return -EINVAL;
    pg_host *host = malloc(sizeof *host);
    if (host == NULL)
        return -ENOMEM;
    pg__host_init(host, ops, self);
    *out = host;
    return 0;
}

void pg_host_free(pg_host *host)
{
    if (host == NULL)
        return;
    pg__host_cleanup(host);
    free(host);
}

uint64_t pg_host_now_ms(pg_host *host)
{
    return host->ops->now_ms(host->self);
}

void pg__host_give_wbuf(pg_host *host, uint8_t *buf, size_t cap)
{
    if (buf == NULL)
        return;
    if (cap > PG__SPARE_WBUF_MAX || cap <= host->spare_wbuf_cap) {
        free(buf);
        return;
    }
    free(host->spare_wbuf);
    host->spare_wbuf = buf;
    host->spare_wbuf_cap = cap;
}

uint8_t *pg__host_take_wbuf(pg_host *host, size_t *cap)
{
    uint8_t *buf = host->spare_wbuf;
    *cap = host->spare_wbuf_cap;
    host->spare_wbuf = NULL;
    host->spare_wbuf_cap = 0;
    return buf;
}
