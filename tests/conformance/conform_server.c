/* conform_server: the protogen server of the conformance suite.
 *
 *   conform_server [--host loop|libuv|poll] [--buffered] tcp          listens on 127.0.0.1, a free port
 *   conform_server [--host loop|libuv|poll] [--buffered] unix PATH    listens on a Unix socket
 *
 * --host poll runs the protocol in a poll() loop that owns the sockets, on the
 * manual host (examples/embed-poll's poll_serve).
 *
 * --host libuv serves on a libuv loop (protogen/uv.h) instead of the built-in
 * one (loop, the default): the suite runs against both hosts.
 * Prints "listening on ADDRESS", serves until SIGTERM, then closes. The same
 * generated protocol serves both: its factory works with any transport.
 * --buffered serves conform_buffered.spec's protocol instead.
 * --tls CERTDIR (the built-in loop, TCP) serves it over TLS (protogen/tls.h)
 * with CERTDIR's server.pem and server.key (tests/tls/make_certs.sh). */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "conform.h"
#include "conform_buffered.h"
#ifdef CONFORM_POLL_HOST
#include "poll_serve.h"
#endif
#include "conform_uv.h"
#ifdef CONFORM_TLS
#include "protogen/tls.h"
#endif

static void stop_loop(void *arg)
{
    pg_loop_stop(arg);
}

#ifdef CONFORM_POLL_HOST
static int serve_on_poll(pg_protocol_factory factory, const char *unix_path)
{
    char where[128];
    int lfd = unix_path != NULL ? poll_listen_unix(unix_path, where, sizeof where)
                                : poll_listen_tcp("127.0.0.1", 0, where, sizeof where);
    if (lfd < 0) {
        fprintf(stderr, "conform_server: %s\n", strerror(-lfd));
        return 1;
    }
    printf("listening on %s\n", where);
    fflush(stdout);
    /* Every scenario has ended its connections before the server is stopped. */
    poll_serve_options opts = { .factory = factory, .tcp_nodelay = unix_path == NULL };
    return poll_serve(lfd, &opts) == 0 ? 0 : 1;
}
#endif

int main(int argc, char **argv)
{
    bool libuv = false, poll_host = false;
    if (argc > 2 && strcmp(argv[1], "--host") == 0) {
        libuv = strcmp(argv[2], "libuv") == 0;
        poll_host = strcmp(argv[2], "poll") == 0;
        if (!libuv && !poll_host && strcmp(argv[2], "loop") != 0) {
            fprintf(stderr, "conform_server: unknown host %s\n", argv[2]);
            return 2;
        }
        argc -= 2;
        argv += 2;
    }
    const char *tls_dir = NULL;
    if (argc > 2 && strcmp(argv[1], "--tls") == 0) {
        tls_dir = argv[2];
        argc -= 2;
        argv += 2;
    }
    bool buffered = argc > 1 && strcmp(argv[1], "--buffered") == 0;
    if (buffered) {
        argc--;
        argv++;
    }
    bool unix_socket = argc == 3 && strcmp(argv[1], "unix") == 0;
    if (!unix_socket && !(argc == 2 && strcmp(argv[1], "tcp") == 0)) {
        fprintf(stderr, "usage: conform_server [--host loop|libuv|poll] [--buffered] tcp | unix PATH\n");
        return 2;
    }
    pg_protocol_factory factory = buffered ? conform_buffered_protocol_factory : conform_protocol_factory;
    if (poll_host) {
#ifdef CONFORM_POLL_HOST
        return serve_on_poll(factory, unix_socket ? argv[2] : NULL);
#else
        fprintf(stderr, "conform_server: built without the poll host (examples off)\n");
        return 2;
#endif
    }
    if (libuv)
        return conform_serve_libuv(factory, unix_socket ? argv[2] : NULL);
    pg_loop *loop;
    pg_server *server;
    int rc = pg_loop_new(&loop);
    if (rc < 0)
        return 1;
    void *factory_arg = NULL;
#ifdef CONFORM_TLS
    pg_tls_context *tls = NULL;
    pg_tls_factory tf;
    if (tls_dir != NULL) {
        char cert[512], key[512];
        snprintf(cert, sizeof cert, "%s/server.pem", tls_dir);
        snprintf(key, sizeof key, "%s/server.key", tls_dir);
        pg_tls_config cfg = { .server = true, .cert_file = cert, .key_file = key };
        pg_tls_error err;
        if (pg_tls_context_new(&cfg, &tls, &err) < 0) {
            fprintf(stderr, "conform_server: %s\n", err.reason);
            pg_loop_close(loop);
            return 1;
        }
        tf = (pg_tls_factory){ .tls = tls, .factory = factory };
        factory = pg_tls_protocol_factory;
        factory_arg = &tf;
    }
#else
    if (tls_dir != NULL) {
        fprintf(stderr, "conform_server: built without TLS\n");
        pg_loop_close(loop);
        return 2;
    }
#endif
    if (unix_socket)
        rc = pg_unix_listen(loop, argv[2], NULL, factory, factory_arg, &server);
    else
        rc = pg_tcp_listen(loop, "127.0.0.1", 0, NULL, factory, factory_arg, &server);
    if (rc < 0) {
        fprintf(stderr, "conform_server: %s\n", strerror(-rc));
        pg_loop_close(loop);
        return 1;
    }
    struct sockaddr_storage ss;
    socklen_t len;
    char where[128];
    if (pg_server_sockname(server, &ss, &len) == 0 && pg_format_address((struct sockaddr *)&ss, where, sizeof where) > 0)
        printf("listening on %s\n", where);
    fflush(stdout);
    pg_loop_add_signal_handler(loop, SIGTERM, stop_loop, loop);
    rc = pg_loop_run(loop);
    pg_server_close(server);
    pg_loop_remove_signal_handler(loop, SIGTERM);
    /* Every scenario has ended its connections before the server is stopped. */
    pg_loop_close(loop);
#ifdef CONFORM_TLS
    pg_tls_context_free(tls);
#endif
    return rc == 0 ? 0 : 1;
}
