/* The datagram transport's semantics, shared by every datagram driver (fd
 * UDP and Unix datagram sockets, the user's own sockets, memory): the send
 * queue and its watermarks, error_received, close/abort, the deferred
 * connection_lost, the datagrams held while the protocol does not read,
 * trace lines. No system call: datagrams move through the driver table,
 * deferred calls through the host's.
 *
 * It follows CPython's _SelectorDatagramTransport (Lib/asyncio/
 * selector_events.py); the comments name the asyncio counterpart where it
 * helps, and say where protogen differs.
 *
 * Invariants:
 *   - write interest is on exactly when datagrams are queued;
 *   - read interest is on only while reading, after the first read was
 *     allowed, and with nothing held;
 *   - connection_lost runs once, from a reserved deferred call (or directly
 *     from writable when a close() drains, as asyncio does), then the
 *     driver's close() releases the endpoint, and the block's generation
 *     moves on: a call through a handle of the endpoint is stale from then
 *     on, detected by every transport method here and dropped, whoever holds
 *     the block next (core_internal.h, "handles and blocks"). */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "protogen/tcp.h"

#include "core_internal.h"

/* At most this many queued datagrams go to the driver per writable event. */
#define PG__DGRAM_SEND_BATCH 64

typedef enum pg__dgram_state {
    PG__DGRAM_OPEN,
    PG__DGRAM_CLOSING, /* close() called, sending what is queued */
    PG__DGRAM_LOST,    /* connection_lost is scheduled or running */
} pg__dgram_state;

typedef struct pg__dgram {
    /* What a stale handle reads of its block, first (block_pool.c keeps
     * these bytes of a free block intact): */
    pg_datagram_transport base; /* the public header */
    pg_host *host;
    uint16_t gen; /* this endpoint's generation: its handles carry it */
    uint8_t state; /* pg__dgram_state */
    uint8_t proto; /* pg__proto_state */
    uint32_t trace_id;
    const pg_datagram_driver_ops *drv_ops;
    void *drv;
    pg_datagram_protocol protocol;
    pg__dgram_run queue; /* datagrams the driver could not take yet */
    pg__dgram_run held;  /* received while the protocol did not read */
    size_t queued_size;  /* the write buffer size: payloads + PG_DATAGRAM_OVERHEAD each */
    size_t high;
    size_t low;
    struct sockaddr_storage peer; /* a connected endpoint's peer */
    socklen_t peerlen;            /* 0: not connected */
    int lost_error;
    uint8_t want;        /* PG__WANT_*: what the driver was last asked for */
    bool reading_paused; /* pause_reading() */
    bool writing_paused; /* pause_writing() was called, resume_writing() not yet */
    bool started;        /* the first read was allowed (after connection_made) */
    bool held_scheduled; /* pg__dgram_deliver_held is deferred */
    bool held_slot;      /* a deferred call is reserved for it */
    bool free_in_held;   /* finished while it was deferred: it gives the block back */
} pg__dgram;

_Static_assert(offsetof(pg__dgram, gen) == PG__BLOCK_GEN_OFFSET, "endpoints keep the generation where the pool does");
_Static_assert(offsetof(pg__dgram, host) + sizeof(pg_host *) <= PG__BLOCK_KEPT, "a stale call reads only the kept bytes");
_Static_assert(sizeof(pg__dgram) <= PG__DGRAM_BLOCK, "the core's endpoint fits in a block");

/* The endpoint behind a handle a driver holds (a driver calls only while
 * its endpoint lives). */
#define PG__DGRAM(t) ((pg__dgram *)((uintptr_t)(t) & PG__HANDLE_ADDR_MASK))

static pg_datagram_transport *pg__dgram_handle(const pg__dgram *d)
{
    return (pg_datagram_transport *)((uintptr_t)d | (uintptr_t)d->gen << PG__HANDLE_GEN_SHIFT);
}

/* ---- stale handles ------------------------------------------------------ */

/* A call through a handle kept past connection_lost: a bug of the caller,
 * which asyncio forgives (a lost transport drops sendto and ignores the
 * rest). Counted; debug builds stop here. */
static void pg__dgram_stale(const pg__dgram *d)
{
    d->host->stale_calls++;
    assert(!d->host->stale_assert && "a pg_datagram_transport used after its connection_lost");
}

/* The endpoint behind the handle of a transport method, or NULL when the
 * handle is stale (its generation is not its block's any more). */
static pg__dgram *pg__dgram_live(const pg_datagram_transport *t)
{
    pg__dgram *d = PG__DGRAM(t);
    if (d->gen == (uint16_t)((uintptr_t)t >> PG__HANDLE_GEN_SHIFT))
        return d;
    pg__dgram_stale(d);
    return NULL;
}

size_t pg__datagram_core_sizeof(void)
{
    return PG__DGRAM_BLOCK; /* what an endpoint takes of the pool */
}

/* ---- addresses ---------------------------------------------------------- */

/* Same endpoint: family, address and port (and IPv6 scope); Unix sockets by
 * path. Other bytes (sin_zero, flow info) do not count. */
static bool pg__same_address(const struct sockaddr *a, socklen_t alen, const struct sockaddr *b, socklen_t blen)
{
    if (alen < (socklen_t)sizeof(sa_family_t) || blen < (socklen_t)sizeof(sa_family_t)
        || a->sa_family != b->sa_family)
        return false;
    switch (a->sa_family) {
    case AF_INET: {
        if (alen < (socklen_t)sizeof(struct sockaddr_in) || blen < (socklen_t)sizeof(struct sockaddr_in))
            return false;
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    case AF_INET6: {
        if (alen < (socklen_t)sizeof(struct sockaddr_in6) || blen < (socklen_t)sizeof(struct sockaddr_in6))
            return false;
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return x->sin6_port == y->sin6_port && x->sin6_scope_id == y->sin6_scope_id
            && memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
    }
    default:
        return alen == blen && memcmp(a, b, (size_t)alen) == 0;
    }
}

/* ---- the driver --------------------------------------------------------- */

static void pg__dgram_force_close(pg__dgram *d, int error);

/* Asks the driver for an interest only when it changes. 0 or -errno. */
static int pg__dgram_want(pg__dgram *d, unsigned which, bool on)
{
    if (((d->want & which) != 0) == on)
        return 0;
    int r = which == PG__WANT_READ ? d->drv_ops->want_read(d->drv, on) : d->drv_ops->want_write(d->drv, on);
    if (r == 0)
        d->want = (uint8_t)(on ? d->want | which : d->want & ~which);
    return r;
}

/* A driver that fails to stop an interest (e.g. EPOLL_CTL_MOD failing) has
 * a broken endpoint, as for streams. */
static void pg__dgram_unwant(pg__dgram *d, unsigned which)
{
    int r = pg__dgram_want(d, which, false);
    if (r < 0) {
        d->want &= (uint8_t)~which; /* never asked again */
        pg__dgram_force_close(d, r);
    }
}

/* The endpoint is ending: errors do not matter any more. */
static void pg__dgram_unwant_all(pg__dgram *d)
{
    if (d->want & PG__WANT_READ)
        (void)d->drv_ops->want_read(d->drv, false);
    if (d->want & PG__WANT_WRITE)
        (void)d->drv_ops->want_write(d->drv, false);
    d->want = 0;
}

/* ---- protocol callbacks, traced ----------------------------------------- */

/* "datagram_received <nbytes> <addr>"; "-" for an address with no text (an
 * unnamed Unix socket). */
static void pg__dgram_trace_received(const pg__dgram *d, size_t len, const struct sockaddr *addr,
                                     socklen_t addrlen)
{
    char where[112], line[160];
    if (addr == NULL || addrlen <= (socklen_t)sizeof(sa_family_t) || pg_format_address(addr, where, sizeof where) <= 0)
        snprintf(where, sizeof where, "-");
    snprintf(line, sizeof line, "datagram_received %zu %s", len, where);
    /* pg__trace_write prints "<conn> <text>": the text carries the details. */
    pg__trace_write(d->trace_id, line);
}

static void pg__dgram_maybe_pause(pg__dgram *d)
{
    /* Strictly above high; and never before connection_made. */
    if (d->queued_size <= d->high || d->writing_paused || d->proto != PG__PROTO_CONNECTED)
        return;
    d->writing_paused = true;
    PG__TRACE_SIZE(d->trace_id, "pause_writing", d->queued_size);
    if (d->protocol.ops->pause_writing != NULL)
        d->protocol.ops->pause_writing(d->protocol.self);
}

static void pg__dgram_maybe_resume(pg__dgram *d)
{
    if (!d->writing_paused || d->queued_size > d->low)
        return;
    d->writing_paused = false;
    PG__TRACE_SIZE(d->trace_id, "resume_writing", d->queued_size);
    if (d->protocol.ops->resume_writing != NULL)
        d->protocol.ops->resume_writing(d->protocol.self);
}

static void pg__dgram_error(pg__dgram *d, int error)
{
    assert(error < 0);
    PG__TRACE_ERROR(d->trace_id, "error_received", error);
    if (d->protocol.ops->error_received != NULL)
        d->protocol.ops->error_received(d->protocol.self, error);
}

/* One datagram (or a receive error in its place) to the protocol. */
static void pg__dgram_deliver(pg__dgram *d, const uint8_t *data, size_t len, const struct sockaddr *addr,
                              socklen_t addrlen, int error)
{
    if (error != 0) {
        pg__dgram_error(d, error);
        return;
    }
    if (d->trace_id != 0 && pg__trace_fd >= 0)
        pg__dgram_trace_received(d, len, addr, addrlen);
    if (d->protocol.ops->datagram_received != NULL)
        d->protocol.ops->datagram_received(d->protocol.self, data, len, addr, addrlen);
}

static void pg__dgram_connection_made(void *arg)
{
    pg__dgram *d = arg;
    assert(d->proto == PG__PROTO_NEW);
    d->proto = PG__PROTO_CONNECTED;
    PG__TRACE(d->trace_id, "connection_made");
    if (d->protocol.ops->connection_made != NULL)
        d->protocol.ops->connection_made(d->protocol.self, pg__dgram_handle(d));
    /* Datagrams queued before connection_made may already be above high. */
    pg__dgram_maybe_pause(d);
}

/* asyncio's _call_connection_lost: the protocol's last callback, then the
 * driver releases the endpoint and the transport is gone. */
static void pg__dgram_finish(pg__dgram *d, int error)
{
    assert(d->state == PG__DGRAM_LOST);
    assert(d->proto != PG__PROTO_LOST);
    if (d->proto == PG__PROTO_CONNECTED) {
        d->proto = PG__PROTO_LOST;
        PG__TRACE_ERROR(d->trace_id, "connection_lost", error);
        if (d->protocol.ops->connection_lost != NULL)
            d->protocol.ops->connection_lost(d->protocol.self, error);
    }
    pg__run_clear(&d->queue);
    pg__run_clear(&d->held);
    d->gen++; /* every handle of this endpoint is stale from here on */
    d->drv_ops->close(d->drv);
    if (d->held_scheduled) {
        /* A delivery of held datagrams is still deferred (a close() that
         * drained from writable): the host has no cancel, so that call
         * gives the block back. */
        d->free_in_held = true;
        return;
    }
    if (d->held_slot)
        pg__host_unreserve(d->host);
    pg__block_put(d->host, PG__BLOCK_DGRAM, d);
}

static void pg__dgram_lost_cb(void *arg)
{
    pg__dgram *d = arg;
    pg__dgram_finish(d, d->lost_error);
}

/* asyncio's _force_close: drop the queue, connection_lost(error) next turn. */
static void pg__dgram_force_close(pg__dgram *d, int error)
{
    if (d->state == PG__DGRAM_LOST)
        return;
    pg__run_clear(&d->queue);
    d->queued_size = 0;
    d->state = PG__DGRAM_LOST;
    d->lost_error = error;
    pg__dgram_unwant_all(d);
    pg__host_defer(d->host, pg__dgram_lost_cb, d);
}

/* ---- receiving ---------------------------------------------------------- */

static bool pg__dgram_reading(const pg__dgram *d)
{
    return d->state == PG__DGRAM_OPEN && !d->reading_paused;
}

/* Datagrams go straight to the protocol: reading, started, none held. */
static bool pg__dgram_delivers(const pg__dgram *d)
{
    return pg__dgram_reading(d) && d->started && d->held.count == 0;
}

/* Read interest on exactly when datagrams go straight to the protocol. */
static void pg__dgram_update_reader(pg__dgram *d)
{
    if (pg__dgram_delivers(d)) {
        int r = pg__dgram_want(d, PG__WANT_READ, true);
        if (r < 0)
            pg__dgram_force_close(d, r);
    } else {
        pg__dgram_unwant(d, PG__WANT_READ);
    }
}

/* Delivers held datagrams while the protocol keeps reading, then asks for
 * more. Only from a deferred call, never from inside a transport method. */
static void pg__dgram_drain_held(pg__dgram *d)
{
    while (d->held.count > 0 && pg__dgram_reading(d)) {
        pg__dgram_view v;
        pg__run_peek(&d->held, d->held.head, &v);
        /* Delivered from the run itself (close and abort leave it alone
         * until connection_lost): popped after the callback. */
        pg__dgram_deliver(d, v.data, v.len, v.addr, v.addrlen, v.error);
        pg__run_pop(&d->held, v.size);
    }
    pg__dgram_update_reader(d);
}

static void pg__dgram_deliver_held(void *arg)
{
    pg__dgram *d = arg;
    d->held_scheduled = false;
    if (d->free_in_held) {
        pg__block_put(d->host, PG__BLOCK_DGRAM, d);
        return;
    }
    /* This call's own slot was just freed: take it back for the next time. */
    d->held_slot = pg__host_reserve(d->host) == 0;
    if (!d->held_slot) {
        pg__dgram_force_close(d, -ENOMEM);
        return;
    }
    pg__dgram_drain_held(d);
}

/* Deferred right after connection_made: a pause_reading() there wins. */
static void pg__dgram_start_reading(void *arg)
{
    pg__dgram *d = arg;
    if (d->state == PG__DGRAM_LOST)
        return;
    d->started = true;
    pg__dgram_drain_held(d);
}

/* Keeps a datagram (or error) reported while the protocol does not read: the
 * rest of a batch the driver had read already. The only copy on the receive
 * path, and only then. */
static void pg__dgram_hold(pg__dgram *d, const uint8_t *data, size_t len, const struct sockaddr *addr,
                           socklen_t addrlen, int error)
{
    if (pg__run_push(&d->held, data, len, addr, addrlen, error) < 0)
        pg__dgram_error(d, -ENOBUFS); /* lost, as if the kernel had dropped it; say so */
}

static void pg__dgram_incoming(pg__dgram *d, const uint8_t *data, size_t len, const struct sockaddr *addr,
                               socklen_t addrlen, int error)
{
    if (d->state != PG__DGRAM_OPEN)
        return; /* closing: nothing more is read, as in asyncio */
    if (addr != NULL && (addrlen == 0 || addrlen > (socklen_t)sizeof(struct sockaddr_storage)))
        addr = NULL;
    if (addr == NULL)
        addrlen = 0;
    if (pg__dgram_delivers(d))
        pg__dgram_deliver(d, data, len, addr, addrlen, error);
    else
        pg__dgram_hold(d, data, len, addr, addrlen, error);
}

void pg_datagram_received(pg_datagram_transport *t, const uint8_t *data, size_t len, const struct sockaddr *addr,
                          socklen_t addrlen)
{
    pg__dgram_incoming(PG__DGRAM(t), data, len, addr, addrlen, 0);
}

void pg_datagram_receive_error(pg_datagram_transport *t, int error)
{
    assert(error < 0);
    pg__dgram_incoming(PG__DGRAM(t), NULL, 0, NULL, 0, error < 0 ? error : -EIO);
}

void pg_datagram_fail(pg_datagram_transport *t, int error)
{
    pg__dgram_force_close(PG__DGRAM(t), error);
}

/* ---- sending ------------------------------------------------------------ */

/* asyncio's _sendto_ready, up to PG__DGRAM_SEND_BATCH queued datagrams per
 * writable event. May free the transport. */
void pg_datagram_writable(pg_datagram_transport *t)
{
    pg__dgram *d = PG__DGRAM(t);
    /* Not before connection_made: no error_received, and no
     * connection_lost, ahead of it. */
    if (d->state == PG__DGRAM_LOST || d->proto == PG__PROTO_NEW || !(d->want & PG__WANT_WRITE))
        return;
    assert(d->queue.count > 0);
    pg_datagram_out msgs[PG__DGRAM_SEND_BATCH];
    size_t sizes[PG__DGRAM_SEND_BATCH];
    int n = 0;
    for (size_t at = d->queue.head; at < d->queue.len && n < PG__DGRAM_SEND_BATCH; n++) {
        pg__dgram_view v;
        pg__run_peek(&d->queue, at, &v);
        msgs[n] = (pg_datagram_out){ .data = v.data, .len = v.len, .addr = v.addr, .addrlen = v.addrlen };
        sizes[n] = v.size;
        at += v.size;
    }
    int sent = d->drv_ops->send(d->drv, msgs, n);
    if (sent < 0) {
        /* The first datagram failed: it is dropped, as asyncio does, and the
         * rest waits for the next writable event. */
        d->queued_size -= msgs[0].len + PG_DATAGRAM_OVERHEAD;
        pg__run_pop(&d->queue, sizes[0]);
        if (d->queue.count == 0)
            pg__dgram_unwant(d, PG__WANT_WRITE);
        if (d->state == PG__DGRAM_LOST)
            return;
        pg__dgram_error(d, sent); /* may send, close or abort */
        if (d->state == PG__DGRAM_LOST)
            return;
        sent = 0;
    }
    assert(sent <= n);
    for (int i = 0; i < sent; i++) {
        d->queued_size -= msgs[i].len + PG_DATAGRAM_OVERHEAD;
        pg__run_pop(&d->queue, sizes[i]);
    }
    pg__dgram_maybe_resume(d); /* may send, close or abort */
    if (d->state == PG__DGRAM_LOST || d->queue.count > 0)
        return;
    pg__dgram_unwant(d, PG__WANT_WRITE);
    if (d->state == PG__DGRAM_CLOSING) {
        /* Drained after close(): connection_lost now, as asyncio does. */
        d->state = PG__DGRAM_LOST;
        pg__dgram_unwant_all(d);
        pg__host_unreserve(d->host);
        pg__dgram_finish(d, 0);
    }
}

/* asyncio's sendto. */
static int pg__dgram_sendto(pg_datagram_transport *t, const void *data, size_t len, const struct sockaddr *addr,
                            socklen_t addrlen)
{
    pg__dgram *d = pg__dgram_live(t);
    if (d == NULL)
        return 0; /* stale: dropped, as on a lost endpoint */
    if (len > 0 && data == NULL)
        return -EINVAL;
    if (addr != NULL && (addrlen < (socklen_t)sizeof(sa_family_t) || addrlen > (socklen_t)sizeof(struct sockaddr_storage)))
        return -EINVAL;
    if (d->peerlen > 0) {
        if (addr != NULL && !pg__same_address(addr, addrlen, (const struct sockaddr *)&d->peer, d->peerlen))
            return -EINVAL; /* asyncio: ValueError('Invalid address: must be None or ...') */
        addr = NULL;        /* send(), as asyncio does on a connected socket */
        addrlen = 0;
    } else if (addr == NULL) {
        return -EDESTADDRREQ;
    }
    if (d->state == PG__DGRAM_LOST)
        return 0; /* asyncio drops it (and logs after a few) */

    if (d->queue.count == 0) {
        pg_datagram_out msg = { .data = data, .len = len, .addr = addr, .addrlen = addrlen };
        int r = d->drv_ops->send(d->drv, &msg, 1);
        if (r > 0)
            return 0;
        if (r < 0) {
            /* asyncio calls error_received from inside sendto; before
             * connection_made that would break the callback order. */
            if (d->proto != PG__PROTO_CONNECTED)
                return r;
            pg__dgram_error(d, r);
            return 0;
        }
    }
    /* The driver cannot take it now: copy it, send it when writable. */
    bool was_empty = d->queue.count == 0;
    int r = pg__run_push(&d->queue, data, len, addr, addrlen, 0);
    if (r < 0)
        return r;
    if (was_empty) {
        r = pg__dgram_want(d, PG__WANT_WRITE, true);
        if (r < 0) {
            pg__run_clear(&d->queue);
            return r;
        }
    }
    d->queued_size += len + PG_DATAGRAM_OVERHEAD;
    pg__dgram_maybe_pause(d);
    return 0;
}

/* ---- closing ------------------------------------------------------------ */

static void pg__dgram_close(pg_datagram_transport *t)
{
    pg__dgram *d = pg__dgram_live(t);
    if (d == NULL || d->state != PG__DGRAM_OPEN)
        return;
    d->state = PG__DGRAM_CLOSING; /* held datagrams are never delivered now */
    if (d->queue.count == 0) {
        d->state = PG__DGRAM_LOST;
        d->lost_error = 0;
        pg__dgram_unwant_all(d);
        pg__host_defer(d->host, pg__dgram_lost_cb, d);
        return;
    }
    pg__dgram_unwant(d, PG__WANT_READ);
    /* else writable sends the queue, then calls connection_lost(0) */
}

static void pg__dgram_abort(pg_datagram_transport *t)
{
    pg__dgram *d = pg__dgram_live(t);
    if (d != NULL)
        pg__dgram_force_close(d, 0);
}

static bool pg__dgram_is_closing(const pg_datagram_transport *t)
{
    const pg__dgram *d = pg__dgram_live(t);
    return d == NULL || d->state != PG__DGRAM_OPEN;
}

/* ---- flow control ------------------------------------------------------- */

static void pg__dgram_pause_reading(pg_datagram_transport *t)
{
    pg__dgram *d = pg__dgram_live(t);
    if (d == NULL || !pg__dgram_reading(d))
        return;
    d->reading_paused = true;
    pg__dgram_update_reader(d);
}

static void pg__dgram_resume_reading(pg_datagram_transport *t)
{
    pg__dgram *d = pg__dgram_live(t);
    if (d == NULL || d->state != PG__DGRAM_OPEN || !d->reading_paused)
        return;
    d->reading_paused = false;
    if (d->held.count > 0 && d->started && !d->held_scheduled) {
        if (!d->held_slot) {
            /* The slot could not be taken back last time: try again. */
            d->held_slot = pg__host_reserve(d->host) == 0;
            if (!d->held_slot) {
                pg__dgram_force_close(d, -ENOMEM);
                return;
            }
        }
        /* Held datagrams first, from the host (never from inside this call). */
        d->held_scheduled = true;
        d->held_slot = false;
        pg__host_defer(d->host, pg__dgram_deliver_held, d);
    }
    pg__dgram_update_reader(d);
}

static bool pg__dgram_is_reading(const pg_datagram_transport *t)
{
    const pg__dgram *d = pg__dgram_live(t);
    return d != NULL && pg__dgram_reading(d);
}

static size_t pg__dgram_get_write_buffer_size(const pg_datagram_transport *t)
{
    const pg__dgram *d = pg__dgram_live(t);
    return d != NULL ? d->queued_size : 0;
}

static void pg__dgram_get_write_buffer_limits(const pg_datagram_transport *t, size_t *high, size_t *low)
{
    const pg__dgram *d = pg__dgram_live(t);
    if (high != NULL)
        *high = d != NULL ? d->high : 0;
    if (low != NULL)
        *low = d != NULL ? d->low : 0;
}

static int pg__dgram_set_write_buffer_limits(pg_datagram_transport *t, size_t high, size_t low)
{
    pg__dgram *d = pg__dgram_live(t);
    if (d == NULL)
        return -EBADF;
    int r = pg__write_buffer_limits(high, low, &d->high, &d->low);
    if (r == 0)
        pg__dgram_maybe_pause(d); /* never resumes */
    return r;
}

static int pg__dgram_get_extra_info(const pg_datagram_transport *t, pg_extra_key key, pg_extra_info *out)
{
    const pg__dgram *d = pg__dgram_live(t);
    if (d == NULL)
        return -EBADF;
    if (out == NULL)
        return -EINVAL;
    memset(out, 0, sizeof *out);
    out->fd = -1;
    out->addrlen = sizeof out->addr;
    int r = d->drv_ops->get_extra_info != NULL ? d->drv_ops->get_extra_info(d->drv, key, out) : -ENOENT;
    if (key != PG_EXTRA_PEERNAME)
        return r;
    if (d->peerlen == 0)
        return -ENOTCONN;
    memcpy(&out->addr, &d->peer, d->peerlen);
    out->addrlen = d->peerlen;
    return 0;
}

static const pg_datagram_transport_ops pg__dgram_ops = {
    .sendto = pg__dgram_sendto,
    .close = pg__dgram_close,
    .abort = pg__dgram_abort,
    .is_closing = pg__dgram_is_closing,
    .pause_reading = pg__dgram_pause_reading,
    .resume_reading = pg__dgram_resume_reading,
    .is_reading = pg__dgram_is_reading,
    .get_write_buffer_size = pg__dgram_get_write_buffer_size,
    .get_write_buffer_limits = pg__dgram_get_write_buffer_limits,
    .set_write_buffer_limits = pg__dgram_set_write_buffer_limits,
    .get_extra_info = pg__dgram_get_extra_info,
};

/* ---- creation ----------------------------------------------------------- */

/* Deferred calls each endpoint holds: connection_made, the first read,
 * connection_lost, and the delivery of held datagrams (taken and given back
 * each time it is used). */
#define PG__DGRAM_SLOTS 4

int pg_datagram_new(pg_host *host, const pg_datagram_driver_ops *ops, void *driver, const struct sockaddr *peer,
                    socklen_t peerlen, pg_datagram_protocol_factory factory, void *arg,
                    pg_datagram_transport **out)
{
    if (host == NULL || ops == NULL || ops->send == NULL || ops->want_read == NULL || ops->want_write == NULL
        || ops->close == NULL || factory == NULL
        || (peer != NULL && (peerlen < (socklen_t)sizeof(sa_family_t) || peerlen > (socklen_t)sizeof(struct sockaddr_storage))))
        return -EINVAL;
    pg__dgram *d = pg__block_get(host, PG__BLOCK_DGRAM);
    if (d == NULL)
        return -ENOMEM;
    uint16_t gen = d->gen; /* the block's: older handles stay stale */
    memset(d, 0, sizeof *d);
    d->gen = gen;
    int reserved = 0, r = 0;
    for (; reserved < PG__DGRAM_SLOTS; reserved++) {
        r = pg__host_reserve(host);
        if (r < 0)
            goto fail;
    }
    if (peer != NULL) {
        memcpy(&d->peer, peer, peerlen);
        d->peerlen = peerlen;
    }
    /* The factory last: once a protocol exists, nothing may fail. */
    r = factory(arg, &d->protocol);
    if (r == 0 && d->protocol.ops == NULL)
        r = -EINVAL;
    if (r < 0)
        goto fail;
    d->base.ops = &pg__dgram_ops;
    d->host = host;
    d->drv_ops = ops;
    d->drv = driver;
    d->high = PG_DEFAULT_HIGH_WATER;
    d->low = PG_DEFAULT_HIGH_WATER / 4;
    d->trace_id = pg__trace_new_conn();
    d->state = PG__DGRAM_OPEN;
    d->proto = PG__PROTO_NEW;
    d->held_slot = true;
    /* asyncio: call_soon(connection_made); call_soon(_add_reader). */
    pg__host_defer(host, pg__dgram_connection_made, d);
    pg__host_defer(host, pg__dgram_start_reading, d);
    if (out != NULL)
        *out = pg__dgram_handle(d);
    return 0;

fail:
    while (reserved-- > 0)
        pg__host_unreserve(host);
    pg__block_put(host, PG__BLOCK_DGRAM, d); /* no handle was made: the generation stays */
    return r;
}
