/* The host's pool of transport blocks (core_internal.h, "handles and
 * blocks"): for each class (stream, datagram endpoint, subprocess) slabs of blocks of
 * its size, a free list through them, and no block given back to malloc
 * before the host itself goes. What a stale handle reads of a free block
 * (its table, host and generation) stays as the last transport left it; the
 * list runs through the bytes after. */
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

/* Under AddressSanitizer a free block is poisoned after its kept bytes
 * (PG__BLOCK_KEPT, where its list link goes): a use of a freed transport's
 * state by the runtime itself is still caught. */
_Static_assert(PG__BLOCK_GEN_OFFSET + sizeof(uint16_t) <= PG__BLOCK_KEPT, "a stale call reads the kept bytes");
_Static_assert(offsetof(pg__stream, host) + sizeof(pg_host *) <= PG__BLOCK_KEPT, "a stale call counts on its host");
_Static_assert(offsetof(pg__stream, gen) == PG__BLOCK_GEN_OFFSET, "streams keep the generation where the pool does");
_Static_assert(sizeof(pg__stream) <= PG__STREAM_BLOCK, "the core's part fits in a block");
_Static_assert(PG__STREAM_BLOCK % 16 == 0 && PG__DGRAM_BLOCK % 16 == 0 && PG__SUBPROC_BLOCK % 16 == 0, "blocks stay aligned in a slab");
_Static_assert(sizeof ((pg_host *)0)->free_blocks / sizeof(void *) == PG__BLOCK_CLASSES, "a free list per class");
_Static_assert(UINTPTR_MAX > 0xffffffffu, "handles keep a generation in the top 16 bits of 64");

#define PG__SLAB_BLOCKS 32
#define PG__SLAB_HEADER 16 /* the link to the next slab, its size; blocks stay 16-aligned */

static const size_t pg__block_size[PG__BLOCK_CLASSES] = {
    [PG__BLOCK_STREAM] = PG__STREAM_BLOCK,
    [PG__BLOCK_DGRAM] = PG__DGRAM_BLOCK,
    [PG__BLOCK_SUBPROC] = PG__SUBPROC_BLOCK,
};

static uint16_t pg__block_gen(const uint8_t *block)
{
    uint16_t gen;
    memcpy(&gen, block + PG__BLOCK_GEN_OFFSET, sizeof gen);
    return gen;
}

static void pg__block_push(pg_host *host, pg__block_class c, uint8_t *block)
{
    memcpy(block + PG__BLOCK_KEPT, &host->free_blocks[c], sizeof host->free_blocks[c]);
    host->free_blocks[c] = block;
    PG__POISON(block + PG__BLOCK_KEPT, pg__block_size[c] - PG__BLOCK_KEPT);
}

static int pg__pool_grow(pg_host *host, pg__block_class c)
{
    size_t size = PG__SLAB_HEADER + (size_t)PG__SLAB_BLOCKS * pg__block_size[c];
    uint8_t *slab = malloc(size);
    if (slab == NULL)
        return -ENOMEM;
    if ((uintptr_t)(slab + size) > PG__HANDLE_ADDR_MASK) {
        free(slab); /* no room for a generation above such an address */
        return -ENOMEM;
    }
    memcpy(slab, &host->slabs, sizeof host->slabs);
    memcpy(slab + sizeof host->slabs, &size, sizeof size);
    host->slabs = slab;
    for (int i = PG__SLAB_BLOCKS - 1; i >= 0; i--) {
        uint8_t *block = slab + PG__SLAB_HEADER + (size_t)i * pg__block_size[c];
        const uint16_t first = 1; /* 0 is the retired blocks' */
        memcpy(block + PG__BLOCK_GEN_OFFSET, &first, sizeof first);
        pg__block_push(host, c, block);
    }
    return 0;
}

void *pg__block_get(pg_host *host, pg__block_class c)
{
    if (host->free_blocks[c] == NULL && pg__pool_grow(host, c) < 0)
        return NULL;
    uint8_t *block = host->free_blocks[c];
    PG__UNPOISON(block + PG__BLOCK_KEPT, pg__block_size[c] - PG__BLOCK_KEPT);
    memcpy(&host->free_blocks[c], block + PG__BLOCK_KEPT, sizeof host->free_blocks[c]);
    return block;
}

void pg__block_put(pg_host *host, pg__block_class c, void *block)
{
    /* Retired: its generations are used up. It stays readable (stale
     * handles compare against its 0) and costs one block per 65,535
     * transports that used it. */
    if (pg__block_gen(block) == 0)
        return;
    pg__block_push(host, c, block);
}

void pg__blocks_free(pg_host *host)
{
    while (host->slabs != NULL) {
        uint8_t *slab = host->slabs;
        size_t size;
        memcpy(&host->slabs, slab, sizeof host->slabs);
        memcpy(&size, slab + sizeof host->slabs, sizeof size);
        /* ASan wants the memory it frees unpoisoned. */
        PG__UNPOISON(slab, size);
        free(slab);
    }
    for (int c = 0; c < PG__BLOCK_CLASSES; c++)
        host->free_blocks[c] = NULL;
}
