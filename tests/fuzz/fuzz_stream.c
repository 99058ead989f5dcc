/* The libFuzzer entry point: one protocol of tests/split's table
 * (split_protocols.h), named by FUZZ_PROTOCOL at compile time, run with its
 * handlers unchanged on the manual host (protogen/manual.h), no kernel. The
 * input is a script for the peer (README.md has its layout): a config byte,
 * a few op bytes that cut the data into reads and interleave the peer's
 * reading of the output, capacity and watermark changes and the passing of
 * time, then the data. Any crash, leak, sanitizer report or runtime assert
 * is a finding; so is a run whose deferred calls never settle, and, in the
 * differential mode, an output or an end that differs from the same data
 * fed whole. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protogen/manual.h"
#include "split_protocols.h"

#ifndef FUZZ_PROTOCOL
#error "FUZZ_PROTOCOL: the name of a protocol in split_protocols.h"
#endif

static const split_protocol *proto;

/* The capacities the output may have (a socket's send buffer): from room for
 * everything down to a byte at a time. */
static const size_t capacities[8] = { 256 * 1024, 65536, 4096, 512, 64, 16, 4, 1 };

/* config byte */
#define CFG_END(c) ((c) & 3u)                 /* what ends the input: */
enum { END_NONE, END_EOF, END_RESET, END_EOF_RESET };
#define CFG_CAPACITY(c) (((c) >> 2) & 7u)     /* index into capacities */
#define CFG_LIMITS 0x20u                      /* small watermarks (64, 16) once connected */
#define CFG_DIFFERENTIAL 0x40u                /* compare with the data fed whole */

/* op byte: kind in the top 3 bits, v in the low 5 */
enum {
    OP_FEED_SMALL,   /* feed v+1 bytes */
    OP_FEED_LARGE,   /* feed (v+1)*32 bytes */
    OP_FEED_REST,    /* feed all that is left */
    OP_READ,         /* the peer reads the output: all of it (v 0) or up to v*16 bytes */
    OP_EAGER,        /* the peer reads everything after each feed (v odd) or only when stuck */
    OP_CAPACITY,     /* the output's capacity becomes capacities[v & 7] */
    OP_TIME,         /* the clock moves (v+1)^2 * 8 ms: 8 ms to 8 s */
    OP_LIMITS,       /* the write buffer's watermarks become (v*8, v*2); v 0: the defaults */
};
#define MAX_OPS 15

/* ---- the clock: time passes only when the input says so -------------------- */

static uint64_t now_ms;

static uint64_t fuzz_clock(void *arg)
{
    (void)arg;
    return now_ms;
}

/* ---- one run --------------------------------------------------------------- */

typedef struct result {
    uint8_t *output;
    size_t len, cap;
    bool closed, write_shut, stalled;
} result;

typedef struct run {
    pg_manual_host *mh;
    pg_manual_stream *ms;
    result *res;
} run;

static void fatal(const char *what)
{
    fprintf(stderr, "fuzz_%s: %s\n", FUZZ_PROTOCOL, what);
    abort();
}

static void result_add(result *r, const uint8_t *data, size_t len)
{
    if (r->len + len > r->cap) {
        size_t cap = r->cap ? r->cap : 1024;
        while (cap < r->len + len)
            cap *= 2;
        uint8_t *p = realloc(r->output, cap);
        if (p == NULL)
            fatal("out of memory");
        r->output = p;
        r->cap = cap;
    }
    memcpy(r->output + r->len, data, len);
    r->len += len;
}

/* The deferred calls until none wait: a protocol that keeps queueing them
 * for ever is a finding. */
static void settle(run *r)
{
    for (int i = 0; pg_manual_host_pending(r->mh); i++) {
        if (i == 100000)
            fatal("the deferred calls never settle");
        pg_manual_host_run(r->mh);
    }
}

static bool closing(const run *r)
{
    pg_transport *t = pg_manual_stream_transport(r->ms);
    return t == NULL || pg_transport_is_closing(t);
}

/* The peer reads up to max bytes of the output; false when it held none. */
static bool peer_read(run *r, size_t max)
{
    size_t len;
    const uint8_t *out = pg_manual_stream_output(r->ms, &len);
    if (len == 0)
        return false;
    if (len > max)
        len = max;
    result_add(r->res, out, len);
    pg_manual_stream_consume(r->ms, len);
    settle(r);
    return true;
}

static void peer_read_all(run *r)
{
    while (peer_read(r, SIZE_MAX))
        ;
}

/* Feeds data[*off .. *off+n) (or less, if the input ends). The peer reads
 * the output while the protocol does not read; false when both are stuck. */
static bool feed(run *r, const uint8_t *data, size_t len, size_t *off, size_t n, bool eager)
{
    if (n > len - *off)
        n = len - *off;
    while (n > 0 && !closing(r)) {
        if (!pg_manual_stream_wants_read(r->ms)) {
            if (!peer_read(r, SIZE_MAX))
                return false;
            continue;
        }
        size_t taken = pg_manual_stream_feed(r->ms, data + *off, n);
        if (taken > n)
            fatal("the stream took more bytes than it was given");
        *off += taken;
        n -= taken;
        settle(r);
        if (eager)
            peer_read_all(r);
    }
    return true;
}

static void set_limits(run *r, size_t high, size_t low)
{
    if (!closing(r) && pg_transport_set_write_buffer_limits(pg_manual_stream_transport(r->ms), high, low) != 0)
        fatal("set_write_buffer_limits refused valid limits");
    settle(r);
}

/* Runs the protocol on one script. With differential set, only what the
 * split harness's peer does (feeds cut by the ops, reading only when the
 * protocol does not): no time, no capacity or watermark change. */
static void run_script(uint8_t config, const uint8_t *ops, size_t n_ops, const uint8_t *data, size_t len,
                       bool differential, result *res)
{
    *res = (result){ 0 };
    run r = { .res = res };
    now_ms = 1000000;
    void *context = proto->context_new != NULL ? proto->context_new(NULL) : NULL;
    if (pg_manual_host_new(&r.mh) != 0)
        fatal("pg_manual_host_new");
    pg_manual_host_set_clock(r.mh, fuzz_clock, NULL);
    if (pg_manual_stream_new(pg_manual_host_host(r.mh), proto->flags, proto->factory, context, &r.ms) != 0)
        fatal("pg_manual_stream_new");
    pg_manual_stream_set_capacity(r.ms, capacities[CFG_CAPACITY(config)]);
    settle(&r);
    if (config & CFG_LIMITS)
        set_limits(&r, 64, 16);

    size_t off = 0;
    bool eager = false;
    if (n_ops == 0)
        res->stalled = !feed(&r, data, len, &off, len, false);
    /* The ops over and over until the data is fed, the peer and the protocol
     * are stuck, or a round of them feeds nothing. */
    while (n_ops > 0 && off < len && !res->stalled && !closing(&r)) {
        size_t before = off;
        for (size_t i = 0; i < n_ops && !res->stalled && !closing(&r); i++) {
            unsigned kind = ops[i] >> 5, v = ops[i] & 31u;
            switch (kind) {
            case OP_FEED_SMALL: res->stalled = !feed(&r, data, len, &off, v + 1, eager); break;
            case OP_FEED_LARGE: res->stalled = !feed(&r, data, len, &off, (v + 1) * 32, eager); break;
            case OP_FEED_REST: res->stalled = !feed(&r, data, len, &off, len - off, eager); break;
            default:
                if (differential)
                    break;
                if (kind == OP_READ)
                    (void)peer_read(&r, v == 0 ? SIZE_MAX : v * 16);
                else if (kind == OP_EAGER)
                    eager = v & 1;
                else if (kind == OP_CAPACITY)
                    pg_manual_stream_set_capacity(r.ms, capacities[v & 7]), settle(&r);
                else if (kind == OP_TIME)
                    now_ms += (uint64_t)(v + 1) * (v + 1) * 8, pg_manual_host_run(r.mh), settle(&r);
                else if (v == 0)
                    set_limits(&r, PG_LIMIT_DEFAULT, PG_LIMIT_DEFAULT); /* 64 KiB, 16 KiB */
                else
                    set_limits(&r, v * 8, v * 2);
            }
        }
        if (off == before)
            break; /* no feed among the ops */
    }
    if (off < len && !res->stalled)
        res->stalled = !feed(&r, data, len, &off, len - off, eager);

    unsigned end = CFG_END(config);
    if ((end == END_EOF || end == END_EOF_RESET) && !res->stalled) {
        /* Everything read first, as the split harness's peer does. */
        while (!closing(&r) && peer_read(&r, SIZE_MAX))
            ;
        if (!closing(&r) && pg_manual_stream_wants_read(r.ms)) {
            pg_manual_stream_feed_eof(r.ms);
            settle(&r);
        } else if (!closing(&r)) {
            res->stalled = true;
        }
    }
    peer_read_all(&r);
    if (end == END_RESET || end == END_EOF_RESET) {
        if (!pg_manual_stream_closed(r.ms))
            pg_manual_stream_fail(r.ms, -ECONNRESET);
        settle(&r);
        peer_read_all(&r);
    }
    res->closed = pg_manual_stream_closed(r.ms);
    res->write_shut = pg_manual_stream_output_shut(r.ms);
    if (res->closed && pg_manual_stream_transport(r.ms) != NULL)
        fatal("a closed stream still has its transport");
    pg_manual_stream_free(r.ms); /* still open: aborted, connection_lost at the next run */
    settle(&r);
    if (proto->report != NULL) {
        split_text report = { 0 };
        proto->report(context, &report);
        split_text_free(&report);
    }
    if (proto->context_free != NULL)
        proto->context_free(context);
    pg_manual_host_free(r.mh);
}

static void print_end(const char *what, const result *r)
{
    fprintf(stderr, "%s: %zu bytes out, %s%s%s\n", what, r->len, r->closed ? "closed" : "open",
            r->write_shut ? " write-shut" : "", r->stalled ? " stalled" : "");
}

/* ---- libFuzzer ---------------------------------------------------------------- */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    for (size_t i = 0; i < split_core_n_protocols; i++)
        if (strcmp(split_core_protocols[i].name, FUZZ_PROTOCOL) == 0)
            proto = &split_core_protocols[i];
    if (proto == NULL)
        fatal("no such protocol in split_protocols.c");
    /* The trace's lines are formatted (and thrown away) too: its code is fuzzed with the rest. */
    if (setenv("PROTOGEN_TRACE", "/dev/null", 0) != 0)
        fatal("setenv");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return -1; /* not a script: not kept in the corpus */
    uint8_t config = data[0];
    size_t n_ops = data[1] & MAX_OPS;
    if (size < 2 + n_ops)
        return -1;
    const uint8_t *ops = data + 2, *payload = data + 2 + n_ops;
    size_t len = size - 2 - n_ops;
    bool differential = (config & CFG_DIFFERENTIAL) != 0;

    result cut;
    run_script(config, ops, n_ops, payload, len, differential, &cut);
    if (differential) {
        /* The same data whole, with room for all the output: the split
         * harness's reference run. Only a stall's effect may differ (none
         * here: the peer reads while the protocol does not). */
        result whole;
        run_script((uint8_t)(config & ~(7u << 2)), NULL, 0, payload, len, true, &whole);
        if (whole.len != cut.len || (cut.len > 0 && memcmp(whole.output, cut.output, cut.len) != 0) ||
            whole.closed != cut.closed || whole.write_shut != cut.write_shut || whole.stalled != cut.stalled) {
            print_end("fed whole", &whole);
            print_end("cut by the ops", &cut);
            size_t i = 0;
            while (i < whole.len && i < cut.len && whole.output[i] == cut.output[i])
                i++;
            fprintf(stderr, "the outputs differ from byte %zu\n", i);
            fatal("a cut of the input changed the result");
        }
        free(whole.output);
    }
    free(cut.output);
    return 0;
}
