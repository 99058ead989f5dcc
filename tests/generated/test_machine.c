/* A spec's states (mach.spec) on the manual host, with a clock the test
 * moves: transitions on messages, a handler's choice among targets, ignore,
 * defer (retried after the next state change), the default handler, a state's
 * own framing, an eventless transition; gen_statem's timeouts — a state
 * timeout cancelled by a state change, a named timer living across states, a
 * timer cancelled after it fell due never delivered, the idle timeout pushed
 * back by traffic, the close deadline aborting a peer that does not read —
 * and every timer gone with the connection; the trace lines. Built twice:
 * with NDEBUG, a handler's undeclared target is a protocol error (debug
 * builds assert instead). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "mach.h"
#include "mach_test.h"

void pg__trace_reset(void); /* the runtime's, for tests: re-reads PROTOGEN_TRACE */

typedef struct world {
    pg_manual_host *mh;
    pg_manual_stream *ms;
    uint64_t now;
    struct mach_log log;
} world;

static uint64_t clock_now(void *arg)
{
    return ((world *)arg)->now;
}

static void run(world *w)
{
    do
        pg_manual_host_run(w->mh);
    while (pg_manual_host_pending(w->mh));
}

static void start(world *w)
{
    memset(w, 0, sizeof *w);
    w->now = 1000;
    assert_int_equal(pg_manual_host_new(&w->mh), 0);
    pg_manual_host_set_clock(w->mh, clock_now, w);
    assert_int_equal(pg_manual_stream_new(pg_manual_host_host(w->mh), PG_STREAM_CAN_WRITE_EOF, mach_protocol_factory,
                                          &w->log, &w->ms), 0);
    run(w);
}

/* Feeds without running the host (the deferred calls and timers wait). */
static void feed_only(world *w, const char *text)
{
    size_t len = strlen(text), at = 0;
    while (at < len && pg_manual_stream_wants_read(w->ms))
        at += pg_manual_stream_feed(w->ms, text + at, len - at);
}

static void feed(world *w, const char *text)
{
    feed_only(w, text);
    run(w);
}

static void advance(world *w, uint64_t ms)
{
    w->now += ms;
    run(w);
}

static void finish(world *w)
{
    if (!pg_manual_stream_closed(w->ms)) {
        size_t len;
        (void)pg_manual_stream_output(w->ms, &len);
        pg_manual_stream_consume(w->ms, len);
        if (!pg_transport_is_closing(pg_manual_stream_transport(w->ms)))
            pg_manual_stream_feed_eof(w->ms);
        run(w);
        if (!pg_manual_stream_closed(w->ms)) {
            pg_transport_abort(pg_manual_stream_transport(w->ms));
            run(w);
        }
    }
    assert_true(pg_manual_stream_closed(w->ms));
    pg_manual_stream_free(w->ms);
    pg_manual_host_free(w->mh);
}

static void test_state_timeout_fires(void **state)
{
    (void)state;
    world w;
    start(&w);
    advance(&w, 99);
    assert_string_equal(w.log.text, "");
    advance(&w, 1);
    assert_string_equal(w.log.text, "waiting_timeout@waiting|lost@closed|"); /* closed is final: it closes */
    finish(&w);
}

static void test_state_change_cancels_the_state_timeout(void **state)
{
    (void)state;
    world w;
    start(&w);
    advance(&w, 50);
    feed(&w, "go\n");
    advance(&w, 500);
    assert_string_equal(w.log.text, "go@waiting|");
    finish(&w);
}

static void test_defer_is_retried_after_the_next_state_change(void **state)
{
    (void)state;
    world w;
    start(&w);
    feed(&w, "later\nstay\n");
    assert_string_equal(w.log.text, "stay@waiting|");
    feed(&w, "go\n");
    assert_string_equal(w.log.text, "stay@waiting|go@waiting|later@working|");
    finish(&w);
}

static void test_ignore_and_the_default_handler(void **state)
{
    (void)state;
    world w;
    start(&w);
    feed(&w, "body\ngo\nstay\n"); /* body: ignored in waiting; stay: working says nothing of it */
    assert_string_equal(w.log.text, "go@waiting|unexpected:stay:5@working|");
    finish(&w);
}

static void test_a_named_timer_lives_across_states(void **state)
{
    (void)state;
    world w;
    start(&w);
    feed(&w, "start\n");
    advance(&w, 49);
    assert_string_equal(w.log.text, "start@waiting|");
    advance(&w, 1);
    assert_string_equal(w.log.text, "start@waiting|tick@waiting|"); /* tick -> working */
    feed(&w, "start\n");
    advance(&w, 50);
    assert_string_equal(w.log.text, "start@waiting|tick@waiting|start@working|tick@working|");
    finish(&w);
}

static void test_a_timer_cancelled_after_it_fell_due_is_dropped(void **state)
{
    (void)state;
    world w;
    start(&w);
    w.log.cancel_tick = true;
    feed(&w, "start\n");
    w.now += 60;             /* tick is due: it would run at the next host run... */
    feed_only(&w, "stay\n"); /* ...but stay's handler cancels it first */
    run(&w);
    advance(&w, 10);
    assert_string_equal(w.log.text, "start@waiting|stay@waiting|");
    finish(&w);
}

static void test_idle_timeout_is_pushed_back_by_traffic(void **state)
{
    (void)state;
    world w;
    start(&w);
    feed(&w, "go\n");
    advance(&w, 600);
    feed(&w, "bad\n"); /* ignored in working, but bytes came */
    advance(&w, 400);  /* 1000 ms since go, 400 since bad */
    assert_string_equal(w.log.text, "go@waiting|");
    advance(&w, 599);
    assert_string_equal(w.log.text, "go@waiting|");
    advance(&w, 1);
    assert_string_equal(w.log.text, "go@waiting|idle@working|lost@closed|");
    finish(&w);
}

static void test_close_deadline_aborts_a_peer_that_does_not_read(void **state)
{
    (void)state;
    world w;
    start(&w);
    pg_manual_stream_set_capacity(w.ms, 0); /* the peer reads nothing */
    feed(&w, "go\nquit\n");
    assert_string_equal(w.log.text, "go@waiting|quit@working|");
    assert_true(pg_transport_is_closing(pg_manual_stream_transport(w.ms)));
    advance(&w, 499);
    assert_false(pg_manual_stream_closed(w.ms));
    advance(&w, 1);
    assert_string_equal(w.log.text, "go@waiting|quit@working|lost@closed|");
    assert_true(pg_manual_stream_closed(w.ms));
    finish(&w);
}

/* chunks has its own line framing; "end" leaves it for passing, whose
 * eventless transition goes on to working, where the spec's framing is back.
 * The same at every cut of the input. */
static void test_a_state_framing_and_an_eventless_transition(void **state)
{
    (void)state;
    static const char input[] = "go\nbody\nabc\nend\ngo\n";
    static const char expected[] = "go@waiting|body@working|chunk:abc@chunks|chunk:end@chunks|go@working|";
    for (size_t cut = 0; cut < sizeof input - 1; cut++) {
        world w;
        start(&w);
        char first[sizeof input];
        memcpy(first, input, cut);
        first[cut] = '\0';
        feed(&w, first);
        feed(&w, input + cut);
        assert_string_equal(w.log.text, expected);
        finish(&w);
    }
    world w;
    start(&w);
    for (size_t i = 0; i < sizeof input - 1; i++) {
        char one[2] = { input[i], '\0' };
        feed(&w, one);
    }
    assert_string_equal(w.log.text, expected);
    finish(&w);
}

static void test_timers_go_with_the_connection(void **state)
{
    (void)state;
    world w;
    start(&w);
    feed(&w, "start\n");
    pg_manual_stream_feed_eof(w.ms);
    run(&w);
    advance(&w, 5000);
    assert_string_equal(w.log.text, "start@waiting|lost@waiting|");
    finish(&w);
}

static void test_trace_lines(void **state)
{
    (void)state;
    char path[] = "/tmp/protogen-machine-trace-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(setenv("PROTOGEN_TRACE", path, 1), 0);
    pg__trace_reset();
    world w;
    start(&w);
    feed(&w, "start\n");
    advance(&w, 50);
    advance(&w, 1000);
    finish(&w);
    unsetenv("PROTOGEN_TRACE");
    pg__trace_reset();
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char text[2048] = "";
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    unlink(path);
    assert_string_equal(text, "1 connection_made\n"
                              "1 data_received 6\n"
                              "1 message_received 6\n"
                              "1 timeout tick\n"
                              "1 state waiting working\n"
                              "1 timeout idle\n"
                              "1 state working closed\n"
                              "1 connection_lost ok\n");
}

#ifdef NDEBUG
static void test_an_undeclared_target_is_a_protocol_error(void **state)
{
    (void)state;
    world w;
    start(&w);
    w.log.choose_undeclared = true;
    feed(&w, "bad\ngo\n");
    assert_string_equal(w.log.text, "bad@waiting|error-EPROTO@waiting|lost@waiting|");
    finish(&w);
}
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_timeout_fires),
        cmocka_unit_test(test_state_change_cancels_the_state_timeout),
        cmocka_unit_test(test_defer_is_retried_after_the_next_state_change),
        cmocka_unit_test(test_ignore_and_the_default_handler),
        cmocka_unit_test(test_a_named_timer_lives_across_states),
        cmocka_unit_test(test_a_timer_cancelled_after_it_fell_due_is_dropped),
        cmocka_unit_test(test_idle_timeout_is_pushed_back_by_traffic),
        cmocka_unit_test(test_close_deadline_aborts_a_peer_that_does_not_read),
        cmocka_unit_test(test_a_state_framing_and_an_eventless_transition),
        cmocka_unit_test(test_timers_go_with_the_connection),
        cmocka_unit_test(test_trace_lines),
#ifdef NDEBUG
        cmocka_unit_test(test_an_undeclared_target_is_a_protocol_error),
#endif
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
