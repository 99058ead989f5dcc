/* Timers through the host table (protogen/timer.h, pg_host_timer_start), on
 * the manual host with a clock of the test's own: asyncio's order (by
 * deadline, then start order; behind the calls deferred before), the next
 * deadline, cancelling from inside callbacks, and gen_statem's rule: a timer
 * cancelled after it fell due but before its callback ran is never
 * delivered. */
#include <limits.h>
#include <stdlib.h>

#include "protogen/manual.h"
#include "testutil.h"

typedef struct tfix {
    pg_manual_host *mh;
    pg_host *host;
    uint64_t now;
    char log[64]; /* one letter per callback, in order */
    size_t n;
    pg_timer t[4];
} tfix;

static tfix *fix; /* the callbacks' view of the running test */

static uint64_t fake_now(void *arg)
{
    return *(uint64_t *)arg;
}

static void tfix_start(tfix *f)
{
    memset(f, 0, sizeof *f);
    fix = f;
    assert_int_equal(pg_manual_host_new(&f->mh), 0);
    f->host = pg_manual_host_host(f->mh);
    f->now = 1000;
    pg_manual_host_set_clock(f->mh, fake_now, &f->now);
    for (int i = 0; i < 4; i++)
        pg_timer_init(&f->t[i]);
}

static void tfix_done(tfix *f)
{
    pg_manual_host_free(f->mh);
    fix = NULL;
}

/* arg is the letter to log. */
static void note(void *arg)
{
    assert_true(fix->n + 1 < sizeof fix->log);
    fix->log[fix->n++] = (char)(uintptr_t)arg;
}

#define L(c) ((void *)(uintptr_t)(c))

static void start(tfix *f, int i, uint64_t delay, pg_callback_fn cb, char letter)
{
    assert_int_equal(pg_host_timer_start(f->host, &f->t[i], delay, cb, L(letter)), 0);
    assert_true(pg_timer_is_active(&f->t[i]));
}

static void test_order(void **state)
{
    (void)state;
    tfix f;
    tfix_start(&f);
    assert_int_equal(pg_manual_host_timeout(f.mh), -1);
    start(&f, 0, 20, note, 'c');
    start(&f, 1, 10, note, 'a');
    start(&f, 2, 20, note, 'd'); /* same deadline as c, started after it */
    start(&f, 3, 10, note, 'b');
    uint64_t due;
    assert_true(pg_manual_host_next_deadline(f.mh, &due));
    assert_int_equal(due, 1010);
    assert_int_equal(pg_manual_host_timeout(f.mh), 10);

    f.now = 1009; /* not yet */
    assert_int_equal(pg_manual_host_run(f.mh), 0);
    assert_int_equal(f.n, 0);
    assert_int_equal(pg_manual_host_timeout(f.mh), 1);

    /* A call deferred before the timers fell due runs first (asyncio's ready
     * queue, then the due timers behind it). */
    assert_int_equal(pg_host_timer_start(f.host, &f.t[0], 20, note, L('c')), 0); /* restarted: now last */
    assert_int_equal(pg_manual_host_timeout(f.mh), 1);
    f.now = 1030;
    assert_int_equal(pg_manual_host_timeout(f.mh), 0);
    assert_int_equal(pg_manual_host_run(f.mh), 1); /* one deferred call runs every due timer */
    assert_string_equal(f.log, "abdc");
    for (int i = 0; i < 4; i++)
        assert_false(pg_timer_is_active(&f.t[i]));
    assert_false(pg_manual_host_next_deadline(f.mh, &due));
    assert_int_equal(pg_manual_host_timeout(f.mh), -1);
    tfix_done(&f);
}

/* A timer started from a callback, even with no delay, and a call deferred
 * from one, wait for the next run. */
static void start_more(void *arg)
{
    note(arg);
    assert_int_equal(pg_host_timer_start(fix->host, &fix->t[2], 0, note, L('z')), 0);
}

static void test_started_from_a_callback_waits(void **state)
{
    (void)state;
    tfix f;
    tfix_start(&f);
    start(&f, 0, 5, start_more, 'a');
    start(&f, 1, 5, note, 'b');
    f.now = 1005;
    assert_int_equal(pg_manual_host_run(f.mh), 1);
    assert_string_equal(f.log, "ab");
    assert_true(pg_timer_is_active(&f.t[2]));
    assert_int_equal(pg_manual_host_timeout(f.mh), 0);
    assert_int_equal(pg_manual_host_run(f.mh), 1);
    assert_string_equal(f.log, "abz");
    tfix_done(&f);
}

/* Both due in the same run: the first cancels the second, which is then
 * never delivered; cancelling oneself or an inactive timer is a no-op. */
static void cancel_next(void *arg)
{
    note(arg);
    pg_timer_cancel(&fix->t[0]); /* itself: already inactive */
    pg_timer_cancel(&fix->t[1]);
    pg_timer_cancel(&fix->t[3]); /* never started */
    assert_false(pg_timer_is_active(&fix->t[1]));
}

static void test_cancel_inside_a_callback(void **state)
{
    (void)state;
    tfix f;
    tfix_start(&f);
    start(&f, 0, 5, cancel_next, 'a');
    start(&f, 1, 5, note, 'b');
    start(&f, 2, 6, note, 'c');
    f.now = 1010;
    assert_int_equal(pg_manual_host_run(f.mh), 1);
    assert_string_equal(f.log, "ac");
    assert_int_equal(pg_manual_host_run(f.mh), 0);
    assert_string_equal(f.log, "ac");
    tfix_done(&f);
}

/* Restarted after it fell due (from a callback of the same run): the stale
 * firing is dropped, the new deadline holds. */
static void restart_next(void *arg)
{
    note(arg);
    assert_int_equal(pg_host_timer_start(fix->host, &fix->t[1], 10, note, L('B')), 0);
}

static void test_restart_after_due(void **state)
{
    (void)state;
    tfix f;
    tfix_start(&f);
    start(&f, 0, 5, restart_next, 'a');
    start(&f, 1, 5, note, 'b');
    f.now = 1005;
    assert_int_equal(pg_manual_host_run(f.mh), 1);
    assert_string_equal(f.log, "a");
    assert_true(pg_timer_is_active(&f.t[1]));
    assert_int_equal(pg_manual_host_timeout(f.mh), 10);
    f.now = 1015;
    assert_int_equal(pg_manual_host_run(f.mh), 1);
    assert_string_equal(f.log, "aB");
    tfix_done(&f);
}

/* Cancelled after it fell due but before its callback ran: plainly, and by
 * the timer ahead of it in the same run, which also frees its record. */
static pg_timer *doomed;

static void cancel_and_free(void *arg)
{
    note(arg);
    pg_timer_cancel(doomed);
    free(doomed);
}

static void test_cancel_after_due_before_run(void **state)
{
    (void)state;
    tfix f;
    tfix_start(&f);
    /* Plainly: due, cancelled, then run. */
    start(&f, 0, 5, note, 'x');
    f.now = 1005;
    pg_timer_cancel(&f.t[0]);
    assert_int_equal(pg_manual_host_run(f.mh), 0);
    assert_string_equal(f.log, "");

    /* Moved to the due list by one run, cancelled before that list ran: the
     * second timer's record is gone when the list runs. */
    doomed = malloc(sizeof *doomed);
    assert_non_null(doomed);
    pg_timer_init(doomed);
    start(&f, 0, 0, cancel_and_free, 'a');
    assert_int_equal(pg_host_timer_start(f.host, doomed, 0, note, L('y')), 0);
    assert_int_equal(pg_manual_host_run(f.mh), 1);
    assert_string_equal(f.log, "a");
    assert_int_equal(pg_manual_host_timeout(f.mh), -1);
    tfix_done(&f);
}

/* Rescheduling an active timer moves it; a timer may restart itself. */
static int ticks;

static void tick(void *arg)
{
    note(arg);
    if (++ticks < 3)
        assert_int_equal(pg_host_timer_start(fix->host, &fix->t[0], 10, tick, arg), 0);
}

static void test_reschedule_and_periodic(void **state)
{
    (void)state;
    tfix f;
    tfix_start(&f);
    ticks = 0;
    start(&f, 0, 5, tick, 't');
    start(&f, 0, 50, tick, 't'); /* rescheduled: 5 no longer holds */
    f.now = 1010;
    assert_int_equal(pg_manual_host_run(f.mh), 0);
    assert_int_equal(pg_manual_host_timeout(f.mh), 40);
    for (uint64_t at = 1050; at <= 1070; at += 10) {
        f.now = at;
        assert_int_equal(pg_manual_host_run(f.mh), 1);
    }
    assert_string_equal(f.log, "ttt");
    assert_false(pg_timer_is_active(&f.t[0]));
    tfix_done(&f);
}

/* Freeing the host leaves its timers inactive: cancelling them later is safe. */
static void test_free_with_active_timers(void **state)
{
    (void)state;
    tfix f;
    tfix_start(&f);
    start(&f, 0, 5, note, 'a');
    start(&f, 1, 0, note, 'b');
    f.now = 1000;
    tfix_done(&f);
    assert_false(pg_timer_is_active(&f.t[0]));
    pg_timer_cancel(&f.t[0]);
    pg_timer_cancel(&f.t[1]);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    tfix f;
    tfix_start(&f);
    assert_int_equal(pg_host_timer_start(NULL, &f.t[0], 1, note, NULL), -EINVAL);
    assert_int_equal(pg_host_timer_start(f.host, NULL, 1, note, NULL), -EINVAL);
    assert_int_equal(pg_host_timer_start(f.host, &f.t[0], 1, NULL, NULL), -EINVAL);
    /* A far deadline does not wrap around. */
    start(&f, 0, UINT64_MAX, note, 'a');
    uint64_t due;
    assert_true(pg_manual_host_next_deadline(f.mh, &due));
    assert_int_equal(due, UINT64_MAX);
    assert_int_equal(pg_manual_host_timeout(f.mh), INT_MAX);
    pg_timer_cancel(&f.t[0]);
    tfix_done(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order),
        cmocka_unit_test(test_started_from_a_callback_waits),
        cmocka_unit_test(test_cancel_inside_a_callback),
        cmocka_unit_test(test_restart_after_due),
        cmocka_unit_test(test_cancel_after_due_before_run),
        cmocka_unit_test(test_reschedule_and_periodic),
        cmocka_unit_test(test_free_with_active_timers),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
