/* A poll() loop that owns its sockets and runs protogen stream protocols on
 * them through the manual host (protogen/manual.h): the whole of "embedding
 * protogen in your own loop", in one function. echo_poll_server uses it, and
 * so does the conformance suite's server (--host poll). */
#ifndef POLL_SERVE_H
#define POLL_SERVE_H

#include <signal.h>

#include "protogen/core.h"

/* Listens on host:port (numeric IPv4 or IPv6, or "localhost"; port 0: any
 * free port), non-blocking; writes "HOST:PORT" into where. The fd or -errno. */
int poll_listen_tcp(const char *host, long port, char *where, size_t size);
/* Listens on a Unix socket path; writes the path into where. The fd or -errno. */
int poll_listen_unix(const char *path, char *where, size_t size);

typedef struct poll_serve_options {
    pg_protocol_factory factory; /* makes each connection's protocol */
    void *factory_arg;
    int sndbuf;                  /* > 0: SO_SNDBUF of each accepted socket */
    bool tcp_nodelay;            /* TCP_NODELAY on accepted sockets, as protogen's own loop */
    /* On SIGINT or SIGTERM: called to end the open connections (e.g. abort
     * each); the loop then runs until every one has ended. NULL: none. */
    void (*end_all)(void *arg);
    void *end_all_arg;
} poll_serve_options;

/* Accepts on lfd (closed on return) and serves until SIGINT or SIGTERM.
 * 0, or -errno when poll itself fails. */
int poll_serve(int lfd, const poll_serve_options *opts);

#endif
