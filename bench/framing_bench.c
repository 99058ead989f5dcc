/* framing_bench: framer throughput from memory (no socket, no loop), each
 * case against a reference on the same bytes.
 *
 *   framing_bench [--case NAME]... [--mib N] [--read BYTES] [--passes N]
 *
 * Cases (default: all), each fed N MiB (default 8) of pipelined input in
 * reads of --read bytes (default 256 KiB, the built-in loop's read size),
 * to a handler that only counts:
 *   line:BYTES     "\r\n"-delimited lines of BYTES (delimiter included),
 *                  through pg_framer_feed (runtime/core/framing.c)
 *   memchr:BYTES   the reference for lines: memchr for each '\n' of the same bytes
 *   length:BYTES   messages of BYTES behind a 4-byte big-endian length header
 *                  (pg_framer_feed)
 *   lenwalk:BYTES  the reference for length: a loop reading each header and
 *                  skipping its payload
 *   resp           examples/resp/resp.spec's generated framer on the manual
 *                  host (protogen/manual.h): pipelined SET and GET commands
 *                  as redis-benchmark sends them (framing_resp.c counts them)
 *   hiredis        the reference for resp: Debian's hiredis redisReader on the
 *                  same bytes, parsing only (no reply objects: the no-op handler)
 *   hiredis-objects  the same, building hiredis' reply objects (its default)
 * Each case prints one line of key=value: case, bytes, messages, seconds (the
 * best of --passes passes), gbps, mmsgs. The work of each case is in a
 * function of its own named feed_* (not inlined): run under
 *   valgrind --tool=callgrind --toggle-collect='feed_*'
 * the counted instructions are that work alone, without making the input. */
#define _POSIX_C_SOURCE 200809L
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "framing_resp.h"
#include "protogen/framing.h"
#include "protogen/manual.h"

#define NOINLINE __attribute__((noinline))

static const uint8_t crlf[] = "\r\n";
static const pg_framing line_framing = {
    .kind = PG_FRAMING_LINE, .max = 8192, .delimiter = crlf, .delimiter_len = 2
};
static const pg_framing length_framing = {
    .kind = PG_FRAMING_LENGTH, .max = 1 << 20, .width = 4, .big_endian = true, .offset = 0, .header = 4
};

struct counts {
    size_t messages, bytes;
};

static void on_message(void *self, const pg_message *m)
{
    struct counts *c = self;
    c->messages++;
    c->bytes += m->len;
}

static const pg_framer_ops ops = { .message = on_message };

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
    fprintf(stderr, "framing_bench: %s\n", what);
    exit(1);
}

/* ---- inputs ------------------------------------------------------------- */

struct input {
    uint8_t *data;
    size_t len;
    size_t messages;
    size_t args; /* resp: arguments in all */
};

static struct input make_lines(size_t total, size_t size)
{
    struct input in = { malloc(total), 0, total / size, 0 };
    if (in.data == NULL)
        die("out of memory");
    in.len = in.messages * size;
    for (size_t i = 0; i < in.len; i++)
        in.data[i] = (i % size == size - 2) ? '\r' : (i % size == size - 1) ? '\n' : (uint8_t)('a' + i % 26);
    return in;
}

static struct input make_lengths(size_t total, size_t size)
{
    struct input in = { malloc(total), 0, total / size, 0 };
    if (in.data == NULL)
        die("out of memory");
    in.len = in.messages * size;
    for (size_t at = 0; at < in.len; at += size) {
        uint32_t n = (uint32_t)(size - 4);
        in.data[at] = (uint8_t)(n >> 24);
        in.data[at + 1] = (uint8_t)(n >> 16);
        in.data[at + 2] = (uint8_t)(n >> 8);
        in.data[at + 3] = (uint8_t)n;
        memset(in.data + at + 4, 'x', size - 4);
    }
    return in;
}

/* What redis-benchmark -t set,get pipelines: SET key:<12 digits> xxx, GET key:<12 digits>. */
static struct input make_resp(size_t total)
{
    struct input in = { malloc(total + 64), 0, 0, 0 };
    if (in.data == NULL)
        die("out of memory");
    for (unsigned long k = 0;; k++) {
        char cmd[96];
        int n = k % 2 == 0
                    ? snprintf(cmd, sizeof cmd, "*3\r\n$3\r\nSET\r\n$16\r\nkey:%012lu\r\n$3\r\nxxx\r\n", k % 100000)
                    : snprintf(cmd, sizeof cmd, "*2\r\n$3\r\nGET\r\n$16\r\nkey:%012lu\r\n", k % 100000);
        if (in.len + (size_t)n > total)
            break;
        memcpy(in.data + in.len, cmd, (size_t)n);
        in.len += (size_t)n;
        in.messages++;
        in.args += k % 2 == 0 ? 3 : 2;
    }
    return in;
}

/* ---- the cases: one feed_* function each -------------------------------- */

static size_t read_size = 256 * 1024;

NOINLINE static size_t feed_framer(const pg_framing *framing, const struct input *in)
{
    struct counts c = { 0, 0 };
    pg_framer f;
    pg_framer_init(&f, framing, &ops, &c);
    for (size_t at = 0; at < in->len; at += read_size)
        pg_framer_feed(&f, in->data + at, in->len - at < read_size ? in->len - at : read_size);
    pg_framer_cleanup(&f);
    return c.messages;
}

/* A line ends at a '\n'; one memchr per line, over each read, as a framer must (a line may straddle reads). */
NOINLINE static size_t feed_memchr(const struct input *in)
{
    size_t messages = 0;
    for (size_t at = 0; at < in->len; at += read_size) {
        const uint8_t *p = in->data + at, *end = p + (in->len - at < read_size ? in->len - at : read_size);
        while (p < end) {
            const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
            if (nl == NULL)
                break;
            messages++;
            p = nl + 1;
        }
    }
    return messages;
}

/* Each 4-byte big-endian header, then its payload skipped (the input is one buffer: no straddling). */
NOINLINE static size_t feed_lenwalk(const struct input *in)
{
    size_t messages = 0;
    const uint8_t *p = in->data, *end = p + in->len;
    while ((size_t)(end - p) >= 4) {
        size_t n = (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
        if ((size_t)(end - p) - 4 < n)
            break;
        p += 4 + n;
        messages++;
    }
    return messages;
}

NOINLINE static size_t feed_resp(pg_manual_stream *ms, const struct input *in)
{
    for (size_t at = 0; at < in->len; at += read_size) {
        size_t n = in->len - at < read_size ? in->len - at : read_size;
        if (pg_manual_stream_feed(ms, in->data + at, n) != n)
            die("resp: the protocol stopped reading");
    }
    return 0;
}

static size_t run_resp(const struct input *in)
{
    struct framing_resp_counts c = { 0, 0, 0, 0 };
    pg_manual_host *mh;
    pg_manual_stream *ms;
    if (pg_manual_host_new(&mh) < 0 ||
        pg_manual_stream_new(pg_manual_host_host(mh), PG_STREAM_CAN_WRITE_EOF, framing_resp_factory, &c, &ms) < 0)
        die("resp: no manual host");
    pg_manual_host_run(mh); /* connection_made */
    feed_resp(ms, in);
    pg_manual_stream_fail(ms, 0);
    pg_manual_host_run(mh); /* connection_lost */
    if (!pg_manual_stream_closed(ms))
        die("resp: the stream did not close");
    pg_manual_stream_free(ms);
    pg_manual_host_free(mh);
    if (c.errors != 0 || c.args != in->args)
        die("resp: the framer's arguments differ from the input's");
    return c.messages;
}

/* hiredis' reader takes RESP replies; a command (an array of bulk strings) is one. */
NOINLINE static size_t feed_hiredis(redisReader *r, const struct input *in, size_t *args)
{
    size_t messages = 0;
    for (size_t at = 0; at < in->len; at += read_size) {
        size_t n = in->len - at < read_size ? in->len - at : read_size;
        if (redisReaderFeed(r, (const char *)in->data + at, n) != REDIS_OK)
            die("hiredis: feed failed");
        for (;;) {
            void *reply = NULL;
            if (redisReaderGetReply(r, &reply) != REDIS_OK)
                die("hiredis: protocol error");
            if (reply == NULL)
                break;
            messages++;
            if (r->fn != NULL) {
                *args += ((redisReply *)reply)->elements;
                freeReplyObject(reply);
            }
        }
    }
    return messages;
}

static size_t run_hiredis(const struct input *in, bool objects)
{
    redisReader *r = objects ? redisReaderCreate() : redisReaderCreateWithFunctions(NULL);
    if (r == NULL)
        die("hiredis: no reader");
    size_t args = 0;
    size_t messages = feed_hiredis(r, in, &args);
    redisReaderFree(r);
    if (objects && args != in->args)
        die("hiredis: the reader's arguments differ from the input's");
    return messages;
}

/* ---- main --------------------------------------------------------------- */

static size_t run_once(const char *kind, const struct input *in)
{
    if (strcmp(kind, "line") == 0)
        return feed_framer(&line_framing, in);
    if (strcmp(kind, "length") == 0)
        return feed_framer(&length_framing, in);
    if (strcmp(kind, "memchr") == 0)
        return feed_memchr(in);
    if (strcmp(kind, "lenwalk") == 0)
        return feed_lenwalk(in);
    if (strcmp(kind, "resp") == 0)
        return run_resp(in);
    if (strcmp(kind, "hiredis") == 0)
        return run_hiredis(in, false);
    return run_hiredis(in, true);
}

static void run_case(const char *name, size_t total, int passes)
{
    char kind[32];
    size_t size = 0;
    const char *colon = strchr(name, ':');
    size_t klen = colon ? (size_t)(colon - name) : strlen(name);
    if (klen >= sizeof kind)
        die("unknown case");
    memcpy(kind, name, klen);
    kind[klen] = '\0';
    if (colon)
        size = strtoul(colon + 1, NULL, 10);
    struct input in;
    if (strcmp(kind, "line") == 0 || strcmp(kind, "memchr") == 0) {
        if (size < 2 || size - 2 > line_framing.max)
            die("line:BYTES takes 2..8194");
        in = make_lines(total, size);
    } else if (strcmp(kind, "length") == 0 || strcmp(kind, "lenwalk") == 0) {
        if (size < 4 || size - 4 > length_framing.max)
            die("length:BYTES takes 4..1 MiB + 4");
        in = make_lengths(total, size);
    } else if (strcmp(kind, "resp") == 0 || strcmp(kind, "hiredis") == 0 || strcmp(kind, "hiredis-objects") == 0) {
        in = make_resp(total);
    } else {
        fprintf(stderr, "framing_bench: unknown case %s\n", name);
        exit(2);
    }
    double best = 1e9;
    for (int pass = 0; pass < passes; pass++) {
        double t0 = now_s();
        size_t got = run_once(kind, &in);
        double t = now_s() - t0;
        if (got != in.messages) {
            fprintf(stderr, "framing_bench: %s: %zu messages, expected %zu\n", name, got, in.messages);
            exit(1);
        }
        if (t < best)
            best = t;
    }
    printf("case=%s bytes=%zu messages=%zu seconds=%.6f gbps=%.3f mmsgs=%.2f\n", name, in.len, in.messages, best,
           (double)in.len / best / 1e9, (double)in.messages / best / 1e6);
    fflush(stdout);
    free(in.data);
}

int main(int argc, char **argv)
{
    size_t mib = 8;
    int passes = 5;
    const char *cases[32];
    int ncases = 0;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && strcmp(argv[i], "--mib") == 0)
            mib = strtoul(argv[++i], NULL, 10);
        else if (i + 1 < argc && strcmp(argv[i], "--read") == 0)
            read_size = strtoul(argv[++i], NULL, 10);
        else if (i + 1 < argc && strcmp(argv[i], "--passes") == 0)
            passes = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--case") == 0 && ncases < 32)
            cases[ncases++] = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--case NAME]... [--mib N] [--read BYTES] [--passes N]\n", argv[0]);
            return 2;
        }
    }
    if (mib == 0 || read_size == 0 || passes <= 0)
        die("--mib, --read and --passes must be positive");
    if (ncases == 0) {
        static const char *all[] = { "memchr:16", "line:16", "memchr:1024", "line:1024", "lenwalk:64",
                                     "length:64", "hiredis", "hiredis-objects", "resp" };
        for (; ncases < (int)(sizeof all / sizeof all[0]); ncases++)
            cases[ncases] = all[ncases];
    }
    for (int i = 0; i < ncases; i++)
        run_case(cases[i], mib << 20, passes);
    return 0;
}
