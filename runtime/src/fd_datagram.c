/* The fd datagram driver of the built-in loop: UDP and Unix datagram
 * sockets. It moves datagrams with sendto/sendmmsg and recvmmsg and watches
 * readiness through the loop's epoll set; every rule of the transport is the
 * core's (runtime/core/datagram.c). */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "protogen/datagram.h"

#include "internal.h"

/* At most this many datagrams per sendmmsg. */
#define PG__FDDGRAM_SEND_BATCH 64

typedef struct pg__fddgram {
    pg_loop *loop;
    pg__io io;
    pg_datagram_transport *t;
} pg__fddgram;

size_t pg__datagram_sizeof(void)
{
    return sizeof(pg__fddgram) + pg__datagram_core_sizeof();
}

/* ---- the driver table --------------------------------------------------- */

/* One sendto for a single datagram (the common, immediate case), one
 * sendmmsg for a batch from the queue. */
static int pg__fddgram_send(void *self, const pg_datagram_out *msgs, int n)
{
    pg__fddgram *f = self;
    if (n == 1) {
        ssize_t r;
        PG__RETRY_EINTR(r, sendto(f->io.fd, msgs[0].data, msgs[0].len, MSG_NOSIGNAL, msgs[0].addr, msgs[0].addrlen));
        if (r >= 0)
            return 1;
        return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
    }
    struct mmsghdr hdrs[PG__FDDGRAM_SEND_BATCH];
    struct iovec iov[PG__FDDGRAM_SEND_BATCH];
    if (n > PG__FDDGRAM_SEND_BATCH)
        n = PG__FDDGRAM_SEND_BATCH; /* the rest at the next writable event */
    memset(hdrs, 0, sizeof hdrs);
    for (int i = 0; i < n; i++) {
        iov[i].iov_base = (void *)msgs[i].data;
        iov[i].iov_len = msgs[i].len;
        hdrs[i].msg_hdr.msg_iov = &iov[i];
        hdrs[i].msg_hdr.msg_iovlen = 1;
        hdrs[i].msg_hdr.msg_name = (void *)msgs[i].addr;
        hdrs[i].msg_hdr.msg_namelen = msgs[i].addrlen;
    }
    int sent;
    PG__RETRY_EINTR(sent, sendmmsg(f->io.fd, hdrs, (unsigned)n, MSG_NOSIGNAL));
    if (sent >= 0)
        return sent;
    return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
}

static int pg__fddgram_want(pg__fddgram *f, uint32_t events, bool on)
{
    if (on)
        return pg__io_start(f->loop, &f->io, events);
    return pg__io_stop(f->loop, &f->io, events); /* on failure the fd left the epoll set */
}

static int pg__fddgram_want_read(void *self, bool on)
{
    return pg__fddgram_want(self, PG__IO_READ, on);
}

static int pg__fddgram_want_write(void *self, bool on)
{
    return pg__fddgram_want(self, PG__IO_WRITE, on);
}

static void pg__fddgram_close(void *self)
{
    pg__fddgram *f = self;
    (void)pg__io_stop(f->loop, &f->io, PG__IO_READ | PG__IO_WRITE); /* closing anyway */
    close(f->io.fd);
    free(f);
}

static int pg__fddgram_get_extra_info(void *self, pg_extra_key key, pg_extra_info *out)
{
    pg__fddgram *f = self;
    out->fd = f->io.fd;
    switch (key) {
    case PG_EXTRA_SOCKNAME:
        return getsockname(f->io.fd, (struct sockaddr *)&out->addr, &out->addrlen) < 0 ? -errno : 0;
    case PG_EXTRA_SOCKET:
        out->addrlen = 0;
        return 0;
    default:
        return -ENOENT; /* PG_EXTRA_PEERNAME is the core's */
    }
}

static const pg_datagram_driver_ops pg__fddgram_ops = {
    .send = pg__fddgram_send,
    .want_read = pg__fddgram_want_read,
    .want_write = pg__fddgram_want_write,
    .close = pg__fddgram_close,
    .get_extra_info = pg__fddgram_get_extra_info,
};

/* ---- readiness ---------------------------------------------------------- */

/* Up to PG__DGRAM_BATCH datagrams with one recvmmsg into the loop's receive
 * area: no allocation per datagram, and one busy socket gets one batch per
 * loop iteration, like every other fd. A protocol that pauses in the middle
 * of the batch gets the rest from the core after resume_reading. */
static void pg__fddgram_read_ready(pg__fddgram *f)
{
    pg_datagram_transport *t = f->t;
    uint8_t *area = pg__loop_datagram_buffer(f->loop);
    if (area == NULL) {
        pg_datagram_receive_error(t, -ENOBUFS);
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
    PG__RETRY_EINTR(n, recvmmsg(f->io.fd, msgs, PG__DGRAM_BATCH, MSG_DONTWAIT, NULL));
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            pg_datagram_receive_error(t, -errno); /* e.g. -ECONNREFUSED: the transport stays open */
        return;
    }
    for (int i = 0; i < n && !pg_datagram_transport_is_closing(t); i++) {
        const struct msghdr *h = &msgs[i].msg_hdr;
        if (h->msg_flags & MSG_TRUNC) /* only Unix datagram sockets carry such datagrams */
            pg_datagram_receive_error(t, -EMSGSIZE);
        else
            pg_datagram_received(t, iov[i].iov_base, msgs[i].msg_len, h->msg_namelen > 0 ? h->msg_name : NULL,
                                 h->msg_namelen);
    }
}

static void pg__fddgram_on_io(pg__io *io, uint32_t events)
{
    pg__fddgram *f = PG__CONTAINER_OF(io, pg__fddgram, io);
    if (events & PG__IO_READ)
        pg__fddgram_read_ready(f);
    /* Last: writable may free the transport and this driver. */
    if ((events & PG__IO_WRITE) && (f->io.events & PG__IO_WRITE))
        pg_datagram_writable(f->t);
}

/* ---- creation ----------------------------------------------------------- */

int pg__datagram_open(pg_loop *loop, int fd, pg_datagram_protocol_factory factory, void *arg,
                      pg_datagram_transport **out)
{
    pg__fddgram *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -ENOMEM;
    struct sockaddr_storage peer;
    socklen_t peerlen = sizeof peer;
    if (getpeername(fd, (struct sockaddr *)&peer, &peerlen) < 0) {
        if (errno != ENOTCONN) {
            int r = -errno;
            free(f);
            return r;
        }
        peerlen = 0;
    }
    f->loop = loop;
    pg__io_init(&f->io, fd, pg__fddgram_on_io);
    int r = pg_datagram_new(pg__loop_host(loop), &pg__fddgram_ops, f, peerlen > 0 ? (struct sockaddr *)&peer : NULL,
                            peerlen, factory, arg, &f->t);
    if (r < 0) {
        free(f);
        return r;
    }
    if (out != NULL)
        *out = f->t;
    return 0;
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
