/* Buffered protocols (asyncio's BufferedProtocol): reads straight into the
 * protocol's memory, the empty-buffer fatal error, pausing from get_buffer,
 * and switching protocols on a live transport (set_protocol/get_protocol),
 * from a plain protocol to a buffered one and back; their trace lines. */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"
#include "testutil.h"

typedef struct bufproto {
    pg_transport *transport;
    uint8_t buf[7]; /* small: every read fills it */
    size_t give;    /* the length get_buffer returns (sizeof buf by default) */
    bool give_null;
    bool pause_in_get_buffer;
    uint8_t rx[4096];
    size_t rx_len;
    size_t last_hint;
    int made, gets, updates, eofs, lost, lost_error;
    char log[256];
} bufproto;

static void bp_log(bufproto *b, const char *word)
{
    size_t n = strlen(b->log);
    /* Runs of get/upd merge, as the recorder merges data. */
    if (n >= strlen(word) && strcmp(b->log + n - strlen(word), word) == 0)
        return;
    snprintf(b->log + n, sizeof b->log - n, "%s%s", n ? " " : "", word);
}

static void bp_made(void *self, pg_transport *t)
{
    bufproto *b = self;
    assert_int_equal(b->made++, 0);
    b->transport = t;
    bp_log(b, "made");
}

static uint8_t *bp_get_buffer(void *self, size_t hint, size_t *len)
{
    bufproto *b = self;
    assert_int_equal(b->made, 1);
    assert_int_equal(b->lost, 0);
    assert_int_equal(b->eofs, 0);
    b->gets++;
    b->last_hint = hint;
    bp_log(b, "get");
    if (b->pause_in_get_buffer)
        pg_transport_pause_reading(b->transport);
    *len = b->give ? b->give : sizeof b->buf;
    if (b->give == SIZE_MAX)
        *len = 0;
    return b->give_null ? NULL : b->buf;
}

static void bp_updated(void *self, size_t n)
{
    bufproto *b = self;
    assert_true(n > 0 && n <= sizeof b->buf);
    assert_true(b->rx_len + n <= sizeof b->rx);
    memcpy(b->rx + b->rx_len, b->buf, n);
    b->rx_len += n;
    b->updates++;
    bp_log(b, "upd");
}

static bool bp_eof(void *self)
{
    bufproto *b = self;
    b->eofs++;
    bp_log(b, "eof");
    return false;
}

static void bp_lost(void *self, int error)
{
    bufproto *b = self;
    assert_int_equal(b->lost++, 0);
    b->lost_error = error;
    bp_log(b, error == 0 ? "lost:ok" : "lost:err");
}

static const pg_protocol_ops bufproto_ops = {
    .connection_made = bp_made,
    .eof_received = bp_eof,
    .connection_lost = bp_lost,
    .get_buffer = bp_get_buffer,
    .buffer_updated = bp_updated,
};

static int bufproto_factory(void *arg, pg_protocol *out)
{
    out->ops = &bufproto_ops;
    out->self = arg;
    return 0;
}

typedef struct bfix {
    pg_loop *loop;
    int sv[2];
    bufproto b;
    pg_transport *t;
} bfix;

static void bfix_start(bfix *f)
{
    assert_int_equal(pg_loop_new(&f->loop), 0);
    make_socketpair(f->sv, 0);
    assert_int_equal(pg_stream_adopt_fd(f->loop, f->sv[0], bufproto_factory, &f->b, &f->t), 0);
    RUN_UNTIL(f->loop, f->b.made == 1);
}

static void bfix_done(bfix *f)
{
    if (f->b.made && !f->b.lost) {
        pg_transport_abort(f->t);
        RUN_UNTIL(f->loop, f->b.lost == 1);
    }
    close(f->sv[1]);
    pg_loop_close(f->loop);
}

/* Bytes arrive in the protocol's own buffer, 7 at a time: the order is
 * made (get upd)* eof lost, and every byte arrives once, in order. */
static void test_reads_into_protocol_buffer(void **state)
{
    (void)state;
    bfix f = { 0 };
    bfix_start(&f);
    char msg[100];
    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = (char)('a' + i % 26);
    assert_int_equal(send(f.sv[1], msg, sizeof msg, 0), (ssize_t)sizeof msg);
    shutdown(f.sv[1], SHUT_WR);
    RUN_UNTIL(f.loop, f.b.lost == 1);
    assert_int_equal(f.b.rx_len, sizeof msg);
    assert_memory_equal(f.b.rx, msg, sizeof msg);
    assert_int_equal(f.b.updates, (sizeof msg + 6) / 7);
    assert_int_equal(f.b.gets, f.b.updates + 1); /* the last get finds EOF */
    assert_int_equal(f.b.last_hint, 256 * 1024);
    assert_string_equal(f.b.log, "made get upd get upd get upd get upd get upd get upd get upd get upd get upd "
                                 "get upd get upd get upd get upd get upd get upd get eof lost:ok");
    bfix_done(&f);
}

/* asyncio: "get_buffer() returned an empty buffer" is fatal. */
static void test_empty_buffer_is_fatal(void **state)
{
    (void)state;
    for (int variant = 0; variant < 2; variant++) {
        bfix f = { 0 };
        if (variant == 0)
            f.b.give = SIZE_MAX; /* length 0 */
        else
            f.b.give_null = true;
        bfix_start(&f);
        assert_int_equal(send(f.sv[1], "x", 1, 0), 1);
        RUN_UNTIL(f.loop, f.b.lost == 1);
        assert_int_equal(f.b.lost_error, -ENOBUFS);
        assert_int_equal(f.b.updates, 0);
        assert_string_equal(f.b.log, "made get lost:err");
        bfix_done(&f);
    }
}

/* pause_reading() inside get_buffer: nothing is read into that buffer. */
static void test_pause_in_get_buffer(void **state)
{
    (void)state;
    bfix f = { 0 };
    f.b.pause_in_get_buffer = true;
    bfix_start(&f);
    assert_int_equal(send(f.sv[1], "abc", 3, 0), 3);
    RUN_UNTIL(f.loop, f.b.gets == 1);
    run_idle(f.loop, 3);
    assert_int_equal(f.b.updates, 0);
    assert_int_equal(f.b.gets, 1);
    f.b.pause_in_get_buffer = false;
    pg_transport_resume_reading(f.t);
    RUN_UNTIL(f.loop, f.b.rx_len == 3);
    bfix_done(&f);
}

/* ---- set_protocol / get_protocol ---------------------------------------- */

typedef struct switcher {
    recorder rec;
    bufproto *next;
    bool switched;
} switcher;

/* After "HELLO", everything goes to the buffered protocol. */
static void switch_on_hello(recorder *r, const uint8_t *data, size_t len)
{
    (void)data;
    (void)len;
    switcher *s = r->user;
    if (s->switched || r->rx_len < 5)
        return;
    pg_protocol cur;
    assert_int_equal(pg_transport_get_protocol(r->transport, &cur), 0);
    assert_ptr_equal(cur.self, r);
    pg_protocol next = { .ops = &bufproto_ops, .self = s->next };
    assert_int_equal(pg_transport_set_protocol(r->transport, &next), 0);
    assert_int_equal(pg_transport_get_protocol(r->transport, &cur), 0);
    assert_ptr_equal(cur.self, s->next);
    /* asyncio calls no connection_made for the switch: the caller does. */
    next.ops->connection_made(next.self, r->transport);
    s->switched = true;
}

static void test_switch_to_buffered_and_back(void **state)
{
    (void)state;
    pg_loop *loop;
    assert_int_equal(pg_loop_new(&loop), 0);
    int sv[2];
    make_socketpair(sv, 0);
    bufproto b = { 0 };
    switcher s = { .next = &b };
    recorder_init(&s.rec);
    s.rec.user = &s;
    s.rec.hooks.data = switch_on_hello;
    pg_transport *t;
    assert_int_equal(pg_stream_adopt_fd(loop, sv[0], recorder_factory, &s.rec, &t), 0);
    assert_int_equal(pg_transport_set_protocol(t, NULL), -EINVAL);
    pg_protocol none = { 0 };
    assert_int_equal(pg_transport_set_protocol(t, &none), -EINVAL);
    RUN_UNTIL(loop, s.rec.made == 1);
    assert_int_equal(send(sv[1], "HELLO", 5, 0), 5);
    RUN_UNTIL(loop, s.switched);
    assert_int_equal(send(sv[1], "0123456789", 10, 0), 10);
    RUN_UNTIL(loop, b.rx_len == 10);
    assert_memory_equal(b.rx, "0123456789", 10);
    assert_int_equal(s.rec.rx_len, 5); /* the old protocol got no more */

    /* And back to the plain protocol (it is still connected). */
    pg_protocol plain = { .ops = &recorder_ops, .self = &s.rec };
    assert_int_equal(pg_transport_set_protocol(t, &plain), 0);
    assert_int_equal(send(sv[1], "xy", 2, 0), 2);
    RUN_UNTIL(loop, s.rec.rx_len == 7);
    close(sv[1]);
    RUN_UNTIL(loop, s.rec.lost == 1);
    assert_int_equal(b.lost, 0); /* connection_lost went to the current protocol only */
    assert_string_equal(s.rec.log, "made data eof lost:ok");
    recorder_free(&s.rec);
    pg_loop_close(loop);
}

/* ---- trace lines ---------------------------------------------------------- */

static void test_trace_lines(void **state)
{
    (void)state;
    char path[] = "/tmp/pg_trace_buf_XXXXXX";
    int tfd = mkstemp(path);
    assert_true(tfd >= 0);
    close(tfd);
    assert_int_equal(setenv("PROTOGEN_TRACE", path, 1), 0);
    pg__trace_reset();
    bfix f = { 0 };
    bfix_start(&f);
    assert_int_equal(send(f.sv[1], "abcdefghij", 10, 0), 10);
    RUN_UNTIL(f.loop, f.b.rx_len == 10);
    close(f.sv[1]);
    f.sv[1] = -1;
    RUN_UNTIL(f.loop, f.b.lost == 1);
    unsetenv("PROTOGEN_TRACE");
    pg__trace_reset();
    char buf[1024];
    int fd = open(path, O_RDONLY);
    ssize_t n = read(fd, buf, sizeof buf - 1);
    assert_true(n > 0);
    buf[n] = '\0';
    close(fd);
    unlink(path);
    assert_string_equal(buf, "1 connection_made\n"
                             "1 get_buffer 262144\n"
                             "1 buffer_updated 7\n"
                             "1 get_buffer 262144\n"
                             "1 buffer_updated 3\n"
                             "1 get_buffer 262144\n"
                             "1 eof_received\n"
                             "1 connection_lost ok\n");
    pg_loop_close(f.loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reads_into_protocol_buffer),
        cmocka_unit_test(test_empty_buffer_is_fatal),
        cmocka_unit_test(test_pause_in_get_buffer),
        cmocka_unit_test(test_switch_to_buffered_and_back),
        cmocka_unit_test(test_trace_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
