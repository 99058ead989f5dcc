/* The datagram transport shared by every datagram socket (UDP, Unix
 * datagram sockets): the send queue and its watermarks, close/abort, and a
 * receive path that reads a batch of datagrams per readiness event.
 *
 * It follows CPython's _SelectorDatagramTransport (Lib/asyncio/
 * selector_events.py); the comments name the asyncio counterpart where it
 * helps, and say where protogen differs.
 *
 * Invariants:
 *   - the write watcher is on exactly when datagrams are queued;
 *   - the read watcher is on only while reading and nothing is held;
 *   - connection_lost runs once, from a reserved ready-queue slot (or directly
 *     from write-ready when a close() drains, as asyncio does), and then the
 *     transport is freed: nothing may use it afterwards. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "protogen/datagram.h"
#include "protogen/tcp.h"

#include "internal.h"

/* At most this many datagrams leave the queue per sendmmsg. */
#define PG__DGRAM_SEND_BATCH 64

typedef enum pg__dgram_state {
    PG__DGRAM_OPEN,
    PG__DGRAM_CLOSING, /* close() called, sending what is queued */
    PG__DGRAM_LOST,    /* connection_lost is scheduled or running */
} pg__dgram_state;

typedef enum pg__dgram_proto_state {
    PG__DGRAM_PROTO_NEW,
    PG__DGRAM_PROTO_CONNECTED,
    PG__DGRAM_PROTO_LOST,
} pg__dgram_proto_state;

/* A run of datagrams stored back to back: the send queue, and the datagrams
 * of a batch held back because the protocol paused reading in the middle of
 * it. Each record is a pg__dgram_rec, the address, the payload, padded to
 * PG__REC_ALIGN. Records [head, len) of buf are live. */
typedef struct pg__dgram_run {
    uint8_t *buf;
    size_t head;
    size_t len;
    size_t cap;
    size_t count; /* records */
} pg__dgram_run;

typedef struct pg__dgram_rec {
    uint32_t len;       /* payload bytes */
    uint16_t addrlen;   /* 0: none (a connected endpoint's queue) */
    uint16_t truncated; /* held only: it did not fit in a receive slot */
} pg__dgram_rec;

#define PG__REC_ALIGN 8

typedef struct pg__dgram {
    pg_datagram_transport base; /* first: the public header */
    pg_loop *loop;
    pg__io io;
    pg_datagram_protocol protocol;
    pg__dgram_run queue; /* datagrams the kernel could not take yet */
    pg__dgram_run held;  /* received, not yet delivered (see pg__dgram_hold) */
    size_t queued_size;  /* the write buffer size: payloads + PG_DATAGRAM_OVERHEAD each */
    size_t high;
    size_t low;
    struct sockaddr_storage peer; /* a connected endpoint's peer */
    socklen_t peerlen;            /* 0: not connected */
    int lost_error;
    uint32_t trace_id;
    uint8_t state;        /* pg__dgram_state */
    uint8_t proto;        /* pg__dgram_proto_state */
    bool reading_paused;  /* pause_reading() */
    bool writing_paused;  /* pause_writing() was called, resume_writing() not yet */
    bool started;         /* the first read was allowed (after connection_made) */
    bool held_scheduled;  /* pg__dgram_deliver_held is in the ready queue */
} pg__dgram;

#define PG__DGRAM(t) ((pg__dgram *)(void *)(t))

size_t pg__datagram_sizeof(void)
{
    return sizeof(pg__dgram);
}

/* ---- runs of datagrams -------------------------------------------------- */

static size_t pg__rec_size(size_t len, socklen_t addrlen)
{
    size_t n = sizeof(pg__dgram_rec) + (size_t)addrlen + len;
    return (n + PG__REC_ALIGN - 1) / PG__REC_ALIGN * PG__REC_ALIGN;
}

/* Appends one record; -ENOMEM leaves the run as it was. */
static int pg__run_push(pg__dgram_run *run, const void *data, size_t len, const struct sockaddr *addr,
                        socklen_t addrlen, bool truncated)
{
    assert(addrlen <= (socklen_t)sizeof(struct sockaddr_storage));
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
    pg__dgram_rec rec = { .len = (uint32_t)len, .addrlen = (uint16_t)addrlen, .truncated = truncated };
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

/* The record at offset at, as pointers into the run; *size is its length. */
static bool pg__run_peek(const pg__dgram_run *run, size_t at, const uint8_t **data, size_t *len,
                         const struct sockaddr **addr, socklen_t *addrlen, size_t *size)
{
    pg__dgram_rec rec;
    assert(at < run->len);
    memcpy(&rec, run->buf + at, sizeof rec);
    *addrlen = (socklen_t)rec.addrlen;
    *addr = rec.addrlen > 0 ? (const struct sockaddr *)(const void *)(run->buf + at + sizeof rec) : NULL;
    *data = run->buf + at + sizeof rec + rec.addrlen;
    *len = rec.len;
    *size = pg__rec_size(rec.len, (socklen_t)rec.addrlen);
    return rec.truncated != 0;
}

/* Idle endpoints keep no memory. */
static void pg__run_clear(pg__dgram_run *run)
{
    free(run->buf);
    memset(run, 0, sizeof *run);
}

static void pg__run_pop(pg__dgram_run *run, size_t size)
{
    assert(run->count > 0 && size <= run->len - run->head);
    run->head += size;
    run->count--;
    if (run->count == 0)
        pg__run_clear(run);
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

/* ---- tracing ------------------------------------------------------------ */

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

/* ---- protocol callbacks ------------------------------------------------- */

static void pg__dgram_maybe_pause(pg__dgram *d)
{
    /* Strictly above high; and never before connection_made. */
    if (d->queued_size <= d->high || d->writing_paused || d->proto != PG__DGRAM_PROTO_CONNECTED)
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

static void pg__dgram_connection_made(void *arg)
{
    pg__dgram *d = arg;
    assert(d->proto == PG__DGRAM_PROTO_NEW);
    d->proto = PG__DGRAM_PROTO_CONNECTED;
    PG__TRACE(d->trace_id, "connection_made");
    if (d->protocol.ops->connection_made != NULL)
        d->protocol.ops->connection_made(d->protocol.self, &d->base);
    /* Datagrams queued before connection_made may already be above high. */
    pg__dgram_maybe_pause(d);
}

static void pg__dgram_deliver_held(void *arg);

/* asyncio's _call_connection_lost: the protocol's last callback, then the
 * transport is gone. */
static void pg__dgram_finish(pg__dgram *d, int error)
{
    assert(d->state == PG__DGRAM_LOST);
    assert(d->proto != PG__DGRAM_PROTO_LOST);
    if (d->proto == PG__DGRAM_PROTO_CONNECTED) {
        d->proto = PG__DGRAM_PROTO_LOST;
        PG__TRACE_ERROR(d->trace_id, "connection_lost", error);
        if (d->protocol.ops->connection_lost != NULL)
            d->protocol.ops->connection_lost(d->protocol.self, error);
    }
    if (d->held_scheduled)
        pg__loop_cancel_queued(d->loop, pg__dgram_deliver_held, d); /* its slot turns into a no-op */
    else
        pg__loop_unreserve(d->loop);
    pg__io_stop(d->loop, &d->io, PG__IO_READ | PG__IO_WRITE);
    close(d->io.fd);
    pg__run_clear(&d->queue);
    pg__run_clear(&d->held);
    free(d);
}

static void pg__dgram_lost_cb(void *arg)
{
    pg__dgram *d = arg;
    pg__dgram_finish(d, d->lost_error);
}

static void pg__dgram_clear_queue(pg__dgram *d)
{
    pg__run_clear(&d->queue);
    d->queued_size = 0;
    pg__io_stop(d->loop, &d->io, PG__IO_WRITE);
}

/* asyncio's _force_close: drop the queue, connection_lost(error) next turn. */
static void pg__dgram_force_close(pg__dgram *d, int error)
{
    if (d->state == PG__DGRAM_LOST)
        return;
    pg__dgram_clear_queue(d);
    pg__io_stop(d->loop, &d->io, PG__IO_READ);
    d->state = PG__DGRAM_LOST;
    d->lost_error = error;
    pg__loop_call_soon_reserved(d->loop, pg__dgram_lost_cb, d);
}

/* ---- receiving ---------------------------------------------------------- */

static bool pg__dgram_reading(const pg__dgram *d)
{
    return d->state == PG__DGRAM_OPEN && !d->reading_paused;
}

/* Turns the read watcher on when it should be: reading, started, and no
 * datagram held back (those go first). */
static void pg__dgram_update_reader(pg__dgram *d)
{
    if (pg__dgram_reading(d) && d->started && d->held.count == 0) {
        int r = pg__io_start(d->loop, &d->io, PG__IO_READ);
        if (r < 0)
            pg__dgram_force_close(d, r);
    } else {
        pg__io_stop(d->loop, &d->io, PG__IO_READ);
    }
}

/* Queued right after connection_made: a pause_reading() there wins. */
static void pg__dgram_start_reading(void *arg)
{
    pg__dgram *d = arg;
    d->started = true;
    pg__dgram_update_reader(d);
}

/* One datagram to the protocol: its payload, or -EMSGSIZE when it did not fit
 * in a receive slot (only Unix datagram sockets carry such datagrams). */
static void pg__dgram_deliver(pg__dgram *d, const uint8_t *data, size_t len, const struct sockaddr *addr,
                              socklen_t addrlen, bool truncated)
{
    if (truncated) {
        pg__dgram_error(d, -EMSGSIZE);
        return;
    }
    if (pg__trace_fd >= 0)
        pg__dgram_trace_received(d, len, addr, addrlen);
    if (d->protocol.ops->datagram_received != NULL)
        d->protocol.ops->datagram_received(d->protocol.self, data, len, addr, addrlen);
}

/* The protocol paused reading in the middle of a batch: the rest of the batch
 * is out of the kernel already, so it is copied aside and delivered first
 * after resume_reading(). This is the only copy on the receive path, and it
 * happens once per pause, not per datagram. */
static void pg__dgram_hold(pg__dgram *d, const struct mmsghdr *msgs, const struct iovec *iov, unsigned from,
                           unsigned n)
{
    for (unsigned i = from; i < n; i++) {
        const struct msghdr *h = &msgs[i].msg_hdr;
        bool truncated = (h->msg_flags & MSG_TRUNC) != 0;
        if (pg__run_push(&d->held, iov[i].iov_base, truncated ? 0 : msgs[i].msg_len,
                         h->msg_namelen > 0 ? h->msg_name : NULL, h->msg_namelen, truncated)
            < 0) {
            /* Out of memory: the rest of the batch is lost, as if the kernel had
             * dropped it; say so. */
            pg__dgram_error(d, -ENOBUFS);
            return;
        }
    }
}

/* Delivers held datagrams while the protocol keeps reading; then reads the
 * socket again. */
static void pg__dgram_deliver_held(void *arg)
{
    pg__dgram *d = arg;
    /* This callback's own slot was just freed: taking it back cannot fail. */
    d->held_scheduled = false;
    int r = pg__loop_reserve(d->loop);
    assert(r == 0);
    (void)r;
    while (d->held.count > 0 && pg__dgram_reading(d)) {
        const uint8_t *data;
        const struct sockaddr *addr;
        socklen_t addrlen;
        size_t len, size;
        bool truncated = pg__run_peek(&d->held, d->held.head, &data, &len, &addr, &addrlen, &size);
        /* Delivered from the run itself (close and abort leave it alone):
         * popped after the callback. */
        pg__dgram_deliver(d, data, len, addr, addrlen, truncated);
        pg__run_pop(&d->held, size);
    }
    pg__dgram_update_reader(d);
}

/* asyncio's _read_ready, reading up to PG__DGRAM_BATCH datagrams with one
 * recvmmsg into the loop's receive area: no allocation per datagram, and one
 * busy socket gets one batch per loop iteration, like every other fd. */
static void pg__dgram_read_ready(pg__dgram *d)
{
    if (!pg__dgram_reading(d))
        return;
    uint8_t *area = pg__loop_datagram_buffer(d->loop);
    if (area == NULL) {
        pg__dgram_error(d, -ENOBUFS);
        return;
    }
    struct mmsghdr msgs[PG__DGRAM_BATCH];
    struct iovec iov[PG__DGRAM_BATCH];
    struct sockaddr_storage addrs[PG__DGRAM_BATCH];
    memset(msgs, 0, sizeof msgs);
    for (unsigned i = 0; i < PG__DGRAM_BATCH; i++) {
        iov[i].iov_base = area + (size_t)i * PG__DGRAM_SLOT;
        iov[i].iov_len = PG__DGRAM_SLOT;
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
        msgs[i].msg_hdr.msg_name = &addrs[i];
        msgs[i].msg_hdr.msg_namelen = sizeof addrs[i];
    }
    int n;
    PG__RETRY_EINTR(n, recvmmsg(d->io.fd, msgs, PG__DGRAM_BATCH, MSG_DONTWAIT, NULL));
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            pg__dgram_error(d, -errno); /* e.g. -ECONNREFUSED: the transport stays open */
        return;
    }
    for (int i = 0; i < n; i++) {
        const struct msghdr *h = &msgs[i].msg_hdr;
        pg__dgram_deliver(d, iov[i].iov_base, msgs[i].msg_len, h->msg_namelen > 0 ? h->msg_name : NULL,
                          h->msg_namelen, (h->msg_flags & MSG_TRUNC) != 0);
        if (d->state != PG__DGRAM_OPEN)
            return; /* closed or aborted: asyncio would not have read the rest */
        if (d->reading_paused) {
            pg__dgram_hold(d, msgs, iov, (unsigned)i + 1, (unsigned)n);
            pg__dgram_update_reader(d);
            return;
        }
    }
}

/* ---- sending ------------------------------------------------------------ */

/* One datagram now: 0 sent, 1 when the kernel cannot take it now, or a
 * negative errno. */
static int pg__dgram_send_now(pg__dgram *d, const void *data, size_t len, const struct sockaddr *addr,
                              socklen_t addrlen)
{
    ssize_t n;
    PG__RETRY_EINTR(n, sendto(d->io.fd, data, len, MSG_NOSIGNAL, addr, addr != NULL ? addrlen : 0));
    if (n >= 0)
        return 0;
    return errno == EAGAIN || errno == EWOULDBLOCK ? 1 : -errno;
}

/* asyncio's _sendto_ready, one sendmmsg of up to PG__DGRAM_SEND_BATCH queued
 * datagrams per writable event. May free the transport. */
static void pg__dgram_write_ready(pg__dgram *d)
{
    /* Not before connection_made (it comes first in the loop's iteration
     * anyway): no error_received, and no connection_lost, ahead of it. */
    if (d->state == PG__DGRAM_LOST || d->proto == PG__DGRAM_PROTO_NEW)
        return;
    assert(d->queue.count > 0);
    struct mmsghdr msgs[PG__DGRAM_SEND_BATCH];
    struct iovec iov[PG__DGRAM_SEND_BATCH];
    size_t sizes[PG__DGRAM_SEND_BATCH];
    unsigned n = 0;
    memset(msgs, 0, sizeof msgs);
    for (size_t at = d->queue.head; at < d->queue.len && n < PG__DGRAM_SEND_BATCH; n++) {
        const uint8_t *data;
        const struct sockaddr *addr;
        socklen_t addrlen;
        size_t len;
        (void)pg__run_peek(&d->queue, at, &data, &len, &addr, &addrlen, &sizes[n]);
        iov[n].iov_base = (void *)data;
        iov[n].iov_len = len;
        msgs[n].msg_hdr.msg_iov = &iov[n];
        msgs[n].msg_hdr.msg_iovlen = 1;
        msgs[n].msg_hdr.msg_name = (void *)addr;
        msgs[n].msg_hdr.msg_namelen = addrlen;
        at += sizes[n];
    }
    int sent;
    PG__RETRY_EINTR(sent, sendmmsg(d->io.fd, msgs, n, MSG_NOSIGNAL));
    if (sent < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return;
        /* The first datagram failed: it is dropped, as asyncio does, and the
         * rest waits for the next writable event. */
        int error = -errno;
        d->queued_size -= iov[0].iov_len + PG_DATAGRAM_OVERHEAD;
        pg__run_pop(&d->queue, sizes[0]);
        if (d->queue.count == 0)
            pg__io_stop(d->loop, &d->io, PG__IO_WRITE);
        pg__dgram_error(d, error); /* may send, close or abort */
        if (d->state == PG__DGRAM_LOST)
            return;
        sent = 0;
    }
    for (int i = 0; i < sent; i++) {
        d->queued_size -= iov[i].iov_len + PG_DATAGRAM_OVERHEAD;
        pg__run_pop(&d->queue, sizes[i]);
    }
    pg__dgram_maybe_resume(d); /* may send, close or abort */
    if (d->state == PG__DGRAM_LOST || d->queue.count > 0)
        return;
    pg__io_stop(d->loop, &d->io, PG__IO_WRITE);
    if (d->state == PG__DGRAM_CLOSING) {
        /* Drained after close(): connection_lost now, as asyncio does. */
        d->state = PG__DGRAM_LOST;
        pg__loop_unreserve(d->loop);
        pg__dgram_finish(d, 0);
    }
}

static void pg__dgram_on_io(pg__io *io, uint32_t events)
{
    pg__dgram *d = PG__CONTAINER_OF(io, pg__dgram, io);
    if (events & PG__IO_READ)
        pg__dgram_read_ready(d);
    /* Last: write-ready may free the transport. */
    if ((events & PG__IO_WRITE) && (d->io.events & PG__IO_WRITE))
        pg__dgram_write_ready(d);
}

/* asyncio's sendto. */
static int pg__dgram_sendto(pg_datagram_transport *t, const void *data, size_t len, const struct sockaddr *addr,
                            socklen_t addrlen)
{
    pg__dgram *d = PG__DGRAM(t);
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
        int r = pg__dgram_send_now(d, data, len, addr, addrlen);
        if (r == 0)
            return 0;
        if (r < 0) {
            /* asyncio calls error_received from inside sendto; before
             * connection_made that would break the callback order. */
            if (d->proto != PG__DGRAM_PROTO_CONNECTED)
                return r;
            pg__dgram_error(d, r);
            return 0;
        }
    }
    /* The kernel cannot take it now: copy it, send it when writable. */
    bool was_empty = d->queue.count == 0;
    int r = pg__run_push(&d->queue, data, len, addr, addrlen, false);
    if (r < 0)
        return r;
    if (was_empty) {
        r = pg__io_start(d->loop, &d->io, PG__IO_WRITE);
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
    pg__dgram *d = PG__DGRAM(t);
    if (d->state != PG__DGRAM_OPEN)
        return;
    d->state = PG__DGRAM_CLOSING; /* held datagrams are never delivered now */
    pg__io_stop(d->loop, &d->io, PG__IO_READ);
    if (d->queue.count == 0) {
        d->state = PG__DGRAM_LOST;
        d->lost_error = 0;
        pg__loop_call_soon_reserved(d->loop, pg__dgram_lost_cb, d);
    }
    /* else write-ready sends the queue, then calls connection_lost(0) */
}

static void pg__dgram_abort(pg_datagram_transport *t)
{
    pg__dgram_force_close(PG__DGRAM(t), 0);
}

static bool pg__dgram_is_closing(const pg_datagram_transport *t)
{
    return PG__DGRAM(t)->state != PG__DGRAM_OPEN;
}

/* ---- flow control ------------------------------------------------------- */

static void pg__dgram_pause_reading(pg_datagram_transport *t)
{
    pg__dgram *d = PG__DGRAM(t);
    if (!pg__dgram_reading(d))
        return;
    d->reading_paused = true;
    pg__dgram_update_reader(d);
}

static void pg__dgram_resume_reading(pg_datagram_transport *t)
{
    pg__dgram *d = PG__DGRAM(t);
    if (d->state != PG__DGRAM_OPEN || !d->reading_paused)
        return;
    d->reading_paused = false;
    if (d->held.count > 0 && !d->held_scheduled) {
        /* Held datagrams first, from the loop (never from inside this call). */
        d->held_scheduled = true;
        pg__loop_call_soon_reserved(d->loop, pg__dgram_deliver_held, d);
    }
    pg__dgram_update_reader(d);
}

static bool pg__dgram_is_reading(const pg_datagram_transport *t)
{
    return pg__dgram_reading(PG__DGRAM(t));
}

static size_t pg__dgram_get_write_buffer_size(const pg_datagram_transport *t)
{
    return PG__DGRAM(t)->queued_size;
}

static void pg__dgram_get_write_buffer_limits(const pg_datagram_transport *t, size_t *high, size_t *low)
{
    const pg__dgram *d = PG__DGRAM(t);
    if (high != NULL)
        *high = d->high;
    if (low != NULL)
        *low = d->low;
}

static int pg__dgram_set_write_buffer_limits(pg_datagram_transport *t, size_t high, size_t low)
{
    pg__dgram *d = PG__DGRAM(t);
    int r = pg__write_buffer_limits(high, low, &d->high, &d->low);
    if (r == 0)
        pg__dgram_maybe_pause(d); /* never resumes */
    return r;
}

static int pg__dgram_get_extra_info(const pg_datagram_transport *t, pg_extra_key key, pg_extra_info *out)
{
    const pg__dgram *d = PG__DGRAM(t);
    if (out == NULL)
        return -EINVAL;
    memset(out, 0, sizeof *out);
    out->fd = d->io.fd;
    out->addrlen = sizeof out->addr;
    switch (key) {
    case PG_EXTRA_PEERNAME:
        if (d->peerlen == 0)
            return -ENOTCONN;
        memcpy(&out->addr, &d->peer, d->peerlen);
        out->addrlen = d->peerlen;
        return 0;
    case PG_EXTRA_SOCKNAME:
        return getsockname(d->io.fd, (struct sockaddr *)&out->addr, &out->addrlen) < 0 ? -errno : 0;
    case PG_EXTRA_SOCKET:
        out->addrlen = 0;
        return 0;
    default:
        return -ENOENT;
    }
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

/* Ready-queue slots each endpoint holds: connection_made, the first read,
 * connection_lost, and the delivery of held datagrams (taken and given back
 * each time it is used). */
#define PG__DGRAM_RESERVED 4

int pg__datagram_open(pg_loop *loop, int fd, pg_datagram_protocol_factory factory, void *arg,
                      pg_datagram_transport **out)
{
    pg__dgram *d = calloc(1, sizeof *d);
    if (d == NULL)
        return -ENOMEM;
    int reserved = 0, r = 0;
    for (; reserved < PG__DGRAM_RESERVED; reserved++) {
        r = pg__loop_reserve(loop);
        if (r < 0)
            goto fail;
    }
    d->peerlen = sizeof d->peer;
    if (getpeername(fd, (struct sockaddr *)&d->peer, &d->peerlen) < 0) {
        if (errno != ENOTCONN) {
            r = -errno;
            goto fail;
        }
        d->peerlen = 0;
    }
    /* The factory last: once a protocol exists, nothing may fail. */
    r = factory(arg, &d->protocol);
    if (r == 0 && d->protocol.ops == NULL)
        r = -EINVAL;
    if (r < 0)
        goto fail;
    d->base.ops = &pg__dgram_ops;
    d->loop = loop;
    pg__io_init(&d->io, fd, pg__dgram_on_io);
    d->high = PG_DEFAULT_HIGH_WATER;
    d->low = PG_DEFAULT_HIGH_WATER / 4;
    d->trace_id = pg__trace_new_conn();
    d->state = PG__DGRAM_OPEN;
    d->proto = PG__DGRAM_PROTO_NEW;
    /* asyncio: call_soon(connection_made); call_soon(_add_reader). */
    pg__loop_call_soon_reserved(loop, pg__dgram_connection_made, d);
    pg__loop_call_soon_reserved(loop, pg__dgram_start_reading, d);
    if (out != NULL)
        *out = &d->base;
    return 0;

fail:
    while (reserved-- > 0)
        pg__loop_unreserve(loop);
    free(d);
    return r;
}

/* ---- public: adopting a datagram socket --------------------------------- */

int pg_datagram_adopt_fd(pg_loop *loop, int fd, pg_datagram_protocol_factory factory, void *arg,
                         pg_datagram_transport **out)
{
    if (loop == NULL || fd < 0 || factory == NULL)
        return -EINVAL;
    int type;
    socklen_t len = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
        return -errno; /* -ENOTSOCK for pipes and files */
    if (type != SOCK_DGRAM)
        return -EINVAL;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    return pg__datagram_open(loop, fd, factory, arg, out);
}
