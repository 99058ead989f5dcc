/* The order of one loop iteration, as asyncio's _run_once: callbacks queued
 * before the iteration, then I/O handlers, then the timers due when the wait
 * ended; whatever these queue waits for the next iteration. Each expected
 * order below is what CPython's asyncio does for the same program. */
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testutil.h"

typedef struct order {
    pg_loop *loop;
    char log[256];
} order;

static void note(order *o, const char *what)
{
    strcat(o->log, what);
    strcat(o->log, " ");
}

static void mark_x(void *arg)
{
    note(arg, "X");
}

static void mark_t(void *arg)
{
    note(arg, "T");
}

/* connection_made queues X; data was already waiting: X comes first. */
static void made_queue_x(recorder *r)
{
    order *o = r->user;
    note(o, "made");
    assert_int_equal(pg_loop_call_soon(o->loop, mark_x, o), 0);
}

static void data_note(recorder *r, const uint8_t *data, size_t len)
{
    (void)data;
    (void)len;
    note(r->user, "data");
}

static void test_callback_from_connection_made_runs_before_waiting_data(void **state)
{
    (void)state;
    order o = { 0 };
    assert_int_equal(pg_loop_new(&o.loop), 0);
    recorder r;
    recorder_init(&r);
    r.user = &o;
    r.hooks.made = made_queue_x;
    r.hooks.data = data_note;
    int sv[2];
    make_socketpair(sv, 0);
    assert_int_equal(send(sv[1], "early", 5, 0), 5);
    assert_int_equal(pg_stream_adopt_fd(o.loop, sv[0], recorder_factory, &r, NULL), 0);
    RUN_UNTIL(o.loop, r.data_calls > 0 && strstr(o.log, "X") != NULL);
    assert_string_equal(o.log, "made X data ");
    pg_transport_abort(r.transport);
    RUN_UNTIL(o.loop, r.lost == 1);
    close(sv[1]);
    recorder_free(&r);
    pg_loop_close(o.loop);
}

/* data_received queues X while a timer is due: the timer runs in this
 * iteration, X in the next. */
typedef struct timed {
    order o;
    pg_timer timer;
} timed;

static void data_queue_x(recorder *r, const uint8_t *data, size_t len)
{
    (void)data;
    (void)len;
    order *o = r->user;
    note(o, "data");
    assert_int_equal(pg_loop_call_soon(o->loop, mark_x, o), 0);
}

static void test_due_timer_runs_before_callbacks_queued_by_io(void **state)
{
    (void)state;
    timed t = { 0 };
    assert_int_equal(pg_loop_new(&t.o.loop), 0);
    pg_timer_init(&t.timer);
    recorder r;
    recorder_init(&r);
    r.user = &t.o;
    r.hooks.data = data_queue_x;
    int sv[2];
    make_socketpair(sv, 0);
    assert_int_equal(pg_stream_adopt_fd(t.o.loop, sv[0], recorder_factory, &r, NULL), 0);
    RUN_UNTIL(t.o.loop, r.made == 1);
    run_idle(t.o.loop, 2); /* the first read is armed */
    assert_int_equal(send(sv[1], "x", 1, 0), 1);
    assert_int_equal(pg_loop_call_later(t.o.loop, &t.timer, 0, mark_t, &t.o), 0);
    assert_int_equal(pg_loop_run_once(t.o.loop, 1000), 0);
    assert_string_equal(t.o.log, "data T ");
    assert_int_equal(pg_loop_run_once(t.o.loop, 0), 0);
    assert_string_equal(t.o.log, "data T X ");
    pg_transport_abort(r.transport);
    RUN_UNTIL(t.o.loop, r.lost == 1);
    close(sv[1]);
    recorder_free(&r);
    pg_loop_close(t.o.loop);
}

/* abort() inside data_received: connection_lost comes in a later iteration. */
static void data_abort(recorder *r, const uint8_t *data, size_t len)
{
    (void)data;
    (void)len;
    pg_transport_abort(r->transport);
}

static void test_connection_lost_after_abort_waits_for_next_iteration(void **state)
{
    (void)state;
    pg_loop *loop;
    assert_int_equal(pg_loop_new(&loop), 0);
    recorder r;
    recorder_init(&r);
    r.hooks.data = data_abort;
    int sv[2];
    make_socketpair(sv, 0);
    assert_int_equal(pg_stream_adopt_fd(loop, sv[0], recorder_factory, &r, NULL), 0);
    RUN_UNTIL(loop, r.made == 1);
    run_idle(loop, 2);
    assert_int_equal(send(sv[1], "x", 1, 0), 1);
    RUN_UNTIL(loop, r.data_calls == 1);
    assert_int_equal(r.lost, 0);
    assert_int_equal(pg_loop_run_once(loop, 0), 0);
    assert_string_equal(r.log, "made data lost:ok");
    close(sv[1]);
    recorder_free(&r);
    pg_loop_close(loop);
}

/* A transport drained and closed before connection_made ran: made, then lost. */
static void test_close_drained_before_connection_made(void **state)
{
    (void)state;
    pg_loop *loop;
    assert_int_equal(pg_loop_new(&loop), 0);
    recorder r;
    recorder_init(&r);
    int sv[2];
    make_socketpair(sv, 4096);
    set_nonblocking(sv[1]);
    fill_socket(sv[0]);
    pg_transport *t;
    assert_int_equal(pg_stream_adopt_fd(loop, sv[0], recorder_factory, &r, &t), 0);
    uint8_t buf[100] = { 0 };
    assert_int_equal(pg_transport_write(t, buf, sizeof buf), 0);
    pg_transport_close(t);
    for (int i = 0; i < 200 && r.lost == 0; i++) {
        drain_socket(sv[1], NULL, 0, NULL);
        assert_int_equal(pg_loop_run_once(loop, 10), 0);
    }
    assert_string_equal(r.log, "made lost:ok");
    close(sv[1]);
    recorder_free(&r);
    pg_loop_close(loop);
}

/* A stop during manual run_once iterations does not make them spin. */
static void stop_loop(void *arg)
{
    pg_loop_stop(arg);
}

static void test_stop_does_not_affect_run_once(void **state)
{
    (void)state;
    pg_loop *loop;
    assert_int_equal(pg_loop_new(&loop), 0);
    assert_int_equal(pg_loop_call_soon(loop, stop_loop, loop), 0);
    assert_int_equal(pg_loop_run_once(loop, 0), 0);
    pg_timer timer;
    pg_timer_init(&timer);
    order o = { .loop = loop };
    assert_int_equal(pg_loop_call_later(loop, &timer, 20, mark_t, &o), 0);
    uint64_t t0 = pg_loop_time_ms(loop);
    assert_int_equal(pg_loop_run_once(loop, -1), 0); /* waits for the timer */
    assert_true(pg_loop_time_ms(loop) >= t0 + 20);
    assert_string_equal(o.log, "T ");
    assert_int_equal(pg_loop_run(loop), 0); /* the earlier stop: one iteration, no wait */
    pg_loop_close(loop);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_callback_from_connection_made_runs_before_waiting_data),
        cmocka_unit_test(test_due_timer_runs_before_callbacks_queued_by_io),
        cmocka_unit_test(test_connection_lost_after_abort_waits_for_next_iteration),
        cmocka_unit_test(test_close_drained_before_connection_made),
        cmocka_unit_test(test_stop_does_not_affect_run_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
