/* The stream transport shared by every fd-based stream (TCP, Unix sockets,
 * read and write pipes): buffering, watermarks, EOF, close/abort, reading
 * into the loop's buffer or a buffered protocol's own, protocol switching.
 *
 * It follows CPython's _SelectorSocketTransport (Lib/asyncio/selector_events.py)
 * step by step, and _UnixReadPipeTransport / _UnixWritePipeTransport
 * (unix_events.py) where the PG__STREAM_*_PIPE flags say so; the comments name
 * the asyncio counterpart where it helps.
 *
 * Invariants:
 *   - the write watcher is on whenever bytes are buffered (and, while
 *     resume_writing runs from write-ready, for a moment after they drained);
 *   - connection_lost runs once, from a reserved ready-queue slot (or directly
 *     from write-ready when a close() drains, as asyncio does), and then the
 *     transport goes back to the loop's cache or is freed: nothing may use it
 *     afterwards. */
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "protogen/stream.h"

#include "internal.h"

/* The connection as a whole (asyncio's _closing and _conn_lost). */
typedef enum pg__stream_state {
    PG__STREAM_OPEN,
    PG__STREAM_CLOSING, /* close() called, flushing the buffer */
    PG__STREAM_LOST,    /* connection_lost is scheduled or running */
} pg__stream_state;

/* The write side (asyncio's _eof). */
typedef enum pg__write_state {
    PG__WRITE_OPEN,
    PG__WRITE_EOF_PENDING, /* write_eof() called, SHUT_WR once the buffer drains */
    PG__WRITE_EOF_WRITTEN,
} pg__write_state;

typedef enum pg__read_state {
    PG__READ_ACTIVE,
    PG__READ_PAUSED,
    PG__READ_EOF, /* the peer's EOF was kept open (half-close): never read again */
} pg__read_state;

typedef enum pg__flow_state {
    PG__FLOW_RUNNING,
    PG__FLOW_PAUSED_PROTOCOL,
} pg__flow_state;

/* Which protocol callbacks have run. */
typedef enum pg__proto_state {
    PG__PROTO_NEW,
    PG__PROTO_CONNECTED,
    PG__PROTO_LOST,
} pg__proto_state;

struct pg__stream {
    pg_transport base; /* first: the public header */
    pg_loop *loop;
    pg__io io;
    pg_protocol protocol;
    /* Write buffer: bytes [whead, wlen) of wbuf are pending; given back to the
     * loop when drained (pg__loop_give_wbuf). */
    uint8_t *wbuf;
    size_t whead;
    size_t wlen;
    size_t wcap;
    size_t high;
    size_t low;
    int lost_error;
    uint32_t trace_id;
    uint8_t state;  /* pg__stream_state */
    uint8_t wstate; /* pg__write_state */
    uint8_t rstate; /* pg__read_state */
    uint8_t flow;   /* pg__flow_state */
    uint8_t proto;  /* pg__proto_state */
    uint8_t flags;  /* PG__STREAM_* */
};

size_t pg__stream_sizeof(void)
{
    return sizeof(pg__stream);
}

#define PG__STREAM(t) ((pg__stream *)(void *)(t))

static size_t pg__stream_buffered(const pg__stream *s)
{
    return s->wlen - s->whead;
}

/* ---- system calls ------------------------------------------------------- */

/* Bytes written, 0 when the kernel takes nothing now, or a negative errno. */
static ssize_t pg__stream_send(pg__stream *s, const void *data, size_t len)
{
    ssize_t n;
    if (s->flags & PG__STREAM_SOCKET) {
        PG__RETRY_EINTR(n, send(s->io.fd, data, len, MSG_NOSIGNAL));
    } else {
        struct iovec iov = { .iov_base = (void *)data, .iov_len = len };
        n = pg__write_nosigpipe(s->io.fd, &iov, 1);
    }
    if (n >= 0)
        return n;
    return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
}

static ssize_t pg__stream_sendv(pg__stream *s, const struct iovec *iov, int iovcnt)
{
    ssize_t n;
    if (iovcnt > IOV_MAX)
        iovcnt = IOV_MAX; /* the rest is buffered */
    if (s->flags & PG__STREAM_SOCKET) {
        struct msghdr msg;
        memset(&msg, 0, sizeof msg);
        msg.msg_iov = (struct iovec *)iov;
        msg.msg_iovlen = (size_t)iovcnt;
        PG__RETRY_EINTR(n, sendmsg(s->io.fd, &msg, MSG_NOSIGNAL));
    } else {
        n = pg__write_nosigpipe(s->io.fd, iov, iovcnt);
    }
    if (n >= 0)
        return n;
    return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
}

/* ---- the write buffer --------------------------------------------------- */

/* Makes room for extra more bytes at wbuf + wlen. */
static int pg__wbuf_reserve(pg__stream *s, size_t extra)
{
    size_t used = pg__stream_buffered(s);
    if (extra > SIZE_MAX / 2 - used)
        return -ENOMEM;
    if (s->wbuf == NULL)
        s->wbuf = pg__loop_take_wbuf(s->loop, &s->wcap);
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

/* Idle connections keep no buffer: it goes back to the loop. */
static void pg__wbuf_clear(pg__stream *s)
{
    pg__loop_give_wbuf(s->loop, s->wbuf, s->wcap);
    s->wbuf = NULL;
    s->whead = s->wlen = s->wcap = 0;
}

static void pg__wbuf_consume(pg__stream *s, size_t n)
{
    assert(n <= pg__stream_buffered(s));
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
        s->protocol.ops->connection_made(s->protocol.self, &s->base);
    /* Bytes written before connection_made may already be above high. */
    pg__stream_maybe_pause(s);
}

/* asyncio's _call_connection_lost: the protocol's last callback, then the
 * transport is gone. */
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
    pg__io_stop(s->loop, &s->io, PG__IO_READ | PG__IO_WRITE);
    close(s->io.fd);
    pg__loop_give_wbuf(s->loop, s->wbuf, s->wcap);
    pg__loop_stream_put(s->loop, s);
}

static void pg__stream_lost_cb(void *arg)
{
    pg__stream *s = arg;
    pg__stream_finish(s, s->lost_error);
}

/* asyncio's _force_close: drop the buffer, connection_lost(error) next turn. */
static void pg__stream_force_close(pg__stream *s, int error)
{
    if (s->state == PG__STREAM_LOST)
        return;
    if (pg__stream_buffered(s) > 0) {
        pg__wbuf_clear(s);
        pg__io_stop(s->loop, &s->io, PG__IO_WRITE);
    }
    pg__io_stop(s->loop, &s->io, PG__IO_READ);
    s->state = PG__STREAM_LOST;
    s->lost_error = error;
    pg__loop_call_soon_reserved(s->loop, pg__stream_lost_cb, s);
}

/* ---- reading ------------------------------------------------------------ */

/* asyncio's is_reading(), except after a kept-open EOF: asyncio still says
 * true there, and a pause/resume would make it read the EOF and call
 * eof_received a second time. Here EOF ends reading for good. */
static bool pg__stream_reading(const pg__stream *s)
{
    return s->state == PG__STREAM_OPEN && s->rstate == PG__READ_ACTIVE && !(s->flags & PG__STREAM_WRITE_PIPE);
}

static int pg__stream_start_reading_now(pg__stream *s)
{
    int r = pg__io_start(s->loop, &s->io, PG__IO_READ);
    if (r < 0)
        pg__stream_force_close(s, r);
    return r;
}

/* Queued right after connection_made: a pause_reading() there wins. */
static void pg__stream_start_reading(void *arg)
{
    pg__stream *s = arg;
    if (pg__stream_reading(s))
        pg__stream_start_reading_now(s);
    else if ((s->flags & PG__STREAM_WATCH_READER) && s->state != PG__STREAM_LOST)
        pg__stream_start_reading_now(s); /* a write pipe watches for its reader going away */
}

static void pg__stream_close(pg_transport *t);

static void pg__stream_on_eof(pg__stream *s)
{
    PG__TRACE(s->trace_id, "eof_received");
    bool keep_open = false;
    if (s->protocol.ops->eof_received != NULL)
        keep_open = s->protocol.ops->eof_received(s->protocol.self);
    if (s->flags & PG__STREAM_READ_PIPE)
        keep_open = false; /* a read pipe ends at EOF, whatever the answer */
    if (keep_open) {
        /* Half-open: still writable, but there is nothing more to read. */
        s->rstate = PG__READ_EOF;
        pg__io_stop(s->loop, &s->io, PG__IO_READ);
    } else {
        pg__stream_close(&s->base);
    }
}

/* asyncio's _UnixWritePipeTransport._read_ready: a write pipe becomes
 * readable (or fails) only when its reader has gone away. */
static void pg__stream_reader_gone(pg__stream *s)
{
    pg__stream_force_close(s, pg__stream_buffered(s) > 0 ? -EPIPE : 0);
}

/* Where the next read goes: the loop's buffer, or a buffered protocol's own
 * (asyncio's _read_ready__get_buffer). NULL when the connection has ended. */
static uint8_t *pg__stream_read_target(pg__stream *s, size_t *len)
{
    if (s->protocol.ops->get_buffer == NULL) {
        *len = PG__READ_BUFFER_SIZE;
        uint8_t *buf = pg__loop_read_buffer(s->loop);
        if (buf == NULL)
            pg__stream_force_close(s, -ENOMEM);
        return buf;
    }
    *len = 0;
    PG__TRACE_SIZE(s->trace_id, "get_buffer", PG__READ_BUFFER_SIZE);
    uint8_t *buf = s->protocol.ops->get_buffer(s->protocol.self, PG__READ_BUFFER_SIZE, len);
    if (!pg__stream_reading(s))
        return NULL; /* closed or paused from inside get_buffer */
    if (buf == NULL || *len == 0) {
        /* asyncio: "get_buffer() returned an empty buffer", a fatal error. */
        pg__stream_force_close(s, -ENOBUFS);
        return NULL;
    }
    return buf;
}

static void pg__stream_read_ready(pg__stream *s)
{
    if (s->state == PG__STREAM_LOST)
        return;
    if (s->flags & PG__STREAM_WRITE_PIPE) {
        pg__stream_reader_gone(s);
        return;
    }
    size_t len;
    uint8_t *buf = pg__stream_read_target(s, &len);
    if (buf == NULL)
        return;
    ssize_t n;
    if (s->flags & PG__STREAM_SOCKET)
        PG__RETRY_EINTR(n, recv(s->io.fd, buf, len, 0));
    else
        PG__RETRY_EINTR(n, read(s->io.fd, buf, len));
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            pg__stream_force_close(s, -errno);
        return;
    }
    if (n == 0) {
        pg__stream_on_eof(s);
        return;
    }
    if (s->protocol.ops->get_buffer != NULL) {
        PG__TRACE_SIZE(s->trace_id, "buffer_updated", (size_t)n);
        if (s->protocol.ops->buffer_updated != NULL)
            s->protocol.ops->buffer_updated(s->protocol.self, (size_t)n);
        return;
    }
    PG__TRACE_SIZE(s->trace_id, "data_received", (size_t)n);
    if (s->protocol.ops->data_received != NULL)
        s->protocol.ops->data_received(s->protocol.self, buf, (size_t)n);
}

/* ---- writing ------------------------------------------------------------ */

/* asyncio's _write_send. May free the transport: callers touch it no more. */
static void pg__stream_write_ready(pg__stream *s)
{
    if (s->state == PG__STREAM_LOST)
        return;
    assert(pg__stream_buffered(s) > 0);
    ssize_t n = pg__stream_send(s, s->wbuf + s->whead, pg__stream_buffered(s));
    if (n == 0)
        return;
    if (n < 0) {
        pg__stream_force_close(s, (int)n);
        return;
    }
    pg__wbuf_consume(s, (size_t)n);
    pg__stream_maybe_resume(s); /* may write, close or abort */
    if (s->state == PG__STREAM_LOST || pg__stream_buffered(s) > 0)
        return;
    int r = pg__io_stop(s->loop, &s->io, PG__IO_WRITE);
    if (r < 0) {
        pg__stream_force_close(s, r); /* the fd left the epoll set */
        return;
    }
    if (s->state == PG__STREAM_CLOSING) {
        /* Drained after close(): connection_lost now, as asyncio does. */
        s->state = PG__STREAM_LOST;
        pg__loop_unreserve(s->loop);
        pg__stream_finish(s, 0);
    } else if (s->wstate == PG__WRITE_EOF_PENDING) {
        s->wstate = PG__WRITE_EOF_WRITTEN;
        shutdown(s->io.fd, SHUT_WR);
    }
}

static void pg__stream_on_io(pg__io *io, uint32_t events)
{
    pg__stream *s = PG__CONTAINER_OF(io, pg__stream, io);
    if (events & PG__IO_READ)
        pg__stream_read_ready(s);
    /* Last: write-ready may free the transport. */
    if ((events & PG__IO_WRITE) && (s->io.events & PG__IO_WRITE))
        pg__stream_write_ready(s);
}

/* Buffers what the fast path left (sent bytes were taken already) and makes
 * sure the write watcher runs. */
static int pg__stream_buffer_rest(pg__stream *s, const struct iovec *iov, int iovcnt, size_t skip, size_t rest)
{
    bool was_empty = pg__stream_buffered(s) == 0;
    int r = pg__wbuf_reserve(s, rest);
    if (r == 0 && was_empty)
        r = pg__io_start(s->loop, &s->io, PG__IO_WRITE);
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

static int pg__stream_writelines(pg_transport *t, const struct iovec *iov, int iovcnt)
{
    pg__stream *s = PG__STREAM(t);
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
    if (s->flags & PG__STREAM_READ_PIPE)
        return -ENOTSUP;
    if (s->wstate != PG__WRITE_OPEN)
        return -EPIPE;
    if (total == 0)
        return 0;
    if (s->state == PG__STREAM_LOST)
        return 0; /* asyncio drops it (and logs after a few) */
    if ((s->flags & PG__STREAM_WRITE_PIPE) && s->state != PG__STREAM_OPEN)
        return 0; /* a write pipe drops writes once closing, as asyncio */

    size_t sent = 0;
    if (pg__stream_buffered(s) == 0) {
        /* Nothing queued: try at once. */
        ssize_t n = iovcnt == 1 ? pg__stream_send(s, iov[0].iov_base, iov[0].iov_len)
                                : pg__stream_sendv(s, iov, iovcnt);
        if (n < 0) {
            pg__stream_force_close(s, (int)n);
            return 0;
        }
        sent = (size_t)n;
        if (sent == total)
            return 0;
    }
    return pg__stream_buffer_rest(s, iov, iovcnt, sent, total - sent);
}

static int pg__stream_write(pg_transport *t, const void *data, size_t len)
{
    pg__stream *s = PG__STREAM(t);
    if (len > 0 && data == NULL)
        return -EINVAL;
    struct iovec iov = { .iov_base = (void *)data, .iov_len = len };
    /* The hot path of every request/response protocol: an open socket with
     * nothing queued sends at once, without writelines' generality. */
    if ((s->flags & PG__STREAM_SOCKET) && s->state == PG__STREAM_OPEN && s->wstate == PG__WRITE_OPEN
        && s->wlen == s->whead && len > 0) {
        ssize_t n = send(s->io.fd, data, len, MSG_NOSIGNAL);
        if (n == (ssize_t)len)
            return 0;
        if (n >= 0)
            return pg__stream_buffer_rest(s, &iov, 1, (size_t)n, len - (size_t)n);
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return pg__stream_buffer_rest(s, &iov, 1, 0, len); /* the write watcher sends it */
        pg__stream_force_close(s, -errno);
        return 0;
    }
    return pg__stream_writelines(t, &iov, 1);
}

static int pg__stream_write_eof(pg_transport *t)
{
    pg__stream *s = PG__STREAM(t);
    if (!(s->flags & PG__STREAM_CAN_WRITE_EOF))
        return -ENOTSUP;
    if (s->flags & PG__STREAM_WRITE_PIPE) {
        /* A pipe's EOF is its closing: flush, close, connection_lost(0). */
        pg__stream_close(t);
        return 0;
    }
    if (s->state != PG__STREAM_OPEN || s->wstate != PG__WRITE_OPEN)
        return 0;
    if (pg__stream_buffered(s) > 0) {
        s->wstate = PG__WRITE_EOF_PENDING;
        return 0;
    }
    s->wstate = PG__WRITE_EOF_WRITTEN;
    return shutdown(s->io.fd, SHUT_WR) < 0 ? -errno : 0;
}

static bool pg__stream_can_write_eof(const pg_transport *t)
{
    return (PG__STREAM(t)->flags & PG__STREAM_CAN_WRITE_EOF) != 0;
}

/* ---- closing ------------------------------------------------------------ */

static void pg__stream_close(pg_transport *t)
{
    pg__stream *s = PG__STREAM(t);
    if (s->state != PG__STREAM_OPEN)
        return;
    s->state = PG__STREAM_CLOSING;
    if (pg__stream_buffered(s) == 0 || !(s->flags & PG__STREAM_WRITE_PIPE))
        pg__io_stop(s->loop, &s->io, PG__IO_READ); /* a flushing write pipe still watches its reader */
    if (pg__stream_buffered(s) == 0) {
        s->state = PG__STREAM_LOST;
        pg__io_stop(s->loop, &s->io, PG__IO_READ | PG__IO_WRITE);
        s->lost_error = 0;
        pg__loop_call_soon_reserved(s->loop, pg__stream_lost_cb, s);
    }
    /* else write-ready flushes, then calls connection_lost(0) */
}

static void pg__stream_abort(pg_transport *t)
{
    pg__stream_force_close(PG__STREAM(t), 0);
}

static bool pg__stream_is_closing(const pg_transport *t)
{
    return PG__STREAM(t)->state != PG__STREAM_OPEN;
}

/* ---- flow control ------------------------------------------------------- */

static void pg__stream_pause_reading(pg_transport *t)
{
    pg__stream *s = PG__STREAM(t);
    if (!pg__stream_reading(s))
        return;
    s->rstate = PG__READ_PAUSED;
    int r = pg__io_stop(s->loop, &s->io, PG__IO_READ);
    if (r < 0)
        pg__stream_force_close(s, r); /* the fd left the epoll set */
}

static void pg__stream_resume_reading(pg_transport *t)
{
    pg__stream *s = PG__STREAM(t);
    if (s->state != PG__STREAM_OPEN || s->rstate != PG__READ_PAUSED || (s->flags & PG__STREAM_WRITE_PIPE))
        return;
    s->rstate = PG__READ_ACTIVE;
    pg__stream_start_reading_now(s);
}

static bool pg__stream_is_reading(const pg_transport *t)
{
    return pg__stream_reading(PG__STREAM(t));
}

static size_t pg__stream_get_write_buffer_size(const pg_transport *t)
{
    return pg__stream_buffered(PG__STREAM(t));
}

static void pg__stream_get_write_buffer_limits(const pg_transport *t, size_t *high, size_t *low)
{
    const pg__stream *s = PG__STREAM(t);
    if (high != NULL)
        *high = s->high;
    if (low != NULL)
        *low = s->low;
}

static int pg__stream_set_write_buffer_limits(pg_transport *t, size_t high, size_t low)
{
    pg__stream *s = PG__STREAM(t);
    int r = pg__write_buffer_limits(high, low, &s->high, &s->low);
    if (r == 0)
        pg__stream_maybe_pause(s); /* never resumes */
    return r;
}

static int pg__stream_get_extra_info(const pg_transport *t, pg_extra_key key, pg_extra_info *out)
{
    const pg__stream *s = PG__STREAM(t);
    if (out == NULL)
        return -EINVAL;
    memset(out, 0, sizeof *out);
    out->fd = s->io.fd;
    if (s->flags & (PG__STREAM_READ_PIPE | PG__STREAM_WRITE_PIPE))
        return key == PG_EXTRA_PIPE ? 0 : -ENOENT;
    if (!(s->flags & PG__STREAM_SOCKET))
        return -ENOENT;
    out->addrlen = sizeof out->addr;
    switch (key) {
    case PG_EXTRA_PEERNAME:
        return getpeername(s->io.fd, (struct sockaddr *)&out->addr, &out->addrlen) < 0 ? -errno : 0;
    case PG_EXTRA_SOCKNAME:
        return getsockname(s->io.fd, (struct sockaddr *)&out->addr, &out->addrlen) < 0 ? -errno : 0;
    case PG_EXTRA_SOCKET:
        out->addrlen = 0;
        return 0;
    default:
        return -ENOENT;
    }
}

/* asyncio's set_protocol / get_protocol. The read path looks at the protocol
 * at each read, so a buffered protocol can replace a plain one and back. */
static int pg__stream_set_protocol(pg_transport *t, const pg_protocol *protocol)
{
    if (protocol == NULL || protocol->ops == NULL)
        return -EINVAL;
    PG__STREAM(t)->protocol = *protocol;
    return 0;
}

static int pg__stream_get_protocol(const pg_transport *t, pg_protocol *out)
{
    if (out == NULL)
        return -EINVAL;
    *out = PG__STREAM(t)->protocol;
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

/* ---- creation ----------------------------------------------------------- */

/* Three ready-queue slots: connection_made, the first read, connection_lost. */
#define PG__STREAM_SLOTS 3

int pg__stream_alloc(pg_loop *loop, int fd, unsigned flags, pg__stream **out)
{
    assert(fd >= 0 && out != NULL);
    pg__stream *s = pg__loop_stream_get(loop);
    if (s != NULL)
        memset(s, 0, sizeof *s);
    else if ((s = calloc(1, sizeof *s)) == NULL)
        return -ENOMEM;
    for (int reserved = 0; reserved < PG__STREAM_SLOTS; reserved++) {
        int r = pg__loop_reserve(loop);
        if (r < 0) {
            while (reserved-- > 0)
                pg__loop_unreserve(loop);
            pg__loop_stream_put(loop, s);
            return r;
        }
    }
    s->base.ops = &pg__stream_ops;
    s->loop = loop;
    pg__io_init(&s->io, fd, pg__stream_on_io);
    s->high = PG_DEFAULT_HIGH_WATER;
    s->low = PG_DEFAULT_HIGH_WATER / 4;
    s->state = PG__STREAM_OPEN;
    s->wstate = PG__WRITE_OPEN;
    s->rstate = PG__READ_ACTIVE;
    s->flow = PG__FLOW_RUNNING;
    s->proto = PG__PROTO_NEW;
    s->flags = (uint8_t)flags;
    *out = s;
    return 0;
}

void pg__stream_discard(pg__stream *s)
{
    for (int i = 0; i < PG__STREAM_SLOTS; i++)
        pg__loop_unreserve(s->loop);
    pg__loop_stream_put(s->loop, s);
}

pg_transport *pg__stream_start(pg__stream *s, const pg_protocol *protocol)
{
    assert(protocol != NULL && protocol->ops != NULL);
    s->protocol = *protocol;
    s->trace_id = (s->flags & PG__STREAM_UNTRACED) ? 0 : pg__trace_new_conn();
    /* asyncio: call_soon(connection_made); call_soon(_add_reader). */
    pg__loop_call_soon_reserved(s->loop, pg__stream_connection_made, s);
    pg__loop_call_soon_reserved(s->loop, pg__stream_start_reading, s);
    return &s->base;
}

int pg__stream_open(pg_loop *loop, int fd, unsigned flags, pg_protocol_factory factory, void *arg,
                    pg_transport **out)
{
    pg__stream *s;
    int r = pg__stream_alloc(loop, fd, flags, &s);
    if (r < 0)
        return r;
    /* Last: from here on nothing can fail, so the protocol never leaks. */
    pg_protocol protocol = { 0 };
    r = factory(arg, &protocol);
    if (r == 0 && protocol.ops == NULL)
        r = -EINVAL; /* a factory bug; the instance (if any) is the factory's */
    if (r < 0) {
        pg__stream_discard(s);
        return r;
    }
    pg_transport *t = pg__stream_start(s, &protocol);
    if (out != NULL)
        *out = t;
    return 0;
}

/* ---- public: adopting a connected socket -------------------------------- */

int pg_stream_adopt_fd(pg_loop *loop, int fd, pg_protocol_factory factory, void *arg, pg_transport **out)
{
    if (loop == NULL || fd < 0 || factory == NULL)
        return -EINVAL;
    int type, domain;
    socklen_t len = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
        return -errno; /* -ENOTSOCK for pipes and files */
    if (type != SOCK_STREAM)
        return -EINVAL;
    len = sizeof domain;
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0)
        return -errno;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    if (domain == AF_INET || domain == AF_INET6)
        pg__socket_nodelay(fd);
    return pg__stream_open(loop, fd, PG__STREAM_SOCKET | PG__STREAM_CAN_WRITE_EOF, factory, arg, out);
}
