/* poll_serve: protogen stream protocols in a poll() loop that owns the
 * sockets. The program reads and writes; protogen's core (through the
 * manual host) applies asyncio's rules and calls the protocol. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "protogen/manual.h"

#include "poll_serve.h"

#define MAX_CONNS 1024
#define READ_SIZE ((size_t)64 * 1024)

/* One accepted socket and the transport over it. held: bytes read that the
 * protocol did not take because it paused reading; given again on resume. */
struct conn {
    int fd;
    pg_manual_stream *ms;
    uint8_t *held;
    size_t held_len;
    bool write_shut;
};

static volatile sig_atomic_t stop_requested;

static void on_signal(int signo)
{
    (void)signo;
    stop_requested = 1;
}

static int listen_fd(const struct sockaddr *sa, socklen_t len)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    if (sa->sa_family != AF_UNIX)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, sa, len) < 0 || listen(fd, 128) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

int poll_listen_tcp(const char *host, long port, char *where, size_t size)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
    socklen_t len;
    const char *numeric = strcmp(host, "localhost") == 0 ? "127.0.0.1" : host;
    if (inet_pton(AF_INET, numeric, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        len = sizeof *sin;
    } else if (inet_pton(AF_INET6, numeric, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        len = sizeof *sin6;
    } else {
        return -EINVAL;
    }
    int fd = listen_fd((struct sockaddr *)&ss, len);
    if (fd < 0)
        return fd;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    char text[INET6_ADDRSTRLEN];
    if (ss.ss_family == AF_INET)
        snprintf(where, size, "%s:%u", inet_ntop(AF_INET, &sin->sin_addr, text, sizeof text), ntohs(sin->sin_port));
    else
        snprintf(where, size, "[%s]:%u", inet_ntop(AF_INET6, &sin6->sin6_addr, text, sizeof text),
                 ntohs(sin6->sin6_port));
    return fd;
}

int poll_listen_unix(const char *path, char *where, size_t size)
{
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof sun);
    if (strlen(path) >= sizeof sun.sun_path)
        return -ENAMETOOLONG;
    sun.sun_family = AF_UNIX;
    strcpy(sun.sun_path, path);
    int fd = listen_fd((struct sockaddr *)&sun, sizeof sun);
    if (fd >= 0)
        snprintf(where, size, "%s", path);
    return fd;
}

/* The protocol's writes go straight to the socket, as with protogen's own
 * fd driver: what the kernel does not take stays in the transport's buffer,
 * and a broken connection is the protocol's error at once. */
static ssize_t send_now(void *arg, const struct iovec *iov, int iovcnt)
{
    struct conn *c = arg;
    struct msghdr msg = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt };
    ssize_t n;
    do
        n = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n >= 0)
        return n;
    return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
}

static void accept_all(int lfd, const poll_serve_options *opts, pg_host *host, struct conn *conns, size_t *n)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return; /* EAGAIN, or an error the next poll reports again */
        if (*n == MAX_CONNS) {
            close(fd);
            continue;
        }
        int one = 1;
        if (opts->tcp_nodelay)
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* fails harmlessly on Unix sockets */
        if (opts->sndbuf > 0)
            setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &opts->sndbuf, sizeof opts->sndbuf);
        struct conn *c = &conns[*n];
        memset(c, 0, sizeof *c);
        c->fd = fd;
        if (pg_manual_stream_new(host, PG_STREAM_CAN_WRITE_EOF, opts->factory, opts->factory_arg, &c->ms) < 0) {
            close(fd);
            continue;
        }
        ++*n;
        pg_manual_stream_set_sender(c->ms, send_now, c);
    }
}

/* Hands bytes to the protocol; keeps what it does not take. */
static void feed(struct conn *c, const uint8_t *data, size_t len)
{
    size_t taken = pg_manual_stream_feed(c->ms, data, len);
    if (taken == len)
        return;
    uint8_t *rest = malloc(len - taken);
    if (rest == NULL) {
        pg_manual_stream_fail(c->ms, -ENOMEM);
        return;
    }
    memcpy(rest, data + taken, len - taken);
    c->held = rest;
    c->held_len = len - taken;
}

static void on_readable(struct conn *c, uint8_t *buf)
{
    ssize_t n = recv(c->fd, buf, READ_SIZE, 0);
    if (n > 0)
        feed(c, buf, (size_t)n);
    else if (n == 0)
        pg_manual_stream_feed_eof(c->ms);
    else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        pg_manual_stream_fail(c->ms, -errno);
}

/* The write side is shut once the transport's write_eof() took effect. */
static void shut_if_done(struct conn *c)
{
    if (pg_manual_stream_output_shut(c->ms) && !c->write_shut) {
        shutdown(c->fd, SHUT_WR);
        c->write_shut = true;
    }
}

/* Held bytes go first once the protocol reads again. */
static void replay_held(struct conn *c)
{
    if (c->held_len == 0 || !pg_manual_stream_wants_read(c->ms))
        return;
    uint8_t *held = c->held;
    size_t len = c->held_len;
    c->held = NULL;
    c->held_len = 0;
    feed(c, held, len);
    free(held);
}

static bool wants_input(const struct conn *c)
{
    return pg_manual_stream_wants_read(c->ms) && c->held_len == 0;
}

int poll_serve(int lfd, const poll_serve_options *opts)
{
    static struct conn conns[MAX_CONNS];
    static struct pollfd fds[MAX_CONNS + 1];
    pg_manual_host *mh;
    uint8_t *buf = malloc(READ_SIZE);
    if (buf == NULL || pg_manual_host_new(&mh) < 0) {
        free(buf);
        close(lfd);
        return -ENOMEM;
    }
    /* The signals are blocked except inside ppoll, which they interrupt. */
    struct sigaction sa = { .sa_handler = on_signal };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigset_t blocked, during_poll;
    sigemptyset(&blocked);
    sigaddset(&blocked, SIGINT);
    sigaddset(&blocked, SIGTERM);
    sigprocmask(SIG_BLOCK, &blocked, &during_poll);

    size_t n = 0;
    bool stopping = false;
    int rc = 0;
    for (;;) {
        pg_manual_host_run(mh); /* connection_made, connection_lost, due timers, ... */
        /* Replay held input, shut write sides, forget connections that ended. */
        for (size_t i = 0; i < n;) {
            struct conn *c = &conns[i];
            replay_held(c);
            shut_if_done(c);
            if (pg_manual_stream_closed(c->ms)) {
                close(c->fd);
                pg_manual_stream_free(c->ms);
                free(c->held);
                conns[i] = conns[--n];
                continue;
            }
            i++;
        }
        if (stop_requested && !stopping) {
            /* Stop accepting, end what is open, let connection_lost run. */
            stopping = true;
            close(lfd);
            lfd = -1;
            if (opts->end_all != NULL)
                opts->end_all(opts->end_all_arg);
            continue;
        }
        if (stopping && (n == 0 || opts->end_all == NULL) && !pg_manual_host_pending(mh))
            break;

        nfds_t nfds = 0;
        if (lfd >= 0)
            fds[nfds++] = (struct pollfd){ .fd = lfd, .events = POLLIN };
        for (size_t i = 0; i < n; i++) {
            bool out = pg_manual_stream_wants_write(conns[i].ms);
            short events = (short)((wants_input(&conns[i]) ? POLLIN : 0) | (out ? POLLOUT : 0));
            fds[nfds++] = (struct pollfd){ .fd = conns[i].fd, .events = events };
        }
        /* Until the host has work: deferred calls (0) or the next timer. */
        int timeout = pg_manual_host_timeout(mh);
        struct timespec wait = { timeout / 1000, (long)(timeout % 1000) * 1000000L };
        if (ppoll(fds, nfds, timeout < 0 ? NULL : &wait, &during_poll) < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            break;
        }
        /* Connections first (their slots follow the listener's); accepting
         * last appends new ones without disturbing the indices. */
        size_t first = lfd >= 0 ? 1 : 0, polled = n;
        for (size_t i = 0; i < polled; i++) {
            short re = fds[first + i].revents;
            if ((re & (POLLIN | POLLHUP | POLLERR)) && wants_input(&conns[i]))
                on_readable(&conns[i], buf);
            if ((re & (POLLOUT | POLLHUP | POLLERR)) && pg_manual_stream_wants_write(conns[i].ms))
                pg_manual_stream_writable(conns[i].ms); /* the send reports an error */
        }
        if (lfd >= 0 && (fds[0].revents & POLLIN))
            accept_all(lfd, opts, pg_manual_host_host(mh), conns, &n);
    }
    /* Whatever is left (no end_all): abort it and let it end. */
    for (size_t i = 0; i < n; i++)
        pg_manual_stream_free(conns[i].ms);
    while (pg_manual_host_pending(mh))
        pg_manual_host_run(mh);
    for (size_t i = 0; i < n; i++) {
        close(conns[i].fd);
        free(conns[i].held);
    }
    if (lfd >= 0)
        close(lfd);
    pg_manual_host_free(mh);
    free(buf);
    return rc;
}
