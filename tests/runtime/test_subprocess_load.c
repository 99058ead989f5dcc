/* The subprocess transport under load: 100 MiB through a child's stdin and
 * back from its stdout with bounded memory, and 1000 children that leave no
 * zombie and no fd behind (counted from /proc). Each prints what it measured,
 * for the record; speed itself is the benchmarks' business. */
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "subprocess_internal.h"
#include "subprocess_recorder.h"

#define ARGV(...) ((const char *const[]){ __VA_ARGS__, NULL })

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long max_rss_kib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* ---- 100 MiB through cat --------------------------------------------------- */

#define TOTAL ((size_t)100 * 1024 * 1024)
#define CHUNK ((size_t)64 * 1024)
#define PATTERN_LEN 65521u /* prime: chunk and pipe boundaries never line up with it */

typedef struct pump {
    uint8_t pattern[PATTERN_LEN];
    size_t sent, checked;
    size_t max_buffered;
    bool mismatch;
} pump;

static void pump_write(subrec *r)
{
    pump *p = r->user;
    pg_transport *in = pg_subprocess_get_pipe_transport(r->proc, 0);
    while (!r->paused && p->sent < TOTAL) {
        size_t at = p->sent % PATTERN_LEN;
        size_t n = PATTERN_LEN - at < CHUNK ? PATTERN_LEN - at : CHUNK;
        if (n > TOTAL - p->sent)
            n = TOTAL - p->sent;
        assert_int_equal(pg_transport_write(in, p->pattern + at, n), 0);
        p->sent += n;
        size_t buffered = pg_transport_get_write_buffer_size(in);
        if (buffered > p->max_buffered)
            p->max_buffered = buffered;
    }
    if (p->sent == TOTAL)
        assert_int_equal(pg_transport_write_eof(in), 0);
}

static void pump_check(subrec *r, int fd, const uint8_t *data, size_t len)
{
    pump *p = r->user;
    assert_int_equal(fd, 1);
    while (len > 0) {
        size_t at = p->checked % PATTERN_LEN;
        size_t n = PATTERN_LEN - at < len ? PATTERN_LEN - at : len;
        if (memcmp(data, p->pattern + at, n) != 0)
            p->mismatch = true;
        data += n;
        len -= n;
        p->checked += n;
    }
}

static void test_100_mib_through_cat_with_bounded_memory(void **state)
{
    (void)state;
    pg_loop *loop;
    subrec r;
    pump *p = calloc(1, sizeof *p);
    assert_non_null(p);
    srand(7);
    for (size_t i = 0; i < PATTERN_LEN; i++)
        p->pattern[i] = (uint8_t)rand();
    assert_int_equal(pg_loop_new(&loop), 0);
    subrec_init(&r);
    r.discard_data = true;
    r.user = p;
    r.hooks.made = pump_write;
    r.hooks.resume = pump_write;
    r.hooks.data = pump_check;
    pg_subprocess_options opts = { .stdio = { PG_STDIO_PIPE, PG_STDIO_PIPE, PG_STDIO_DEVNULL } };

    long rss_before = max_rss_kib();
    double t0 = now_s();
    assert_int_equal(subrec_spawn(loop, &r, ARGV("cat"), &opts, NULL), 0);
    RUN_UNTIL_N(loop, r.lost == 1, 10L * 1000 * 1000);
    double elapsed = now_s() - t0;
    long rss_growth = max_rss_kib() - rss_before;

    assert_int_equal(r.returncode, 0);
    assert_int_equal(p->sent, TOTAL);
    assert_int_equal(r.out_total[1], TOTAL);
    assert_int_equal(p->checked, TOTAL);
    assert_false(p->mismatch);
    assert_true(r.pauses > 0);
    assert_int_equal(r.pauses, r.resumes);
    /* Flow control bounds the stdin buffer: at most the high watermark plus
     * the one write that went above it. */
    assert_true(p->max_buffered <= PG_DEFAULT_HIGH_WATER + CHUNK);
    printf("# 100 MiB through cat: %.2f s, %d pause_writing, stdin buffer peak %zu bytes, "
           "peak RSS growth %ld KiB%s\n",
           elapsed, r.pauses, p->max_buffered, rss_growth, UNDER_ASAN ? " (ASan: freed memory is quarantined)" : "");
    /* ASan holds freed blocks in quarantine, so RSS says nothing there. */
    if (!UNDER_ASAN)
        assert_true(rss_growth < 16 * 1024);
    subrec_free(&r);
    free(p);
    pg_loop_close(loop);
}

/* ---- 1000 children ------------------------------------------------------------ */

#define SPAWNS 1000
#define AT_ONCE 16

typedef struct spawner {
    pg_loop *loop;
    subrec recs[AT_ONCE];
    int started, finished, failures;
} spawner;

static void spawn_one(spawner *s, int slot);

static void child_done(subrec *r)
{
    spawner *s = r->user;
    s->finished++;
    if (r->returncode != 0 || strcmp(subrec_text(r, 1), "x\n") != 0)
        s->failures++;
    /* The recorder is reused for the next child once this callback returns. */
}

static void spawn_one(spawner *s, int slot)
{
    subrec *r = &s->recs[slot];
    subrec_free(r);
    subrec_init(r);
    r->user = s;
    r->hooks.lost = child_done;
    /* Alternate the stdio set-ups: three pipes, or /dev/null and one pipe. */
    pg_subprocess_options opts = { .stdio = { PG_STDIO_PIPE, PG_STDIO_PIPE, PG_STDIO_PIPE } };
    if (s->started % 2)
        opts.stdio[0] = opts.stdio[2] = PG_STDIO_DEVNULL;
    assert_int_equal(subrec_spawn(s->loop, r, ARGV("echo", "x"), &opts, NULL), 0);
    s->started++;
}

static void thousand_spawns(bool sigchld)
{
    pg__child_force_sigchld = sigchld;
    spawner *s = calloc(1, sizeof *s);
    assert_non_null(s);
    int fds_before = count_open_fds();
    double t0 = now_s();
    assert_int_equal(pg_loop_new(&s->loop), 0);
    for (int slot = 0; slot < AT_ONCE; slot++)
        spawn_one(s, slot);
    while (s->finished < SPAWNS) {
        assert_int_equal(pg_loop_run_once(s->loop, 1000), 0);
        for (int slot = 0; slot < AT_ONCE; slot++)
            if (s->recs[slot].lost && s->started < SPAWNS)
                spawn_one(s, slot);
    }
    pg_loop_close(s->loop);
    double elapsed = now_s() - t0;
    int fds_after = count_open_fds();
    int zombies = count_zombie_children();
    printf("# %d spawns (%s): %.2f s, open fds %d before and %d after, %d zombie children\n", SPAWNS,
           sigchld ? "SIGCHLD" : "pidfd", elapsed, fds_before, fds_after, zombies);
    assert_int_equal(s->failures, 0);
    assert_int_equal(fds_after, fds_before);
    assert_int_equal(zombies, 0);
    assert_true(no_children_left());
    for (int slot = 0; slot < AT_ONCE; slot++)
        subrec_free(&s->recs[slot]);
    free(s);
    pg__child_force_sigchld = false;
}

static void test_1000_spawns_pidfd(void **state)
{
    (void)state;
    thousand_spawns(false);
}

static void test_1000_spawns_sigchld(void **state)
{
    (void)state;
    thousand_spawns(true);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_100_mib_through_cat_with_bounded_memory),
        cmocka_unit_test(test_1000_spawns_pidfd),
        cmocka_unit_test(test_1000_spawns_sigchld),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
