/* epoll_echo: the floor. A tight hand-written single-threaded epoll echo server,
 * as a careful engineer writes it for this one job.
 *
 *   epoll_echo [--host A.B.C.D] [--port PORT]
 *
 * Prints "listening on HOST:PORT" (PORT 0 picks a free port); SIGINT or SIGTERM
 * ends it. Level-triggered epoll; per ping-pong message one epoll_wait, one
 * recv and one send. Reads go to one shared 256 KiB buffer and are written back
 * at once; only what the kernel does not take is kept, per connection, and
 * reading pauses while more than 64 KiB wait (resuming at 16 KiB: asyncio's
 * watermarks, which protogen's echo example uses too). Idle connections hold
 * no buffer. Connections get TCP_NODELAY, as protogen's and asyncio's do. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define READ_SIZE (256 * 1024)
#define MAX_EVENTS 64
#define MAX_ACCEPTS 64 /* per readiness event */
#define HIGH_WATER (64 * 1024) /* stop reading above this many pending bytes (asyncio's) */
#define LOW_WATER (16 * 1024)  /* and start again at this many */

struct conn {
    int fd;
    uint32_t events; /* epoll interest */
    bool eof;        /* the peer is done: close once pending is sent */
    uint8_t *pending; /* bytes not yet sent back: [off, len) */
    size_t off, len, cap;
};

static uint8_t buf[READ_SIZE];
static volatile sig_atomic_t stop;

static void on_signal(int signo)
{
    (void)signo;
    stop = 1;
}

static void conn_close(struct conn *c)
{
    close(c->fd); /* also leaves the epoll set */
    free(c->pending);
    free(c);
}

/* Sets the interest from the state; closes on failure. 0, or -1 when closed. */
static int update(int epfd, struct conn *c)
{
    size_t pending = c->len - c->off;
    uint32_t want = pending > 0 ? EPOLLOUT : 0;
    if (!c->eof && (pending == 0 || pending <= LOW_WATER || (pending <= HIGH_WATER && (c->events & EPOLLIN))))
        want |= EPOLLIN;
    if (want == 0) {
        conn_close(c);
        return -1;
    }
    if (want == c->events)
        return 0;
    struct epoll_event ev = { .events = want, .data.ptr = c };
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0) {
        conn_close(c);
        return -1;
    }
    c->events = want;
    return 0;
}

/* Keeps bytes the kernel did not take. 0, or -1 when out of memory. */
static int keep(struct conn *c, const uint8_t *data, size_t n)
{
    if (c->len + n > c->cap) {
        size_t used = c->len - c->off;
        memmove(c->pending, c->pending + c->off, used);
        c->off = 0;
        c->len = used;
        if (used + n > c->cap) {
            size_t cap = used + n > 2 * c->cap ? used + n : 2 * c->cap;
            uint8_t *p = realloc(c->pending, cap);
            if (p == NULL)
                return -1;
            c->pending = p;
            c->cap = cap;
        }
    }
    memcpy(c->pending + c->len, data, n);
    c->len += n;
    return 0;
}

/* 0, or -1 when the connection is closed. */
static int on_readable(int epfd, struct conn *c)
{
    ssize_t n = recv(c->fd, buf, sizeof buf, 0);
    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR)
            return 0;
        conn_close(c);
        return -1;
    }
    if (n == 0) {
        c->eof = true;
        return update(epfd, c);
    }
    ssize_t w = 0;
    if (c->len == c->off) { /* nothing pending: send at once */
        w = send(c->fd, buf, (size_t)n, MSG_NOSIGNAL);
        if (w == n)
            return 0;
        if (w < 0) {
            if (errno != EAGAIN && errno != EINTR) {
                conn_close(c);
                return -1;
            }
            w = 0;
        }
    }
    if (keep(c, buf + w, (size_t)(n - w)) < 0) {
        conn_close(c);
        return -1;
    }
    return update(epfd, c);
}

static void on_writable(int epfd, struct conn *c)
{
    ssize_t w = send(c->fd, c->pending + c->off, c->len - c->off, MSG_NOSIGNAL);
    if (w < 0) {
        if (errno != EAGAIN && errno != EINTR)
            conn_close(c);
        return;
    }
    c->off += (size_t)w;
    if (c->off == c->len) { /* drained: idle connections keep no buffer */
        free(c->pending);
        c->pending = NULL;
        c->off = c->len = c->cap = 0;
    }
    update(epfd, c);
}

static void on_accept(int epfd, int lfd)
{
    for (int i = 0; i < MAX_ACCEPTS; i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return; /* EAGAIN, or an error the next wake-up retries */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct conn *c = calloc(1, sizeof *c);
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
        if (c == NULL || (c->fd = fd, c->events = EPOLLIN, epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0)) {
            free(c);
            close(fd);
        }
    }
}

static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port = 7777;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && strcmp(argv[i], "--host") == 0)
            host = argv[++i];
        else if (i + 1 < argc && strcmp(argv[i], "--port") == 0)
            port = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--host A.B.C.D] [--port PORT]\n", argv[0]);
            return 2;
        }
    }
    raise_fd_limit();
    signal(SIGPIPE, SIG_IGN);

    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    int one = 1;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1 || lfd < 0
        || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0
        || bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(lfd, 128) < 0) {
        fprintf(stderr, "epoll_echo: cannot listen on %s:%d: %s\n", host, port, strerror(errno));
        return 1;
    }
    socklen_t len = sizeof addr;
    getsockname(lfd, (struct sockaddr *)&addr, &len);
    printf("listening on %s:%d\n", host, ntohs(addr.sin_port));
    fflush(stdout);

    int epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
    if (epfd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev) < 0) {
        perror("epoll_echo: epoll");
        return 1;
    }

    /* Signals are blocked except inside epoll_pwait: no lost wake-up. */
    sigset_t block, during_wait;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigprocmask(SIG_BLOCK, &block, &during_wait);
    struct sigaction sa = { .sa_handler = on_signal };
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    struct epoll_event events[MAX_EVENTS];
    while (!stop) {
        int n = epoll_pwait(epfd, events, MAX_EVENTS, -1, &during_wait);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("epoll_echo: epoll_wait");
            return 1;
        }
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            uint32_t ev = events[i].events;
            if (c == NULL) {
                on_accept(epfd, lfd);
                continue;
            }
            if ((ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) && (c->events & EPOLLIN) && on_readable(epfd, c) < 0)
                continue; /* closed */
            if ((ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)) && c->len > c->off)
                on_writable(epfd, c);
        }
    }
    return 0;
}
