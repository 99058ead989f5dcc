/* The TLS layer (protogen/tls.h) on the manual host: a client and a server,
 * each a TLS layer over a manual stream, the test moving the ciphertext
 * between them (in pieces as small as one byte, with as little room as it
 * likes) and owning the clock. Certificates come from make_certs.sh (the
 * ctest fixture), the directory given as argv[1]. The protocols above are
 * the recorder, which asserts asyncio's callback order on every call. */
#include <openssl/ssl.h>
#include <stdlib.h>

#include "protogen/manual.h"
#include "protogen/tls.h"
#include "starttls_test.h"
#include "testutil.h"

static const char *certdir;

static char *cert(const char *name)
{
    static char paths[8][512];
    static int next;
    char *p = paths[next++ % 8];
    snprintf(p, 512, "%s/%s", certdir, name);
    return p;
}

/* ---- a client and a server on one manual host ---------------------------- */

typedef struct side {
    pg_tls_context *tls;
    pg_tls_factory tf;
    pg_manual_stream *ms;
    recorder r;
    int factory_calls;
    int handshake_failures;
    pg_tls_error hs_err;
    pg_tls_error lost_err; /* pg_tls_get_error from inside connection_lost */
    bool eof_fed;
    bool echo; /* the app writes back what it reads, pausing reading while paused */
} side;

typedef struct pair {
    pg_manual_host *mh;
    uint64_t now;
    side c, s;
    size_t chunk;        /* bytes moved per step at most */
    bool hold_c2s, hold_s2c; /* the test holds what one side sent */
} pair;

static uint64_t test_clock(void *arg)
{
    return ((pair *)arg)->now;
}

static int side_factory(void *arg, pg_protocol *out)
{
    side *sd = arg;
    sd->factory_calls++;
    return recorder_factory(&sd->r, out);
}

static void side_hs_failed(void *arg, const pg_tls_error *e)
{
    side *sd = arg;
    sd->handshake_failures++;
    sd->hs_err = *e;
}

static void record_lost(recorder *r, int error)
{
    side *sd = r->user;
    (void)error;
    assert_int_equal(pg_tls_get_error(r->transport, &sd->lost_err), 0);
}

static void echo_data(recorder *r, const uint8_t *data, size_t len)
{
    side *sd = r->user;
    if (sd->echo)
        assert_int_equal(pg_transport_write(r->transport, data, len), 0);
}

static void echo_pause(recorder *r)
{
    if (((side *)r->user)->echo)
        pg_transport_pause_reading(r->transport);
}

static void echo_resume(recorder *r)
{
    if (((side *)r->user)->echo)
        pg_transport_resume_reading(r->transport);
}

static void side_init(side *sd, const pg_tls_config *cfg)
{
    memset(sd, 0, sizeof *sd);
    pg_tls_error err;
    int r = pg_tls_context_new(cfg, &sd->tls, &err);
    if (r != 0)
        fail_msg("pg_tls_context_new: %d %s", r, err.reason);
    recorder_init(&sd->r);
    sd->r.user = sd;
    sd->r.hooks.lost = record_lost;
    sd->r.hooks.data = echo_data;
    sd->r.hooks.pause = echo_pause;
    sd->r.hooks.resume = echo_resume;
    sd->tf = (pg_tls_factory){ .tls = sd->tls, .factory = side_factory, .arg = sd,
                               .handshake_failed = side_hs_failed, .handshake_failed_arg = sd };
}

static pg_tls_config server_config(void)
{
    return (pg_tls_config){ .server = true, .cert_file = cert("server.pem"), .key_file = cert("server.key") };
}

static pg_tls_config client_config(void)
{
    return (pg_tls_config){ .ca_file = cert("ca.pem"), .server_name = "localhost" };
}

static void pair_start(pair *p, const pg_tls_config *ccfg, const pg_tls_config *scfg)
{
    memset(p, 0, sizeof *p);
    p->now = 1000;
    p->chunk = SIZE_MAX;
    assert_int_equal(pg_manual_host_new(&p->mh), 0);
    pg_manual_host_set_clock(p->mh, test_clock, p);
    side_init(&p->c, ccfg);
    side_init(&p->s, scfg);
    pg_host *h = pg_manual_host_host(p->mh);
    assert_int_equal(pg_manual_stream_new(h, PG_STREAM_CAN_WRITE_EOF, pg_tls_protocol_factory, &p->s.tf, &p->s.ms), 0);
    assert_int_equal(pg_manual_stream_new(h, PG_STREAM_CAN_WRITE_EOF, pg_tls_protocol_factory, &p->c.tf, &p->c.ms), 0);
}

/* Moves what from sent to `to` (at most p->chunk bytes); EOF once from is
 * closed and its output gone. True when something happened. */
static bool move(pair *p, side *from, side *to, bool hold)
{
    if (hold || pg_manual_stream_closed(to->ms))
        return false;
    size_t len;
    const uint8_t *out = pg_manual_stream_output(from->ms, &len);
    if (len > 0) {
        if (!pg_manual_stream_wants_read(to->ms))
            return false;
        if (len > p->chunk)
            len = p->chunk;
        size_t taken = pg_manual_stream_feed(to->ms, out, len);
        pg_manual_stream_consume(from->ms, taken);
        return taken > 0;
    }
    if (pg_manual_stream_closed(from->ms) && !to->eof_fed) {
        to->eof_fed = true;
        pg_manual_stream_feed_eof(to->ms);
        return true;
    }
    return false;
}

/* Runs the host and moves bytes until nothing happens any more. */
static void pump(pair *p)
{
    for (int i = 0; i < 10000000; i++) {
        bool progress = false;
        if (pg_manual_host_pending(p->mh) || pg_manual_host_timeout(p->mh) == 0) {
            pg_manual_host_run(p->mh);
            progress = true;
        }
        progress |= move(p, &p->c, &p->s, p->hold_c2s);
        progress |= move(p, &p->s, &p->c, p->hold_s2c);
        if (!progress)
            return;
    }
    fail_msg("pump: no end");
}

static void side_done(side *sd)
{
    if (!pg_manual_stream_closed(sd->ms))
        fail_msg("a manual stream still open");
    pg_manual_stream_free(sd->ms);
    pg_tls_context_free(sd->tls);
    recorder_free(&sd->r);
}

static void pair_done(pair *p)
{
    pump(p);
    for (side *sd = &p->c; sd != NULL; sd = sd == &p->c ? &p->s : NULL)
        if (!pg_manual_stream_closed(sd->ms)) {
            pg_manual_stream_fail(sd->ms, 0);
            pump(p);
        }
    side_done(&p->c);
    side_done(&p->s);
    pg_manual_host_free(p->mh);
}

/* ---- tests -------------------------------------------------------------- */

/* connection_made only once the handshake completed; both sides see the
 * other's certificate, the version, the cipher and the ALPN choice; the
 * client's close() sends close_notify, the server hears eof_received and
 * closes too, and connection_lost comes last, clean, on both. */
static void test_handshake_info_and_clean_close(void **state)
{
    (void)state;
    static const char *const client_alpn[] = { "h2", "http/1.1" };
    static const char *const server_alpn[] = { "http/1.1", "h2" };
    pg_tls_config cc = client_config();
    cc.alpn = client_alpn;
    cc.alpn_count = 2;
    cc.cert_file = cert("client.pem");
    cc.key_file = cert("client.key");
    pg_tls_config sc = server_config();
    sc.alpn = server_alpn;
    sc.alpn_count = 2;
    sc.ca_file = cert("ca.pem");
    sc.require_client_cert = true;
    pair p;
    pair_start(&p, &cc, &sc);
    pg_manual_host_run(p.mh); /* the connections below are made: the ClientHello goes out */
    size_t len;
    pg_manual_stream_output(p.c.ms, &len);
    assert_true(len > 0);
    assert_int_equal(p.c.factory_calls + p.s.factory_calls, 0); /* no protocol before the handshake */
    pump(&p);
    assert_int_equal(p.c.r.made, 1);
    assert_int_equal(p.s.r.made, 1);

    pg_tls_info info;
    assert_int_equal(pg_tls_get_info(p.c.r.transport, &info), 0);
    assert_string_equal(info.version, "TLSv1.3");
    assert_true(strlen(info.cipher) > 0);
    assert_string_equal(info.alpn, "http/1.1"); /* the server's preference */
    assert_true(info.peer_cert);
    assert_non_null(strstr(info.peer_subject, "CN=localhost"));
    assert_non_null(strstr(info.peer_issuer, "CN=protogen test CA"));
    assert_int_equal(pg_tls_get_info(p.s.r.transport, &info), 0);
    assert_non_null(strstr(info.peer_subject, "CN=client"));
    assert_non_null(pg_tls_ssl_object(p.s.r.transport));
    /* Not TLS's: the transport below. */
    assert_int_equal(pg_tls_get_info(pg_manual_stream_transport(p.c.ms), &info), -ENOTSUP);

    /* write_eof is not supported over TLS, as in asyncio. */
    assert_false(pg_transport_can_write_eof(p.c.r.transport));
    assert_int_equal(pg_transport_write_eof(p.c.r.transport), -ENOTSUP);
    /* asyncio's SSL write limits: 512 KiB, 128 KiB. */
    size_t high, low;
    pg_transport_get_write_buffer_limits(p.c.r.transport, &high, &low);
    assert_int_equal(high, 512 * 1024);
    assert_int_equal(low, 128 * 1024);

    assert_int_equal(pg_transport_write(p.c.r.transport, "ping", 4), 0);
    pump(&p);
    assert_int_equal(p.s.r.rx_len, 4);
    assert_memory_equal(p.s.r.rx, "ping", 4);

    pg_transport *kept = p.c.r.transport;
    pg_transport_close(p.c.r.transport);
    pump(&p);
    assert_string_equal(p.s.r.log, "made data eof lost:ok");
    assert_string_equal(p.c.r.log, "made lost:ok");
    assert_int_equal(pg_tls_get_info(kept, &info), -EBADF); /* kept past connection_lost */
    assert_null(pg_tls_ssl_object(kept));
    assert_int_equal(p.c.lost_err.error, 0);
    assert_int_equal(p.s.lost_err.error, 0);
    assert_true(pg_manual_stream_closed(p.c.ms));
    assert_true(pg_manual_stream_closed(p.s.ms));
    pair_done(&p);
}

/* 1 MiB each way through an echo, with little room at every step: the
 * client's plaintext buffer pauses its protocol, the server's echo pauses
 * (and stops reading) at its own watermark, and every byte comes back in
 * order. */
static void test_round_trip_1mib_back_pressure(void **state)
{
    (void)state;
    pg_tls_config cc = client_config();
    pg_tls_config sc = server_config();
    sc.write_high_water = 32 * 1024;
    pair p;
    pair_start(&p, &cc, &sc);
    p.s.echo = true;
    pg_manual_stream_set_capacity(p.c.ms, 8 * 1024);
    pg_manual_stream_set_capacity(p.s.ms, 8 * 1024);
    p.chunk = 3000;
    pump(&p);
    assert_int_equal(p.c.r.made, 1);

    const size_t total = 1024 * 1024;
    uint8_t *data = malloc(total);
    assert_non_null(data);
    for (size_t i = 0; i < total; i++)
        data[i] = (uint8_t)(i * 7 + i / 251);
    assert_int_equal(pg_transport_write(p.c.r.transport, data, total), 0);
    assert_int_equal(p.c.r.pauses, 1); /* 1 MiB > 512 KiB */
    assert_true(pg_transport_get_write_buffer_size(p.c.r.transport) > 512 * 1024);
    /* The client reads nothing for a while: the server's echo backs up. */
    p.hold_s2c = true;
    pump(&p);
    assert_true(p.s.r.pauses >= 1);
    assert_false(pg_manual_stream_wants_read(p.s.ms)); /* it stopped reading */
    p.hold_s2c = false;
    pump(&p);
    assert_int_equal(p.c.r.resumes, 1);
    assert_true(p.s.r.pauses >= 1); /* the echo was held back */
    assert_int_equal(p.s.r.pauses, p.s.r.resumes);
    assert_int_equal(p.c.r.rx_len, total);
    assert_memory_equal(p.c.r.rx, data, total);
    assert_int_equal(p.s.r.rx_len, total);
    pg_transport_close(p.c.r.transport);
    pump(&p);
    assert_int_equal(p.c.r.lost, 1);
    assert_int_equal(p.c.r.lost_error, 0);
    assert_int_equal(p.s.r.lost_error, 0);
    free(data);
    pair_done(&p);
}

/* A whole session one byte at a time both ways: every record, handshake
 * message and alert cut at every byte boundary. */
static void test_one_byte_at_a_time(void **state)
{
    (void)state;
    pg_tls_config cc = client_config();
    pg_tls_config sc = server_config();
    pair p;
    pair_start(&p, &cc, &sc);
    p.s.echo = true;
    p.chunk = 1;
    pump(&p);
    assert_int_equal(p.c.r.made, 1);
    static const char msg[] = "a message longer than one byte, cut at every byte";
    assert_int_equal(pg_transport_write(p.c.r.transport, msg, sizeof msg), 0);
    pump(&p);
    assert_int_equal(p.c.r.rx_len, sizeof msg);
    assert_memory_equal(p.c.r.rx, msg, sizeof msg);
    pg_transport_close(p.c.r.transport);
    pump(&p);
    assert_string_equal(p.c.r.log, "made data lost:ok");
    assert_string_equal(p.s.r.log, "made data eof lost:ok");
    pair_done(&p);
}

/* The client's first flight and first record cut in two at every offset:
 * the server's handshake and the message come out the same each time. */
static void test_split_every_offset(void **state)
{
    (void)state;
    pg_tls_config cc = client_config();
    pg_tls_config sc = server_config();
    size_t limit = 0;
    for (size_t k = 1; limit == 0 || k < limit; k++) {
        pair p;
        pair_start(&p, &cc, &sc);
        p.s.echo = true;
        pg_manual_host_run(p.mh);
        size_t len;
        const uint8_t *hello = pg_manual_stream_output(p.c.ms, &len);
        if (limit == 0)
            limit = len;
        assert_true(len > 100);
        size_t cut = k < len ? k : len - 1;
        assert_int_equal(pg_manual_stream_feed(p.s.ms, hello, cut), cut);
        pg_manual_stream_consume(p.c.ms, cut);
        pg_manual_host_run(p.mh);
        const uint8_t *rest = pg_manual_stream_output(p.c.ms, &len);
        assert_int_equal(pg_manual_stream_feed(p.s.ms, rest, len), len);
        pg_manual_stream_consume(p.c.ms, len);
        pump(&p);
        if (p.c.r.made != 1 || p.s.r.made != 1)
            fail_msg("cut at %zu of %zu: client %d \"%s\", server %d \"%s\"", cut, limit, p.c.r.made, p.c.hs_err.reason,
                     p.s.r.made, p.s.hs_err.reason);
        /* A record cut at offset k too. */
        assert_int_equal(pg_transport_write(p.c.r.transport, "split me", 8), 0);
        const uint8_t *rec = pg_manual_stream_output(p.c.ms, &len);
        size_t rcut = k % len;
        assert_int_equal(pg_manual_stream_feed(p.s.ms, rec, rcut), rcut);
        pg_manual_stream_consume(p.c.ms, rcut);
        pump(&p);
        assert_int_equal(p.c.r.rx_len, 8);
        assert_memory_equal(p.c.r.rx, "split me", 8);
        assert_int_equal(p.s.r.data_calls, 1);
        pg_transport_close(p.c.r.transport);
        pair_done(&p);
    }
}

/* Refused: each side's handshake_failed says why; no protocol is made. */
static void expect_refused(const pg_tls_config *cc, const pg_tls_config *sc, int client_error, const char *reason)
{
    pair p;
    pair_start(&p, cc, sc);
    pump(&p);
    assert_int_equal(p.c.factory_calls, 0);
    assert_int_equal(p.s.factory_calls, 0);
    assert_int_equal(p.c.handshake_failures, 1);
    assert_int_equal(p.s.handshake_failures, 1);
    assert_int_equal(p.c.hs_err.error, client_error);
    if (strstr(p.c.hs_err.reason, reason) == NULL)
        fail_msg("client's reason \"%s\" lacks \"%s\"", p.c.hs_err.reason, reason);
    /* The server heard the client's alert (or a reset): an error either way. */
    assert_true(p.s.hs_err.error < 0);
    assert_true(strlen(p.s.hs_err.reason) > 0);
    assert_true(pg_manual_stream_closed(p.c.ms));
    assert_true(pg_manual_stream_closed(p.s.ms));
    pair_done(&p);
}

static void test_wrong_hostname_refused(void **state)
{
    (void)state;
    pg_tls_config cc = client_config();
    cc.server_name = "wrong.example";
    pg_tls_config sc = server_config();
    expect_refused(&cc, &sc, -EKEYREJECTED, "hostname mismatch");
    /* An IP address is checked against the IP SANs. */
    cc.server_name = "127.0.0.2";
    expect_refused(&cc, &sc, -EKEYREJECTED, "IP address mismatch");
}

static void test_untrusted_refused(void **state)
{
    (void)state;
    pg_tls_config cc = client_config();
    pg_tls_config sc = server_config();
    sc.cert_file = cert("untrusted.pem");
    sc.key_file = cert("untrusted.key");
    expect_refused(&cc, &sc, -EKEYREJECTED, "self-signed certificate");
}

static void test_expired_refused(void **state)
{
    (void)state;
    pg_tls_config cc = client_config();
    pg_tls_config sc = server_config();
    sc.cert_file = cert("expired.pem");
    sc.key_file = cert("expired.key");
    expect_refused(&cc, &sc, -EKEYREJECTED, "certificate has expired");
}

/* A server that requires client certificates refuses a client without one. */
static void test_client_cert_required(void **state)
{
    (void)state;
    pg_tls_config cc = client_config();
    pg_tls_config sc = server_config();
    sc.ca_file = cert("ca.pem");
    sc.require_client_cert = true;
    pair p;
    pair_start(&p, &cc, &sc);
    pump(&p);
    assert_int_equal(p.s.factory_calls, 0);
    assert_int_equal(p.s.handshake_failures, 1);
    assert_int_equal(p.s.hs_err.error, -EKEYREJECTED);
    /* TLS 1.3: the client finished its side first, and hears the alert after. */
    assert_true(p.c.handshake_failures == 1 || p.c.r.lost_error < 0);
    pair_done(&p);
}

/* The handshake timeout: 60 s by default, then the connection is aborted. */
static void test_handshake_timeout(void **state)
{
    (void)state;
    pg_tls_config cc = client_config();
    pg_tls_config sc = server_config();
    pair p;
    pair_start(&p, &cc, &sc);
    p.hold_s2c = true; /* the server's answer never reaches the client */
    pump(&p);
    p.now += 59999;
    pump(&p);
    assert_int_equal(p.c.handshake_failures, 0);
    p.now += 1;
    pump(&p);
    assert_int_equal(p.c.handshake_failures, 1);
    assert_int_equal(p.c.hs_err.error, -ECONNABORTED);
    assert_non_null(strstr(p.c.hs_err.reason, "timed out"));
    assert_true(pg_manual_stream_closed(p.c.ms));
    assert_int_equal(p.c.factory_calls, 0);
    /* The server's own handshake had completed (TLS 1.3) or not; either way
     * it sees the client go without close_notify. */
    p.hold_s2c = false;
    pair_done(&p);
    /* A timeout of the config's. */
    sc.handshake_timeout_ms = 500;
    pair_start(&p, &cc, &sc);
    p.hold_c2s = true;
    pg_manual_host_run(p.mh);
    p.now += 499;
    pump(&p);
    assert_int_equal(p.s.handshake_failures, 0);
    p.now += 1;
    pump(&p);
    assert_int_equal(p.s.handshake_failures, 1);
    assert_int_equal(p.s.hs_err.error, -ECONNABORTED);
    p.hold_c2s = false;
    pair_done(&p);
}

/* close() waits for the peer's close_notify for the shutdown timeout (30 s),
 * then aborts: connection_lost(-ETIMEDOUT). */
static void test_shutdown_timeout(void **state)
{
    (void)state;
    pg_tls_config cc = client_config();
    pg_tls_config sc = server_config();
    pair p;
    pair_start(&p, &cc, &sc);
    pump(&p);
    assert_int_equal(p.c.r.made, 1);
    p.hold_c2s = true; /* the server never hears our close_notify */
    pg_transport_close(p.c.r.transport);
    assert_true(pg_transport_is_closing(p.c.r.transport));
    pump(&p);
    assert_int_equal(p.c.r.lost, 0);
    p.now += 29999;
    pump(&p);
    assert_int_equal(p.c.r.lost, 0);
    p.now += 1;
    pump(&p);
    assert_int_equal(p.c.r.lost, 1);
    assert_int_equal(p.c.r.lost_error, -ETIMEDOUT);
    assert_int_equal(p.c.lost_err.error, -ETIMEDOUT);
    assert_non_null(strstr(p.c.lost_err.reason, "shutdown timed out"));
    p.hold_c2s = false;
    pair_done(&p);
}

/* A peer that closes without close_notify: an error, and no eof_received. */
static void test_no_close_notify_is_an_error(void **state)
{
    (void)state;
    pg_tls_config cc = client_config();
    pg_tls_config sc = server_config();
    pair p;
    pair_start(&p, &cc, &sc);
    pump(&p);
    assert_int_equal(p.c.r.made, 1);
    /* The server's side goes away without a word (below TLS). */
    pg_manual_stream_fail(p.s.ms, 0);
    pump(&p);
    assert_int_equal(p.c.r.lost, 1);
    assert_int_equal(p.c.r.eofs, 0);
    assert_int_equal(p.c.r.lost_error, -ECONNRESET);
    assert_non_null(strstr(p.c.lost_err.reason, "without close_notify"));
    pair_done(&p);
}

/* abort() sends no close_notify: the peer sees the connection go without
 * one. close() with plaintext waiting sends it only once that went. */
static void test_abort_sends_no_close_notify(void **state)
{
    (void)state;
    pg_tls_config cc = client_config();
    pg_tls_config sc = server_config();
    pair p;
    pair_start(&p, &cc, &sc);
    pump(&p);
    size_t before;
    pg_manual_stream_output(p.c.ms, &before);
    pg_transport_abort(p.c.r.transport);
    pg_manual_host_run(p.mh);
    size_t after;
    pg_manual_stream_output(p.c.ms, &after);
    assert_int_equal(after, before); /* not a byte more */
    pump(&p);
    assert_int_equal(p.c.r.lost_error, 0);
    assert_int_equal(p.s.r.lost_error, -ECONNRESET);
    assert_int_equal(p.s.r.eofs, 0);
    pair_done(&p);
}

/* close() with 100 KiB waiting behind a full connection below: the bytes go
 * first, then close_notify; the server reads them all, then eof_received. */
static void test_close_drains_first(void **state)
{
    (void)state;
    pg_tls_config cc = client_config();
    pg_tls_config sc = server_config();
    pair p;
    pair_start(&p, &cc, &sc);
    pump(&p);
    pg_manual_stream_set_capacity(p.c.ms, 1024);
    p.hold_c2s = true;
    static uint8_t data[300 * 1024];
    memset(data, 'x', sizeof data);
    assert_int_equal(pg_transport_write(p.c.r.transport, data, sizeof data), 0);
    assert_true(pg_transport_get_write_buffer_size(p.c.r.transport) > 0);
    pg_transport_close(p.c.r.transport);
    pg_transport_close(p.c.r.transport); /* idempotent */
    p.hold_c2s = false;
    pump(&p);
    assert_int_equal(p.s.r.rx_len, sizeof data);
    assert_string_equal(p.s.r.log, "made data eof lost:ok");
    assert_string_equal(p.c.r.log, "made lost:ok");
    pair_done(&p);
}

/* pause_reading above holds the plaintext (and, past 256 KiB of
 * ciphertext, reading below); resume_reading delivers it. */
static void test_pause_reading_holds(void **state)
{
    (void)state;
    pg_tls_config cc = client_config();
    pg_tls_config sc = server_config();
    pair p;
    pair_start(&p, &cc, &sc);
    pump(&p);
    pg_transport_pause_reading(p.s.r.transport);
    static uint8_t data[600 * 1024];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)i;
    assert_int_equal(pg_transport_write(p.c.r.transport, data, sizeof data), 0);
    pump(&p);
    assert_int_equal(p.s.r.rx_len, 0);
    assert_false(pg_manual_stream_wants_read(p.s.ms)); /* reading below stopped too */
    pg_transport_resume_reading(p.s.r.transport);
    pump(&p);
    assert_int_equal(p.s.r.rx_len, sizeof data);
    assert_memory_equal(p.s.r.rx, data, sizeof data);
    pg_transport_close(p.s.r.transport);
    pump(&p);
    assert_string_equal(p.c.r.log, "made eof lost:ok");
    pair_done(&p);
}

/* STARTTLS from a generated line protocol: the plaintext commands, then the
 * ClientHello, all in one segment; the framer's rest goes to TLS first, and
 * the session goes on in TLS. */
static void test_starttls_one_segment(void **state)
{
    (void)state;
    pg_tls_config cc = client_config();
    pg_tls_config sc = server_config();
    pair p;
    memset(&p, 0, sizeof p);
    p.now = 1000;
    p.chunk = SIZE_MAX;
    assert_int_equal(pg_manual_host_new(&p.mh), 0);
    pg_manual_host_set_clock(p.mh, test_clock, &p);
    side_init(&p.c, &cc);
    side_init(&p.s, &sc);
    p.s.echo = true;
    struct starttls_test st = { .tls = &p.s.tf };
    pg_host *h = pg_manual_host_host(p.mh);
    assert_int_equal(pg_manual_stream_new(h, PG_STREAM_CAN_WRITE_EOF, starttls_protocol_factory, &st, &p.s.ms), 0);
    assert_int_equal(pg_manual_stream_new(h, PG_STREAM_CAN_WRITE_EOF, pg_tls_protocol_factory, &p.c.tf, &p.c.ms), 0);
    pg_manual_host_run(p.mh);
    size_t hello_len;
    const uint8_t *hello = pg_manual_stream_output(p.c.ms, &hello_len);
    assert_true(hello_len > 0);
    static const char commands[] = "EHLO test\r\nSTARTTLS\r\n";
    size_t seg_len = sizeof commands - 1 + hello_len;
    uint8_t *seg = malloc(seg_len);
    assert_non_null(seg);
    memcpy(seg, commands, sizeof commands - 1);
    memcpy(seg + sizeof commands - 1, hello, hello_len);
    pg_manual_stream_consume(p.c.ms, hello_len);
    assert_int_equal(pg_manual_stream_feed(p.s.ms, seg, seg_len), seg_len);
    free(seg);
    pg_manual_host_run(p.mh);
    assert_int_equal(st.lines, 1);
    assert_int_equal(st.switch_rc, 0);
    assert_true(st.switched);
    /* The replies in plaintext, then the server's TLS flight. */
    static const char replies[] = "250 EHLO test\r\n220 ready\r\n";
    size_t len;
    const uint8_t *out = pg_manual_stream_output(p.s.ms, &len);
    assert_true(len > sizeof replies - 1);
    assert_memory_equal(out, replies, sizeof replies - 1);
    pg_manual_stream_consume(p.s.ms, sizeof replies - 1);
    pump(&p);
    assert_int_equal(p.c.r.made, 1);
    assert_int_equal(p.s.r.made, 1);
    assert_int_equal(pg_transport_write(p.c.r.transport, "secret", 6), 0);
    pump(&p);
    assert_int_equal(p.c.r.rx_len, 6);
    assert_memory_equal(p.c.r.rx, "secret", 6);
    pg_transport_close(p.c.r.transport);
    pump(&p);
    assert_string_equal(p.s.r.log, "made data eof lost:ok");
    pair_done(&p);
}

/* TLS 1.2: a client that asks to renegotiate is refused by the server, and
 * the client's connection fails with the reason. */
static void test_renegotiation_refused(void **state)
{
    (void)state;
    pg_tls_config cc = client_config();
    cc.max_version = PG_TLS_VERSION_1_2;
    pg_tls_config sc = server_config();
    pair p;
    pair_start(&p, &cc, &sc);
    p.s.echo = true;
    pump(&p);
    pg_tls_info info;
    assert_int_equal(pg_tls_get_info(p.c.r.transport, &info), 0);
    assert_string_equal(info.version, "TLSv1.2");
    SSL *ssl = pg_tls_ssl_object(p.c.r.transport);
    SSL_clear_options(ssl, SSL_OP_NO_RENEGOTIATION); /* this client would */
    assert_int_equal(SSL_renegotiate(ssl), 1);
    (void)SSL_do_handshake(ssl); /* its ClientHello goes out with the next write */
    assert_int_equal(pg_transport_write(p.c.r.transport, "x", 1), 0);
    pump(&p);
    assert_int_equal(p.c.r.lost, 1);
    assert_int_equal(p.c.r.lost_error, -EPROTO);
    if (strstr(p.c.lost_err.reason, "renegotiation") == NULL)
        fail_msg("reason: %s", p.c.lost_err.reason);
    pair_done(&p);
}

/* A failure above (pg_transport_fail) ends the connection below without
 * close_notify, and connection_lost gets the error. */
static void test_fail_above(void **state)
{
    (void)state;
    pg_tls_config cc = client_config();
    pg_tls_config sc = server_config();
    pair p;
    pair_start(&p, &cc, &sc);
    pump(&p);
    assert_int_equal(pg_transport_fail(p.s.r.transport, -EPROTO), 0);
    pump(&p);
    assert_int_equal(p.s.r.lost_error, -EPROTO);
    assert_int_equal(p.c.r.lost_error, -ECONNRESET);
    pair_done(&p);
}

/* The server closes while the client still sends: what arrives after our
 * close_notify is dropped, the client hears eof_received, and both end clean. */
static void test_close_while_peer_sends(void **state)
{
    (void)state;
    pg_tls_config cc = client_config();
    pg_tls_config sc = server_config();
    pair p;
    pair_start(&p, &cc, &sc);
    pump(&p);
    p.chunk = 500;
    static uint8_t data[200 * 1024];
    memset(data, 'y', sizeof data);
    assert_int_equal(pg_transport_write(p.c.r.transport, data, sizeof data), 0);
    assert_true(move(&p, &p.c, &p.s, false));
    pg_transport_close(p.s.r.transport);
    pump(&p);
    assert_true(p.s.r.rx_len < sizeof data);
    assert_string_equal(p.c.r.log, "made eof lost:ok");
    assert_int_equal(p.s.r.lost_error, 0);
    pair_done(&p);
}

static void test_config_errors(void **state)
{
    (void)state;
    pg_tls_context *tls;
    pg_tls_error err;
    pg_tls_config cfg = { .server = true };
    assert_int_equal(pg_tls_context_new(&cfg, &tls, &err), -EINVAL);
    assert_null(tls);
    assert_true(strlen(err.reason) > 0);
    cfg = server_config();
    cfg.cert_file = cert("missing.pem");
    assert_int_equal(pg_tls_context_new(&cfg, &tls, &err), -EINVAL);
    assert_non_null(strstr(err.reason, "certificate"));
    cfg = server_config();
    cfg.key_file = cert("client.key"); /* not the certificate's */
    assert_int_equal(pg_tls_context_new(&cfg, &tls, &err), -EINVAL);
    assert_non_null(strstr(err.reason, "private key"));
    cfg = client_config();
    cfg.min_version = 0x0301;
    assert_int_equal(pg_tls_context_new(&cfg, &tls, &err), -EINVAL);
    /* A zero client config: the system's store, verification on. */
    cfg = (pg_tls_config){ 0 };
    assert_int_equal(pg_tls_context_new(&cfg, &tls, &err), 0);
    pg_tls_context_free(tls);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s CERTDIR (tests/tls/make_certs.sh makes it)\n", argv[0]);
        return 2;
    }
    certdir = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_info_and_clean_close),
        cmocka_unit_test(test_round_trip_1mib_back_pressure),
        cmocka_unit_test(test_one_byte_at_a_time),
        cmocka_unit_test(test_split_every_offset),
        cmocka_unit_test(test_wrong_hostname_refused),
        cmocka_unit_test(test_untrusted_refused),
        cmocka_unit_test(test_expired_refused),
        cmocka_unit_test(test_client_cert_required),
        cmocka_unit_test(test_handshake_timeout),
        cmocka_unit_test(test_shutdown_timeout),
        cmocka_unit_test(test_no_close_notify_is_an_error),
        cmocka_unit_test(test_abort_sends_no_close_notify),
        cmocka_unit_test(test_close_drains_first),
        cmocka_unit_test(test_pause_reading_holds),
        cmocka_unit_test(test_starttls_one_segment),
        cmocka_unit_test(test_renegotiation_refused),
        cmocka_unit_test(test_fail_above),
        cmocka_unit_test(test_close_while_peer_sends),
        cmocka_unit_test(test_config_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
