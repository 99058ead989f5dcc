/* TLS declared in a spec (tests/tls/tls_srv.spec, tls_cli.spec) on the
 * built-in loop over loopback TCP: NAME_tls_config gives the spec's policy,
 * NAME_listen_tls serves it, NAME_connect_tls's done comes once the
 * handshake completed, or with its error (untrusted certificate, wrong
 * host name, a handshake timed out) and NAME_tls_error's reason, or
 * -ECANCELED when cancelled before or during the handshake; a server's
 * close_clients ends
 * its TLS connections with close_notify. The certificate directory is
 * argv[1] (the tls_certs fixture). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "tls_spec_test.h"

static const char *certdir;

static char *cert_path(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", certdir, name);
    return buf;
}

/* A client's record: its connection's callbacks (first: the handlers take
 * the context as a struct tls_side), then what its done said. */
struct client {
    struct tls_side side;
    int done_calls;
    int done_error;
    int made_at_done; /* side.made when done ran: connection_made comes first */
    tls_cli_conn *conn;
    int why_rc;
    pg_tls_error why;
};

static void connected(void *context, tls_cli_conn *conn, int error)
{
    struct client *c = context;
    c->done_calls++;
    c->done_error = error;
    c->conn = conn;
    c->made_at_done = c->side.made;
    c->why_rc = tls_cli_tls_error(&c->why);
}

struct fixture {
    pg_loop *loop;
    pg_tls_context *server_tls;
    pg_server *server;
    struct tls_side srv;
    uint16_t port;
};

/* A server presenting cert (server.pem, or untrusted.pem) on a free port. */
static void serve(struct fixture *f, const char *cert, const char *key)
{
    memset(f, 0, sizeof *f);
    char c[512], k[512];
    pg_tls_config cfg;
    tls_srv_tls_config(&cfg);
    assert_true(cfg.server);
    cfg.cert_file = cert_path(c, sizeof c, cert);
    cfg.key_file = cert_path(k, sizeof k, key);
    pg_tls_error err;
    if (pg_tls_context_new(&cfg, &f->server_tls, &err) < 0)
        fail_msg("%s", err.reason);
    assert_int_equal(pg_loop_new(&f->loop), 0);
    assert_int_equal(tls_srv_listen_tls(f->loop, "127.0.0.1", 0, NULL, f->server_tls, &f->srv, &f->server), 0);
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    assert_int_equal(pg_server_sockname(f->server, &ss, &len), 0);
    f->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void finish(struct fixture *f)
{
    pg_server_close(f->server);
    pg_server_abort_clients(f->server);
    RUN_UNTIL(f->loop, f->srv.lost == f->srv.made);
    assert_int_equal(pg_loop_close(f->loop), 0);
    pg_tls_context_free(f->server_tls); /* after the server: it kept its factory */
}

/* The client's context from the spec's config; server_name: another one, or NULL. */
static pg_tls_context *client_tls(const char *server_name)
{
    char ca[512];
    pg_tls_config cfg;
    tls_cli_tls_config(&cfg);
    cfg.ca_file = cert_path(ca, sizeof ca, "ca.pem");
    if (server_name != NULL)
        cfg.server_name = server_name;
    pg_tls_context *tls;
    pg_tls_error err;
    if (pg_tls_context_new(&cfg, &tls, &err) < 0)
        fail_msg("%s", err.reason);
    return tls;
}

static void test_config_is_the_spec(void **state)
{
    (void)state;
    pg_tls_config cfg;
    memset(&cfg, 0xa5, sizeof cfg);
    tls_cli_tls_config(&cfg);
    assert_false(cfg.server);
    assert_string_equal(cfg.server_name, "localhost");
    assert_int_equal(cfg.alpn_count, 2);
    assert_string_equal(cfg.alpn[0], "x-test");
    assert_string_equal(cfg.alpn[1], "x-other");
    assert_int_equal(cfg.min_version, PG_TLS_VERSION_1_3);
    assert_int_equal(cfg.handshake_timeout_ms, 5000);
    assert_int_equal(cfg.shutdown_timeout_ms, 2000);
    assert_null(cfg.ca_file); /* the system's store, unless the program says */
    assert_null(cfg.cert_file);
    assert_false(cfg.insecure_no_verify);
    assert_null(cfg.handshake_failed);
    tls_srv_tls_config(&cfg);
    assert_true(cfg.server);
    assert_null(cfg.server_name);
    assert_int_equal(cfg.min_version, PG_TLS_VERSION_1_2); /* the default */
    assert_int_equal(cfg.handshake_timeout_ms, PG_TLS_DEFAULT_HANDSHAKE_TIMEOUT_MS);
    assert_int_equal(cfg.shutdown_timeout_ms, PG_TLS_DEFAULT_SHUTDOWN_TIMEOUT_MS);
}

/* done once the handshake completed and connection_made ran; then the
 * server's close_clients: close_notify reaches the client (eof_received,
 * connection_lost(0) on both sides, not -ECONNRESET). */
static void test_connect_then_close_clients(void **state)
{
    (void)state;
    struct fixture f;
    serve(&f, "server.pem", "server.key");
    pg_tls_context *tls = client_tls(NULL);
    struct client c = { 0 };
    assert_int_equal(tls_cli_connect_tls(f.loop, "127.0.0.1", f.port, 0, tls, &c, connected), 0);
    RUN_UNTIL(f.loop, c.done_calls == 1);
    assert_int_equal(c.done_error, 0);
    assert_non_null(c.conn);
    assert_int_equal(c.made_at_done, 1);
    assert_string_equal(c.side.tls_version, "TLSv1.3");
    assert_int_equal(c.why_rc, -ENOENT); /* no failure to tell */
    pg_tls_info info;
    assert_int_equal(pg_tls_get_info(tls_cli_transport(c.conn), &info), 0);
    assert_string_equal(info.alpn, "x-test");

    assert_int_equal(tls_cli_write(c.conn, "ping", 4), 0);
    RUN_UNTIL(f.loop, c.side.received == 4);
    assert_int_equal(f.srv.made, 1);
    assert_int_equal(pg_server_close_clients(f.server), 0);
    RUN_UNTIL(f.loop, c.side.lost == 1 && f.srv.lost == 1);
    assert_int_equal(c.side.eofs, 1); /* the server's close_notify */
    assert_int_equal(c.side.lost_error, 0);
    assert_int_equal(f.srv.lost_error, 0);
    assert_int_equal(c.done_calls, 1);
    finish(&f);
    pg_tls_context_free(tls);
}

/* A handshake that fails reaches done as its error, with the reason. */
static void refused(const char *cert, const char *key, const char *server_name, const char *reason)
{
    struct fixture f;
    serve(&f, cert, key);
    pg_tls_context *tls = client_tls(server_name);
    struct client c = { 0 };
    assert_int_equal(tls_cli_connect_tls(f.loop, "127.0.0.1", f.port, 0, tls, &c, connected), 0);
    RUN_UNTIL(f.loop, c.done_calls == 1);
    assert_int_equal(c.done_error, -EKEYREJECTED);
    assert_null(c.conn);
    assert_int_equal(c.side.made, 0);
    assert_int_equal(c.why_rc, 0);
    assert_int_equal(c.why.error, -EKEYREJECTED);
    assert_non_null(strstr(c.why.reason, reason));
    assert_int_not_equal(c.why.verify_result, 0);
    assert_int_equal(tls_cli_tls_error(&c.why), -ENOENT); /* only inside done */
    finish(&f);
    assert_int_equal(f.srv.made, 0);
    pg_tls_context_free(tls);
}

static void test_untrusted_certificate(void **state)
{
    (void)state;
    refused("untrusted.pem", "untrusted.key", NULL, "certificate verify failed");
}

static void test_wrong_host_name(void **state)
{
    (void)state;
    refused("server.pem", "server.key", "wrong.example", "hostname mismatch");
}

/* Cancelled before the connection: done hears -ECANCELED, no connection. */
static void test_cancel(void **state)
{
    (void)state;
    struct fixture f;
    serve(&f, "server.pem", "server.key");
    pg_tls_context *tls = client_tls(NULL);
    struct client c = { 0 };
    assert_int_equal(tls_cli_connect_tls(f.loop, "127.0.0.1", f.port, 0, tls, &c, connected), 0);
    assert_int_equal(tls_cli_connect_cancel(f.loop, &c, connected), 0);
    RUN_UNTIL(f.loop, c.done_calls == 1);
    assert_int_equal(c.done_error, -ECANCELED);
    assert_null(c.conn);
    assert_int_equal(c.side.made, 0);
    finish(&f);
    pg_tls_context_free(tls);
}

/* A server that takes the ClientHello and never answers: the handshake
 * waits. (port: a recorder's, plain TCP.) */
struct silent {
    pg_loop *loop;
    pg_server *server;
    recorder r;
    uint16_t port;
};

static void silent_serve(struct silent *s)
{
    recorder_init(&s->r);
    assert_int_equal(pg_loop_new(&s->loop), 0);
    assert_int_equal(pg_tcp_listen(s->loop, "127.0.0.1", 0, NULL, recorder_factory, &s->r, &s->server), 0);
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    assert_int_equal(pg_server_sockname(s->server, &ss, &len), 0);
    s->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void silent_finish(struct silent *s)
{
    pg_server_close(s->server);
    pg_server_abort_clients(s->server);
    RUN_UNTIL(s->loop, s->r.lost == s->r.made);
    assert_int_equal(pg_loop_close(s->loop), 0);
    recorder_free(&s->r);
}

/* Cancelled while the handshake waits: the connection goes, done hears
 * -ECANCELED, no connection_made. */
static void test_cancel_during_handshake(void **state)
{
    (void)state;
    struct silent s;
    silent_serve(&s);
    pg_tls_context *tls = client_tls(NULL);
    struct client c = { 0 };
    assert_int_equal(tls_cli_connect_tls(s.loop, "127.0.0.1", s.port, 0, tls, &c, connected), 0);
    RUN_UNTIL(s.loop, s.r.rx_len > 0); /* the ClientHello came: connected, in the handshake */
    assert_int_equal(c.done_calls, 0);
    assert_int_equal(tls_cli_connect_cancel(s.loop, &c, connected), 0);
    RUN_UNTIL(s.loop, c.done_calls == 1 && s.r.lost == 1);
    assert_int_equal(c.done_error, -ECANCELED);
    assert_null(c.conn);
    assert_int_equal(c.side.made, 0);
    silent_finish(&s);
    pg_tls_context_free(tls);
}

/* A handshake that does not complete in its time: done hears -ECONNABORTED
 * (asyncio's ConnectionAbortedError), the reason says so. */
static void test_handshake_timeout(void **state)
{
    (void)state;
    struct silent s;
    silent_serve(&s);
    char ca[512];
    pg_tls_config cfg;
    tls_cli_tls_config(&cfg);
    cfg.ca_file = cert_path(ca, sizeof ca, "ca.pem");
    cfg.handshake_timeout_ms = 50;
    pg_tls_context *tls;
    pg_tls_error err;
    if (pg_tls_context_new(&cfg, &tls, &err) < 0)
        fail_msg("%s", err.reason);
    struct client c = { 0 };
    assert_int_equal(tls_cli_connect_tls(s.loop, "127.0.0.1", s.port, 0, tls, &c, connected), 0);
    RUN_UNTIL(s.loop, c.done_calls == 1);
    assert_int_equal(c.done_error, -ECONNABORTED);
    assert_null(c.conn);
    assert_int_equal(c.why_rc, 0);
    assert_int_equal(c.why.error, -ECONNABORTED);
    assert_int_equal(c.side.made, 0);
    silent_finish(&s);
    pg_tls_context_free(tls);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s CERTDIR\n", argv[0]);
        return 2;
    }
    certdir = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_is_the_spec),
        cmocka_unit_test(test_connect_then_close_clients),
        cmocka_unit_test(test_untrusted_certificate),
        cmocka_unit_test(test_wrong_host_name),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_cancel_during_handshake),
        cmocka_unit_test(test_handshake_timeout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
