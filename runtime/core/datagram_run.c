/* Runs of datagrams stored back to back (core_internal.h): one allocation for
 * a whole queue, none per datagram once it has grown. */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core_internal.h"

/* 16 bytes: the address after it stays 8-byte aligned. */
typedef struct pg__dgram_rec {
    uint32_t len;     /* payload bytes */
    int32_t error;    /* not 0: an error, no payload */
    uint32_t addrlen; /* 0: none */
    uint32_t unused;
} pg__dgram_rec;

#define PG__REC_ALIGN 8

static size_t pg__rec_size(size_t len, socklen_t addrlen)
{
    size_t n = sizeof(pg__dgram_rec) + (size_t)addrlen + len;
    return (n + PG__REC_ALIGN - 1) / PG__REC_ALIGN * PG__REC_ALIGN;
}

int pg__run_push(pg__dgram_run *run, const void *data, size_t len, const struct sockaddr *addr, socklen_t addrlen,
                 int error)
{
    assert(addrlen <= (socklen_t)sizeof(struct sockaddr_storage));
    if (error != 0)
        len = 0;
    if (len > UINT32_MAX || len > SIZE_MAX / 4)
        return -EMSGSIZE;
    size_t need = pg__rec_size(len, addrlen);
    if (run->len + need > run->cap) {
        size_t used = run->len - run->head;
        if (run->head > 0) { /* compact */
            memmove(run->buf, run->buf + run->head, used);
            run->head = 0;
            run->len = used;
        }
        if (used + need > run->cap) {
            size_t cap = run->cap * 2;
            if (cap < used + need)
                cap = used + need;
            if (cap < 4096)
                cap = 4096;
            uint8_t *p = realloc(run->buf, cap);
            if (p == NULL)
                return -ENOMEM;
            run->buf = p;
            run->cap = cap;
        }
    }
    pg__dgram_rec rec = { .len = (uint32_t)len, .error = error, .addrlen = (uint32_t)addrlen, .unused = 0 };
    uint8_t *p = run->buf + run->len;
    memcpy(p, &rec, sizeof rec);
    if (addrlen > 0)
        memcpy(p + sizeof rec, addr, addrlen);
    if (len > 0)
        memcpy(p + sizeof rec + addrlen, data, len);
    run->len += need;
    run->count++;
    return 0;
}

void pg__run_peek(const pg__dgram_run *run, size_t at, pg__dgram_view *v)
{
    pg__dgram_rec rec;
    assert(at < run->len);
    memcpy(&rec, run->buf + at, sizeof rec);
    v->addrlen = (socklen_t)rec.addrlen;
    v->addr = rec.addrlen > 0 ? (const struct sockaddr *)(const void *)(run->buf + at + sizeof rec) : NULL;
    v->data = run->buf + at + sizeof rec + rec.addrlen;
    v->len = rec.len;
    v->error = rec.error;
    v->size = pg__rec_size(rec.len, (socklen_t)rec.addrlen);
}

void pg__run_clear(pg__dgram_run *run)
{
    free(run->buf);
    memset(run, 0, sizeof *run);
}

void pg__run_pop(pg__dgram_run *run, size_t size)
{
    assert(run->count > 0 && size <= run->len - run->head);
    run->head += size;
    run->count--;
    if (run->count == 0)
        pg__run_clear(run); /* idle endpoints keep no memory */
}
