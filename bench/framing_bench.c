/* framing_bench: line framing throughput from memory (no socket, no loop).
 *
 *   framing_bench [--mib N] [--line BYTES]... [--read BYTES]
 *
 * Feeds N MiB (default 256) of "\r\n"-delimited lines to a pg_framer in
 * reads of --read bytes (default 256 KiB, the built-in loop's read size),
 * with a message callback that only counts, and prints one Markdown row per
 * line length: GB/s of input and millions of messages per second, the best
 * of 5 passes. Messages lying whole in a read are delivered from it; only
 * the one straddling each read boundary is copied. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "protogen/framing.h"

static const uint8_t crlf[] = "\r\n";
static const pg_framing line = { .kind = PG_FRAMING_LINE, .max = 8192, .delimiter = crlf, .delimiter_len = 2 };

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

static void run(size_t total, size_t line_len, size_t read_size)
{
    uint8_t *in = malloc(total);
    if (in == NULL) {
        perror("malloc");
        exit(1);
    }
    for (size_t i = 0; i < total; i++)
        in[i] = (i % line_len == line_len - 2) ? '\r' : (i % line_len == line_len - 1) ? '\n' : 'a' + i % 26;
    size_t expected = total / line_len;
    double best = 1e9;
    for (int pass = 0; pass < 5; pass++) {
        struct counts c = { 0, 0 };
        pg_framer f;
        pg_framer_init(&f, &line, &ops, &c);
        double t0 = now_s();
        for (size_t at = 0; at < total; at += read_size)
            pg_framer_feed(&f, in + at, total - at < read_size ? total - at : read_size);
        double t = now_s() - t0;
        pg_framer_cleanup(&f);
        if (c.messages != expected) {
            fprintf(stderr, "framing_bench: %zu messages, expected %zu\n", c.messages, expected);
            exit(1);
        }
        if (t < best)
            best = t;
    }
    printf("| %zu | %.2f | %.1f |\n", line_len, (double)total / best / 1e9, (double)expected / best / 1e6);
    free(in);
}

int main(int argc, char **argv)
{
    size_t mib = 256, read_size = 256 * 1024;
    size_t lines[16], nlines = 0;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && strcmp(argv[i], "--mib") == 0)
            mib = strtoul(argv[++i], NULL, 10);
        else if (i + 1 < argc && strcmp(argv[i], "--read") == 0)
            read_size = strtoul(argv[++i], NULL, 10);
        else if (i + 1 < argc && strcmp(argv[i], "--line") == 0 && nlines < 16)
            lines[nlines++] = strtoul(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: %s [--mib N] [--line BYTES]... [--read BYTES]\n", argv[0]);
            return 2;
        }
    }
    if (nlines == 0) {
        const size_t defaults[] = { 16, 64, 256, 1024, 4096 };
        for (nlines = 0; nlines < 5; nlines++)
            lines[nlines] = defaults[nlines];
    }
    if (mib == 0 || read_size == 0) {
        fprintf(stderr, "framing_bench: --mib and --read must be positive\n");
        return 2;
    }
    printf("line framing from memory, %zu MiB in reads of %zu bytes (best of 5)\n\n", mib, read_size);
    printf("| line bytes (with \\r\\n) | GB/s | M messages/s |\n|---|---|---|\n");
    for (size_t i = 0; i < nlines; i++) {
        if (lines[i] < 2 || lines[i] - 2 > line.max) {
            fprintf(stderr, "framing_bench: --line takes 2..%zu\n", line.max + 2);
            return 2;
        }
        run(mib << 20, lines[i], read_size);
    }
    return 0;
}
