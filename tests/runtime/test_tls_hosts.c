/* The TLS layer over the other hosts' drivers: the built-in loop's fd
 * streams and libuv's, each over a socketpair whose kernel buffers are made
 * small. A client and a server, 1 MiB echoed with back-pressure, then the
 * client's close(): close_notify both ways and connection_lost(0) on each.
 * The certificate directory is argv[1] (the tls_certs fixture). */
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "protogen/tls.h"
#include "protogen/uv.h"
#include "uv_testutil.h"

static const char *certdir;
#define PAYLOAD ((size_t)1 << 20)

typedef struct peer {
    pg_tls_context *tls;
    pg_tls_factory tf;
    recorder r;
    bool echo;
    int handshake_failures;
} peer;

static void hs_failed(void *arg, const pg_tls_error *e)
{
    peer *p = arg;
    p->handshake_failures++;
    print_error("handshake failed: %s\n", e->reason);
}

static void on_data(recorder *r, const uint8_t *data, size_t len)
{
    peer *p = r->user;
    if (p->echo)
        assert_int_equal(pg_transport_write(r->transport, data, len), 0);
}

static void on_pause(recorder *r)
{
    if (((peer *)r->user)->echo)
        pg_transport_pause_reading(r->transport);
}

static void on_resume(recorder *r)
{
    if (((peer *)r->user)->echo)
        pg_transport_resume_reading(r->transport);
}

/* The client closes once everything came back. */
static void client_data(recorder *r, const uint8_t *data, size_t len)
{
    (void)data;
    (void)len;
    if (r->rx_len == PAYLOAD)
        pg_transport_close(r->transport);
}

static void peer_init(peer *p, bool server)
{
    memset(p, 0, sizeof *p);
    char cert[512], key[512], ca[512];
    snprintf(cert, sizeof cert, "%s/server.pem", certdir);
    snprintf(key, sizeof key, "%s/server.key", certdir);
    snprintf(ca, sizeof ca, "%s/ca.pem", certdir);
    pg_tls_config cfg = server ? (pg_tls_config){ .server = true, .cert_file = cert, .key_file = key }
                               : (pg_tls_config){ .ca_file = ca, .server_name = "localhost" };
    pg_tls_error err;
    if (pg_tls_context_new(&cfg, &p->tls, &err) < 0)
        fail_msg("%s", err.reason);
    recorder_init(&p->r);
    p->r.user = p;
    p->echo = server;
    p->r.hooks.data = server ? on_data : client_data;
    p->r.hooks.pause = on_pause;
    p->r.hooks.resume = on_resume;
    p->tf = (pg_tls_factory){ .tls = p->tls, .factory = recorder_factory, .arg = &p->r,
                              .handshake_failed = hs_failed, .handshake_failed_arg = p };
}

static uint8_t *payload(void)
{
    uint8_t *data = malloc(PAYLOAD);
    assert_non_null(data);
    for (size_t i = 0; i < PAYLOAD; i++)
        data[i] = (uint8_t)(i * 13 + i / 509);
    return data;
}

static void check_done(peer *c, peer *s, const uint8_t *data)
{
    assert_int_equal(c->handshake_failures + s->handshake_failures, 0);
    assert_int_equal(c->r.rx_len, PAYLOAD);
    assert_memory_equal(c->r.rx, data, PAYLOAD);
    assert_int_equal(s->r.rx_len, PAYLOAD);
    assert_true(c->r.pauses >= 1); /* 1 MiB > the 512 KiB high watermark */
    assert_int_equal(c->r.lost_error, 0);
    assert_int_equal(s->r.lost_error, 0);
    assert_int_equal(s->r.eofs, 1); /* the client's close_notify */
    pg_tls_context_free(c->tls);
    pg_tls_context_free(s->tls);
    recorder_free(&c->r);
    recorder_free(&s->r);
}

static void test_builtin_loop(void **state)
{
    (void)state;
    peer c, s;
    peer_init(&c, false);
    peer_init(&s, true);
    pg_loop *loop;
    assert_int_equal(pg_loop_new(&loop), 0);
    int sv[2];
    make_socketpair(sv, 16384);
    assert_int_equal(pg_stream_adopt_fd(loop, sv[0], pg_tls_protocol_factory, &s.tf, NULL), 0);
    assert_int_equal(pg_stream_adopt_fd(loop, sv[1], pg_tls_protocol_factory, &c.tf, NULL), 0);
    RUN_UNTIL(loop, c.r.made == 1);
    uint8_t *data = payload();
    assert_int_equal(pg_transport_write(c.r.transport, data, PAYLOAD), 0);
    RUN_UNTIL(loop, c.r.lost == 1 && s.r.lost == 1);
    check_done(&c, &s, data);
    free(data);
    assert_int_equal(pg_loop_close(loop), 0);
}

typedef struct uvfix {
    uv_loop_t loop;
    uv_timer_t guard;
    uv_pipe_t pipes[2];
    int closed;
} uvfix;

static void on_closed(uv_handle_t *handle)
{
    ((uvfix *)handle->data)->closed++;
}

static void test_libuv(void **state)
{
    (void)state;
    peer c, s;
    peer_init(&c, false);
    peer_init(&s, true);
    uvfix f;
    memset(&f, 0, sizeof f);
    assert_int_equal(uv_loop_init(&f.loop), 0);
    uv_guard_init(&f.loop, &f.guard);
    pg_uv_host *host;
    assert_int_equal(pg_uv_host_new(&f.loop, &host), 0);
    int sv[2];
    make_socketpair(sv, 16384);
    peer *peers[2] = { &s, &c };
    for (int i = 0; i < 2; i++) {
        assert_int_equal(uv_pipe_init(&f.loop, &f.pipes[i], 0), 0);
        assert_int_equal(uv_pipe_open(&f.pipes[i], sv[i]), 0);
        f.pipes[i].data = &f;
        assert_int_equal(pg_uv_stream_open(host, (uv_stream_t *)&f.pipes[i], on_closed, pg_tls_protocol_factory,
                                           &peers[i]->tf, NULL),
                         0);
    }
    UV_UNTIL(&f, c.r.made == 1);
    uint8_t *data = payload();
    assert_int_equal(pg_transport_write(c.r.transport, data, PAYLOAD), 0);
    int turns = 0;
    while (!(c.r.lost == 1 && s.r.lost == 1 && f.closed == 2)) {
        assert_true(turns++ < 100000);
        UV_TURN(&f);
    }
    check_done(&c, &s, data);
    free(data);
    pg_uv_host_free(host);
    uv_close((uv_handle_t *)&f.guard, NULL);
    assert_int_equal(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&f.loop), 0);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s CERTDIR\n", argv[0]);
        return 2;
    }
    certdir = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builtin_loop),
        cmocka_unit_test(test_libuv),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
