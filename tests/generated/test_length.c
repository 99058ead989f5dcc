/* A generated length-prefixed protocol (lenp.spec) on the manual host: the
 * same messages and the same echoed bytes whether the input comes whole,
 * byte by byte, at every 2-way split or at seeded random splits; an oversize
 * length closes the connection by default after what was written is sent;
 * and the generated code holds messages back while writing is paused. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lenp.h"
#include "lenp_test.h"

typedef struct run {
    struct lenp_log log;
    uint8_t out[1 << 16];
    size_t out_len;
    bool closed;
} run;

static void take_output(pg_manual_stream *ms, run *r)
{
    size_t len;
    const uint8_t *p = pg_manual_stream_output(ms, &len);
    if (len == 0)
        return;
    assert_true(r->out_len + len <= sizeof r->out);
    memcpy(r->out + r->out_len, p, len);
    r->out_len += len;
    pg_manual_stream_consume(ms, len);
}

/* Feeds in at the cuts (sorted offsets), then EOF; the log and output in r. */
static void feed_with_cuts(const uint8_t *in, size_t len, const size_t *cuts, size_t ncuts, run *r)
{
    memset(r, 0, sizeof *r);
    pg_manual_host *mh;
    pg_manual_stream *ms;
    assert_int_equal(pg_manual_host_new(&mh), 0);
    assert_int_equal(pg_manual_stream_new(pg_manual_host_host(mh), PG_STREAM_CAN_WRITE_EOF, lenp_protocol_factory,
                                          &r->log, &ms), 0);
    pg_manual_host_run(mh);
    size_t at = 0;
    for (size_t i = 0; i <= ncuts && !pg_manual_stream_closed(ms); i++) {
        size_t end = i < ncuts ? cuts[i] : len;
        while (at < end && pg_manual_stream_wants_read(ms))
            at += pg_manual_stream_feed(ms, in + at, end - at);
        if (pg_transport_is_closing(pg_manual_stream_transport(ms)))
            break;
        take_output(ms, r);
        pg_manual_host_run(mh);
    }
    if (!pg_manual_stream_closed(ms)) {
        if (!pg_transport_is_closing(pg_manual_stream_transport(ms)))
            pg_manual_stream_feed_eof(ms);
        take_output(ms, r);
        pg_manual_host_run(mh);
    }
    take_output(ms, r);
    r->closed = pg_manual_stream_closed(ms);
    assert_true(r->closed);
    pg_manual_stream_free(ms);
    pg_manual_host_free(mh);
}

static void check_every_split(const uint8_t *in, size_t len, const char *expected_log, const uint8_t *expected_out,
                              size_t expected_out_len)
{
    run *whole = malloc(sizeof *whole), *r = malloc(sizeof *r);
    size_t *cuts = malloc((len + 1) * sizeof *cuts);
    assert_true(whole && r && cuts);
    feed_with_cuts(in, len, NULL, 0, whole);
    assert_string_equal(whole->log.text, expected_log);
    assert_int_equal(whole->out_len, expected_out_len);
    assert_memory_equal(whole->out, expected_out, expected_out_len);

    for (size_t i = 0; i + 1 < len; i++)
        cuts[i] = i + 1;
    feed_with_cuts(in, len, cuts, len - 1, r);
    assert_string_equal(r->log.text, whole->log.text);
    assert_int_equal(r->out_len, whole->out_len);
    assert_memory_equal(r->out, whole->out, whole->out_len);
    for (size_t cut = 0; cut <= len; cut++) {
        feed_with_cuts(in, len, &cut, 1, r);
        assert_string_equal(r->log.text, whole->log.text);
        assert_memory_equal(r->out, whole->out, whole->out_len);
    }
    srand(11);
    for (int round = 0; round < 100; round++) {
        size_t n = 0;
        for (size_t at = 0;; n++) {
            at += 1 + (size_t)rand() % 9;
            if (at >= len)
                break;
            cuts[n] = at;
        }
        feed_with_cuts(in, len, cuts, n, r);
        assert_string_equal(r->log.text, whole->log.text);
        assert_memory_equal(r->out, whole->out, whole->out_len);
    }
    free(cuts);
    free(r);
    free(whole);
}

static size_t put_message(uint8_t *p, const char *payload, size_t len)
{
    p[0] = (uint8_t)(len >> 24);
    p[1] = (uint8_t)(len >> 16);
    p[2] = (uint8_t)(len >> 8);
    p[3] = (uint8_t)len;
    memcpy(p + 4, payload, len);
    return 4 + len;
}

static void test_messages_at_every_split(void **state)
{
    (void)state;
    uint8_t in[256];
    size_t len = 0;
    len += put_message(in + len, "hello", 5);
    len += put_message(in + len, "", 0);
    len += put_message(in + len, "a longer message, straddling many cuts", 38);
    check_every_split(in, len, "5@0|0@9|38@13|", in, len);
}

/* A length above max: an error at the length field; what was written before
 * is sent, then the connection closes (no protocol_error declared). */
static void test_oversize_closes_after_flush(void **state)
{
    (void)state;
    uint8_t in[64];
    size_t len = put_message(in, "ok", 2);
    const uint8_t big[] = { 0x00, 0x10, 0x00, 0x01, 'x', 'y' }; /* 1 MiB + 1 */
    memcpy(in + len, big, sizeof big);
    check_every_split(in, len + sizeof big, "2@0|", in, 6);
}

/* No output room: replies pile up in the write buffer until pause_writing;
 * then no message is delivered, however many are already read; as the
 * output drains the held ones come, in order. */
static void test_held_while_writing_is_paused(void **state)
{
    (void)state;
    enum { N = 64, SIZE = 4000 };
    static uint8_t in[N * (SIZE + 4)];
    static char payload[SIZE];
    size_t len = 0;
    for (int i = 0; i < N; i++) {
        memset(payload, 'a' + i % 26, SIZE);
        len += put_message(in + len, payload, SIZE);
    }
    struct lenp_log log = { 0 };
    pg_manual_host *mh;
    pg_manual_stream *ms;
    assert_int_equal(pg_manual_host_new(&mh), 0);
    assert_int_equal(pg_manual_stream_new(pg_manual_host_host(mh), 0, lenp_protocol_factory, &log, &ms), 0);
    pg_manual_host_run(mh);
    pg_manual_stream_set_capacity(ms, 0);
    assert_int_equal(pg_manual_stream_feed(ms, in, len), len); /* one read with every message */
    /* 17 replies of 4004 bytes go above the 64 KiB default high watermark. */
    assert_int_equal(log.payload_bytes, 17 * SIZE);
    assert_false(pg_manual_stream_wants_read(ms));
    size_t out = 0, got;
    while (out < len) {
        pg_manual_stream_set_capacity(ms, 1 << 20);
        pg_manual_stream_output(ms, &got);
        pg_manual_stream_consume(ms, got);
        pg_manual_stream_set_capacity(ms, 0);
        assert_true(got > 0);
        out += got;
        pg_manual_host_run(mh);
    }
    assert_int_equal(out, len);
    assert_int_equal(log.payload_bytes, N * SIZE);
    assert_true(pg_manual_stream_wants_read(ms)); /* reading again once nothing is held */
    pg_transport_abort(pg_manual_stream_transport(ms));
    pg_manual_host_run(mh);
    pg_manual_stream_free(ms);
    pg_manual_host_free(mh);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_messages_at_every_split),
        cmocka_unit_test(test_oversize_closes_after_flush),
        cmocka_unit_test(test_held_while_writing_is_paused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
