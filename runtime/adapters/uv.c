/* protogen on libuv (protogen/uv.h): a host of the core on a uv_loop_t, a
 * stream driver over connected libuv streams and a datagram driver over
 * datagram sockets. Only the core's public tables
 * are used (protogen/core.h): this file is also the worked example of
 * docs/embedding.md.
 *
 * Three things libuv does not do the way the core needs, and what is done:
 *   - a uv_stream_t has no "tell me when writable": uv_write would have to own
 *     a copy of the bytes, and the core's buffer (what the watermarks count)
 *     would no longer be what the kernel has not taken. So writes go to the
 *     socket at once (send with MSG_NOSIGNAL: a peer reset must never raise
 *     SIGPIPE, which uv_try_write's writev would), and writability is watched
 *     by a uv_poll_t on a dup() of the fd, made on the first write the kernel
 *     does not take whole (a uv_poll_t on the stream's own fd is refused,
 *     UV_EEXIST). The buffer then drains exactly as asyncio's does.
 *   - uv_read_stop() inside the alloc callback makes libuv call a NULL
 *     read_cb: a stop asked for there (get_buffer paused or closed) waits for
 *     the read callback.
 *   - libuv cannot stop reading in the middle of a read: what it reads goes
 *     to pg_stream_received, and the core holds what the protocol does not
 *     take (it paused), with the EOF or error after it, until it reads
 *     again. */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "protogen/uv.h"

/* One read of up to 256 KiB per readiness event, as asyncio (max_size). */
#define PG__UV_READ_SIZE ((size_t)256 * 1024)

typedef struct pg__uv_call {
    pg_callback_fn fn;
    void *arg;
} pg__uv_call;

struct pg_uv_host {
    uv_loop_t *loop;
    pg_host *core;
    uv_idle_t idle;   /* dispatch before poll; keeps poll from blocking */
    uv_check_t check; /* dispatch right after poll's I/O callbacks */
    uv_timer_t timer; /* armed for the earliest of the core's timers */
    pg_timer_queue timers;
    /* The FIFO of deferred calls, a ring: len queued from head, and room for
     * `reserved` more always (len + reserved <= cap), so defer never allocates. */
    pg__uv_call *calls;
    size_t cap, head, len, reserved;
    uint8_t *read_buf; /* PG__UV_READ_SIZE, shared by every stream of the loop */
    size_t drivers;    /* stream and datagram drivers not yet released */
    int open_handles;
};

/* ---- the host ----------------------------------------------------------- */

static void pg__uv_dispatch(pg_uv_host *h)
{
    /* Only what was queued before: calls deferred now wait for the next
     * dispatch, as asyncio's ready queue does. */
    for (size_t n = h->len; n > 0 && h->len > 0; n--) {
        pg__uv_call c = h->calls[h->head];
        h->head = (h->head + 1) % h->cap;
        h->len--;
        c.fn(c.arg);
    }
    if (h->len == 0) {
        uv_idle_stop(&h->idle);
        uv_check_stop(&h->check);
    }
}

static void pg__uv_on_idle(uv_idle_t *idle)
{
    pg__uv_dispatch(idle->data);
}

static void pg__uv_on_check(uv_check_t *check)
{
    pg__uv_dispatch(check->data);
}

static int pg__uv_reserve(void *self)
{
    pg_uv_host *h = self;
    if (h->len + h->reserved == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 16;
        pg__uv_call *calls = malloc(cap * sizeof *calls);
        if (calls == NULL)
            return -ENOMEM;
        for (size_t i = 0; i < h->len; i++)
            calls[i] = h->calls[(h->head + i) % h->cap];
        free(h->calls);
        h->calls = calls;
        h->cap = cap;
        h->head = 0;
    }
    h->reserved++;
    return 0;
}

static void pg__uv_unreserve(void *self)
{
    pg_uv_host *h = self;
    h->reserved--;
}

static void pg__uv_defer(void *self, pg_callback_fn fn, void *arg)
{
    pg_uv_host *h = self;
    h->reserved--;
    h->calls[(h->head + h->len) % h->cap] = (pg__uv_call){ fn, arg };
    if (h->len++ == 0) {
        (void)uv_idle_start(&h->idle, pg__uv_on_idle); /* cannot fail on an initialised handle */
        (void)uv_check_start(&h->check, pg__uv_on_check);
    }
}

static uint64_t pg__uv_now_ms(void *self)
{
    pg_uv_host *h = self;
    return uv_now(h->loop);
}

/* One uv_timer_t for all the core's timers, which wait in a pg_timer_queue:
 * a record of the core's needs no libuv handle (and no uv_close) of its own. */
static void pg__uv_on_timer(uv_timer_t *timer);

static void pg__uv_arm(pg_uv_host *h)
{
    uint64_t due;
    if (!pg_timer_queue_next(&h->timers, &due)) {
        uv_timer_stop(&h->timer); /* a cancelled timer keeps the loop alive no longer */
        return;
    }
    uint64_t now = uv_now(h->loop);
    (void)uv_timer_start(&h->timer, pg__uv_on_timer, due > now ? due - now : 0, 0); /* cannot fail: cb given */
}

static void pg__uv_on_timer(uv_timer_t *timer)
{
    pg_uv_host *h = timer->data;
    /* The due timers' callbacks run from the dispatch, after what was
     * deferred before. */
    pg_timer_queue_expire(&h->timers, uv_now(h->loop));
    pg__uv_arm(h);
}

static int pg__uv_timer_start(void *self, pg_timer *timer, uint64_t delay_ms)
{
    pg_uv_host *h = self;
    uint64_t now = uv_now(h->loop);
    int r = pg_timer_queue_add(&h->timers, timer, delay_ms > UINT64_MAX - now ? UINT64_MAX : now + delay_ms);
    if (r == 0)
        pg__uv_arm(h);
    return r;
}

static void pg__uv_timer_cancel(void *self, pg_timer *timer)
{
    pg_uv_host *h = self;
    pg_timer_queue_remove(&h->timers, timer);
    pg__uv_arm(h);
}

static const pg_host_ops pg__uv_host_ops = {
    .reserve = pg__uv_reserve,
    .unreserve = pg__uv_unreserve,
    .defer = pg__uv_defer,
    .now_ms = pg__uv_now_ms,
    .timer_start = pg__uv_timer_start,
    .timer_cancel = pg__uv_timer_cancel,
};

int pg_uv_host_new(uv_loop_t *loop, pg_uv_host **out)
{
    if (loop == NULL || out == NULL)
        return -EINVAL;
    pg_uv_host *h = calloc(1, sizeof *h);
    if (h == NULL)
        return -ENOMEM;
    h->loop = loop;
    h->read_buf = malloc(PG__UV_READ_SIZE);
    int r = h->read_buf == NULL ? -ENOMEM : pg_host_new(&pg__uv_host_ops, h, &h->core);
    if (r < 0) {
        free(h->read_buf);
        free(h);
        return r;
    }
    uv_idle_init(loop, &h->idle); /* all three always succeed */
    uv_check_init(loop, &h->check);
    uv_timer_init(loop, &h->timer);
    h->idle.data = h;
    h->check.data = h;
    h->timer.data = h;
    h->open_handles = 3;
    pg_timer_queue_init(&h->timers);
    *out = h;
    return 0;
}

pg_host *pg_uv_host_core(pg_uv_host *host)
{
    return host->core;
}

uv_loop_t *pg_uv_host_loop(const pg_uv_host *host)
{
    return host->loop;
}

static void pg__uv_host_closed(uv_handle_t *handle)
{
    pg_uv_host *h = handle->data;
    if (--h->open_handles > 0)
        return;
    pg_host_free(h->core);
    free(h->calls);
    free(h->read_buf);
    free(h);
}

void pg_uv_host_free(pg_uv_host *host)
{
    if (host == NULL)
        return;
    /* Timers still waiting are left inactive (and give their reservations
     * back); every transport is gone: nothing is queued or reserved any more. */
    pg_timer_queue_free(&host->timers);
    assert(host->drivers == 0 && host->len == 0 && host->reserved == 0);
    uv_close((uv_handle_t *)&host->idle, pg__uv_host_closed);
    uv_close((uv_handle_t *)&host->check, pg__uv_host_closed);
    uv_close((uv_handle_t *)&host->timer, pg__uv_host_closed);
}

/* ---- the stream driver -------------------------------------------------- */

typedef struct pg__uv_stream {
    pg_uv_host *host;
    uv_stream_t *stream;
    pg_transport *t; /* NULL once the core released the driver (close) */
    uv_close_cb user_close_cb;
    void *user_data; /* the handle's data, given back at the end */
    int fd;
    int refs; /* the core's and the close callbacks still to come */

    bool want_read;    /* what the core asked */
    bool reading;      /* uv_read_start is on */
    bool in_alloc;     /* inside the alloc callback */
    bool stop_pending; /* want_read(false) inside the alloc callback */
    bool into_protocol; /* the current read goes into the protocol's buffer */

    bool poll_open;   /* poll and poll_fd exist */
    bool poll_active; /* watching writability */
    int poll_fd;
    uv_poll_t poll;

    uv_shutdown_t shutdown_req;
    union {
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } own; /* the handle pg_uv_accept made */
} pg__uv_stream;

static void pg__uv_release(pg__uv_stream *d)
{
    if (--d->refs > 0)
        return;
    free(d);
}

static void pg__uv_on_closed(uv_handle_t *handle)
{
    pg__uv_stream *d = handle->data;
    if (handle == (uv_handle_t *)&d->poll) {
        close(d->poll_fd);
    } else {
        handle->data = d->user_data;
        if (d->user_close_cb != NULL)
            d->user_close_cb(handle);
    }
    pg__uv_release(d);
}

static void pg__uv_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf);
static void pg__uv_on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

static int pg__uv_start_reading(pg__uv_stream *d)
{
    if (d->reading)
        return 0;
    int r = uv_read_start(d->stream, pg__uv_alloc, pg__uv_on_read);
    if (r == 0)
        d->reading = true;
    return r;
}

static void pg__uv_stop_reading(pg__uv_stream *d)
{
    if (!d->reading)
        return;
    if (d->in_alloc) {
        d->stop_pending = true; /* libuv would call a NULL read_cb */
        return;
    }
    (void)uv_read_stop(d->stream);
    d->reading = false;
}

static void pg__uv_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    pg__uv_stream *d = handle->data;
    (void)suggested;
    uint8_t *p = NULL;
    size_t len = 0;
    d->in_alloc = true;
    int target = d->t != NULL && d->want_read ? pg_stream_read_buffer(d->t, PG__UV_READ_SIZE, &p, &len) : -EAGAIN;
    d->in_alloc = false;
    d->into_protocol = target == 1;
    if (target != 1) {
        /* Also when the core does not want this read (paused or closed in
         * get_buffer): an empty buffer would make libuv report UV_ENOBUFS. */
        p = d->host->read_buf;
        len = PG__UV_READ_SIZE;
    }
    buf->base = (char *)p;
    buf->len = len;
}

static void pg__uv_on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    pg__uv_stream *d = stream->data;
    if (d->stop_pending) {
        d->stop_pending = false;
        pg__uv_stop_reading(d);
    }
    if (nread < 0) /* EOF or error: libuv stopped reading */
        d->reading = false;
    if (d->t == NULL || nread == 0)
        return; /* 0: nothing now (EAGAIN) */
    if (nread > 0) {
        if (d->into_protocol) {
            pg_stream_read_done(d->t, (size_t)nread);
            return;
        }
        /* Into the shared buffer (also when the core did not want this
         * read): the core holds what the protocol does not take. */
        pg_stream_received(d->t, (const uint8_t *)buf->base, (size_t)nread, 0);
        return;
    }
    pg_stream_received(d->t, NULL, 0, nread == UV_EOF ? PG_STREAM_END : (int)nread);
}

static ssize_t pg__uv_writev(void *self, const struct iovec *iov, int iovcnt)
{
    pg__uv_stream *d = self;
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = (struct iovec *)iov;
    msg.msg_iovlen = (size_t)iovcnt;
    ssize_t n;
    do
        n = sendmsg(d->fd, &msg, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n >= 0)
        return n;
    return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
}

static void pg__uv_on_shutdown(uv_shutdown_t *req, int status)
{
    /* Errors show on the read side (a reset), as with shutdown(2). */
    (void)req;
    (void)status;
}

static int pg__uv_shutdown_write(void *self)
{
    pg__uv_stream *d = self;
    return uv_shutdown(&d->shutdown_req, d->stream, pg__uv_on_shutdown);
}

static int pg__uv_want_read(void *self, bool on)
{
    pg__uv_stream *d = self;
    d->want_read = on;
    if (!on) {
        pg__uv_stop_reading(d);
        return 0;
    }
    if (d->in_alloc && d->stop_pending) {
        d->stop_pending = false; /* paused and resumed inside get_buffer */
        return 0;
    }
    return pg__uv_start_reading(d);
}

static void pg__uv_on_writable(uv_poll_t *poll, int status, int events)
{
    pg__uv_stream *d = poll->data;
    (void)events;
    if (d->t == NULL)
        return;
    if (status < 0) {
        /* POLLERR: libuv stopped the poll; the send reports the error. */
        d->poll_active = false;
        int error = 0;
        socklen_t len = sizeof error;
        if (getsockopt(d->fd, SOL_SOCKET, SO_ERROR, &error, &len) < 0)
            error = errno;
        pg_stream_fail(d->t, error != 0 ? -error : -EPIPE);
        return;
    }
    pg_stream_writable(d->t); /* may release the driver: d->t is NULL then */
}

static int pg__uv_want_write(void *self, bool on)
{
    pg__uv_stream *d = self;
    if (!on) {
        if (d->poll_active)
            (void)uv_poll_stop(&d->poll);
        d->poll_active = false;
        return 0;
    }
    if (!d->poll_open) {
        int fd = fcntl(d->fd, F_DUPFD_CLOEXEC, 0);
        if (fd < 0)
            return -errno;
        int r = uv_poll_init_socket(d->host->loop, &d->poll, fd);
        if (r < 0) {
            close(fd);
            return r;
        }
        d->poll.data = d;
        d->poll_fd = fd;
        d->poll_open = true;
    }
    int r = uv_poll_start(&d->poll, UV_WRITABLE, pg__uv_on_writable);
    if (r == 0)
        d->poll_active = true;
    return r;
}

/* After connection_lost: the transport is gone; the handles close and the
 * block goes with the last close callback. */
static void pg__uv_close(void *self)
{
    pg__uv_stream *d = self;
    d->t = NULL;
    d->host->drivers--;
    if (d->poll_open) {
        d->refs++;
        uv_close((uv_handle_t *)&d->poll, pg__uv_on_closed);
    }
    d->refs++;
    uv_close((uv_handle_t *)d->stream, pg__uv_on_closed);
    pg__uv_release(d); /* the core's reference */
}

static int pg__uv_get_extra_info(void *self, pg_extra_key key, pg_extra_info *out)
{
    pg__uv_stream *d = self;
    out->fd = d->fd;
    int namelen = (int)sizeof out->addr;
    int r;
    switch (key) {
    case PG_EXTRA_PEERNAME:
        if (d->stream->type == UV_TCP) {
            r = uv_tcp_getpeername((uv_tcp_t *)d->stream, (struct sockaddr *)&out->addr, &namelen);
            out->addrlen = (socklen_t)namelen;
            return r;
        }
        out->addrlen = sizeof out->addr;
        return getpeername(d->fd, (struct sockaddr *)&out->addr, &out->addrlen) < 0 ? -errno : 0;
    case PG_EXTRA_SOCKNAME:
        if (d->stream->type == UV_TCP) {
            r = uv_tcp_getsockname((uv_tcp_t *)d->stream, (struct sockaddr *)&out->addr, &namelen);
            out->addrlen = (socklen_t)namelen;
            return r;
        }
        out->addrlen = sizeof out->addr;
        return getsockname(d->fd, (struct sockaddr *)&out->addr, &out->addrlen) < 0 ? -errno : 0;
    case PG_EXTRA_SOCKET:
        return 0;
    default:
        return -ENOENT;
    }
}

static const pg_stream_driver_ops pg__uv_stream_ops = {
    .writev = pg__uv_writev,
    .shutdown_write = pg__uv_shutdown_write,
    .want_read = pg__uv_want_read,
    .want_write = pg__uv_want_write,
    .close = pg__uv_close,
    .get_extra_info = pg__uv_get_extra_info,
};

/* ---- opening ------------------------------------------------------------ */

static int pg__uv_open(pg_uv_host *host, pg__uv_stream *d, uv_stream_t *stream, uv_close_cb close_cb,
                       pg_protocol_factory factory, void *arg, pg_transport **out)
{
    if (stream->type != UV_TCP && stream->type != UV_NAMED_PIPE)
        return -ENOTSUP;
    uv_os_fd_t fd;
    int r = uv_fileno((uv_handle_t *)stream, &fd);
    if (r < 0)
        return r;
    int type;
    socklen_t len = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
        return errno == ENOTSOCK ? -ENOTSUP : -errno; /* a uv_pipe_t on a pipe */
    if (type != SOCK_STREAM)
        return -ENOTSUP;
    if (!uv_is_readable(stream) || !uv_is_writable(stream))
        return -ENOTCONN;
    if (stream->type == UV_TCP)
        (void)uv_tcp_nodelay((uv_tcp_t *)stream, 1); /* as asyncio */
    d->host = host;
    d->stream = stream;
    d->user_close_cb = close_cb;
    d->user_data = stream->data;
    d->fd = fd;
    d->poll_fd = -1;
    d->refs = 1; /* the core's, until close */
    stream->data = d;
    pg_transport *t;
    r = pg_stream_new(host->core, &pg__uv_stream_ops, d, PG_STREAM_CAN_WRITE_EOF, factory, arg, &t);
    if (r < 0) {
        stream->data = d->user_data;
        return r;
    }
    d->t = t;
    host->drivers++;
    if (out != NULL)
        *out = t;
    return 0;
}

int pg_uv_stream_open(pg_uv_host *host, uv_stream_t *stream, uv_close_cb close_cb, pg_protocol_factory factory,
                      void *arg, pg_transport **out)
{
    if (host == NULL || stream == NULL || factory == NULL || stream->loop != host->loop)
        return -EINVAL;
    pg__uv_stream *d = calloc(1, sizeof *d);
    if (d == NULL)
        return -ENOMEM;
    int r = pg__uv_open(host, d, stream, close_cb, factory, arg, out);
    if (r < 0)
        free(d);
    return r;
}

static void pg__uv_free_on_close(uv_handle_t *handle)
{
    free(handle->data);
}

int pg_uv_accept(pg_uv_host *host, uv_stream_t *server, pg_protocol_factory factory, void *arg, pg_transport **out)
{
    if (host == NULL || server == NULL || factory == NULL || server->loop != host->loop
        || (server->type != UV_TCP && server->type != UV_NAMED_PIPE))
        return -EINVAL;
    pg__uv_stream *d = calloc(1, sizeof *d);
    if (d == NULL)
        return -ENOMEM;
    uv_stream_t *client = (uv_stream_t *)&d->own;
    int r = server->type == UV_TCP ? uv_tcp_init(host->loop, &d->own.tcp) : uv_pipe_init(host->loop, &d->own.pipe, 0);
    if (r < 0) {
        free(d);
        return r;
    }
    client->data = d;
    r = uv_accept(server, client);
    if (r == 0)
        r = pg__uv_open(host, d, client, NULL, factory, arg, out);
    if (r < 0) {
        client->data = d;
        uv_close((uv_handle_t *)client, pg__uv_free_on_close);
    }
    return r;
}

/* ---- the datagram driver ------------------------------------------------ */

/* Datagrams read per readiness event, as the built-in loop's batch: one busy
 * socket does not starve the loop's other handles. */
#define PG__UV_DGRAM_BATCH 16

/* A uv_poll_t on the socket itself: the core's want_read/want_write are its
 * interest, 1:1, and the driver does the recvmsg/sendto. A datagram is read
 * only while the core wants one, so nothing is ever held here. */
typedef struct pg__uv_dgram {
    pg_uv_host *host;
    pg_datagram_transport *t; /* NULL once the core released the driver */
    int fd;
    bool want_read, want_write;
    bool owns_fd; /* the transport was made: the fd is closed at the end */
    uv_poll_t poll;
} pg__uv_dgram;

static void pg__uv_dgram_closed(uv_handle_t *handle)
{
    pg__uv_dgram *d = handle->data;
    if (d->owns_fd)
        close(d->fd);
    free(d);
}

/* One sendto per datagram, in order, until the kernel takes no more. */
static int pg__uv_dgram_send(void *self, const pg_datagram_out *msgs, int n)
{
    pg__uv_dgram *d = self;
    int sent = 0;
    for (; sent < n; sent++) {
        ssize_t r;
        do
            r = sendto(d->fd, msgs[sent].data, msgs[sent].len, MSG_NOSIGNAL, msgs[sent].addr, msgs[sent].addrlen);
        while (r < 0 && errno == EINTR);
        if (r >= 0)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK || sent > 0)
            break; /* a later datagram's error comes back first on the next call */
        return -errno;
    }
    return sent;
}

static void pg__uv_dgram_on_poll(uv_poll_t *poll, int status, int events);

/* The poll's interest is exactly what the core asked for. */
static int pg__uv_dgram_update(pg__uv_dgram *d)
{
    int events = (d->want_read ? UV_READABLE : 0) | (d->want_write ? UV_WRITABLE : 0);
    if (events == 0)
        return uv_poll_stop(&d->poll);
    return uv_poll_start(&d->poll, events, pg__uv_dgram_on_poll);
}

static int pg__uv_dgram_want_read(void *self, bool on)
{
    pg__uv_dgram *d = self;
    d->want_read = on;
    return pg__uv_dgram_update(d);
}

static int pg__uv_dgram_want_write(void *self, bool on)
{
    pg__uv_dgram *d = self;
    d->want_write = on;
    return pg__uv_dgram_update(d);
}

static void pg__uv_dgram_read_ready(pg__uv_dgram *d)
{
    /* The host's read buffer: each datagram is the protocol's only during
     * its callback, so one buffer serves the whole batch. */
    for (int i = 0; i < PG__UV_DGRAM_BATCH && d->want_read; i++) {
        struct sockaddr_storage from;
        struct iovec iov = { .iov_base = d->host->read_buf, .iov_len = PG__UV_READ_SIZE };
        struct msghdr msg;
        memset(&msg, 0, sizeof msg);
        msg.msg_name = &from;
        msg.msg_namelen = sizeof from;
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        ssize_t n;
        do
            n = recvmsg(d->fd, &msg, MSG_DONTWAIT);
        while (n < 0 && errno == EINTR);
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                pg_datagram_receive_error(d->t, -errno); /* e.g. -ECONNREFUSED: the transport stays open */
            return;
        }
        if (msg.msg_flags & MSG_TRUNC) /* only Unix datagram sockets carry such datagrams */
            pg_datagram_receive_error(d->t, -EMSGSIZE);
        else
            pg_datagram_received(d->t, d->host->read_buf, (size_t)n,
                                 msg.msg_namelen > 0 ? (struct sockaddr *)&from : NULL, msg.msg_namelen);
    }
}

static void pg__uv_dgram_on_poll(uv_poll_t *poll, int status, int events)
{
    pg__uv_dgram *d = poll->data;
    if (d->t == NULL)
        return;
    if (status < 0) {
        /* POLLERR, which libuv reports as an error and stops the poll for:
         * on a datagram socket the pending error (an ICMP port unreachable
         * on a connected endpoint) is a receive error, and the endpoint
         * stays open. Anything else ends it. */
        int error = 0;
        socklen_t len = sizeof error;
        if (getsockopt(d->fd, SOL_SOCKET, SO_ERROR, &error, &len) < 0)
            error = errno;
        if (error == 0) {
            pg_datagram_fail(d->t, status);
            return;
        }
        pg_datagram_receive_error(d->t, -error); /* never ends the transport */
        int r = pg__uv_dgram_update(d);            /* libuv stopped the poll */
        if (r < 0)
            pg_datagram_fail(d->t, r);
        return;
    }
    if (events & UV_READABLE)
        pg__uv_dgram_read_ready(d);
    /* Last: writable may end the transport. */
    if ((events & UV_WRITABLE) && d->want_write)
        pg_datagram_writable(d->t);
}

/* After connection_lost: the poll closes, then the fd and the block go. */
static void pg__uv_dgram_close(void *self)
{
    pg__uv_dgram *d = self;
    d->t = NULL;
    d->host->drivers--;
    uv_close((uv_handle_t *)&d->poll, pg__uv_dgram_closed);
}

static int pg__uv_dgram_get_extra_info(void *self, pg_extra_key key, pg_extra_info *out)
{
    pg__uv_dgram *d = self;
    out->fd = d->fd;
    switch (key) {
    case PG_EXTRA_SOCKNAME:
        return getsockname(d->fd, (struct sockaddr *)&out->addr, &out->addrlen) < 0 ? -errno : 0;
    case PG_EXTRA_SOCKET:
        out->addrlen = 0;
        return 0;
    default:
        return -ENOENT; /* PG_EXTRA_PEERNAME is the core's */
    }
}

static const pg_datagram_driver_ops pg__uv_dgram_ops = {
    .send = pg__uv_dgram_send,
    .want_read = pg__uv_dgram_want_read,
    .want_write = pg__uv_dgram_want_write,
    .close = pg__uv_dgram_close,
    .get_extra_info = pg__uv_dgram_get_extra_info,
};

int pg_uv_datagram_open(pg_uv_host *host, int fd, pg_datagram_protocol_factory factory, void *arg,
                        pg_datagram_transport **out)
{
    if (host == NULL || fd < 0 || factory == NULL)
        return -EINVAL;
    int type;
    socklen_t len = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
        return -errno; /* -ENOTSOCK for pipes and files */
    if (type != SOCK_DGRAM)
        return -EINVAL;
    struct sockaddr_storage peer;
    socklen_t peerlen = sizeof peer;
    if (getpeername(fd, (struct sockaddr *)&peer, &peerlen) < 0) {
        if (errno != ENOTCONN)
            return -errno;
        peerlen = 0;
    }
    pg__uv_dgram *d = calloc(1, sizeof *d);
    if (d == NULL)
        return -ENOMEM;
    /* Also makes the fd non-blocking; -EEXIST when another libuv handle
     * watches it. */
    int r = uv_poll_init_socket(host->loop, &d->poll, fd);
    if (r < 0) {
        free(d);
        return r;
    }
    d->poll.data = d;
    d->host = host;
    d->fd = fd;
    r = pg_datagram_new(host->core, &pg__uv_dgram_ops, d, peerlen > 0 ? (struct sockaddr *)&peer : NULL, peerlen,
                        factory, arg, &d->t);
    if (r < 0) {
        uv_close((uv_handle_t *)&d->poll, pg__uv_dgram_closed); /* the fd stays the caller's */
        return r;
    }
    d->owns_fd = true;
    host->drivers++;
    if (out != NULL)
        *out = d->t;
    return 0;
}
