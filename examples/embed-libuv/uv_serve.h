/* What the libuv example servers' mains share (echo_uv_server,
 * smtp_uv_server; udp_echo_uv_server resolves with it): a plain libuv TCP
 * listener on HOST:PORT, the
 * "listening on HOST:PORT" line, and the run until SIGINT or SIGTERM with the
 * protogen host freed last. Listening stays libuv's own: pg_uv_accept() hands
 * each connection to protogen (in the server's connection callback). */
#ifndef EXAMPLES_UV_SERVE_H
#define EXAMPLES_UV_SERVE_H

#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <uv.h>

#include "protogen/uv.h"

/* The handles a server's main keeps. */
struct uv_serve {
    uv_loop_t loop;
    pg_uv_host *host;
    uv_tcp_t listener;
    uv_signal_t sigint, sigterm;
};

/* HOST (a name or an address) and PORT as the first address getaddrinfo
 * gives for socktype (SOCK_STREAM, SOCK_DGRAM): its family and address. */
static inline int uv_serve_resolve(uv_loop_t *loop, const char *host, long port, int socktype, int *family,
                                   struct sockaddr_storage *out, socklen_t *outlen)
{
    char service[16];
    snprintf(service, sizeof service, "%ld", port);
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = socktype, .ai_flags = AI_PASSIVE };
    uv_getaddrinfo_t req;
    int rc = uv_getaddrinfo(loop, &req, NULL, host, service, &hints); /* no callback: synchronous */
    if (rc < 0)
        return rc;
    *family = req.addrinfo->ai_family;
    *outlen = req.addrinfo->ai_addrlen;
    memcpy(out, req.addrinfo->ai_addr, req.addrinfo->ai_addrlen);
    uv_freeaddrinfo(req.addrinfo);
    return 0;
}

/* The loop, the protogen host and the listener; then "listening on
 * HOST:PORT". On failure says so on stderr under name, and everything is
 * closed again: 1 (the exit status); else 0. */
static inline int uv_serve_listen(struct uv_serve *s, const char *name, const char *host, long port,
                                  uv_connection_cb on_connection)
{
    struct sockaddr_storage addr;
    socklen_t len;
    int family;
    int rc = uv_loop_init(&s->loop);
    if (rc < 0) {
        fprintf(stderr, "%s: %s\n", name, uv_strerror(rc));
        return 1;
    }
    rc = pg_uv_host_new(&s->loop, &s->host);
    if (rc == 0)
        rc = uv_serve_resolve(&s->loop, host, port, SOCK_STREAM, &family, &addr, &len);
    if (rc == 0)
        rc = uv_tcp_init(&s->loop, &s->listener);
    if (rc == 0) {
        rc = uv_tcp_bind(&s->listener, (const struct sockaddr *)&addr, 0);
        if (rc == 0)
            rc = uv_listen((uv_stream_t *)&s->listener, SOMAXCONN, on_connection);
        if (rc < 0)
            uv_close((uv_handle_t *)&s->listener, NULL);
    }
    if (rc < 0) {
        fprintf(stderr, "%s: cannot listen on %s:%ld: %s\n", name, host, port, uv_strerror(rc));
        if (s->host != NULL)
            pg_uv_host_free(s->host);
        uv_run(&s->loop, UV_RUN_DEFAULT);
        uv_loop_close(&s->loop);
        return 1;
    }
    int addrlen = (int)sizeof addr;
    char where[128];
    memset(&addr, 0, sizeof addr);
    if (uv_tcp_getsockname(&s->listener, (struct sockaddr *)&addr, &addrlen) == 0
        && pg_format_address((struct sockaddr *)&addr, where, sizeof where) > 0)
        printf("listening on %s\n", where);
    fflush(stdout);
    return 0;
}

/* Stops accepting and stops watching the signals: uv_run returns once the
 * connections' handles have closed too (for on_signal). */
static inline void uv_serve_stop(struct uv_serve *s)
{
    uv_close((uv_handle_t *)&s->listener, NULL);
    uv_close((uv_handle_t *)&s->sigint, NULL);
    uv_close((uv_handle_t *)&s->sigterm, NULL);
}

/* Runs until every handle is closed (on_signal calls uv_serve_stop and ends
 * what is open), then frees the host and closes the loop. 0 on a clean stop. */
static inline int uv_serve_run(struct uv_serve *s, uv_signal_cb on_signal)
{
    uv_signal_init(&s->loop, &s->sigint);
    uv_signal_init(&s->loop, &s->sigterm);
    uv_signal_start(&s->sigint, on_signal, SIGINT);
    uv_signal_start(&s->sigterm, on_signal, SIGTERM);
    int rc = uv_run(&s->loop, UV_RUN_DEFAULT);
    pg_uv_host_free(s->host);
    uv_run(&s->loop, UV_RUN_DEFAULT); /* the host's own handles */
    return uv_loop_close(&s->loop) == 0 && rc == 0 ? 0 : 1;
}

#endif
