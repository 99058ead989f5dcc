/* tls_echo_server: examples/echo's protocol and handlers, unchanged, over TLS.
 *
 *   tls_echo_server --cert FILE --key FILE [--host HOST] [--port PORT]
 *                   [--ca FILE [--require-client-cert]] [--alpn NAME]... [--sndbuf BYTES]
 *
 * The protocol and handlers are examples/echo's; this directory's echo.spec
 * adds a tls block, so the generated code has echo_tls_config (the spec's
 * policy, to which the command line adds the certificate and key) and
 * echo_listen_tls (each connection's handshake first, the echo protocol once
 * it completed).
 *
 * Prints "listening on HOST:PORT" once it accepts connections (PORT 0 picks a
 * free port), one line per failed handshake on stderr ("handshake failed:
 * REASON"), and stops cleanly on SIGINT or SIGTERM, closing the connections
 * still open with close_notify. --ca asks clients for a certificate signed by that CA
 * (--require-client-cert refuses those without); --sndbuf shrinks each
 * connection's kernel send buffer, so that back-pressure shows with little data. */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "echo.h"
#include "echo_server.h"
#include "options.h"
#include "serve.h"
#include "protogen/tls.h"

#define MAX_ALPN 8

static void stop_loop(void *arg)
{
    pg_loop_stop(arg);
}

static void handshake_failed(void *arg, const pg_tls_error *error)
{
    (void)arg;
    fprintf(stderr, "handshake failed: %s\n", error->reason);
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    long port = 7777, sndbuf = 0;
    pg_tls_config cfg;
    echo_tls_config(&cfg);
    cfg.handshake_failed = handshake_failed;
    const char *alpn[MAX_ALPN];
    for (int i = 1; i < argc; i++) {
        const char *name;
        if (option_string(argc, argv, &i, "--host", &host) || option_long(argc, argv, &i, "--port", 0, 65535, &port)
            || option_string(argc, argv, &i, "--cert", &cfg.cert_file)
            || option_string(argc, argv, &i, "--key", &cfg.key_file)
            || option_string(argc, argv, &i, "--ca", &cfg.ca_file)
            || option_long(argc, argv, &i, "--sndbuf", 0, 1 << 30, &sndbuf))
            continue;
        if (cfg.alpn_count < MAX_ALPN && option_string(argc, argv, &i, "--alpn", &name)) {
            alpn[cfg.alpn_count++] = name;
            continue;
        }
        if (strcmp(argv[i], "--require-client-cert") == 0) {
            cfg.require_client_cert = true;
            continue;
        }
        cfg.cert_file = NULL;
        break;
    }
    if (cfg.cert_file == NULL || cfg.key_file == NULL) {
        fprintf(stderr, "usage: %s --cert FILE --key FILE [--host HOST] [--port PORT] [--ca FILE "
                        "[--require-client-cert]] [--alpn NAME]... [--sndbuf BYTES]\n", argv[0]);
        return 2;
    }
    cfg.alpn = alpn;

    pg_tls_context *tls;
    pg_tls_error err;
    if (pg_tls_context_new(&cfg, &tls, &err) < 0) {
        fprintf(stderr, "tls_echo_server: %s\n", err.reason);
        return 1;
    }
    struct echo_server server = { 0 };

    pg_loop *loop;
    int rc = pg_loop_new(&loop);
    if (rc < 0) {
        fprintf(stderr, "tls_echo_server: %s\n", strerror(-rc));
        return 1;
    }
    pg_server *listener;
    pg_listen_options opts = { .send_buffer_size = (int)sndbuf };
    rc = echo_listen_tls(loop, host, (uint16_t)port, &opts, tls, &server, &listener);
    if (rc < 0) {
        fprintf(stderr, "tls_echo_server: cannot listen on %s:%ld: %s\n", host, port, strerror(-rc));
        pg_loop_close(loop);
        return 1;
    }
    serve_print_listening(listener);

    pg_loop_add_signal_handler(loop, SIGINT, stop_loop, loop);
    pg_loop_add_signal_handler(loop, SIGTERM, stop_loop, loop);
    rc = pg_loop_run(loop);
    pg_loop_remove_signal_handler(loop, SIGINT);
    pg_loop_remove_signal_handler(loop, SIGTERM);

    /* Stop accepting; close every connection: through TLS, close_notify
     * once its buffer drained (a peer that does not answer it has the spec's
     * shutdown_timeout), those still in their handshake at once. Then let
     * each one's connection_lost run. */
    pg_server_close(listener);
    pg_server_close_clients(listener);
    while (server.open_connections > 0 && rc == 0)
        rc = pg_loop_run_once(loop, -1);
    int closed = pg_loop_close(loop);
    pg_tls_context_free(tls);
    if (rc == 0 && closed < 0)
        rc = closed;
    if (rc < 0)
        fprintf(stderr, "tls_echo_server: %s\n", strerror(-rc));
    return rc < 0 ? 1 : 0;
}
