/* The host's pool of stream transport blocks (core_internal.h, "handles and
 * blocks"): slabs of PG__STREAM_BLOCK-byte blocks, a free list through them,
 * and no block given back to malloc before the host itself goes. What a
 * stale handle reads of a free block (its table, host and generation) stays
 * as the last connection left it; the list runs through the bytes after. */
#include <stdlib.h>
#include <string.h>

#include "core_internal.h"

#ifdef PG__ASAN
#include <sanitizer/asan_interface.h>
#define PG__POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define PG__UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define PG__POISON(p, n) ((void)(p), (void)(n))
#define PG__UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/* The bytes of a free block left alone, and where its list link goes. Under
 * AddressSanitizer the rest of a free block is poisoned: a use of a freed
 * connection's state by the runtime itself is still caught. */
#define PG__BLOCK_KEPT 24
_Static_assert(offsetof(pg__stream, gen) + sizeof(uint16_t) <= PG__BLOCK_KEPT, "a stale call reads the kept bytes");
_Static_assert(sizeof(pg__stream) <= PG__STREAM_BLOCK, "the core's part fits in a block");
_Static_assert(PG__STREAM_BLOCK % 16 == 0, "blocks stay aligned in a slab");
_Static_assert(UINTPTR_MAX > 0xffffffffu, "stream handles keep a generation in the top 16 bits of 64");

#define PG__SLAB_BLOCKS 32
#define PG__SLAB_HEADER 16 /* the link to the next slab; blocks stay 16-aligned */

static void pg__block_push(pg_host *host, uint8_t *block)
{
    memcpy(block + PG__BLOCK_KEPT, &host->free_blocks, sizeof host->free_blocks);
    host->free_blocks = block;
    PG__POISON(block + PG__BLOCK_KEPT, PG__STREAM_BLOCK - PG__BLOCK_KEPT);
}

static int pg__pool_grow(pg_host *host)
{
    size_t size = PG__SLAB_HEADER + (size_t)PG__SLAB_BLOCKS * PG__STREAM_BLOCK;
    uint8_t *slab = malloc(size);
    if (slab == NULL)
        return -ENOMEM;
    if ((uintptr_t)(slab + size) > PG__HANDLE_ADDR_MASK) {
        free(slab); /* no room for a generation above such an address */
        return -ENOMEM;
    }
    memcpy(slab, &host->slabs, sizeof host->slabs);
    host->slabs = slab;
    for (int i = PG__SLAB_BLOCKS - 1; i >= 0; i--) {
        uint8_t *block = slab + PG__SLAB_HEADER + (size_t)i * PG__STREAM_BLOCK;
        pg__stream *s = (pg__stream *)(void *)block;
        s->gen = 1; /* 0 is the retired blocks' */
        pg__block_push(host, block);
    }
    return 0;
}

pg__stream *pg__stream_block_get(pg_host *host)
{
    if (host->free_blocks == NULL && pg__pool_grow(host) < 0)
        return NULL;
    uint8_t *block = host->free_blocks;
    PG__UNPOISON(block + PG__BLOCK_KEPT, PG__STREAM_BLOCK - PG__BLOCK_KEPT);
    memcpy(&host->free_blocks, block + PG__BLOCK_KEPT, sizeof host->free_blocks);
    return (pg__stream *)(void *)block;
}

void pg__stream_block_put(pg_host *host, pg__stream *s)
{
    /* Retired: its generations are used up. It stays readable (stale
     * handles compare against its 0) and costs one block per 65,535
     * connections that used it. */
    if (s->gen == 0)
        return;
    pg__block_push(host, (uint8_t *)s);
}

void pg__stream_blocks_free(pg_host *host)
{
    while (host->slabs != NULL) {
        uint8_t *slab = host->slabs;
        memcpy(&host->slabs, slab, sizeof host->slabs);
        /* ASan wants the memory it frees unpoisoned. */
        PG__UNPOISON(slab, PG__SLAB_HEADER + (size_t)PG__SLAB_BLOCKS * PG__STREAM_BLOCK);
        free(slab);
    }
    host->free_blocks = NULL;
}
