/* http_server: an HTTP/1.1 origin server built on the protocol generated
 * from http.spec and the routes of routes.c.
 *
 *   http_server [--host HOST] [--port PORT] [--root DIR] [--header-timeout SECONDS]
 *               [--idle-timeout SECONDS] [--max-body BYTES] [--cert FILE --key FILE]
 *
 * With --cert and --key it serves HTTPS: the same protocol and handlers over
 * protogen's TLS layer (protogen/tls.h), when libprotogen has it.
 *
 * Prints "listening on HOST:PORT" once it accepts connections (PORT 0 picks a
 * free port), and stops cleanly on SIGINT or SIGTERM. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "http.h"
#ifdef HTTP_TLS
#include "protogen/tls.h"
#endif
#include "http_server.h"
#include "options.h"
#include "serve.h"

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    long port = 8080, header_timeout = 10, idle = 5, max_body = 1L << 20;
    struct http_server server = { .root = NULL };
    const char *cert = NULL, *key = NULL;
    for (int i = 1; i < argc; i++) {
        if (option_string(argc, argv, &i, "--host", &host) || option_long(argc, argv, &i, "--port", 0, 65535, &port)
            || option_string(argc, argv, &i, "--root", &server.root)
            || option_long(argc, argv, &i, "--header-timeout", 1, 3600, &header_timeout)
            || option_long(argc, argv, &i, "--idle-timeout", 1, 3600, &idle)
            || option_long(argc, argv, &i, "--max-body", 0, 1L << 30, &max_body)
            || option_string(argc, argv, &i, "--cert", &cert) || option_string(argc, argv, &i, "--key", &key))
            continue;
        fprintf(stderr, "usage: %s [--host HOST] [--port PORT] [--root DIR] [--header-timeout SECONDS] "
                        "[--idle-timeout SECONDS] [--max-body BYTES] [--cert FILE --key FILE]\n", argv[0]);
        return 2;
    }
    if ((cert == NULL) != (key == NULL)) {
        fprintf(stderr, "http_server: --cert and --key go together\n");
        return 2;
    }
    server.header_timeout_ms = (uint64_t)header_timeout * 1000;
    server.idle_timeout_ms = (uint64_t)idle * 1000;
    server.max_body = (size_t)max_body;

    pg_loop *loop = NULL;
    pg_server *listener = NULL;
    int rc = pg_loop_new(&loop);
#ifdef HTTP_TLS
    /* HTTPS: the TLS layer is the listener's protocol, and each connection's
     * http protocol runs above it once the handshake is done. */
    pg_tls_context *tls = NULL;
    pg_tls_factory tf = { .factory = http_protocol_factory, .arg = &server };
    if (rc == 0 && cert != NULL) {
        pg_tls_config cfg = { .server = true, .cert_file = cert, .key_file = key };
        pg_tls_error err;
        if (pg_tls_context_new(&cfg, &tls, &err) < 0) {
            fprintf(stderr, "http_server: %s\n", err.reason);
            pg_loop_close(loop);
            return 1;
        }
        tf.tls = tls;
        rc = pg_tcp_listen(loop, host, (uint16_t)port, NULL, pg_tls_protocol_factory, &tf, &listener);
    } else if (rc == 0)
#else
    if (rc == 0 && cert != NULL) {
        fprintf(stderr, "http_server: this libprotogen has no TLS (built without OpenSSL)\n");
        pg_loop_close(loop);
        return 1;
    }
    if (rc == 0)
#endif
        rc = http_listen(loop, host, (uint16_t)port, NULL, &server, &listener);
    if (rc < 0) {
        fprintf(stderr, "http_server: cannot listen on %s:%ld: %s\n", host, port, strerror(-rc));
        if (loop != NULL)
            pg_loop_close(loop);
#ifdef HTTP_TLS
        pg_tls_context_free(tls);
#endif
        return 1;
    }
    serve_print_listening(listener);
    rc = serve_until_signal(loop, listener, &server.open_connections);
#ifdef HTTP_TLS
    pg_tls_context_free(tls);
#endif
    return rc == 0 ? 0 : 1;
}
