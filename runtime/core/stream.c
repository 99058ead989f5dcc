/* The stream transport's semantics, shared by every stream driver (fd
 * sockets and pipes, libuv streams, the user's own sockets, memory):
 * buffering, watermarks, EOF, close/abort, reading into a buffered
 * protocol's own memory, protocol switching, trace lines, and (held_input.c)
 * the input a driver read while the protocol did not read. No system call:
 * bytes move through the driver table, deferred calls through the host's.
 *
 * It follows CPython's _SelectorSocketTransport (Lib/asyncio/selector_events.py)
 * step by step, and _UnixReadPipeTransport / _UnixWritePipeTransport
 * (unix_events.py) where PG_STREAM_READ_ONLY / PG_STREAM_WRITE_ONLY say so;
 * the comments name the asyncio counterpart where it helps.
 *
 * Invariants:
 *   - write interest is on whenever bytes are buffered (and, while
 *     resume_writing runs from writable, for a moment after they drained);
 *   - connection_lost runs once, from a reserved deferred call (or directly
 *     from writable when a close() drains, as asyncio does), and then the
 *     driver's close() ends the connection, and the block's generation moves
 *     on: a call through a handle of the connection is stale from then on,
 *     detected by every transport method here and dropped, whoever holds the
 *     block next. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "core_internal.h"
#include "protogen/machine.h"

_Atomic(pg__close_above_fn) pg__close_above; /* zero: NULL until tls.c sets it */

/* The stream behind a handle the driver holds (a driver calls only while
 * its transport lives). */
#define PG__STREAM(t) pg__stream_of(t)

/* What the write buffer holds, not yet given to the driver. */
static size_t pg__wbuf_len(const pg__stream *s)
{
    return s->wlen - s->whead;
}

/* What is buffered as asyncio counts it: the write buffer and what the
 * driver has in flight (pg__stream_sending). */
static size_t pg__stream_buffered(const pg__stream *s)
{
    return pg__wbuf_len(s) + s->inflight;
}

/* ---- stale handles ------------------------------------------------------ */

/* The generation a handle carries (its block's when it was made). */
static inline uint16_t pg__handle_gen(const pg_transport *t)
{
    return (uint16_t)((uintptr_t)t >> PG__HANDLE_GEN_SHIFT);
}

/* A call through a handle kept past connection_lost: a bug of the caller,
 * which asyncio forgives (a lost transport drops writes and ignores the
 * rest). Counted; debug builds stop here. */
static void pg__stream_stale(const pg__stream *s)
{
    s->host->stale_calls++;
    assert(!s->host->stale_assert && "a pg_transport used after its connection_lost");
}

/* The stream behind the handle of a transport method, or NULL when the
 * handle is stale (its generation is not its block's any more). */
static inline pg__stream *pg__live(const pg_transport *t)
{
    pg__stream *s = pg__stream_of(t);
    if (s->gen == pg__handle_gen(t))
        return s;
    pg__stream_stale(s);
    return NULL;
}

/* ---- the driver --------------------------------------------------------- */

static void pg__stream_force_close(pg__stream *s, int error);

/* Asks the driver for an interest only when it changes. 0 or -errno. */
static int pg__want(pg__stream *s, unsigned which, bool on)
{
    if (((s->want & which) != 0) == on)
        return 0;
    int r = which == PG__WANT_READ ? s->drv_ops->want_read(s->drv, on) : s->drv_ops->want_write(s->drv, on);
    if (r == 0)
        s->want = (uint8_t)(on ? s->want | which : s->want & ~which);
    return r;
}

/* Stopping an interest cannot fail the caller: a driver that fails to stop
 * one (e.g. EPOLL_CTL_MOD failing) has a broken connection. */
static void pg__unwant(pg__stream *s, unsigned which)
{
    int r = pg__want(s, which, false);
    if (r < 0) {
        s->want &= (uint8_t)~which; /* never asked again */
        pg__stream_force_close(s, r);
    }
}

/* The connection is ending: no more events wanted (errors do not matter
 * any more; the driver's close() releases everything). */
static void pg__unwant_all(pg__stream *s)
{
    if (s->want & PG__WANT_READ)
        (void)s->drv_ops->want_read(s->drv, false);
    if (s->want & PG__WANT_WRITE)
        (void)s->drv_ops->want_write(s->drv, false);
    s->want = 0;
}

/* ---- the write buffer --------------------------------------------------- */

/* Makes room for extra more bytes at wbuf + wlen. */
static int pg__wbuf_reserve(pg__stream *s, size_t extra)
{
    size_t used = pg__wbuf_len(s);
    if (extra > SIZE_MAX / 2 - used)
        return -ENOMEM;
    if (s->wbuf == NULL)
        s->wbuf = pg__host_take_wbuf(s->host, &s->wcap);
    if (s->wlen + extra <= s->wcap)
        return 0;
    if (s->whead > 0) { /* compact */
        memmove(s->wbuf, s->wbuf + s->whead, used);
        s->whead = 0;
        s->wlen = used;
    }
    if (used + extra <= s->wcap)
        return 0;
    size_t cap = s->wcap * 2;
    if (cap < used + extra)
        cap = used + extra;
    if (cap < 1024)
        cap = 1024;
    uint8_t *p = realloc(s->wbuf, cap);
    if (p == NULL)
        return -ENOMEM;
    s->wbuf = p;
    s->wcap = cap;
    return 0;
}

static void pg__wbuf_append(pg__stream *s, const void *data, size_t len)
{
    assert(s->wlen + len <= s->wcap);
    memcpy(s->wbuf + s->wlen, data, len);
    s->wlen += len;
}

/* Idle connections keep no buffer: it goes back to the host. */
static void pg__wbuf_clear(pg__stream *s)
{
    pg__host_give_wbuf(s->host, s->wbuf, s->wcap);
    s->wbuf = NULL;
    s->whead = s->wlen = s->wcap = 0;
}

static void pg__wbuf_consume(pg__stream *s, size_t n)
{
    assert(n <= pg__wbuf_len(s));
    s->whead += n;
    if (s->whead == s->wlen)
        pg__wbuf_clear(s);
}

/* ---- protocol callbacks, traced ----------------------------------------- */

static void pg__stream_maybe_pause(pg__stream *s)
{
    size_t size = pg__stream_buffered(s);
    /* Strictly above high; and never before connection_made. */
    if (size <= s->high || s->flow != PG__FLOW_RUNNING || s->proto != PG__PROTO_CONNECTED)
        return;
    s->flow = PG__FLOW_PAUSED_PROTOCOL;
    PG__TRACE_SIZE(s->trace_id, "pause_writing", size);
    if (s->protocol.ops->pause_writing != NULL)
        s->protocol.ops->pause_writing(s->protocol.self);
}

static void pg__stream_maybe_resume(pg__stream *s)
{
    size_t size = pg__stream_buffered(s);
    if (s->flow != PG__FLOW_PAUSED_PROTOCOL || size > s->low)
        return;
    s->flow = PG__FLOW_RUNNING;
    PG__TRACE_SIZE(s->trace_id, "resume_writing", size);
    if (s->protocol.ops->resume_writing != NULL)
        s->protocol.ops->resume_writing(s->protocol.self);
}

static void pg__stream_connection_made(void *arg)
{
    pg__stream *s = arg;
    assert(s->proto == PG__PROTO_NEW);
    s->proto = PG__PROTO_CONNECTED;
    PG__TRACE(s->trace_id, "connection_made");
    if (s->protocol.ops->connection_made != NULL)
        s->protocol.ops->connection_made(s->protocol.self, pg__stream_handle(s));
    /* Bytes written before connection_made may already be above high. */
    pg__stream_maybe_pause(s);
}

/* asyncio's _call_connection_lost: the protocol's last callback, then the
 * driver ends the connection and the transport is gone. */
static void pg__stream_finish(pg__stream *s, int error)
{
    assert(s->state == PG__STREAM_LOST);
    assert(s->proto != PG__PROTO_LOST);
    if (s->proto == PG__PROTO_CONNECTED) {
        s->proto = PG__PROTO_LOST;
        PG__TRACE_ERROR(s->trace_id, "connection_lost", error);
        if (s->protocol.ops->connection_lost != NULL)
            s->protocol.ops->connection_lost(s->protocol.self, error);
    }
    pg__host_give_wbuf(s->host, s->wbuf, s->wcap);
    if (s->held != NULL)
        pg__held_free(s);
    const pg_stream_driver_ops *ops = s->drv_ops;
    void *drv = s->drv;
    s->gen++; /* every handle of this connection is stale from here on */
    if (s->flags & PG__STREAM_OWNED)
        pg__stream_block_put(s->host, s);
    ops->close(drv); /* gives the block back when the driver holds it */
}

static void pg__stream_lost_cb(void *arg)
{
    pg__stream *s = arg;
    pg__stream_finish(s, s->lost_error);
}

/* asyncio's _force_close: drop the buffer, connection_lost(error) next turn.
 * Interests are left to the driver's close(): nothing reaches the core once
 * it is LOST. */
static void pg__stream_force_close(pg__stream *s, int error)
{
    if (s->state == PG__STREAM_LOST)
        return;
    if (pg__wbuf_len(s) > 0)
        pg__wbuf_clear(s);
    s->inflight = 0; /* asyncio's proactor: the pending write is dropped too */
    s->state = PG__STREAM_LOST;
    s->lost_error = (int16_t)(error >= INT16_MIN ? error : -EIO); /* errnos fit in 16 bits */
    pg__unwant_all(s);
    pg__host_defer(s->host, pg__stream_lost_cb, s);
}

/* ---- reading ------------------------------------------------------------ */

void pg__stream_start_reading_now(pg__stream *s)
{
    if (s->held != NULL) {
        pg__held_schedule(s); /* what was read meanwhile first, from the host */
        return;
    }
    int r = pg__want(s, PG__WANT_READ, true);
    if (r < 0)
        pg__stream_force_close(s, r);
}

/* Deferred right after connection_made: a pause_reading() there wins. */
static void pg__stream_start_reading(void *arg)
{
    pg__stream *s = arg;
    if (pg__stream_reads(s))
        pg__stream_start_reading_now(s);
    else if ((s->flags & PG_STREAM_WRITE_ONLY) && s->state != PG__STREAM_LOST)
        pg__stream_start_reading_now(s); /* a write pipe watches for its reader going away */
}

static void pg__stream_close_now(pg__stream *s);

void pg_stream_read_eof(pg_transport *t)
{
    pg__stream *s = PG__STREAM(t);
    if (s->state == PG__STREAM_LOST)
        return;
    if (s->flags & PG_STREAM_WRITE_ONLY) {
        /* asyncio's _UnixWritePipeTransport._read_ready: a write pipe becomes
         * readable (or fails) only when its reader has gone away. */
        pg__stream_force_close(s, pg__stream_buffered(s) > 0 ? -EPIPE : 0);
        return;
    }
    PG__TRACE(s->trace_id, "eof_received");
    bool keep_open = false;
    if (s->protocol.ops->eof_received != NULL)
        keep_open = s->protocol.ops->eof_received(s->protocol.self);
    if (s->flags & PG_STREAM_READ_ONLY)
        keep_open = false; /* a read pipe ends at EOF, whatever the answer */
    if (keep_open) {
        /* Half-open: still writable, but there is nothing more to read. */
        s->rstate = PG__READ_EOF;
        pg__unwant(s, PG__WANT_READ);
    } else {
        pg__stream_close_now(s);
    }
}

/* asyncio's _read_ready__get_buffer. */
int pg_stream_read_buffer(pg_transport *t, size_t size_hint, uint8_t **buf, size_t *len)
{
    pg__stream *s = PG__STREAM(t);
    if (!pg__stream_reads(s))
        return -EAGAIN;
    if (s->protocol.ops->get_buffer == NULL)
        return 0;
    *len = 0;
    PG__TRACE_SIZE(s->trace_id, "get_buffer", size_hint);
    *buf = s->protocol.ops->get_buffer(s->protocol.self, size_hint, len);
    if (!pg__stream_reads(s))
        return -EAGAIN; /* closed or paused from inside get_buffer */
    if (*buf == NULL || *len == 0) {
        /* asyncio: "get_buffer() returned an empty buffer", a fatal error. */
        pg__stream_force_close(s, -ENOBUFS);
        return -ENOBUFS;
    }
    return 1;
}

void pg_stream_read_done(pg_transport *t, size_t n)
{
    pg__stream *s = PG__STREAM(t);
    if (s->state == PG__STREAM_LOST || n == 0)
        return;
    PG__TRACE_SIZE(s->trace_id, "buffer_updated", n);
    if (s->protocol.ops->buffer_updated != NULL)
        s->protocol.ops->buffer_updated(s->protocol.self, n);
}

void pg__stream_data_received_traced(pg__stream *s, const uint8_t *data, size_t n)
{
    PG__TRACE_SIZE(s->trace_id, "data_received", n);
    if (s->protocol.ops->data_received != NULL)
        s->protocol.ops->data_received(s->protocol.self, data, n);
}

size_t pg_stream_read(pg_transport *t, const uint8_t *data, size_t n)
{
    pg__stream *s = PG__STREAM(t);
    if (s->state != PG__STREAM_OPEN)
        return n; /* the connection is ending: nothing more is read */
    if (s->protocol.ops->get_buffer == NULL && pg__stream_reads(s)) { /* the common case first */
        pg__stream_data_received(s, data, n);
        return n;
    }
    size_t taken = 0;
    while (taken < n) {
        uint8_t *buf;
        size_t room;
        int r = pg_stream_read_buffer(t, n - taken, &buf, &room);
        if (r < 0)
            return s->state == PG__STREAM_OPEN ? taken : n; /* paused: the caller holds the rest */
        if (r == 0) {
            pg__stream_data_received(s, data + taken, n - taken);
            return n;
        }
        size_t k = room < n - taken ? room : n - taken;
        memcpy(buf, data + taken, k);
        pg_stream_read_done(t, k);
        taken += k;
    }
    return n;
}

void pg_stream_fail(pg_transport *t, int error)
{
    pg__stream_force_close(PG__STREAM(t), error);
}

/* ---- writing ------------------------------------------------------------ */

/* asyncio's _write_send, and what follows once everything went: resume,
 * the close's connection_lost, the pending write_eof. May free the
 * transport: callers touch it no more. */
static void pg__stream_write_more(pg__stream *s)
{
    if (pg__wbuf_len(s) > 0) {
        struct iovec iov = { .iov_base = s->wbuf + s->whead, .iov_len = pg__wbuf_len(s) };
        ssize_t n = s->drv_ops->writev(s->drv, &iov, 1);
        if (n == 0)
            return;
        if (n < 0) {
            pg__stream_force_close(s, (int)n);
            return;
        }
        pg__wbuf_consume(s, (size_t)n);
    }
    pg__stream_maybe_resume(s); /* may write, close or abort */
    if (s->state == PG__STREAM_LOST || pg__stream_buffered(s) > 0)
        return;
    pg__unwant(s, PG__WANT_WRITE);
    if (s->state == PG__STREAM_LOST)
        return;
    if (s->state == PG__STREAM_CLOSING && (s->flags & PG__STREAM_LINGER)) {
        /* Drained after close(): the driver's closing handshake ends it. */
        ((const pg__linger_driver_ops *)s->drv_ops)->closing(s->drv, true);
    } else if (s->state == PG__STREAM_CLOSING) {
        /* Drained after close(): connection_lost now, as asyncio does. */
        s->state = PG__STREAM_LOST;
        pg__host_unreserve(s->host);
        pg__stream_finish(s, 0);
    } else if (s->wstate == PG__WRITE_EOF_PENDING) {
        s->wstate = PG__WRITE_EOF_WRITTEN;
        (void)s->drv_ops->shutdown_write(s->drv);
    }
}

void pg_stream_writable(pg_transport *t)
{
    pg__stream *s = PG__STREAM(t);
    if (s->state != PG__STREAM_LOST && (s->want & PG__WANT_WRITE))
        pg__stream_write_more(s);
}

void pg__stream_sending(pg__stream *s, size_t n)
{
    assert(n <= UINT32_MAX - s->inflight);
    s->inflight += (uint32_t)n;
}

void pg__stream_sent(pg__stream *s, size_t n, int error)
{
    if (s->state == PG__STREAM_LOST)
        return; /* dropped with the buffer */
    assert(n <= s->inflight);
    s->inflight -= (uint32_t)n;
    if (error < 0) {
        pg__stream_force_close(s, error);
        return;
    }
    /* The write buffer goes next, unless corked (the uncork sends it). */
    if (pg__wbuf_len(s) == 0 || (s->want & PG__WANT_WRITE))
        pg__stream_write_more(s);
}

/* Buffers what the fast path left (sent bytes were taken already) and makes
 * sure write interest is on. */
static int pg__stream_buffer_rest(pg__stream *s, const struct iovec *iov, int iovcnt, size_t skip, size_t rest)
{
    int r = pg__wbuf_reserve(s, rest);
    if (r == 0)
        r = pg__want(s, PG__WANT_WRITE, true);
    if (r < 0) {
        /* Part of the stream may be gone already: the connection is broken. */
        pg__stream_force_close(s, r);
        return r;
    }
    for (int i = 0; i < iovcnt; i++) {
        size_t len = iov[i].iov_len;
        if (skip >= len) {
            skip -= len;
            continue;
        }
        pg__wbuf_append(s, (const uint8_t *)iov[i].iov_base + skip, len - skip);
        skip = 0;
    }
    pg__stream_maybe_pause(s);
    return 0;
}

/* Sends what is buffered now and wants writable for the rest: the end of a
 * cork. May close the stream (an error), and call pause_writing if
 * may_pause (not from close and write_eof: no write follows them). */
static void pg__stream_flush(pg__stream *s, bool may_pause)
{
    if (pg__wbuf_len(s) == 0 || (s->want & PG__WANT_WRITE) || s->state == PG__STREAM_LOST)
        return; /* nothing, or writable will send it */
    struct iovec iov = { .iov_base = s->wbuf + s->whead, .iov_len = pg__wbuf_len(s) };
    ssize_t n = s->drv_ops->writev(s->drv, &iov, 1);
    if (n < 0) {
        pg__stream_force_close(s, (int)n);
        return;
    }
    pg__wbuf_consume(s, (size_t)n);
    if (pg__wbuf_len(s) == 0) {
        if (may_pause)
            pg__stream_maybe_pause(s); /* what is in flight may be above high */
        return;
    }
    int r = pg__want(s, PG__WANT_WRITE, true);
    if (r < 0) {
        pg__stream_force_close(s, r);
        return;
    }
    if (may_pause)
        pg__stream_maybe_pause(s);
}

/* A corked write: buffered without a system call, unless the buffer goes
 * above the high watermark (then what the kernel takes leaves at once, and
 * only a full kernel buffer pauses the protocol). */
static int pg__stream_buffer_corked(pg__stream *s, const struct iovec *iov, int iovcnt, size_t total)
{
    int r = pg__wbuf_reserve(s, total);
    if (r < 0) {
        pg__stream_force_close(s, r);
        return r;
    }
    for (int i = 0; i < iovcnt; i++)
        if (iov[i].iov_len > 0)
            pg__wbuf_append(s, iov[i].iov_base, iov[i].iov_len);
    if (pg__stream_buffered(s) > s->high)
        pg__stream_flush(s, true);
    return 0;
}

void pg__stream_cork(pg_transport *t)
{
    pg__stream *s = pg__live(t);
    if (s != NULL && s->corked < UINT8_MAX)
        s->corked++;
}

void pg__stream_uncork(pg_transport *t)
{
    pg__stream *s = pg__live(t);
    if (s == NULL || s->corked == 0 || --s->corked > 0)
        return;
    pg__stream_flush(s, true);
}

static int pg__stream_writelines_now(pg__stream *s, const struct iovec *iov, int iovcnt)
{
    if (iovcnt < 0 || (iovcnt > 0 && iov == NULL))
        return -EINVAL;
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len > 0 && iov[i].iov_base == NULL)
            return -EINVAL;
        if (iov[i].iov_len > SIZE_MAX / 2 - total)
            return -EINVAL;
        total += iov[i].iov_len;
    }
    if (s->flags & PG_STREAM_READ_ONLY)
        return -ENOTSUP;
    if (s->wstate != PG__WRITE_OPEN)
        return -EPIPE;
    if (total == 0)
        return 0;
    if (s->state == PG__STREAM_LOST)
        return 0; /* asyncio drops it (and logs after a few) */
    if ((s->flags & PG_STREAM_WRITE_ONLY) && s->state != PG__STREAM_OPEN)
        return 0; /* a write pipe drops writes once closing, as asyncio */

    if (s->corked > 0 && !(s->want & PG__WANT_WRITE))
        return pg__stream_buffer_corked(s, iov, iovcnt, total);
    size_t sent = 0;
    if (pg__wbuf_len(s) == 0) {
        /* Nothing queued: try at once (what the driver cannot take in one
         * gather, e.g. beyond IOV_MAX, is buffered). */
        ssize_t n = s->drv_ops->writev(s->drv, iov, iovcnt < IOV_MAX ? iovcnt : IOV_MAX);
        if (n < 0) {
            pg__stream_force_close(s, (int)n);
            return 0;
        }
        sent = (size_t)n;
        if (sent == total) {
            pg__stream_maybe_pause(s); /* what is in flight may be above high */
            return 0;
        }
    }
    return pg__stream_buffer_rest(s, iov, iovcnt, sent, total - sent);
}

static int pg__stream_writelines(pg_transport *t, const struct iovec *iov, int iovcnt)
{
    pg__stream *s = pg__live(t);
    return s != NULL ? pg__stream_writelines_now(s, iov, iovcnt) : 0; /* stale: dropped */
}

/* The fast path's write when the driver took part of it (the rest is
 * buffered), failed, or took it all into flight above the high watermark
 * (in flight counts as buffered): out of the fast path. */
PG__COLD static int pg__stream_write_rest(pg__stream *s, const void *data, size_t len, ssize_t n)
{
    if (n < 0) {
        pg__stream_force_close(s, (int)n);
        return 0;
    }
    if ((size_t)n == len) {
        pg__stream_maybe_pause(s);
        return 0;
    }
    struct iovec iov = { .iov_base = (void *)data, .iov_len = len };
    return pg__stream_buffer_rest(s, &iov, 1, (size_t)n, len - (size_t)n);
}

/* Every write the fast path leaves (below): out of its way. */
PG__COLD static int pg__stream_write_slow(pg_transport *t, const void *data, size_t len)
{
    pg__stream *s = pg__live(t);
    if (s == NULL)
        return 0; /* stale: dropped, as on a lost transport */
    if (len > 0 && data == NULL)
        return -EINVAL;
    struct iovec iov = { .iov_base = (void *)data, .iov_len = len };
    return pg__stream_writelines_now(s, &iov, 1);
}

static int pg__stream_write(pg_transport *t, const void *data, size_t len)
{
    pg__stream *s = pg__stream_of(t);
    struct iovec iov = { .iov_base = (void *)data, .iov_len = len };
    /* The hot path of every request/response protocol: a live handle of an
     * open stream with nothing queued sends at once, without writelines'
     * generality. One chain of tests; a stale handle, bad arguments and
     * every other state take the path below. */
    if (s->gen == pg__handle_gen(t) && s->state == PG__STREAM_OPEN && s->wstate == PG__WRITE_OPEN
        && s->wlen == s->whead && s->corked == 0 && len > 0 && data != NULL && !(s->flags & PG_STREAM_READ_ONLY)) {
        ssize_t n = s->drv_ops->writev(s->drv, &iov, 1);
        /* iov's fields, not len and data: read back from memory, they need
         * no registers kept across the call (bench/ counts the saves). */
        if (n == (ssize_t)iov.iov_len && s->inflight <= s->high)
            return 0;
        return pg__stream_write_rest(s, iov.iov_base, iov.iov_len, n);
    }
    return pg__stream_write_slow(t, data, len);
}

static int pg__stream_write_eof(pg_transport *t)
{
    pg__stream *s = pg__live(t);
    if (s == NULL)
        return 0; /* stale: as on a lost transport */
    if (!(s->flags & PG_STREAM_CAN_WRITE_EOF))
        return -ENOTSUP;
    if (s->flags & PG_STREAM_WRITE_ONLY) {
        /* A pipe's EOF is its closing: flush, close, connection_lost(0). */
        pg__stream_close_now(s);
        return 0;
    }
    if (s->state != PG__STREAM_OPEN || s->wstate != PG__WRITE_OPEN)
        return 0;
    pg__stream_flush(s, false); /* corked bytes go first */
    if (s->state != PG__STREAM_OPEN)
        return 0;
    if (pg__stream_buffered(s) > 0) {
        s->wstate = PG__WRITE_EOF_PENDING;
        return 0;
    }
    s->wstate = PG__WRITE_EOF_WRITTEN;
    return s->drv_ops->shutdown_write(s->drv);
}

static bool pg__stream_can_write_eof(const pg_transport *t)
{
    const pg__stream *s = pg__live(t);
    return s != NULL && (s->flags & PG_STREAM_CAN_WRITE_EOF) != 0;
}

/* ---- closing ------------------------------------------------------------ */

static void pg__stream_close_now(pg__stream *s)
{
    if (s->state != PG__STREAM_OPEN)
        return;
    pg__stream_flush(s, false); /* corked bytes go first */
    if (s->state != PG__STREAM_OPEN)
        return;
    s->state = PG__STREAM_CLOSING;
    if (s->flags & PG__STREAM_LINGER) {
        pg__unwant(s, PG__WANT_READ);
        if (s->state == PG__STREAM_CLOSING)
            ((const pg__linger_driver_ops *)s->drv_ops)->closing(s->drv, pg__stream_buffered(s) == 0);
        return;
    }
    if (pg__stream_buffered(s) == 0) {
        s->state = PG__STREAM_LOST;
        s->lost_error = 0;
        pg__unwant_all(s);
        pg__host_defer(s->host, pg__stream_lost_cb, s);
    } else if (!(s->flags & PG_STREAM_WRITE_ONLY)) {
        pg__unwant(s, PG__WANT_READ); /* a flushing write pipe still watches its reader */
    }
    /* else writable flushes, then calls connection_lost(0) */
}

static void pg__stream_close(pg_transport *t)
{
    pg__stream *s = pg__live(t);
    if (s != NULL)
        pg__stream_close_now(s);
}

static void pg__stream_abort(pg_transport *t)
{
    pg__stream *s = pg__live(t);
    if (s != NULL)
        pg__stream_force_close(s, 0);
}

static bool pg__stream_is_closing(const pg_transport *t)
{
    const pg__stream *s = pg__live(t);
    return s == NULL || s->state != PG__STREAM_OPEN;
}

/* ---- flow control ------------------------------------------------------- */

static void pg__stream_pause_reading(pg_transport *t)
{
    pg__stream *s = pg__live(t);
    if (s == NULL || !pg__stream_reads(s))
        return;
    s->rstate = PG__READ_PAUSED;
    pg__unwant(s, PG__WANT_READ);
}

static void pg__stream_resume_reading(pg_transport *t)
{
    pg__stream *s = pg__live(t);
    if (s == NULL || s->state != PG__STREAM_OPEN || s->rstate != PG__READ_PAUSED || (s->flags & PG_STREAM_WRITE_ONLY))
        return;
    s->rstate = PG__READ_ACTIVE;
    pg__stream_start_reading_now(s);
}

static bool pg__stream_is_reading(const pg_transport *t)
{
    const pg__stream *s = pg__live(t);
    return s != NULL && pg__stream_reads(s);
}

static size_t pg__stream_get_write_buffer_size(const pg_transport *t)
{
    const pg__stream *s = pg__live(t);
    return s != NULL ? pg__stream_buffered(s) : 0;
}

static void pg__stream_get_write_buffer_limits(const pg_transport *t, size_t *high, size_t *low)
{
    const pg__stream *s = pg__live(t);
    if (high != NULL)
        *high = s != NULL ? s->high : 0;
    if (low != NULL)
        *low = s != NULL ? s->low : 0;
}

static int pg__stream_set_write_buffer_limits(pg_transport *t, size_t high, size_t low)
{
    pg__stream *s = pg__live(t);
    if (s == NULL)
        return -EBADF;
    int r = pg__write_buffer_limits(high, low, &s->high, &s->low);
    if (r == 0)
        pg__stream_maybe_pause(s); /* never resumes */
    return r;
}

static int pg__stream_get_extra_info(const pg_transport *t, pg_extra_key key, pg_extra_info *out)
{
    const pg__stream *s = pg__live(t);
    if (s == NULL)
        return -EBADF;
    if (out == NULL)
        return -EINVAL;
    memset(out, 0, sizeof *out);
    out->fd = -1;
    if (s->drv_ops->get_extra_info == NULL)
        return -ENOENT;
    return s->drv_ops->get_extra_info(s->drv, key, out);
}

/* asyncio's set_protocol / get_protocol. The read path looks at the protocol
 * at each read, so a buffered protocol can replace a plain one and back. */
static int pg__stream_set_protocol(pg_transport *t, const pg_protocol *protocol)
{
    pg__stream *s = pg__live(t);
    if (s == NULL)
        return -EBADF;
    if (protocol == NULL || protocol->ops == NULL)
        return -EINVAL;
    s->protocol = *protocol;
    return 0;
}

static int pg__stream_get_protocol(const pg_transport *t, pg_protocol *out)
{
    const pg__stream *s = pg__live(t);
    if (s == NULL)
        return -EBADF;
    if (out == NULL)
        return -EINVAL;
    *out = s->protocol;
    return 0;
}

static const pg_transport_ops pg__stream_ops = {
    .write = pg__stream_write,
    .writelines = pg__stream_writelines,
    .write_eof = pg__stream_write_eof,
    .can_write_eof = pg__stream_can_write_eof,
    .close = pg__stream_close,
    .abort = pg__stream_abort,
    .is_closing = pg__stream_is_closing,
    .pause_reading = pg__stream_pause_reading,
    .resume_reading = pg__stream_resume_reading,
    .is_reading = pg__stream_is_reading,
    .get_write_buffer_size = pg__stream_get_write_buffer_size,
    .get_write_buffer_limits = pg__stream_get_write_buffer_limits,
    .set_write_buffer_limits = pg__stream_set_write_buffer_limits,
    .get_extra_info = pg__stream_get_extra_info,
    .set_protocol = pg__stream_set_protocol,
    .get_protocol = pg__stream_get_protocol,
};

int pg_transport_fail(pg_transport *t, int error)
{
    if (t == NULL || error >= 0)
        return -EINVAL;
    if (pg__transport_ops(t) != &pg__stream_ops)
        return -ENOTSUP;
    pg__stream *s = pg__live(t);
    if (s != NULL)
        pg__stream_force_close(s, error); /* a no-op once lost */
    return 0;
}

int pg__transport_driver(const pg_transport *t, const pg_stream_driver_ops *ops, void **out)
{
    *out = NULL;
    if (pg__transport_ops(t) != &pg__stream_ops)
        return -ENOTSUP;
    const pg__stream *s = PG__STREAM(t);
    if (s->gen != pg__handle_gen(t))
        return -EBADF; /* stale: not counted, this only reads */
    if (s->drv_ops != ops)
        return -ENOTSUP;
    *out = s->drv;
    return 0;
}

uint32_t pg__transport_trace_id(const pg_transport *t)
{
    return t != NULL && pg__transport_ops(t) == &pg__stream_ops ? PG__STREAM(t)->trace_id : 0;
}

pg_host *pg_transport_host(const pg_transport *t)
{
    if (t == NULL || pg__transport_ops(t) != &pg__stream_ops)
        return NULL;
    pg__stream *s = pg__live(t);
    return s != NULL ? s->host : NULL;
}

/* ---- switching protocols ------------------------------------------------ */

int pg_transport_switch_protocol(pg_transport *t, pg_protocol_factory factory, void *arg, const void *pending,
                                 size_t len)
{
    if (t == NULL || factory == NULL || (len > 0 && pending == NULL))
        return -EINVAL;
    if (pg__transport_ops(t) == &pg__stream_ops) {
        const pg__stream *s = pg__live(t);
        /* Not before connection_made (the runtime's would go to the next
         * protocol too), not after connection_lost. */
        if (s == NULL || s->proto != PG__PROTO_CONNECTED)
            return -EINVAL;
    }
    pg_protocol current;
    int r = pg_transport_get_protocol(t, &current);
    if (r < 0)
        return r; /* -ENOTSUP: this transport cannot switch */
    pg_protocol next;
    r = pg__make_protocol(factory, arg, &next);
    if (r < 0)
        return r;
    r = pg_transport_set_protocol(t, &next);
    if (r < 0)
        return r;
    /* asyncio leaves connection_made to the caller of set_protocol. */
    if (next.ops->connection_made != NULL)
        next.ops->connection_made(next.self, t);
    /* Writing paused (a peer slow to read the current protocol's last
     * replies): the next protocol hears of it, so that the resume_writing it
     * gets once the buffer drains has its pause, and holds its own writes. */
    if (pg__transport_ops(t) == &pg__stream_ops) {
        pg__stream *s = pg__live(t);
        if (s != NULL && s->proto == PG__PROTO_CONNECTED && s->flow == PG__FLOW_PAUSED_PROTOCOL &&
            s->protocol.self == next.self) {
            PG__TRACE_SIZE(s->trace_id, "pause_writing", pg__stream_buffered(s));
            if (next.ops->pause_writing != NULL)
                next.ops->pause_writing(next.self);
        }
    }
    /* Bytes the current protocol read that belong to the next one, traced
     * as the next protocol's reads: the trace then says the same whether
     * they came in the read that carried the switch or in a later one. */
    if (len == 0)
        return 0;
    uint32_t trace_id = pg__transport_ops(t) == &pg__stream_ops ? PG__STREAM(t)->trace_id : 0;
    const uint8_t *rest = pending;
    if (next.ops->get_buffer == NULL) {
        PG__TRACE_SIZE(trace_id, "data_received", len);
        if (next.ops->data_received != NULL)
            next.ops->data_received(next.self, rest, len);
        return 0;
    }
    while (len > 0 && !pg_transport_is_closing(t)) {
        size_t room = 0;
        PG__TRACE_SIZE(trace_id, "get_buffer", len);
        uint8_t *buf = next.ops->get_buffer(next.self, len, &room);
        if (buf == NULL || room == 0) {
            pg_transport_abort(t); /* asyncio: an empty buffer is fatal */
            break;
        }
        size_t k = room < len ? room : len;
        memcpy(buf, rest, k);
        PG__TRACE_SIZE(trace_id, "buffer_updated", k);
        if (next.ops->buffer_updated != NULL)
            next.ops->buffer_updated(next.self, k);
        rest += k;
        len -= k;
    }
    return 0;
}

/* ---- creation ----------------------------------------------------------- */

/* Three deferred calls: connection_made, the first read, connection_lost. */
#define PG__STREAM_SLOTS 3

int pg__make_protocol(pg_protocol_factory factory, void *arg, pg_protocol *out)
{
    memset(out, 0, sizeof *out);
    int r = factory(arg, out);
    if (r == 0 && out->ops == NULL)
        r = -EINVAL; /* a factory bug; the instance (if any) is the factory's */
    return r;
}

int pg__stream_init(pg__stream *s, pg_host *host, const pg_stream_driver_ops *ops, void *drv, unsigned flags)
{
    assert(host != NULL && ops != NULL);
    uint16_t gen = s->gen; /* the block's (pg__stream_block_get): older handles stay stale */
    memset(s, 0, sizeof *s);
    s->gen = gen;
    for (int reserved = 0; reserved < PG__STREAM_SLOTS; reserved++) {
        int r = pg__host_reserve(host);
        if (r < 0) {
            while (reserved-- > 0)
                pg__host_unreserve(host);
            return r;
        }
    }
    s->base.ops = &pg__stream_ops;
    s->host = host;
    s->drv_ops = ops;
    s->drv = drv;
    s->high = PG_DEFAULT_HIGH_WATER;
    s->low = PG_DEFAULT_HIGH_WATER / 4;
    s->state = PG__STREAM_OPEN;
    s->wstate = PG__WRITE_OPEN;
    s->rstate = PG__READ_ACTIVE;
    s->flow = PG__FLOW_RUNNING;
    s->proto = PG__PROTO_NEW;
    s->flags = (uint8_t)flags;
    return 0;
}

void pg__stream_discard(pg__stream *s)
{
    for (int i = 0; i < PG__STREAM_SLOTS; i++)
        pg__host_unreserve(s->host);
}

pg_transport *pg__stream_start(pg__stream *s, const pg_protocol *protocol)
{
    assert(protocol != NULL && protocol->ops != NULL);
    s->protocol = *protocol;
    s->trace_id = (s->flags & PG_STREAM_UNTRACED) ? 0 : pg__trace_new_conn();
    /* asyncio: call_soon(connection_made); call_soon(_add_reader). */
    pg__host_defer(s->host, pg__stream_connection_made, s);
    pg__host_defer(s->host, pg__stream_start_reading, s);
    return pg__stream_handle(s);
}

int pg_stream_new(pg_host *host, const pg_stream_driver_ops *ops, void *driver, unsigned flags,
                  pg_protocol_factory factory, void *arg, pg_transport **out)
{
    const unsigned known = PG_STREAM_CAN_WRITE_EOF | PG_STREAM_READ_ONLY | PG_STREAM_WRITE_ONLY | PG_STREAM_UNTRACED;
    if (host == NULL || ops == NULL || ops->writev == NULL || ops->shutdown_write == NULL || ops->want_read == NULL
        || ops->want_write == NULL || ops->close == NULL || factory == NULL || (flags & ~known) != 0
        || (flags & (PG_STREAM_READ_ONLY | PG_STREAM_WRITE_ONLY)) == (PG_STREAM_READ_ONLY | PG_STREAM_WRITE_ONLY))
        return -EINVAL;
    pg__stream *s = pg__stream_block_get(host);
    if (s == NULL)
        return -ENOMEM;
    int r = pg__stream_init(s, host, ops, driver, flags | PG__STREAM_OWNED);
    if (r < 0) {
        pg__stream_block_put(host, s);
        return r;
    }
    /* Last: from here on nothing can fail, so the protocol never leaks. */
    pg_protocol protocol;
    r = pg__make_protocol(factory, arg, &protocol);
    if (r < 0) {
        pg__stream_discard(s);
        pg__stream_block_put(host, s);
        return r;
    }
    pg_transport *t = pg__stream_start(s, &protocol);
    if (out != NULL)
        *out = t;
    return 0;
}
