/* The manual host and stream (protogen/manual.h): the core with no kernel.
 * The same rules as over sockets, deterministically: callback order, the
 * output as a send buffer, back-pressure at the watermarks, close/abort,
 * EOF, buffered protocols, reading held while paused, and any cut of the
 * input giving the same result. */
#include <time.h>

#include "protogen/manual.h"
#include "testutil.h"

typedef struct mfix {
    pg_manual_host *mh;
    pg_manual_stream *ms;
    recorder r;
} mfix;

static void mfix_start(mfix *f, unsigned flags)
{
    recorder_init(&f->r);
    assert_int_equal(pg_manual_host_new(&f->mh), 0);
    assert_int_equal(pg_manual_stream_new(pg_manual_host_host(f->mh), flags, recorder_factory, &f->r, &f->ms), 0);
    assert_int_equal(f->r.made, 0); /* connection_made comes from the host's run, never from new */
    assert_false(pg_manual_stream_wants_read(f->ms));
    assert_int_equal(pg_manual_host_run(f->mh), 2); /* connection_made, then the first read */
    assert_int_equal(f->r.made, 1);
    assert_true(pg_manual_stream_wants_read(f->ms));
    assert_false(pg_manual_host_pending(f->mh));
}

static void mfix_done(mfix *f)
{
    if (!pg_manual_stream_closed(f->ms)) {
        pg_transport_abort(pg_manual_stream_transport(f->ms));
        pg_manual_host_run(f->mh);
    }
    assert_true(pg_manual_stream_closed(f->ms));
    assert_int_equal(f->r.lost, 1);
    pg_manual_stream_free(f->ms);
    pg_manual_host_free(f->mh);
    recorder_free(&f->r);
}

static void echo_data(recorder *r, const uint8_t *data, size_t len)
{
    assert_int_equal(pg_transport_write(r->transport, data, len), 0);
}

static void test_order_and_echo(void **state)
{
    (void)state;
    mfix f;
    mfix_start(&f, PG_STREAM_CAN_WRITE_EOF);
    f.r.hooks.data = echo_data;
    assert_int_equal(pg_manual_stream_feed(f.ms, "hello", 5), 5);
    size_t len;
    const uint8_t *out = pg_manual_stream_output(f.ms, &len);
    assert_int_equal(len, 5);
    assert_memory_equal(out, "hello", 5);
    pg_manual_stream_consume(f.ms, 5);
    pg_manual_stream_output(f.ms, &len);
    assert_int_equal(len, 0);
    pg_manual_stream_feed_eof(f.ms); /* eof_received says close */
    assert_false(pg_manual_stream_closed(f.ms));
    assert_int_equal(f.r.lost, 0); /* deferred: never from inside the driver's call */
    pg_manual_host_run(f.mh);
    assert_true(pg_manual_stream_closed(f.ms));
    assert_null(pg_manual_stream_transport(f.ms));
    assert_string_equal(f.r.log, "made data eof lost:ok");
    mfix_done(&f);
}

/* An empty output is NULL, before any write and once everything written was
 * consumed (fuzz_resp: a never-written output was NULL + 0, undefined). */
static void test_empty_output_is_null(void **state)
{
    (void)state;
    mfix f;
    mfix_start(&f, PG_STREAM_CAN_WRITE_EOF);
    f.r.hooks.data = echo_data;
    size_t len = 1;
    assert_null(pg_manual_stream_output(f.ms, &len));
    assert_int_equal(len, 0);
    assert_int_equal(pg_manual_stream_feed(f.ms, "hi", 2), 2);
    assert_non_null(pg_manual_stream_output(f.ms, &len));
    assert_int_equal(len, 2);
    pg_manual_stream_consume(f.ms, 2);
    assert_null(pg_manual_stream_output(f.ms, &len));
    assert_int_equal(len, 0);
    mfix_done(&f);
}

/* With no room in the output the transport buffers; pause_writing comes
 * strictly above high, resume_writing at low or below, then close drains
 * and connection_lost follows at once, as asyncio's _write_ready does. */
static void test_back_pressure_and_close_drains(void **state)
{
    (void)state;
    mfix f;
    mfix_start(&f, PG_STREAM_CAN_WRITE_EOF);
    pg_manual_stream_set_capacity(f.ms, 0);
    pg_transport *t = pg_manual_stream_transport(f.ms);
    static uint8_t chunk[16 * 1024];
    memset(chunk, 'x', sizeof chunk);
    for (int i = 0; i < 4; i++)
        assert_int_equal(pg_transport_write(t, chunk, sizeof chunk), 0);
    assert_int_equal(f.r.pauses, 0); /* 64 KiB is not above high */
    assert_int_equal(pg_transport_write(t, "y", 1), 0);
    assert_int_equal(f.r.pauses, 1);
    assert_int_equal(f.r.size_at_pause, 64 * 1024 + 1);
    pg_transport_close(t);
    assert_true(pg_transport_is_closing(t));
    /* The peer takes 40 KiB at once: 24 KiB + 1 left is above low (16 KiB). */
    pg_manual_stream_set_capacity(f.ms, 40 * 1024);
    assert_int_equal(f.r.resumes, 0);
    size_t len;
    pg_manual_stream_output(f.ms, &len);
    assert_int_equal(len, 40 * 1024);
    pg_manual_stream_consume(f.ms, len);
    assert_int_equal(f.r.resumes, 1);
    assert_int_equal(f.r.size_at_resume, 0);
    /* Drained after close(): connection_lost from the same call. */
    assert_true(pg_manual_stream_closed(f.ms));
    assert_string_equal(f.r.log, "made pause resume lost:ok");
    /* What the transport wrote is still the user's to send. */
    pg_manual_stream_output(f.ms, &len);
    assert_int_equal(len, 24 * 1024 + 1);
    mfix_done(&f);
}

static void test_abort_drops_the_buffer(void **state)
{
    (void)state;
    mfix f;
    mfix_start(&f, 0);
    pg_manual_stream_set_capacity(f.ms, 3);
    pg_transport *t = pg_manual_stream_transport(f.ms);
    assert_int_equal(pg_transport_write(t, "abcdef", 6), 0);
    assert_int_equal(pg_transport_get_write_buffer_size(t), 3);
    pg_transport_abort(t);
    assert_int_equal(f.r.lost, 0);
    pg_manual_host_run(f.mh);
    assert_string_equal(f.r.log, "made lost:ok");
    size_t len;
    const uint8_t *out = pg_manual_stream_output(f.ms, &len);
    assert_int_equal(len, 3); /* the send buffer's share was sent already */
    assert_memory_equal(out, "abc", 3);
    mfix_done(&f);
}

static void test_error_reaches_connection_lost(void **state)
{
    (void)state;
    mfix f;
    mfix_start(&f, 0);
    pg_manual_stream_fail(f.ms, -ECONNRESET);
    pg_manual_host_run(f.mh);
    assert_string_equal(f.r.log, "made lost:ECONNRESET");
    mfix_done(&f);
}

/* A handler ends its connection with an error (asyncio: an exception in a
 * protocol callback): the buffer is dropped, nothing more is delivered, and
 * connection_lost gets that error next turn, not from inside the call. */
static void test_protocol_fails_its_connection(void **state)
{
    (void)state;
    mfix f;
    mfix_start(&f, 0);
    pg_manual_stream_set_capacity(f.ms, 2);
    pg_transport *t = pg_manual_stream_transport(f.ms);
    assert_int_equal(pg_transport_write(t, "abcdef", 6), 0);
    assert_int_equal(pg_transport_fail(t, 0), -EINVAL);
    assert_int_equal(pg_transport_fail(t, -EPROTO), 0);
    assert_int_equal(f.r.lost, 0);
    assert_true(pg_transport_is_closing(t));
    assert_int_equal(pg_transport_get_write_buffer_size(t), 0);
    pg_manual_stream_feed(f.ms, "late", 4); /* dropped: the transport is lost */
    assert_int_equal(pg_transport_fail(t, -EIO), 0); /* the first error stays */
    pg_manual_host_run(f.mh);
    assert_string_equal(f.r.log, "made lost:EPROTO");
    size_t len;
    pg_manual_stream_output(f.ms, &len);
    assert_int_equal(len, 2); /* what the driver took before */
    mfix_done(&f);
}

static void test_write_eof_after_drain(void **state)
{
    (void)state;
    mfix f;
    mfix_start(&f, PG_STREAM_CAN_WRITE_EOF);
    pg_manual_stream_set_capacity(f.ms, 2);
    pg_transport *t = pg_manual_stream_transport(f.ms);
    assert_int_equal(pg_transport_write(t, "bye", 3), 0);
    assert_int_equal(pg_transport_write_eof(t), 0);
    assert_int_equal(pg_transport_write(t, "x", 1), -EPIPE);
    assert_false(pg_manual_stream_output_shut(f.ms));
    pg_manual_stream_consume(f.ms, 2); /* room: the last byte goes, then the shutdown */
    assert_false(pg_manual_stream_output_shut(f.ms));
    pg_manual_stream_consume(f.ms, 1);
    assert_true(pg_manual_stream_output_shut(f.ms));
    /* Half-closed: still reading. */
    assert_int_equal(pg_manual_stream_feed(f.ms, "more", 4), 4);
    assert_int_equal(f.r.rx_len, 4);
    mfix_done(&f);
}

static void test_eof_keep_open(void **state)
{
    (void)state;
    mfix f;
    mfix_start(&f, PG_STREAM_CAN_WRITE_EOF);
    f.r.eof_keep_open = true;
    pg_manual_stream_feed_eof(f.ms);
    pg_manual_host_run(f.mh);
    assert_false(pg_manual_stream_closed(f.ms));
    assert_false(pg_manual_stream_wants_read(f.ms));
    assert_int_equal(pg_transport_write(pg_manual_stream_transport(f.ms), "ok", 2), 0);
    mfix_done(&f);
    assert_string_equal(f.r.log, "made eof lost:ok");
}

/* pause_reading: the driver holds what the protocol did not take. */
static void pause_on_data(recorder *r, const uint8_t *data, size_t len)
{
    (void)data;
    (void)len;
    pg_transport_pause_reading(r->transport);
}

static void test_paused_reading_holds_input(void **state)
{
    (void)state;
    mfix f;
    mfix_start(&f, 0);
    f.r.hooks.data = pause_on_data;
    assert_int_equal(pg_manual_stream_feed(f.ms, "ab", 2), 2);
    assert_false(pg_manual_stream_wants_read(f.ms));
    assert_int_equal(pg_manual_stream_feed(f.ms, "cd", 2), 0);
    f.r.hooks.data = NULL;
    pg_transport_resume_reading(pg_manual_stream_transport(f.ms));
    assert_true(pg_manual_stream_wants_read(f.ms));
    assert_int_equal(pg_manual_stream_feed(f.ms, "cd", 2), 2);
    assert_int_equal(f.r.rx_len, 4);
    assert_memory_equal(f.r.rx, "abcd", 4);
    mfix_done(&f);
}

/* ---- held input: a driver that cannot stop reading (pg_stream_received) - */

static void received(mfix *f, const char *data, int end)
{
    pg_stream_received(pg_manual_stream_transport(f->ms), (const uint8_t *)data, strlen(data), end);
}

/* Bytes and the end that come while paused reach the protocol only once it
 * reads again, in order, from the host's run (never from inside
 * resume_reading), and the driver is asked to read again only after them. */
static void test_received_while_paused_then_end(void **state)
{
    (void)state;
    mfix f;
    mfix_start(&f, 0);
    f.r.hooks.data = pause_on_data;
    received(&f, "ab", 0);
    assert_false(pg_manual_stream_wants_read(f.ms));
    received(&f, "cd", 0);
    received(&f, "", PG_STREAM_END);
    received(&f, "zz", 0); /* nothing is read after the end */
    assert_int_equal(pg_manual_host_run(f.mh), 0);
    assert_string_equal(f.r.log, "made data");
    f.r.hooks.data = NULL;
    pg_transport_resume_reading(pg_manual_stream_transport(f.ms));
    assert_true(pg_transport_is_reading(pg_manual_stream_transport(f.ms)));
    assert_false(pg_manual_stream_wants_read(f.ms)); /* the held input first */
    assert_string_equal(f.r.log, "made data");
    assert_int_equal(pg_manual_host_run(f.mh), 1); /* the delivery */
    assert_string_equal(f.r.log, "made data eof");
    assert_int_equal(f.r.data_calls, 2);
    assert_int_equal(f.r.rx_len, 4);
    assert_memory_equal(f.r.rx, "abcd", 4);
    pg_manual_host_run(f.mh);
    assert_true(pg_manual_stream_closed(f.ms)); /* eof_received said close */
    assert_string_equal(f.r.log, "made data eof lost:ok");
    mfix_done(&f);
}

/* With nothing held, bytes go straight to a reading protocol, and an end or
 * an error after them straight after them. */
static void test_received_while_reading(void **state)
{
    (void)state;
    mfix f;
    mfix_start(&f, 0);
    received(&f, "ab", 0);
    assert_string_equal(f.r.log, "made data");
    received(&f, "cd", -ECONNRESET);
    assert_string_equal(f.r.log, "made data");
    assert_int_equal(f.r.rx_len, 4);
    assert_true(pg_transport_is_closing(pg_manual_stream_transport(f.ms)));
    pg_manual_host_run(f.mh);
    assert_string_equal(f.r.log, "made data lost:ECONNRESET");
    mfix_done(&f);
}

/* pause_reading then resume_reading inside a callback of the delivery: the
 * same delivery goes on (once), then the driver reads again. */
static void pause_resume_on_data(recorder *r, const uint8_t *data, size_t len)
{
    (void)data;
    (void)len;
    pg_transport_pause_reading(r->transport);
    pg_transport_resume_reading(r->transport);
}

static void test_received_resume_inside_delivery(void **state)
{
    (void)state;
    mfix f;
    mfix_start(&f, 0);
    pg_transport *t = pg_manual_stream_transport(f.ms);
    pg_transport_pause_reading(t);
    received(&f, "abc", 0);
    pg_transport_resume_reading(t);
    f.r.hooks.data = pause_resume_on_data;
    assert_int_equal(pg_manual_host_run(f.mh), 1);
    assert_int_equal(f.r.rx_len, 3);
    assert_true(pg_manual_stream_wants_read(f.ms));
    assert_false(pg_manual_host_pending(f.mh)); /* no second delivery */
    f.r.hooks.data = NULL;
    received(&f, "d", 0);
    assert_int_equal(f.r.rx_len, 4);
    assert_memory_equal(f.r.rx, "abcd", 4);
    mfix_done(&f);
}

/* The transport ends while it holds input: nothing of it is delivered, and
 * nothing leaks, whether its delivery was deferred or not. */
static void test_received_close_while_held(void **state)
{
    (void)state;
    mfix f;
    mfix_start(&f, 0);
    pg_transport *t = pg_manual_stream_transport(f.ms);
    pg_transport_pause_reading(t);
    received(&f, "abc", PG_STREAM_END);
    pg_transport_close(t);
    pg_manual_host_run(f.mh);
    assert_true(pg_manual_stream_closed(f.ms));
    assert_string_equal(f.r.log, "made lost:ok");
    mfix_done(&f);
}

static void test_received_lost_while_delivery_deferred(void **state)
{
    (void)state;
    mfix f;
    mfix_start(&f, 0);
    pg_transport *t = pg_manual_stream_transport(f.ms);
    pg_manual_stream_set_capacity(f.ms, 2);
    assert_int_equal(pg_transport_write(t, "xyz", 3), 0); /* one byte waits for room */
    pg_transport_pause_reading(t);
    received(&f, "abc", 0);
    pg_transport_resume_reading(t); /* the delivery is deferred */
    pg_transport_close(t);          /* flushing */
    pg_manual_stream_consume(f.ms, 2); /* drained: connection_lost at once */
    assert_true(pg_manual_stream_closed(f.ms));
    assert_int_equal(pg_manual_host_run(f.mh), 1); /* the delivery, with nobody to deliver to */
    assert_string_equal(f.r.log, "made lost:ok");
    assert_int_equal(f.r.rx_len, 0);
    mfix_done(&f);
}

/* A buffered protocol with a 3-byte buffer gets the driver's bytes copied,
 * and one that pauses inside buffer_updated leaves the rest to the driver. */
typedef struct small_buf {
    uint8_t buf[3];
    uint8_t got[64];
    size_t got_len;
    int gets, updates;
    bool pause_after_first;
    pg_transport *t;
} small_buf;

static void sb_made(void *self, pg_transport *t)
{
    ((small_buf *)self)->t = t;
}

static uint8_t *sb_get_buffer(void *self, size_t hint, size_t *len)
{
    small_buf *b = self;
    assert_true(hint > 0);
    b->gets++;
    *len = sizeof b->buf;
    return b->buf;
}

static void sb_updated(void *self, size_t n)
{
    small_buf *b = self;
    memcpy(b->got + b->got_len, b->buf, n);
    b->got_len += n;
    if (b->updates++ == 0 && b->pause_after_first)
        pg_transport_pause_reading(b->t);
}

static const pg_protocol_ops small_buf_ops = {
    .connection_made = sb_made,
    .get_buffer = sb_get_buffer,
    .buffer_updated = sb_updated,
};

static int small_buf_factory(void *arg, pg_protocol *out)
{
    out->ops = &small_buf_ops;
    out->self = arg;
    return 0;
}

static void test_buffered_protocol(void **state)
{
    (void)state;
    pg_manual_host *mh;
    pg_manual_stream *ms;
    small_buf b = { .pause_after_first = true };
    assert_int_equal(pg_manual_host_new(&mh), 0);
    assert_int_equal(pg_manual_stream_new(pg_manual_host_host(mh), 0, small_buf_factory, &b, &ms), 0);
    pg_manual_host_run(mh);
    assert_int_equal(pg_manual_stream_feed(ms, "0123456789", 10), 3);
    pg_transport_resume_reading(b.t);
    assert_int_equal(pg_manual_stream_feed(ms, "3456789", 7), 7);
    assert_int_equal(b.got_len, 10);
    assert_memory_equal(b.got, "0123456789", 10);
    assert_int_equal(b.updates, 4);
    assert_int_equal(b.gets, 4);
    pg_manual_stream_free(ms); /* still open: aborted, freed once lost */
    pg_manual_host_run(mh);
    pg_manual_host_free(mh);
}

/* A buffered protocol that pauses after each buffer it gets: each resume
 * gives it the next piece, from the host's run, and the error held after
 * the bytes comes only after the last of them. */
static void test_received_pause_mid_delivery(void **state)
{
    (void)state;
    pg_manual_host *mh;
    pg_manual_stream *ms;
    small_buf b = { .pause_after_first = false };
    assert_int_equal(pg_manual_host_new(&mh), 0);
    assert_int_equal(pg_manual_stream_new(pg_manual_host_host(mh), 0, small_buf_factory, &b, &ms), 0);
    pg_manual_host_run(mh);
    pg_transport_pause_reading(b.t);
    pg_stream_received(b.t, (const uint8_t *)"01234567", 8, -ECONNRESET);
    b.pause_after_first = true;
    static const size_t got[] = { 3, 6, 8 };
    for (size_t i = 0; i < 3; i++) {
        b.updates = 0;
        pg_transport_resume_reading(b.t);
        assert_int_equal(pg_manual_host_run(mh), 1);
        assert_int_equal(b.got_len, got[i]);
        assert_false(pg_transport_is_closing(b.t)); /* the error waits behind the bytes */
        assert_false(pg_manual_stream_wants_read(ms));
    }
    assert_memory_equal(b.got, "01234567", 8);
    pg_transport_resume_reading(b.t); /* nothing but the error is left */
    assert_int_equal(pg_manual_host_run(mh), 1);
    assert_true(pg_transport_is_closing(b.t));
    pg_manual_host_run(mh);
    assert_true(pg_manual_stream_closed(ms));
    pg_manual_stream_free(ms);
    pg_manual_host_free(mh);
}

/* The same bytes cut anywhere give the same bytes to the protocol and the
 * same echo: whole, one byte at a time, and at every 2-way split. */
static void feed_in_pieces(const uint8_t *msg, size_t len, const size_t *cuts, size_t ncuts)
{
    mfix f;
    mfix_start(&f, PG_STREAM_CAN_WRITE_EOF);
    f.r.hooks.data = echo_data;
    size_t at = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t end = i < ncuts ? cuts[i] : len;
        assert_int_equal(pg_manual_stream_feed(f.ms, msg + at, end - at), end - at);
        at = end;
    }
    pg_manual_stream_feed_eof(f.ms);
    pg_manual_host_run(f.mh);
    assert_int_equal(f.r.rx_len, len);
    assert_memory_equal(f.r.rx, msg, len);
    size_t out_len;
    const uint8_t *out = pg_manual_stream_output(f.ms, &out_len);
    assert_int_equal(out_len, len);
    assert_memory_equal(out, msg, len);
    assert_string_equal(f.r.log, "made data eof lost:ok");
    mfix_done(&f);
}

static void test_every_split(void **state)
{
    (void)state;
    static const uint8_t msg[] = "*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n";
    size_t len = sizeof msg - 1;
    feed_in_pieces(msg, len, NULL, 0);
    size_t bytes[sizeof msg];
    for (size_t i = 1; i < len; i++)
        bytes[i - 1] = i;
    feed_in_pieces(msg, len, bytes, len - 1);
    for (size_t cut = 1; cut < len; cut++)
        feed_in_pieces(msg, len, &cut, 1);
}

/* A transport that is freed before it ran gets connection_made and
 * connection_lost, in order, and nothing leaks. */
static void test_free_before_run(void **state)
{
    (void)state;
    recorder r;
    recorder_init(&r);
    pg_manual_host *mh;
    pg_manual_stream *ms;
    assert_int_equal(pg_manual_host_new(&mh), 0);
    assert_int_equal(pg_manual_stream_new(pg_manual_host_host(mh), 0, recorder_factory, &r, &ms), 0);
    pg_manual_stream_free(ms);
    while (pg_manual_host_pending(mh))
        pg_manual_host_run(mh);
    assert_string_equal(r.log, "made lost:ok");
    pg_manual_host_free(mh);
    recorder_free(&r);
}

/* With a sender, writes go out at once; what it refuses is buffered by the
 * transport until writable, and its error is the connection's. */
typedef struct sink {
    uint8_t got[64];
    size_t len;
    size_t room;
    int error;
} sink;

static ssize_t sink_send(void *arg, const struct iovec *iov, int iovcnt)
{
    sink *k = arg;
    if (k->error)
        return k->error;
    size_t took = 0;
    for (int i = 0; i < iovcnt && k->room > 0; i++) {
        size_t n = iov[i].iov_len < k->room ? iov[i].iov_len : k->room;
        memcpy(k->got + k->len, iov[i].iov_base, n);
        k->len += n;
        k->room -= n;
        took += n;
    }
    return (ssize_t)took;
}

static void test_sender(void **state)
{
    (void)state;
    mfix f;
    mfix_start(&f, 0);
    sink k = { .room = 4 };
    pg_manual_stream_set_sender(f.ms, sink_send, &k);
    pg_transport *t = pg_manual_stream_transport(f.ms);
    assert_int_equal(pg_transport_write(t, "abcdef", 6), 0);
    assert_int_equal(k.len, 4);
    assert_int_equal(pg_transport_get_write_buffer_size(t), 2);
    assert_true(pg_manual_stream_wants_write(f.ms));
    size_t len;
    pg_manual_stream_output(f.ms, &len);
    assert_int_equal(len, 0); /* nothing goes through the output */
    k.room = 10;
    pg_manual_stream_writable(f.ms);
    assert_int_equal(k.len, 6);
    assert_memory_equal(k.got, "abcdef", 6);
    assert_false(pg_manual_stream_wants_write(f.ms));
    k.error = -EPIPE;
    assert_int_equal(pg_transport_write(t, "x", 1), 0); /* asyncio: the error goes to connection_lost */
    pg_manual_host_run(f.mh);
    assert_string_equal(f.r.log, "made lost:EPIPE");
    mfix_done(&f);
}

/* A host of one's own (pg_host_new): the core reserves what it will defer
 * when the transport is made, and defers connection_made and the first read
 * instead of calling them from pg_stream_new. */
typedef struct counting_host {
    int reserved;
    pg_callback_fn fns[8];
    void *args[8];
    int queued;
} counting_host;

static int ch_reserve(void *self)
{
    ((counting_host *)self)->reserved++;
    return 0;
}

static void ch_unreserve(void *self)
{
    ((counting_host *)self)->reserved--;
}

static void ch_defer(void *self, pg_callback_fn fn, void *arg)
{
    counting_host *h = self;
    assert_true(h->reserved > 0 && h->queued < 8);
    h->reserved--;
    h->fns[h->queued] = fn;
    h->args[h->queued++] = arg;
}

static uint64_t ch_now(void *self)
{
    (void)self;
    return 7;
}

/* No timers: they are optional. */
static const pg_host_ops counting_host_ops = { ch_reserve, ch_unreserve, ch_defer, ch_now, NULL, NULL };

static ssize_t null_writev(void *self, const struct iovec *iov, int iovcnt)
{
    (void)self;
    (void)iov;
    (void)iovcnt;
    return 0;
}
static int null_shutdown(void *self)
{
    (void)self;
    return 0;
}
static int null_want(void *self, bool on)
{
    (void)self;
    (void)on;
    return 0;
}
static void null_close(void *self)
{
    *(bool *)self = true;
}

static void test_own_host(void **state)
{
    (void)state;
    static const pg_host_ops missing = { ch_reserve, ch_unreserve, NULL, ch_now, NULL, NULL };
    counting_host ch = { 0 };
    pg_host *host;
    assert_int_equal(pg_host_new(&missing, &ch, &host), -EINVAL);
    assert_int_equal(pg_host_new(&counting_host_ops, &ch, &host), 0);
    assert_int_equal(pg_host_now_ms(host), 7);
    pg_timer timer;
    pg_timer_init(&timer);
    assert_int_equal(pg_host_timer_start(host, &timer, 1, ch_unreserve, NULL), -ENOTSUP);
    assert_false(pg_timer_is_active(&timer));
    static const pg_stream_driver_ops null_driver = { null_writev, null_shutdown, null_want, null_want, null_close, NULL };
    bool closed = false;
    recorder r;
    recorder_init(&r);
    pg_transport *t;
    assert_int_equal(pg_stream_new(host, &null_driver, &closed, 0, recorder_factory, &r, &t), 0);
    assert_int_equal(r.made, 0);
    assert_int_equal(ch.queued, 2);    /* connection_made, the first read */
    assert_int_equal(ch.reserved, 1);  /* kept for connection_lost */
    for (int i = 0; i < ch.queued; i++)
        ch.fns[i](ch.args[i]);
    assert_int_equal(r.made, 1);
    pg_transport_abort(t);
    assert_int_equal(ch.reserved, 0);
    assert_int_equal(ch.queued, 3);
    ch.fns[2](ch.args[2]);
    assert_true(closed);
    assert_string_equal(r.log, "made lost:ok");
    pg_host_free(host);
    recorder_free(&r);
}

static uint64_t fake_now(void *arg)
{
    return *(uint64_t *)arg;
}

static void test_clock(void **state)
{
    (void)state;
    pg_manual_host *mh;
    assert_int_equal(pg_manual_host_new(&mh), 0);
    uint64_t now = 12345;
    pg_manual_host_set_clock(mh, fake_now, &now);
    pg_host *h = pg_manual_host_host(mh);
    assert_int_equal(pg_host_now_ms(h), 12345);
    now = 12400;
    assert_int_equal(pg_host_now_ms(h), 12400);
    pg_manual_host_set_clock(mh, NULL, NULL); /* CLOCK_MONOTONIC again */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t before = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    assert_true(pg_host_now_ms(h) >= before);
    pg_manual_host_free(mh);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    pg_manual_host *mh;
    pg_manual_stream *ms;
    recorder r;
    recorder_init(&r);
    assert_int_equal(pg_manual_host_new(&mh), 0);
    assert_int_equal(pg_manual_stream_new(pg_manual_host_host(mh), PG_STREAM_READ_ONLY | PG_STREAM_WRITE_ONLY,
                                          recorder_factory, &r, &ms),
                     -EINVAL);
    assert_int_equal(pg_manual_stream_new(pg_manual_host_host(mh), 0x80, recorder_factory, &r, &ms), -EINVAL);
    assert_int_equal(pg_manual_stream_new(NULL, 0, recorder_factory, &r, &ms), -EINVAL);
    assert_false(pg_manual_host_pending(mh));
    pg_manual_host_free(mh);
    recorder_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_and_echo),
        cmocka_unit_test(test_empty_output_is_null),
        cmocka_unit_test(test_back_pressure_and_close_drains),
        cmocka_unit_test(test_abort_drops_the_buffer),
        cmocka_unit_test(test_error_reaches_connection_lost),
        cmocka_unit_test(test_protocol_fails_its_connection),
        cmocka_unit_test(test_write_eof_after_drain),
        cmocka_unit_test(test_eof_keep_open),
        cmocka_unit_test(test_paused_reading_holds_input),
        cmocka_unit_test(test_received_while_paused_then_end),
        cmocka_unit_test(test_received_while_reading),
        cmocka_unit_test(test_received_pause_mid_delivery),
        cmocka_unit_test(test_received_resume_inside_delivery),
        cmocka_unit_test(test_received_close_while_held),
        cmocka_unit_test(test_received_lost_while_delivery_deferred),
        cmocka_unit_test(test_buffered_protocol),
        cmocka_unit_test(test_every_split),
        cmocka_unit_test(test_free_before_run),
        cmocka_unit_test(test_sender),
        cmocka_unit_test(test_own_host),
        cmocka_unit_test(test_clock),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
