/* A stream's held input: what a driver read while the protocol did not read
 * (paused, or reading stopped mid-way), kept for the protocol, in order.
 *
 * A driver that cannot stop reading at once (a receive already in the
 * kernel on io_uring, a libuv read under way) reports every read with
 * pg_stream_received(): the protocol gets what it reads now, the core keeps
 * the rest, and the end (EOF) or the error that came after it. asyncio's
 * paused transport reads nothing, so the protocol sees those bytes, then
 * that end, only once it reads again: resume_reading defers one delivery
 * (never from inside resume_reading), and the driver is asked for
 * want_read(true) only once the delivery has left nothing held.
 *
 * The record is the deferred call's argument, not the stream: a transport
 * that ends while its delivery waits (the host has no cancel) gives its
 * block back at once, and the delivery only frees the record. */
#include <stdlib.h>
#include <string.h>

#include "core_internal.h"

struct pg__held_input {
    pg__stream *s; /* NULL: the transport ended while the delivery was deferred */
    uint8_t *data; /* bytes [off, len) are held */
    size_t off, len, cap;
    int status;    /* after the bytes: 0, PG_STREAM_END or a negative errno */
    bool reserved; /* a host reservation for the delivery: deferring it cannot fail */
    bool queued;   /* the delivery is deferred or running */
};

static void pg__held_release(pg__held_input *h, pg_host *host)
{
    if (h->reserved)
        pg__host_unreserve(host);
    free(h->data);
    free(h);
}

/* The end or an error, as the driver would report it while reading. */
static void pg__held_status(pg__stream *s, int status)
{
    if (status > 0)
        pg_stream_read_eof(&s->base);
    else
        pg_stream_fail(&s->base, status);
}

/* Adds to what is held (the bytes may sit in the driver's buffer: copied). */
static void pg__held_keep(pg__stream *s, const uint8_t *data, size_t n, int status)
{
    pg__held_input *h = s->held;
    if (h != NULL && h->status != 0)
        return; /* the end is held: nothing is read after it */
    if (h == NULL) {
        if ((h = calloc(1, sizeof *h)) == NULL) {
            pg_stream_fail(&s->base, -ENOMEM);
            return;
        }
        h->s = s;
        s->held = h;
    }
    if (!h->reserved && !h->queued) {
        if (pg__host_reserve(s->host) < 0) {
            pg_stream_fail(&s->base, -ENOMEM);
            return;
        }
        h->reserved = true;
    }
    if (n > 0) {
        if (h->off > 0 && h->off == h->len)
            h->off = h->len = 0;
        if (n > h->cap - h->len) {
            size_t cap = h->cap ? h->cap : 4096;
            while (cap - h->len < n)
                cap *= 2;
            uint8_t *d = realloc(h->data, cap);
            if (d == NULL) {
                pg_stream_fail(&s->base, -ENOMEM);
                return;
            }
            h->data = d;
            h->cap = cap;
        }
        memcpy(h->data + h->len, data, n);
        h->len += n;
    }
    h->status = status;
}

void pg__stream_take(pg__stream *s, const uint8_t *data, size_t n, int status)
{
    if (s->state != PG__STREAM_OPEN || s->rstate == PG__READ_EOF)
        return; /* ending, or read to its end: nothing more is read */
    if (s->flags & PG_STREAM_WRITE_ONLY) {
        if (status != 0)
            pg__held_status(s, status); /* a write pipe's reader went away */
        return;
    }
    if (s->held == NULL) {
        if (n > 0 && pg__stream_reads(s)) {
            size_t taken = pg_stream_read(&s->base, data, n);
            data += taken;
            n -= taken;
        }
        if (n == 0 && (status == 0 || pg__stream_reads(s))) {
            if (status != 0)
                pg__held_status(s, status);
            return;
        }
        if (s->state != PG__STREAM_OPEN)
            return;
    }
    pg__held_keep(s, data, n, status); /* behind what is held already */
}

void pg_stream_received(pg_transport *t, const uint8_t *data, size_t n, int end)
{
    pg__stream_take(pg__stream_of(t), data, n, end);
}

/* From the host, once the protocol reads again: the held bytes, then the
 * held end, then the driver reads again. */
static void pg__held_deliver(void *arg)
{
    pg__held_input *h = arg;
    pg__stream *s = h->s;
    /* queued stays set meanwhile: a resume_reading from these callbacks
     * needs no second delivery, this one goes on. */
    while (h->s != NULL && pg__stream_reads(s) && h->off < h->len)
        h->off += pg_stream_read(&s->base, h->data + h->off, h->len - h->off);
    h->queued = false;
    if (h->s == NULL) {
        assert(!h->reserved);
        pg__held_release(h, NULL);
        return;
    }
    if (s->state != PG__STREAM_OPEN)
        return; /* ending: its finish frees what is left */
    if (!pg__stream_reads(s)) {
        if (!h->reserved) { /* paused again: the next delivery's call */
            if (pg__host_reserve(s->host) < 0)
                pg_stream_fail(&s->base, -ENOMEM);
            else
                h->reserved = true;
        }
        return;
    }
    int status = h->status;
    s->held = NULL;
    pg__held_release(h, s->host);
    if (status != 0)
        pg__held_status(s, status);
    else
        pg__stream_start_reading_now(s);
}

void pg__held_schedule(pg__stream *s)
{
    pg__held_input *h = s->held;
    if (h->queued)
        return;
    assert(h->reserved); /* held since the hold or the last delivery, or the stream failed */
    h->reserved = false;
    h->queued = true;
    pg__host_defer(s->host, pg__held_deliver, h);
}

void pg__held_free(pg__stream *s)
{
    pg__held_input *h = s->held;
    s->held = NULL;
    if (h->queued)
        h->s = NULL; /* the deferred delivery frees it */
    else
        pg__held_release(h, s->host);
}
