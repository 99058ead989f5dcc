/* openssl_echo: the TLS bench's reference, a hand-written OpenSSL echo server
 * on epoll (one thread, non-blocking sockets, SSL_set_fd), what a C
 * programmer writes without protogen:
 *
 *   openssl_echo --port PORT --cert FILE --key FILE
 *
 * Prints "listening on 127.0.0.1:PORT". Each connection: handshake, then
 * every byte read is written back (what the socket does not take waits, and
 * reading stops meanwhile), the peer's close_notify or EOF closes it (our
 * close_notify first). SIGINT/SIGTERM stop it. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF (64 * 1024)

struct conn {
    int fd;
    SSL *ssl;
    unsigned char *pending; /* read, not yet written back: [head, len) */
    size_t head, len;
    unsigned events;
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static void conn_free(int ep, struct conn *c)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    SSL_free(c->ssl);
    free(c->pending);
    free(c);
}

static void want(int ep, struct conn *c, unsigned events)
{
    if (c->events == events)
        return;
    c->events = events;
    struct epoll_event ev = { .events = events, .data.ptr = c };
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* false: the connection is done. */
static int conn_step(int ep, struct conn *c)
{
    if (!SSL_is_init_finished(c->ssl)) {
        int r = SSL_do_handshake(c->ssl);
        if (r != 1) {
            int e = SSL_get_error(c->ssl, r);
            if (e == SSL_ERROR_WANT_READ) {
                want(ep, c, EPOLLIN);
                return 1;
            }
            if (e == SSL_ERROR_WANT_WRITE) {
                want(ep, c, EPOLLOUT);
                return 1;
            }
            ERR_clear_error();
            return 0;
        }
    }
    for (;;) {
        while (c->head < c->len) {
            size_t n;
            int r = SSL_write_ex(c->ssl, c->pending + c->head, c->len - c->head, &n);
            if (r != 1) {
                int e = SSL_get_error(c->ssl, r);
                if (e == SSL_ERROR_WANT_WRITE) {
                    want(ep, c, EPOLLOUT);
                    return 1;
                }
                if (e == SSL_ERROR_WANT_READ) {
                    want(ep, c, EPOLLIN);
                    return 1;
                }
                ERR_clear_error();
                return 0;
            }
            c->head += n;
        }
        c->head = c->len = 0;
        size_t n;
        int r = SSL_read_ex(c->ssl, c->pending, BUF, &n);
        if (r != 1) {
            int e = SSL_get_error(c->ssl, r);
            if (e == SSL_ERROR_WANT_READ) {
                want(ep, c, EPOLLIN);
                return 1;
            }
            if (e == SSL_ERROR_ZERO_RETURN)
                SSL_shutdown(c->ssl);
            ERR_clear_error();
            return 0;
        }
        c->len = n;
    }
}

int main(int argc, char **argv)
{
    int port = 0;
    const char *cert = NULL, *key = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--port") == 0)
            port = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--cert") == 0)
            cert = argv[i + 1];
        else if (strcmp(argv[i], "--key") == 0)
            key = argv[i + 1];
    }
    if (cert == NULL || key == NULL) {
        fprintf(stderr, "usage: %s --port PORT --cert FILE --key FILE\n", argv[0]);
        return 2;
    }
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL || SSL_CTX_use_certificate_chain_file(ctx, cert) != 1
        || SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        ERR_print_errors_fp(stderr);
        return 1;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof addr;
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(lfd, 1024) < 0
        || getsockname(lfd, (struct sockaddr *)&addr, &alen) < 0) {
        perror("openssl_echo");
        return 1;
    }
    printf("listening on 127.0.0.1:%d\n", ntohs(addr.sin_port));
    fflush(stdout);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);

    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event lev = { .events = EPOLLIN, .data.ptr = NULL };
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);
    struct epoll_event evs[256];
    while (!stop) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (c == NULL) {
                int fd;
                while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    c = calloc(1, sizeof *c);
                    c->fd = fd;
                    c->pending = malloc(BUF);
                    c->ssl = SSL_new(ctx);
                    SSL_set_fd(c->ssl, fd);
                    SSL_set_accept_state(c->ssl);
                    c->events = EPOLLIN;
                    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
                    if (!conn_step(ep, c))
                        conn_free(ep, c);
                }
                continue;
            }
            if (!conn_step(ep, c))
                conn_free(ep, c);
        }
    }
    close(ep);
    close(lfd);
    SSL_CTX_free(ctx);
    return 0;
}
