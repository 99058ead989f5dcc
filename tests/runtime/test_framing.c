/* Framers (protogen/framing.h): line and length framing fed whole, byte by
 * byte, at every 2-way split and at seeded random splits with identical
 * message logs; errors at exact stream positions; messages delivered from
 * the read without a copy; the carry-over buffer bounded; raw bodies; and,
 * on the manual host, back-pressure holding input between messages. */
#include <stdlib.h>
#include <unistd.h>

#include "core_internal.h" /* pg__trace_reset */
#include "protogen/manual.h"
#include "testutil.h"

/* ---- a log of what a framer delivers ------------------------------------ */

typedef struct flog {
    pg_framer f;
    char text[8192]; /* "len:payload|" per message, "E<code>@<pos>" for an error */
    size_t used;
    const uint8_t *in_lo, *in_hi; /* the read being fed, to see zero-copy delivery */
    int copies;                   /* messages delivered from outside the read */
    const char *raw_after;        /* a message with this payload makes the next 5 bytes raw */
    pg_transport *write_to;       /* on the manual host: echo every message */
    size_t reply_size;            /* bytes written per message */
    bool pause_reading_at;        /* hold for reading after each message */
    bool keep_open;               /* the error callback's answer */
    int close_after;              /* > 0: close the transport after that many more messages */
} flog;

static void flog_put(flog *l, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(l->text + l->used, sizeof l->text - l->used, fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < sizeof l->text - l->used);
    l->used += (size_t)n;
}

static void flog_message(void *self, const pg_message *m)
{
    flog *l = self;
    assert_ptr_equal(pg_framer_current(&l->f), m);
    if (m->len > 0 && (m->data < l->in_lo || m->data + m->len > l->in_hi))
        l->copies++;
    /* "r": a raw message (pg_message.raw), the bytes expect_raw asked for */
    flog_put(l, "%s%zu:%.*s|", m->raw ? "r" : "", m->len, m->len <= 200 ? (int)m->len : 0, (const char *)m->data);
    if (l->raw_after != NULL && m->len == strlen(l->raw_after) && memcmp(m->data, l->raw_after, m->len) == 0)
        assert_int_equal(pg_framer_expect_raw(&l->f, 5), 0);
    if (l->write_to != NULL) {
        static uint8_t reply[1 << 16];
        assert_true(l->reply_size <= sizeof reply);
        assert_int_equal(pg_transport_write(l->write_to, reply, l->reply_size), 0);
    }
    if (l->pause_reading_at)
        pg_framer_hold(&l->f, PG_FRAMER_HOLD_READING);
    if (l->close_after > 0 && --l->close_after == 0)
        pg_transport_close(l->write_to);
}

/* Also log the error's input: "[<offset>:<the message's bytes before the offending one>]". */
static bool flog_show_input;

static bool flog_error(void *self, const pg_protocol_error *e)
{
    flog *l = self;
    assert_non_null(e->reason);
    assert_ptr_equal(pg_framer_failing(&l->f), e);
    flog_put(l, "E%d@%llu", -e->code, (unsigned long long)e->pos);
    if (flog_show_input) {
        assert_non_null(e->input);
        assert_true(e->offset <= e->input_len);
        flog_put(l, "[%zu:%.*s]", e->offset, (int)e->offset, (const char *)e->input);
    }
    return l->keep_open;
}

static const pg_framer_ops flog_ops = { .message = flog_message, .error = flog_error };

static void flog_init(flog *l, const pg_framing *fr)
{
    memset(l, 0, sizeof *l);
    pg_framer_init(&l->f, fr, &flog_ops, l);
}

static void flog_feed(flog *l, const void *data, size_t len)
{
    /* Each read in memory of its own, as a driver's reads are. */
    uint8_t *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, data, len);
    l->in_lo = copy;
    l->in_hi = copy + len;
    pg_framer_feed(&l->f, copy, len);
    l->in_lo = l->in_hi = NULL;
    free(copy);
}

/* The log of input fed in pieces at the cuts (sorted offsets, ncuts of them). */
static void log_with_cuts(const pg_framing *fr, const char *raw_after, const uint8_t *in, size_t len,
                          const size_t *cuts, size_t ncuts, char *out, size_t cap)
{
    flog *l = malloc(sizeof *l);
    assert_non_null(l);
    flog_init(l, fr);
    l->raw_after = raw_after;
    size_t at = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t end = i < ncuts ? cuts[i] : len;
        flog_feed(l, in + at, end - at);
        at = end;
    }
    pg_framer_eof(&l->f); /* the stream ends: a message cut short is an error */
    assert_true(pg_framer_capacity(&l->f) <= fr->max + 16); /* the largest message, not more */
    snprintf(out, cap, "%s", l->text);
    pg_framer_cleanup(&l->f);
    free(l);
}

/* Whole, byte by byte, every 2-way split, seeded random splits, each
 * followed by the end of the stream: one log. */
static void check_splits(const pg_framing *fr, const char *raw_after, const void *input, size_t len,
                         const char *expected)
{
    const uint8_t *in = input;
    char whole[8192], got[8192];
    log_with_cuts(fr, raw_after, in, len, NULL, 0, whole, sizeof whole);
    assert_string_equal(whole, expected);

    size_t *cuts = malloc((len + 1) * sizeof *cuts);
    assert_non_null(cuts);
    for (size_t i = 0; i + 1 < len; i++)
        cuts[i] = i + 1;
    log_with_cuts(fr, raw_after, in, len, cuts, len > 0 ? len - 1 : 0, got, sizeof got);
    assert_string_equal(got, whole);

    for (size_t cut = 0; cut <= len; cut++) {
        log_with_cuts(fr, raw_after, in, len, &cut, 1, got, sizeof got);
        assert_string_equal(got, whole);
    }

    srand(20261202);
    for (int round = 0; round < 200; round++) {
        size_t n = 0;
        for (size_t at = 0; at < len; n++) {
            at += 1 + (size_t)rand() % 7;
            if (at >= len)
                break;
            cuts[n] = at;
        }
        log_with_cuts(fr, raw_after, in, len, cuts, n, got, sizeof got);
        assert_string_equal(got, whole);
    }
    free(cuts);
}

static const uint8_t crlf[] = "\r\n";
static const pg_framing line_crlf = {
    .kind = PG_FRAMING_LINE, .max = 8, .delimiter = crlf, .delimiter_len = 2,
};
static const uint8_t nl[] = "\n";
static const pg_framing line_nl = { .kind = PG_FRAMING_LINE, .max = 8, .delimiter = nl, .delimiter_len = 1 };
static const uint8_t three[] = "-->";
static const pg_framing line_three = {
    .kind = PG_FRAMING_LINE, .max = 8, .delimiter = three, .delimiter_len = 3,
};

static void test_line_splits(void **state)
{
    (void)state;
    const char in[] = "GET a\r\n\r\nb\rc\r\na\r\r\n12345678\r\nx";
    check_splits(&line_crlf, NULL, in, sizeof in - 1, "5:GET a|0:|3:b\rc|2:a\r|8:12345678|E61@29"); /* "x": cut short */
    const char in2[] = "one\ntwo\n\nthree\n";
    check_splits(&line_nl, NULL, in2, sizeof in2 - 1, "3:one|3:two|0:|5:three|");
    /* A delimiter whose prefix repeats: the first whole occurrence ends the line. */
    const char in3[] = "a--->b-->-->";
    check_splits(&line_three, NULL, in3, sizeof in3 - 1, "2:a-|1:b|0:|");
}

/* max payload bytes pass; one more is an error at the first byte beyond max,
 * whatever the cuts, and nothing is delivered after it. */
static void test_line_oversize_position(void **state)
{
    (void)state;
    const char in[] = "ok\r\n123456789\r\nnever\r\n";
    check_splits(&line_crlf, NULL, in, sizeof in - 1, "2:ok|E90@12");
    /* Exactly max then a delimiter split across reads is fine; max then a
     * non-delimiter is not, even before the rest arrives. */
    const char in2[] = "12345678\r\n12345678\rX";
    check_splits(&line_crlf, NULL, in2, sizeof in2 - 1, "8:12345678|E90@18");
}

static const pg_framing len_be4 = {
    .kind = PG_FRAMING_LENGTH, .max = 16, .width = 4, .big_endian = true, .offset = 0, .header = 4,
};
/* A 1-byte type, a 2-byte little-endian length counting the whole message, a flags byte. */
static const pg_framing len_le2 = {
    .kind = PG_FRAMING_LENGTH, .max = 16, .width = 2, .big_endian = false, .offset = 1, .header = 4,
    .includes_header = true,
};
static const pg_framing len_varint = { .kind = PG_FRAMING_LENGTH, .max = 200, .width = PG_FRAMING_VARINT };

/* The error's input: the broken message from its first byte, the offending
 * byte's index in it; the same at every cut, whether the message lies in the
 * read or in the carry; NULL once the callback is over. */
static void test_error_input(void **state)
{
    (void)state;
    flog_show_input = true;
    const char in[] = "ok\r\n123456789\r\nnever\r\n";
    check_splits(&line_crlf, NULL, in, sizeof in - 1, "2:ok|E90@12[8:12345678]");
    const uint8_t in2[] = { 0, 0, 0, 1, 'z', 0, 0, 0, 17, 'a' };
    check_splits(&len_be4, NULL, in2, sizeof in2, "1:z|E90@5[0:]"); /* at the header: offset 0 */
    flog_show_input = false;

    flog l;
    flog_init(&l, &line_crlf);
    flog_feed(&l, "123456789\r\n", 11);
    assert_string_equal(l.text, "E90@8");
    assert_null(pg_framer_failing(&l.f));
    pg_framer_fail(&l.f, -EPROTO, "again"); /* sticky: no second report */
    assert_string_equal(l.text, "E90@8");
    pg_framer_cleanup(&l.f);
}

static void test_length_splits(void **state)
{
    (void)state;
    const uint8_t in[] = { 0, 0, 0, 3, 'a', 'b', 'c', 0, 0, 0, 0, 0, 0, 0, 1, 'z' };
    check_splits(&len_be4, NULL, in, sizeof in, "3:abc|0:|1:z|");
    const uint8_t in2[] = { 7, 6, 0, 9, 'h', 'i', 7, 4, 0, 9 };
    check_splits(&len_le2, NULL, in2, sizeof in2, "2:hi|0:|");
    uint8_t in3[2 + 150 + 1 + 1];
    in3[0] = 0x96; /* 150 = 0x96 0x01 */
    in3[1] = 0x01;
    memset(in3 + 2, 'v', 150);
    in3[152] = 1;
    in3[153] = 'w';
    char expected[256];
    snprintf(expected, sizeof expected, "150:%.*s|1:w|", 150, (const char *)in3 + 2);
    check_splits(&len_varint, NULL, in3, sizeof in3, expected);
}

static void test_length_errors(void **state)
{
    (void)state;
    const uint8_t big[] = { 0, 0, 0, 1, 'a', 0, 0, 0, 17, 'x' };
    check_splits(&len_be4, NULL, big, sizeof big, "1:a|E90@5");
    const uint8_t below[] = { 9, 3, 0, 0 }; /* includes the header, yet says 3 < 4 */
    check_splits(&len_le2, NULL, below, sizeof below, "E71@1");
    uint8_t endless[12];
    memset(endless, 0xff, sizeof endless); /* a varint that never ends */
    check_splits(&len_varint, NULL, endless, sizeof endless, "E71@9");
}

/* A counted body in the middle of lines, and back to lines after it. */
static void test_raw_body(void **state)
{
    (void)state;
    const char in[] = "DATA\r\nab\r\ncQUIT\r\n";
    check_splits(&line_crlf, "DATA", in, sizeof in - 1, "4:DATA|r5:ab\r\nc|4:QUIT|");
    flog l;
    flog_init(&l, &line_crlf);
    assert_int_equal(pg_framer_expect_raw(&l.f, 0), -EINVAL);
    assert_int_equal(pg_framer_expect_raw(&l.f, PG_FRAMING_MAX + 1), -EMSGSIZE);
    assert_int_equal(pg_framer_expect_raw(&l.f, 3), 0);
    assert_int_equal(pg_framer_expect_raw(&l.f, 3), -EBUSY);
    assert_int_equal(pg_framer_set_framing(&l.f, &len_be4), 0);
    flog_feed(&l, "abc\0\0\0\1z", 8);
    assert_string_equal(l.text, "r3:abc|1:z|");
    assert_int_equal(pg_framer_set_framing(&l.f, NULL), 0);
    flog_feed(&l, "line\r\n", 6);
    assert_string_equal(l.text, "r3:abc|1:z|4:line|");
    pg_framing bad = line_crlf;
    bad.delimiter_len = 0;
    assert_int_equal(pg_framer_set_framing(&l.f, &bad), -EINVAL);
    pg_framer_cleanup(&l.f);
}

/* Whole messages come from the read itself; the carry is allocated only for
 * a message that straddles reads, and stays within the framing's max. */
static void test_zero_copy_and_bounded_carry(void **state)
{
    (void)state;
    flog l;
    flog_init(&l, &line_crlf);
    flog_feed(&l, "a\r\nbb\r\nccc\r\n", 12);
    assert_int_equal(l.copies, 0);
    assert_int_equal(pg_framer_capacity(&l.f), 0);
    flog_feed(&l, "12345", 5);
    assert_int_equal(pg_framer_buffered(&l.f), 5);
    flog_feed(&l, "6\r\nd\r\ne", 7);
    assert_int_equal(l.copies, 1); /* only the straddling one */
    assert_int_equal(pg_framer_buffered(&l.f), 1);
    assert_int_equal(pg_framer_capacity(&l.f), 10); /* max 8 and the delimiter */
    assert_string_equal(l.text, "1:a|2:bb|3:ccc|6:123456|1:d|");
    assert_int_equal(pg_framer_position(&l.f), 23);
    pg_framer_cleanup(&l.f);

    /* A length-framed body straddling reads: the carry takes only what it needs. */
    static const pg_framing big = { .kind = PG_FRAMING_LENGTH, .max = 100000, .width = 4, .big_endian = true,
                                    .header = 4 };
    flog_init(&l, &big);
    uint8_t *in = calloc(1, 2 * 100004);
    assert_non_null(in);
    in[1] = 0x01; /* 65536 */
    in[65540 + 3] = 2;
    flog_feed(&l, in, 30000);
    flog_feed(&l, in + 30000, 65540 - 30000 + 6);
    assert_int_equal(pg_framer_buffered(&l.f), 0);
    assert_true(pg_framer_capacity(&l.f) == 0); /* a large carry goes once it empties */
    assert_int_equal(l.copies, 1);
    assert_int_equal(pg_framer_position(&l.f), 65540 + 6);
    free(in);
    pg_framer_cleanup(&l.f);
}

/* A line of unknown length straddling reads is completed from the next read
 * in small steps: the carry grows by a step, not by the whole read (which
 * would be copied only to be given back). */
static void test_straddling_line_takes_a_step_not_the_read(void **state)
{
    (void)state;
    static const uint8_t lf[] = "\n";
    static const pg_framing wide = { .kind = PG_FRAMING_LINE, .max = 8192, .delimiter = lf, .delimiter_len = 1 };
    flog *l = malloc(sizeof *l);
    assert_non_null(l);
    flog_init(l, &wide);
    flog_feed(l, "abc", 3);
    char read[2000];
    memcpy(read, "d\n", 2);
    for (size_t i = 2; i < sizeof read; i += 2)
        memcpy(read + i, "x\n", 2);
    flog_feed(l, read, sizeof read);
    assert_int_equal(l->copies, 1); /* "abcd" alone */
    assert_int_equal(pg_framer_buffered(&l->f), 0);
    assert_true(pg_framer_capacity(&l->f) <= 512); /* a step of 256, doubled: not the 2000-byte read */
    assert_int_equal(pg_framer_position(&l->f), 2003);
    assert_memory_equal(l->text, "4:abcd|1:x|1:x|", 15);
    assert_int_equal(l->used, 7 + (sizeof read / 2 - 1) * 4);
    pg_framer_cleanup(&l->f);
    free(l);
}

/* Held input is delivered on release, not before, and in order. */
static void test_hold_and_release(void **state)
{
    (void)state;
    flog l;
    flog_init(&l, &line_nl);
    l.pause_reading_at = true;
    flog_feed(&l, "a\nb\nc\nd", 7);
    assert_string_equal(l.text, "1:a|");
    assert_int_equal(pg_framer_buffered(&l.f), 5);
    pg_framer_release(&l.f, PG_FRAMER_HOLD_READING);
    assert_string_equal(l.text, "1:a|1:b|");
    l.pause_reading_at = false;
    pg_framer_hold(&l.f, PG_FRAMER_HOLD_WRITING);
    pg_framer_release(&l.f, PG_FRAMER_HOLD_READING); /* still held for writing */
    assert_string_equal(l.text, "1:a|1:b|");
    flog_feed(&l, "\ne\n", 3); /* input that comes while held is kept too */
    assert_string_equal(l.text, "1:a|1:b|");
    pg_framer_release(&l.f, PG_FRAMER_HOLD_WRITING);
    assert_string_equal(l.text, "1:a|1:b|1:c|1:d|1:e|");
    assert_int_equal(pg_framer_buffered(&l.f), 0);
    pg_framer_cleanup(&l.f);
}

/* The stream ends inside a message: PG_FRAMING_ETRUNCATED at the end, with
 * the message's bytes; a raw body expected counts as begun. Held input goes
 * first: the error comes only once it was delivered. */
static void test_end_inside_a_message(void **state)
{
    (void)state;
    flog_show_input = true;
    check_splits(&line_crlf, NULL, "ok\r\npar", 7, "2:ok|E61@7[3:par]");
    check_splits(&line_crlf, NULL, "ok\r\n\r", 5, "2:ok|E61@5[1:\r]"); /* half a delimiter */
    check_splits(&line_crlf, "DATA", "DATA\r\nab", 8, "4:DATA|E61@8[2:ab]");
    check_splits(&line_crlf, "DATA", "DATA\r\n", 6, "4:DATA|E61@6[0:]"); /* none of the raw 5 */
    check_splits(&line_crlf, "DATA", "DATA\r\n12345", 11, "4:DATA|r5:12345|"); /* whole: no error */
    flog_show_input = false;
    check_splits(&len_be4, NULL, "\0\0\0\3ab", 6, "E61@6"); /* in a body, then in a header: */
    check_splits(&len_be4, NULL, "\0\0\0\1a\0\0", 7, "1:a|E61@7");

    flog l;
    flog_init(&l, &line_nl);
    l.pause_reading_at = true;
    flog_feed(&l, "a\nb\nc", 5);
    pg_framer_eof(&l.f);
    assert_string_equal(l.text, "1:a|"); /* held: b is delivered first */
    pg_framer_release(&l.f, PG_FRAMER_HOLD_READING);
    assert_string_equal(l.text, "1:a|1:b|");
    l.pause_reading_at = false;
    pg_framer_release(&l.f, PG_FRAMER_HOLD_READING);
    assert_string_equal(l.text, "1:a|1:b|E61@5");
    pg_framer_eof(&l.f); /* once */
    assert_string_equal(l.text, "1:a|1:b|E61@5");
    pg_framer_cleanup(&l.f);
}

/* ---- on the manual host: a framed protocol ------------------------------ */

typedef struct framed {
    flog l;
    pg_manual_stream *ms;
    int lost;
    size_t max_wbuf, max_held;
} framed;

static void framed_made(void *self, pg_transport *t)
{
    framed *p = self;
    pg_framer_attach(&p->l.f, t);
    p->l.write_to = t;
}

static void framed_data(void *self, const uint8_t *data, size_t len)
{
    framed *p = self;
    pg_framer_feed(&p->l.f, data, len);
}

static void framed_lost(void *self, int error)
{
    framed *p = self;
    (void)error;
    p->lost++;
    pg_framer_cleanup(&p->l.f);
}

static void framed_pause(void *self)
{
    framed *p = self;
    pg_framer_hold(&p->l.f, PG_FRAMER_HOLD_WRITING);
}

static void framed_resume(void *self)
{
    framed *p = self;
    pg_framer_release(&p->l.f, PG_FRAMER_HOLD_WRITING);
}

static const pg_protocol_ops framed_ops = {
    .connection_made = framed_made,
    .data_received = framed_data,
    .connection_lost = framed_lost,
    .pause_writing = framed_pause,
    .resume_writing = framed_resume,
};

static int framed_factory(void *arg, pg_protocol *out)
{
    out->ops = &framed_ops;
    out->self = arg;
    return 0;
}

static pg_manual_host *framed_start(framed *p, const pg_framing *fr)
{
    memset(p, 0, sizeof *p);
    flog_init(&p->l, fr);
    pg_manual_host *mh;
    assert_int_equal(pg_manual_host_new(&mh), 0);
    assert_int_equal(pg_manual_stream_new(pg_manual_host_host(mh), PG_STREAM_CAN_WRITE_EOF, framed_factory, p,
                                          &p->ms), 0);
    pg_manual_host_run(mh);
    return mh;
}

static void framed_done(framed *p, pg_manual_host *mh)
{
    if (!pg_manual_stream_closed(p->ms)) {
        pg_transport_abort(pg_manual_stream_transport(p->ms));
        pg_manual_host_run(mh);
    }
    assert_int_equal(p->lost, 1);
    pg_manual_stream_free(p->ms);
    pg_manual_host_free(mh);
}

/* A client pipelines 2000 requests without reading the replies (4 KiB
 * each): the framer stops between messages once writing pauses, reading
 * stops, and memory stays at the watermarks plus one read; as the client
 * reads, the held requests are answered, in order, with no user code. */
static void test_back_pressure_holds_pipelined_requests(void **state)
{
    (void)state;
    framed p;
    pg_manual_host *mh = framed_start(&p, &line_nl);
    pg_manual_stream_set_capacity(p.ms, 0);
    pg_transport *t = pg_manual_stream_transport(p.ms);
    assert_int_equal(pg_transport_set_write_buffer_limits(t, 64 * 1024, 16 * 1024), 0);
    p.l.reply_size = 4096;

    enum { N = 2000, READ = 1000 };
    static char in[N * 2];
    for (int i = 0; i < N; i++) {
        in[2 * i] = 'a' + i % 26;
        in[2 * i + 1] = '\n';
    }
    size_t fed = 0, answered = 0;
    int rounds = 0;
    while (answered < (size_t)N * 4096) {
        if (rounds++ > 100000) {
            fprintf(stderr, "fed %zu answered %zu used %zu wants %d wbuf %zu held %zu hold %d\n", fed, answered, p.l.used,
                    pg_manual_stream_wants_read(p.ms), pg_transport_get_write_buffer_size(t), pg_framer_buffered(&p.l.f), p.l.f.hold);
            fail();
        }
        if (fed < sizeof in && pg_manual_stream_wants_read(p.ms)) {
            size_t n = sizeof in - fed < READ ? sizeof in - fed : READ;
            fed += pg_manual_stream_feed(p.ms, in + fed, n);
        }
        size_t wbuf = pg_transport_get_write_buffer_size(t);
        if (wbuf > p.max_wbuf)
            p.max_wbuf = wbuf;
        if (pg_framer_buffered(&p.l.f) > p.max_held)
            p.max_held = pg_framer_buffered(&p.l.f);
        /* The client reads a little. */
        pg_manual_stream_set_capacity(p.ms, 8192);
        size_t len;
        pg_manual_stream_output(p.ms, &len);
        pg_manual_stream_consume(p.ms, len);
        answered += len;
        pg_manual_stream_set_capacity(p.ms, 0);
        pg_manual_host_run(mh);
    }
    assert_true(p.max_wbuf <= 64 * 1024 + 4096); /* high, plus the reply that crossed it */
    assert_true(p.max_held <= READ);             /* one read */
    char expected[N * 4 + 1];
    size_t at = 0;
    for (int i = 0; i < N; i++)
        at += (size_t)snprintf(expected + at, sizeof expected - at, "1:%c|", 'a' + i % 26);
    assert_string_equal(p.l.text, expected);
    framed_done(&p, mh);
}

/* The default for a protocol error: what is already written is flushed,
 * then the connection closes; no message after the error. */
static void test_error_closes_after_flush(void **state)
{
    (void)state;
    framed p;
    pg_manual_host *mh = framed_start(&p, &line_nl);
    pg_manual_stream_set_capacity(p.ms, 0);
    p.l.reply_size = 3;
    assert_int_equal(pg_manual_stream_feed(p.ms, "ok\n123456789\nlater\n", 19), 19);
    assert_string_equal(p.l.text, "2:ok|E90@11");
    pg_transport *t = pg_manual_stream_transport(p.ms);
    assert_true(pg_transport_is_closing(t));
    assert_int_equal(pg_transport_get_write_buffer_size(t), 3);
    assert_int_equal(pg_framer_error(&p.l.f), PG_FRAMING_ETOOBIG);
    pg_manual_host_run(mh);
    assert_int_equal(p.lost, 0); /* still flushing */
    pg_manual_stream_set_capacity(p.ms, 1024);
    size_t len;
    pg_manual_stream_output(p.ms, &len);
    assert_int_equal(len, 3);
    pg_manual_host_run(mh);
    assert_true(pg_manual_stream_closed(p.ms));
    framed_done(&p, mh);

    /* Kept open: the protocol decides; input after the error is dropped. */
    mh = framed_start(&p, &line_nl);
    p.l.keep_open = true;
    assert_int_equal(pg_manual_stream_feed(p.ms, "123456789\nx\n", 12), 12);
    assert_false(pg_transport_is_closing(pg_manual_stream_transport(p.ms)));
    assert_int_equal(pg_manual_stream_feed(p.ms, "y\n", 2), 2);
    assert_string_equal(p.l.text, "E90@8");
    framed_done(&p, mh);
}

/* What the transport's driver was asked to send: calls and bytes. */
typedef struct sends {
    int calls;
    size_t bytes;
} sends;

static ssize_t count_send(void *arg, const struct iovec *iov, int iovcnt)
{
    sends *c = arg;
    c->calls++;
    size_t n = 0;
    for (int i = 0; i < iovcnt; i++)
        n += iov[i].iov_len;
    c->bytes += n;
    return (ssize_t)n;
}

/* Pipelined requests in one read: their replies leave in one write (the
 * framer corks the transport while it delivers), not one system call each;
 * a buffer that goes above the high watermark meanwhile is sent at once. */
static void test_replies_to_one_read_leave_in_one_write(void **state)
{
    (void)state;
    framed p;
    pg_manual_host *mh = framed_start(&p, &line_nl);
    sends c = { 0 };
    pg_manual_stream_set_sender(p.ms, count_send, &c);
    p.l.reply_size = 3;
    assert_int_equal(pg_manual_stream_feed(p.ms, "a\nb\nc\nd\n", 8), 8);
    assert_string_equal(p.l.text, "1:a|1:b|1:c|1:d|");
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.bytes, 12);
    assert_int_equal(pg_manual_stream_feed(p.ms, "e\n", 2), 2); /* one message: one write, as ever */
    assert_int_equal(c.calls, 2);

    pg_transport *t = pg_manual_stream_transport(p.ms);
    assert_int_equal(pg_transport_set_write_buffer_limits(t, 4, 1), 0);
    assert_int_equal(pg_manual_stream_feed(p.ms, "f\ng\nh\n", 6), 6);
    assert_int_equal(c.calls, 4); /* f, g: 6 bytes > high 4, sent at once; h at the end */
    assert_int_equal(c.bytes, 24);
    assert_int_equal(pg_transport_get_write_buffer_size(t), 0);

    /* close() while corked (from a message) sends what is corked, then closes. */
    p.l.close_after = 2;
    assert_int_equal(pg_manual_stream_feed(p.ms, "i\nj\n", 4), 4);
    assert_int_equal(c.bytes, 30);
    pg_manual_host_run(mh);
    assert_true(pg_manual_stream_closed(p.ms));
    framed_done(&p, mh);
}

/* Trace lines: one per message, one per protocol error. */
static void test_trace_lines(void **state)
{
    (void)state;
    char path[] = "/tmp/pg_framing_traceXXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(setenv("PROTOGEN_TRACE", path, 1), 0);
    pg__trace_reset();
    framed p;
    pg_manual_host *mh = framed_start(&p, &line_nl);
    assert_int_equal(pg_manual_stream_feed(p.ms, "abc\n\n123456789", 14), 14);
    pg_manual_host_run(mh);
    framed_done(&p, mh);
    unsetenv("PROTOGEN_TRACE");
    pg__trace_reset();
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    char text[512] = "";
    size_t n = fread(text, 1, sizeof text - 1, fp);
    text[n] = '\0';
    fclose(fp);
    unlink(path);
    assert_string_equal(text, "1 connection_made\n1 data_received 14\n1 message_received 3\n"
                              "1 message_received 0\n1 protocol_error EMSGSIZE 13\n1 connection_lost ok\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_line_splits),
        cmocka_unit_test(test_line_oversize_position),
        cmocka_unit_test(test_error_input),
        cmocka_unit_test(test_length_splits),
        cmocka_unit_test(test_length_errors),
        cmocka_unit_test(test_raw_body),
        cmocka_unit_test(test_zero_copy_and_bounded_carry),
        cmocka_unit_test(test_straddling_line_takes_a_step_not_the_read),
        cmocka_unit_test(test_hold_and_release),
        cmocka_unit_test(test_end_inside_a_message),
        cmocka_unit_test(test_back_pressure_holds_pipelined_requests),
        cmocka_unit_test(test_error_closes_after_flush),
        cmocka_unit_test(test_replies_to_one_read_leave_in_one_write),
        cmocka_unit_test(test_trace_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
