/* tls_loadgen: the TLS bench's client (OpenSSL, epoll, one thread).
 *
 *   tls_loadgen --port PORT --ca FILE handshakes --conns C --seconds S
 *       C connections at once, each: connect, handshake (verifying the
 *       server against FILE, name "localhost"), one byte echoed, close_notify,
 *       close; again, for S seconds. Prints "handshakes N seconds T per_s R".
 *   tls_loadgen --port PORT --ca FILE bulk --mib M
 *       one connection sends M MiB and reads the echo back while sending.
 *       Prints "bulk BYTES seconds T mb_s R" (MB: 10^6 bytes).
 * Exit 1 on any failure (a handshake refused, an echo that differs). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct sockaddr_in server;

static int dial(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&server, sizeof server) < 0 && errno != EINPROGRESS) {
        perror("connect");
        exit(1);
    }
    return fd;
}

static SSL *wrap(SSL_CTX *ctx, int fd)
{
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    SSL_set_tlsext_host_name(ssl, "localhost");
    SSL_set1_host(ssl, "localhost");
    SSL_set_connect_state(ssl);
    return ssl;
}

static void die_ssl(const char *what)
{
    fprintf(stderr, "tls_loadgen: %s\n", what);
    ERR_print_errors_fp(stderr);
    exit(1);
}

enum step { HANDSHAKE, SEND, RECV };

struct conn {
    int fd;
    SSL *ssl;
    enum step step;
};

static void conn_start(int ep, SSL_CTX *ctx, struct conn *c)
{
    c->fd = dial();
    c->ssl = wrap(ctx, c->fd);
    c->step = HANDSHAKE;
    struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.ptr = c };
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
}

/* 1: one handshake and its echo done. */
static int conn_step(struct conn *c)
{
    for (;;) {
        int r, e;
        size_t n;
        unsigned char b = 'x';
        switch (c->step) {
        case HANDSHAKE:
            r = SSL_do_handshake(c->ssl);
            if (r == 1) {
                c->step = SEND;
                continue;
            }
            break;
        case SEND:
            r = SSL_write_ex(c->ssl, &b, 1, &n);
            if (r == 1) {
                c->step = RECV;
                continue;
            }
            break;
        case RECV:
            r = SSL_read_ex(c->ssl, &b, 1, &n);
            if (r == 1) {
                if (b != 'x')
                    die_ssl("the echo differs");
                return 1;
            }
            break;
        }
        e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            return 0;
        die_ssl(c->step == HANDSHAKE ? "handshake failed" : "connection failed");
    }
}

static int handshakes(SSL_CTX *ctx, int conns, double seconds)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct conn *cs = calloc((size_t)conns, sizeof *cs);
    for (int i = 0; i < conns; i++)
        conn_start(ep, ctx, &cs[i]);
    long done = 0;
    double start = now_s(), end = start + seconds;
    struct epoll_event evs[256];
    while (now_s() < end) {
        int n = epoll_wait(ep, evs, 256, 1000);
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (conn_step(c)) {
                done++;
                SSL_shutdown(c->ssl); /* our close_notify; the answer is not awaited */
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                close(c->fd);
                SSL_free(c->ssl);
                conn_start(ep, ctx, c);
            }
        }
    }
    double t = now_s() - start;
    for (int i = 0; i < conns; i++) {
        close(cs[i].fd);
        SSL_free(cs[i].ssl);
    }
    free(cs);
    close(ep);
    printf("handshakes %ld seconds %.3f per_s %.1f\n", done, t, (double)done / t);
    return 0;
}

static int bulk(SSL_CTX *ctx, long mib)
{
    size_t total = (size_t)mib << 20;
    int fd = dial();
    SSL *ssl = wrap(ctx, fd);
    struct pollfd p = { .fd = fd, .events = POLLOUT };
    poll(&p, 1, 10000);
    static unsigned char out[16384], in[65536];
    for (size_t i = 0; i < sizeof out; i++)
        out[i] = (unsigned char)(i * 7);
    int r;
    while ((r = SSL_do_handshake(ssl)) != 1) {
        int e = SSL_get_error(ssl, r);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
            die_ssl("handshake failed");
        p.events = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
        poll(&p, 1, 10000);
    }
    size_t sent = 0, got = 0;
    double start = now_s();
    while (got < total) {
        int progress = 0;
        while (sent < total) {
            size_t n, want = total - sent < sizeof out ? total - sent : sizeof out;
            if (SSL_write_ex(ssl, out, want, &n) != 1) {
                int e = SSL_get_error(ssl, 0);
                if (e != SSL_ERROR_WANT_WRITE && e != SSL_ERROR_WANT_READ)
                    die_ssl("write failed");
                break;
            }
            sent += n;
            progress = 1;
        }
        for (;;) {
            size_t n;
            if (SSL_read_ex(ssl, in, sizeof in, &n) != 1) {
                int e = SSL_get_error(ssl, 0);
                if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                    die_ssl("read failed");
                break;
            }
            for (size_t i = 0; i < n; i++)
                if (in[i] != out[(got + i) % sizeof out])
                    die_ssl("the echo differs");
            got += n;
            progress = 1;
        }
        if (!progress) {
            p.events = POLLIN | (sent < total ? POLLOUT : 0);
            poll(&p, 1, 10000);
        }
    }
    double t = now_s() - start;
    SSL_shutdown(ssl);
    SSL_free(ssl);
    close(fd);
    printf("bulk %zu seconds %.3f mb_s %.1f\n", total, t, (double)total / t / 1e6);
    return 0;
}

int main(int argc, char **argv)
{
    int port = 0, conns = 8;
    double seconds = 2;
    long mib = 64;
    const char *ca = NULL, *mode = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (strcmp(argv[i], "--ca") == 0 && i + 1 < argc)
            ca = argv[++i];
        else if (strcmp(argv[i], "--conns") == 0 && i + 1 < argc)
            conns = atoi(argv[++i]);
        else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (strcmp(argv[i], "--mib") == 0 && i + 1 < argc)
            mib = atol(argv[++i]);
        else
            mode = argv[i];
    }
    if (port <= 0 || ca == NULL || mode == NULL || conns < 1 || conns > 1000) {
        fprintf(stderr, "usage: %s --port PORT --ca FILE (handshakes [--conns C] [--seconds S] | bulk [--mib M])\n",
                argv[0]);
        return 2;
    }
    server.sin_family = AF_INET;
    server.sin_port = htons((uint16_t)port);
    server.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL || SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1)
        die_ssl("cannot load the CA");
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    int rc = strcmp(mode, "handshakes") == 0 ? handshakes(ctx, conns, seconds)
             : strcmp(mode, "bulk") == 0     ? bulk(ctx, mib)
                                             : 2;
    SSL_CTX_free(ctx);
    return rc;
}
