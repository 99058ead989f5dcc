/* The fd stream driver of the built-in loop: TCP and Unix sockets, read and
 * write pipes. It moves bytes with send/recv (sockets, MSG_NOSIGNAL) or
 * read/write (pipes) and watches readiness through the loop's epoll set;
 * every rule of the transport is the core's (runtime/core/stream.c). On
 * io_uring a socket's bytes come in completions instead (PG__IO_RECV, no
 * recv of its own); what comes while the protocol does not read the core
 * holds (held_input.c) and delivers once it reads again. Its writes go
 * through the ring too (PG__IO_SENT, no send of its own): what is in flight
 * the core counts as buffered.
 *
 * The core's transport lives inside this driver's block, one of the core's
 * stream blocks (the loop's pool: a closed connection's block serves the
 * next one, and a handle kept past connection_lost is told apart). */
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "protogen/stream.h"

#include "internal.h"

/* The fd driver's own flags (PG__STREAM_SOCKET, PG__STREAM_WATCH_READER) are
 * kept in the core's flags, in the bits it leaves to drivers, and the loop is
 * the core's host: the block stays within PG__STREAM_BLOCK bytes. */
enum { PG__FD_READ_UNDECIDED, PG__FD_READ_POLL, PG__FD_READ_RECV };

struct pg__fdstream {
    pg__stream core; /* first: the transport */
    pg__io io;
    /* On its server's list of connections while it lives (accepted ones). */
    pg__fdstream *next_client;
    pg__fdstream **prev_client;
    uint8_t read_mode; /* PG__FD_READ_*: decided at the first want_read(true) */
};
_Static_assert(sizeof(pg__fdstream) <= PG__STREAM_BLOCK, "an fd stream fits in one of the core's blocks");

static pg_loop *pg__fd_loop(const pg__fdstream *f)
{
    return PG__CONTAINER_OF(f->core.host, pg_loop, host);
}

size_t pg__stream_sizeof(void)
{
    return sizeof(pg__fdstream);
}

/* ---- the driver table --------------------------------------------------- */

static ssize_t pg__fd_result(ssize_t n)
{
    if (n >= 0)
        return n;
    return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
}

/* Sockets: send/sendmsg with MSG_NOSIGNAL (their own table, so that the
 * per-message write decides nothing about the fd's kind). */
static ssize_t pg__fd_socket_writev(void *self, const struct iovec *iov, int iovcnt)
{
    pg__fdstream *f = self;
    ssize_t n;
    if (iovcnt == 1) {
        PG__RETRY_EINTR(n, send(f->io.fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL));
    } else {
        struct msghdr msg;
        memset(&msg, 0, sizeof msg);
        msg.msg_iov = (struct iovec *)iov;
        msg.msg_iovlen = (size_t)iovcnt;
        PG__RETRY_EINTR(n, sendmsg(f->io.fd, &msg, MSG_NOSIGNAL));
    }
    return pg__fd_result(n);
}

/* Sockets on io_uring: a quiet loop sends at once (pg__loop_sends_now),
 * and what that leaves, or all of it in a busy loop, goes as a copy into
 * the ring, submitted with the iteration's wait; the core counts that as
 * buffered until its completion (PG__IO_SENT, pg__fd_on_sent), and while
 * it is in flight this takes nothing (0). */
static ssize_t pg__fd_ring_writev(void *self, const struct iovec *iov, int iovcnt)
{
    pg__fdstream *f = self;
    ssize_t sent = 0;
    if (pg__loop_sends_now(pg__fd_loop(f), &f->io)) {
        sent = pg__fd_socket_writev(self, iov, iovcnt);
        size_t len = 0;
        for (int i = 0; i < iovcnt; i++)
            len += iov[i].iov_len;
        if (sent < 0 || (size_t)sent == len)
            return sent;
    }
    ssize_t n = pg__loop_send(pg__fd_loop(f), &f->io, iov, iovcnt, (size_t)sent);
    if (n > 0)
        pg__stream_sending(&f->core, (size_t)n);
    return n < 0 ? n : n + sent; /* an error after a part went: the connection is broken */
}

/* Pipes: writev with SIGPIPE held off. */
static ssize_t pg__fd_pipe_writev(void *self, const struct iovec *iov, int iovcnt)
{
    pg__fdstream *f = self;
    return pg__fd_result(pg__write_nosigpipe(f->io.fd, iov, iovcnt));
}

static int pg__fd_shutdown_write(void *self)
{
    pg__fdstream *f = self;
    return shutdown(f->io.fd, SHUT_WR) < 0 ? -errno : 0;
}

static int pg__fd_want(pg__fdstream *f, uint32_t events, bool on)
{
    if (on)
        return pg__io_start(pg__fd_loop(f), &f->io, events);
    return pg__io_stop(pg__fd_loop(f), &f->io, events); /* on failure the fd left the epoll set */
}

static void pg__fd_on_io(pg__io *io, uint32_t events);

static int pg__fd_want_read(void *self, bool on)
{
    pg__fdstream *f = self;
    /* A write pipe reads only to learn that its reader went away, where the
     * fd can tell (pipe.c decides). */
    if ((f->core.flags & PG__STREAM_WRITE_PIPE) && !(f->core.flags & PG__STREAM_WATCH_READER))
        return 0;
    if (f->read_mode == PG__FD_READ_UNDECIDED) {
        /* Decided in the loop's thread (the first want_read comes from the
         * loop): the buffer ring is set up from the ring's issuer. A
         * buffered protocol reads into its own memory: by readiness. (One
         * that becomes buffered later, by a switch, gets a copy.) */
        bool socket = (f->core.flags & (PG__STREAM_SOCKET | PG__STREAM_WRITE_PIPE)) == PG__STREAM_SOCKET;
        bool plain = f->core.protocol.ops->get_buffer == NULL;
        f->read_mode = socket && plain && pg__loop_can_recv(pg__fd_loop(f)) ? PG__FD_READ_RECV : PG__FD_READ_POLL;
        if (f->read_mode == PG__FD_READ_RECV)
            f->io.cb = pg__fd_on_io; /* its bytes come in completions: readiness is for writing */
    }
    return pg__fd_want(f, f->read_mode == PG__FD_READ_POLL ? PG__IO_READ : PG__IO_RECV, on);
}

static int pg__fd_want_write(void *self, bool on)
{
    return pg__fd_want(self, PG__IO_WRITE, on);
}

/* Sends through the ring: what waits in the write buffer goes when the send
 * in flight completes (pg__stream_sent), not on writability. */
static int pg__fd_ring_want_write(void *self, bool on)
{
    (void)self, (void)on;
    return 0;
}

static void pg__fd_close(void *self)
{
    pg__fdstream *f = self;
    pg__io_close(pg__fd_loop(f), &f->io);
    close(f->io.fd);
    if (f->prev_client != NULL) { /* leaves its server's list */
        *f->prev_client = f->next_client;
        if (f->next_client != NULL)
            f->next_client->prev_client = f->prev_client;
    }
    pg__stream_block_put(f->core.host, &f->core);
}

static int pg__fd_get_extra_info(void *self, pg_extra_key key, pg_extra_info *out)
{
    pg__fdstream *f = self;
    out->fd = f->io.fd;
    if (f->core.flags & (PG__STREAM_READ_PIPE | PG__STREAM_WRITE_PIPE))
        return key == PG_EXTRA_PIPE ? 0 : -ENOENT;
    if (!(f->core.flags & PG__STREAM_SOCKET))
        return -ENOENT;
    out->addrlen = sizeof out->addr;
    switch (key) {
    case PG_EXTRA_PEERNAME:
        return getpeername(f->io.fd, (struct sockaddr *)&out->addr, &out->addrlen) < 0 ? -errno : 0;
    case PG_EXTRA_SOCKNAME:
        return getsockname(f->io.fd, (struct sockaddr *)&out->addr, &out->addrlen) < 0 ? -errno : 0;
    case PG_EXTRA_SOCKET:
        out->addrlen = 0;
        return 0;
    default:
        return -ENOENT;
    }
}

static const pg_stream_driver_ops pg__fd_socket_ops = {
    .writev = pg__fd_socket_writev,
    .shutdown_write = pg__fd_shutdown_write,
    .want_read = pg__fd_want_read,
    .want_write = pg__fd_want_write,
    .close = pg__fd_close,
    .get_extra_info = pg__fd_get_extra_info,
};

static const pg_stream_driver_ops pg__fd_ring_socket_ops = {
    .writev = pg__fd_ring_writev,
    .shutdown_write = pg__fd_shutdown_write,
    .want_read = pg__fd_want_read,
    .want_write = pg__fd_ring_want_write,
    .close = pg__fd_close,
    .get_extra_info = pg__fd_get_extra_info,
};

static const pg_stream_driver_ops pg__fd_pipe_ops = {
    .writev = pg__fd_pipe_writev,
    .shutdown_write = pg__fd_shutdown_write,
    .want_read = pg__fd_want_read,
    .want_write = pg__fd_want_write,
    .close = pg__fd_close,
    .get_extra_info = pg__fd_get_extra_info,
};

/* ---- readiness ---------------------------------------------------------- */

/* What a read that brought no bytes says: the end, or an error; or nothing
 * at all (EAGAIN, EINTR): the fd stays ready, and the loop, which waits on
 * its level, comes back to it at its next turn. */
PG__COLD static void pg__fd_read_nothing(pg__io *io, ssize_t n)
{
    pg__fdstream *f = PG__CONTAINER_OF(io, pg__fdstream, io); /* the callback's: at hand after the read */
    if (n == 0)
        pg_stream_read_eof(&f->core.base);
    else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        pg_stream_fail(&f->core.base, -errno);
}

PG__HOT_INLINE static inline ssize_t pg__fd_read(pg__fdstream *f, uint8_t *buf, size_t len, bool socket)
{
    if (socket || (f->core.flags & PG__STREAM_SOCKET))
        return recv(f->io.fd, buf, len, 0);
    return read(f->io.fd, buf, len);
}

/* A buffered protocol reads into its own memory (asyncio's
 * _read_ready__get_buffer). */
static void pg__fd_read_buffered(pg__fdstream *f)
{
    pg_transport *t = &f->core.base;
    uint8_t *buf;
    size_t len;
    if (pg_stream_read_buffer(t, PG__READ_BUFFER_SIZE, &buf, &len) < 0)
        return;
    ssize_t n = pg__fd_read(f, buf, len, false);
    if (n > 0)
        pg_stream_read_done(t, (size_t)n);
    else
        pg__fd_read_nothing(&f->io, n);
}

/* Reads what is ready. Inlined twice: for a connected socket (socket true,
 * never a write pipe), the hot path, with its branches decided at compile
 * time; and for everything else. */
PG__HOT_INLINE static inline void pg__fd_read_ready(pg__fdstream *f, bool socket)
{
    pg__stream *s = &f->core;
    if (!socket && (s->flags & PG__STREAM_WRITE_PIPE)) {
        pg_stream_read_eof(&s->base); /* a write pipe's reader went away */
        return;
    }
    if (s->protocol.ops->get_buffer != NULL) {
        pg__fd_read_buffered(f);
        return;
    }
    /* The hot path: a plain protocol reads into the loop's buffer (there
     * from the first stream on: pg__fdstream_alloc). The read interest is on
     * only while the transport reads (stream.c), and the loop dispatches only
     * interests that are on. */
    assert(pg__stream_reads(s));
    ssize_t n = pg__fd_read(f, pg__fd_loop(f)->read_buf, PG__READ_BUFFER_SIZE, socket);
    /* The buffer's address read again rather than kept across the recv. */
    if (n > 0)
        pg__stream_data_received(s, pg__fd_loop(f)->read_buf, (size_t)n); /* it was reading: all taken */
    else
        pg__fd_read_nothing(&f->io, n);
}

static void pg__fd_on_recv(pg__fdstream *f);

/* A send through the ring completed: the core learns that its bytes went
 * (or the error), and sends what waits (it may free the transport). */
static void pg__fd_on_sent(pg__fdstream *f)
{
    size_t len;
    int error = pg__loop_send_result(pg__fd_loop(f), &len);
    pg__stream_sent(&f->core, len, error);
}

/* Every fd's events, and a socket's other than readable alone. */
static void pg__fd_on_io(pg__io *io, uint32_t events)
{
    pg__fdstream *f = PG__CONTAINER_OF(io, pg__fdstream, io);
    if (events & PG__IO_RECV) {
        pg__fd_on_recv(f);
        return; /* a completion of its own: nothing else in it */
    }
    if (events & PG__IO_SENT) {
        pg__fd_on_sent(f);
        return;
    }
    if (events & PG__IO_READ)
        pg__fd_read_ready(f, false);
    /* Last: writable may free the transport. */
    if ((events & PG__IO_WRITE) && (f->io.events & PG__IO_WRITE))
        pg_stream_writable(&f->core.base);
}

/* A connected socket's events by readiness. Readable alone, the event of
 * every request and reply, is read here with nothing left to do after it. */
static void pg__fd_on_socket_io(pg__io *io, uint32_t events)
{
    if (events == PG__IO_READ)
        pg__fd_read_ready(PG__CONTAINER_OF(io, pg__fdstream, io), true);
    else
        pg__fd_on_io(io, events);
}

/* ---- receiving through io_uring (PG__IO_RECV) ---------------------------- */

/* A receive that came full: bulk data, and most likely more is there. The
 * rest is read at once, with one recv after a copy of what came into the
 * loop's buffer, and the protocol gets it all in one delivery, as from the
 * readiness path (a streaming peer would pay a receive and a reply per
 * 16 KiB otherwise). */
static void pg__fd_take_full(pg__fdstream *f, const uint8_t *data, size_t n)
{
    uint8_t *buf = pg__loop_read_buffer(pg__fd_loop(f));
    if (f->core.held != NULL || !pg__stream_reads(&f->core) || buf == NULL) {
        pg__stream_take(&f->core, data, n, 0);
        return;
    }
    memcpy(buf, data, n);
    int status = 0;
    ssize_t more;
    PG__RETRY_EINTR(more, recv(f->io.fd, buf + n, PG__READ_BUFFER_SIZE - n, MSG_DONTWAIT));
    if (more > 0)
        n += (size_t)more;
    else if (more == 0)
        status = PG_STREAM_END;
    else if (errno != EAGAIN && errno != EWOULDBLOCK)
        status = -errno;
    pg__stream_take(&f->core, buf, n, status);
}

static void pg__fd_on_recv(pg__fdstream *f)
{
    const uint8_t *data;
    ssize_t res = pg__loop_recv_result(pg__fd_loop(f), &data);
    pg__stream *s = &f->core;
    if (res > 0 && res < (ssize_t)PG__RECV_BUFFER_SIZE && s->held == NULL && pg__stream_reads(s)
        && s->protocol.ops->get_buffer == NULL) {
        pg__stream_data_received(s, data, (size_t)res); /* the hot path, as pg__fd_read_ready's */
        return;
    }
    if (res == (ssize_t)PG__RECV_BUFFER_SIZE)
        pg__fd_take_full(f, data, (size_t)res);
    else
        pg__stream_take(&f->core, data, res > 0 ? (size_t)res : 0, res > 0 ? 0 : res == 0 ? PG_STREAM_END : (int)res);
}

/* ---- creation ----------------------------------------------------------- */

int pg__fdstream_alloc(pg_loop *loop, int fd, unsigned flags, pg__fdstream **out)
{
    assert(fd >= 0 && out != NULL);
    if (pg__loop_read_buffer(loop) == NULL)
        return -ENOMEM; /* allocated once, for every read of every stream (pg__fd_read_ready) */
    pg__fdstream *f = (pg__fdstream *)(void *)pg__stream_block_get(pg__loop_host(loop));
    if (f == NULL)
        return -ENOMEM;
    const pg_stream_driver_ops *ops = !(flags & PG__STREAM_SOCKET) ? &pg__fd_pipe_ops
                                      : pg__loop_can_send(loop)  ? &pg__fd_ring_socket_ops
                                                                 : &pg__fd_socket_ops;
    int r = pg__stream_init(&f->core, pg__loop_host(loop), ops, f, flags);
    if (r < 0) {
        pg__stream_block_put(pg__loop_host(loop), &f->core);
        return r;
    }
    bool socket = (flags & (PG__STREAM_SOCKET | PG__STREAM_WRITE_PIPE)) == PG__STREAM_SOCKET;
    pg__io_init(&f->io, fd, socket ? pg__fd_on_socket_io : pg__fd_on_io);
    f->next_client = NULL;
    f->prev_client = NULL;
    f->read_mode = PG__FD_READ_UNDECIDED;
    *out = f;
    return 0;
}

void pg__fdstream_discard(pg__fdstream *f)
{
    pg__stream_discard(&f->core);
    pg__stream_block_put(f->core.host, &f->core);
}

pg_transport *pg__fdstream_start(pg__fdstream *f, const pg_protocol *protocol)
{
    return pg__stream_start(&f->core, protocol);
}

int pg__fdstream_open(pg_loop *loop, int fd, unsigned flags, pg_protocol_factory factory, void *arg,
                      pg_transport **out)
{
    pg__fdstream *f;
    int r = pg__fdstream_alloc(loop, fd, flags, &f);
    if (r < 0)
        return r;
    /* Last: from here on nothing can fail, so the protocol never leaks. */
    pg_protocol protocol;
    r = pg__make_protocol(factory, arg, &protocol);
    if (r < 0) {
        pg__fdstream_discard(f);
        return r;
    }
    pg_transport *t = pg__fdstream_start(f, &protocol);
    if (out != NULL)
        *out = t;
    return 0;
}

/* ---- a server's list of connections ------------------------------------ */

void pg__fdstream_join(pg_transport *t, pg__fdstream **list)
{
    pg__fdstream *f = (pg__fdstream *)(void *)pg__stream_of(t);
    assert(f->prev_client == NULL);
    f->next_client = *list;
    if (*list != NULL)
        (*list)->prev_client = &f->next_client;
    f->prev_client = list;
    *list = f;
}

void pg__fdstream_close_list(pg__fdstream *list, bool abort)
{
    for (pg__fdstream *f = list, *next; f != NULL; f = next) {
        next = f->next_client;
        pg_transport *t = pg__stream_handle(&f->core);
        pg__close_above_fn close_above = atomic_load_explicit(&pg__close_above, memory_order_relaxed);
        if (abort)
            pg_transport_abort(t);
        else if (close_above == NULL || !close_above(t))
            pg_transport_close(t); /* no layer on it (else through TLS: close_notify first) */
    }
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
    return pg__fdstream_open(loop, fd, PG__STREAM_SOCKET | PG__STREAM_CAN_WRITE_EOF, factory, arg, out);
}
