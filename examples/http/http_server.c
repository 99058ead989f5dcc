/* http_server: an HTTP/1.1 origin server built on the protocol generated
 * from http.spec and the routes of routes.c.
 *
 *   http_server [--host HOST] [--port PORT] [--root DIR] [--header-timeout SECONDS]
 *               [--idle-timeout SECONDS] [--max-body BYTES] [--threads N] [--cert FILE --key FILE]
 *
 * With --cert and --key it serves HTTPS: the same protocol and handlers over
 * protogen's TLS layer (protogen/tls.h), when libprotogen has it.
 *
 * --threads N (default 1) runs one loop per thread, each with a listener of
 * its own on the same port (serve_threads.h).
 *
 * Prints "listening on HOST:PORT" once it accepts connections (PORT 0 picks a
 * free port), and stops cleanly on SIGINT or SIGTERM. */
#define _POSIX_C_SOURCE 200809L /* pthread_sigmask (serve_threads.h) */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "http.h"
#ifdef HTTP_TLS
#include "protogen/tls.h"
#endif
#include "http_server.h"
#include "options.h"
#include "serve_threads.h"

/* One server state per loop (--threads N): its own connections counted. */
static struct http_server servers[SERVE_MAX_THREADS];
#ifdef HTTP_TLS
static pg_tls_factory tls_factories[SERVE_MAX_THREADS];
static pg_tls_context *tls; /* shared by every loop: --cert and --key given */
#endif

static int listen_worker(void *arg, long i, pg_loop *loop, const char *host, uint16_t port,
                         const pg_listen_options *opts, pg_server **listener, const size_t **open_connections)
{
    servers[i] = *(const struct http_server *)arg; /* the settings */
    *open_connections = &servers[i].open_connections;
#ifdef HTTP_TLS
    /* HTTPS: the TLS layer is the listener's protocol, and each connection's
     * http protocol runs above it once the handshake is done. */
    if (tls != NULL) {
        tls_factories[i] = (pg_tls_factory){ .tls = tls, .factory = http_protocol_factory, .arg = &servers[i] };
        return pg_tcp_listen(loop, host, port, opts, pg_tls_protocol_factory, &tls_factories[i], listener);
    }
#endif
    return http_listen(loop, host, port, opts, &servers[i], listener);
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    long port = 8080, header_timeout = 10, idle = 5, max_body = 1L << 20, nthreads = 1;
    struct http_server settings = { .root = NULL };
    const char *cert = NULL, *key = NULL;
    for (int i = 1; i < argc; i++) {
        if (option_string(argc, argv, &i, "--host", &host) || option_long(argc, argv, &i, "--port", 0, 65535, &port)
            || option_string(argc, argv, &i, "--root", &settings.root)
            || option_long(argc, argv, &i, "--header-timeout", 1, 3600, &header_timeout)
            || option_long(argc, argv, &i, "--idle-timeout", 1, 3600, &idle)
            || option_long(argc, argv, &i, "--max-body", 0, 1L << 30, &max_body)
            || option_long(argc, argv, &i, "--threads", 1, SERVE_MAX_THREADS, &nthreads)
            || option_string(argc, argv, &i, "--cert", &cert) || option_string(argc, argv, &i, "--key", &key))
            continue;
        fprintf(stderr, "usage: %s [--host HOST] [--port PORT] [--root DIR] [--header-timeout SECONDS] "
                        "[--idle-timeout SECONDS] [--max-body BYTES] [--threads N] [--cert FILE --key FILE]\n",
                argv[0]);
        return 2;
    }
    if ((cert == NULL) != (key == NULL)) {
        fprintf(stderr, "http_server: --cert and --key go together\n");
        return 2;
    }
    settings.header_timeout_ms = (uint64_t)header_timeout * 1000;
    settings.idle_timeout_ms = (uint64_t)idle * 1000;
    settings.max_body = (size_t)max_body;

#ifdef HTTP_TLS
    if (cert != NULL) {
        pg_tls_config cfg = { .server = true, .cert_file = cert, .key_file = key };
        pg_tls_error err;
        if (pg_tls_context_new(&cfg, &tls, &err) < 0) {
            fprintf(stderr, "http_server: %s\n", err.reason);
            return 1;
        }
    }
#else
    if (cert != NULL) {
        fprintf(stderr, "http_server: this libprotogen has no TLS (built without OpenSSL)\n");
        return 1;
    }
#endif
    pg_listen_options opts = { 0 };
    int rc = serve_threads("http_server", host, (uint16_t)port, opts, nthreads, listen_worker, &settings, NULL);
#ifdef HTTP_TLS
    pg_tls_context_free(tls);
#endif
    return rc;
}
