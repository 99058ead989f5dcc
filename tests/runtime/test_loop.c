/* The loop: call_soon order, timers (order, cancel, reschedule), stop,
 * run_once, signal handlers, close. */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "testutil.h"

typedef struct order {
    char log[256];
    pg_loop *loop;
} order;

static void note(order *o, const char *word)
{
    size_t n = strlen(o->log);
    snprintf(o->log + n, sizeof o->log - n, "%s%s", n ? " " : "", word);
}

typedef struct step {
    order *o;
    const char *name;
    pg_timer timer;
    struct step *cancel; /* timer to cancel when this one fires */
    struct step *again;  /* call_soon this one when this one runs */
} step;

static void step_run(void *arg)
{
    step *s = arg;
    note(s->o, s->name);
    if (s->cancel)
        pg_timer_cancel(&s->cancel->timer);
    if (s->again)
        assert_int_equal(pg_loop_call_soon(s->o->loop, step_run, s->again), 0);
}

static pg_loop *new_loop(void)
{
    pg_loop *loop = NULL;
    assert_int_equal(pg_loop_new(&loop), 0);
    assert_non_null(loop);
    return loop;
}

static void test_call_soon_fifo(void **state)
{
    (void)state;
    pg_loop *loop = new_loop();
    order o = { .loop = loop };
    step a = { .o = &o, .name = "a" }, b = { .o = &o, .name = "b" }, c = { .o = &o, .name = "c" };
    step later = { .o = &o, .name = "later" };
    a.again = &later; /* queued while running: waits for the next iteration */
    assert_int_equal(pg_loop_call_soon(loop, step_run, &a), 0);
    assert_int_equal(pg_loop_call_soon(loop, step_run, &b), 0);
    assert_int_equal(pg_loop_call_soon(loop, step_run, &c), 0);
    assert_int_equal(pg_loop_call_soon(NULL, step_run, &c), -EINVAL);
    assert_int_equal(pg_loop_call_soon(loop, NULL, &c), -EINVAL);

    assert_int_equal(pg_loop_run_once(loop, 0), 0);
    assert_string_equal(o.log, "a b c");
    assert_int_equal(pg_loop_run_once(loop, 0), 0);
    assert_string_equal(o.log, "a b c later");
    pg_loop_close(loop);
}

/* asyncio's Handle.cancel for call_soon: a call cancelled before it ran never
 * runs, also when an earlier callback of the same iteration cancels it. */
typedef struct canceller {
    order *o;
    step *victim;
} canceller;

static void cancel_victim(void *arg)
{
    canceller *c = arg;
    note(c->o, "cancel");
    assert_int_equal(pg_loop_call_soon_cancel(c->o->loop, step_run, c->victim), 0);
}

static void test_call_soon_cancel(void **state)
{
    (void)state;
    pg_loop *loop = new_loop();
    order o = { .loop = loop };
    step a = { .o = &o, .name = "a" }, b = { .o = &o, .name = "b" }, c = { .o = &o, .name = "c" };
    canceller k = { .o = &o, .victim = &c };
    assert_int_equal(pg_loop_call_soon(loop, step_run, &a), 0);
    assert_int_equal(pg_loop_call_soon(loop, step_run, &b), 0);
    assert_int_equal(pg_loop_call_soon(loop, cancel_victim, &k), 0);
    assert_int_equal(pg_loop_call_soon(loop, step_run, &c), 0);
    assert_int_equal(pg_loop_call_soon_cancel(loop, step_run, &b), 0);
    assert_int_equal(pg_loop_call_soon_cancel(loop, step_run, &b), -ENOENT); /* cancelled already */
    assert_int_equal(pg_loop_call_soon_cancel(NULL, step_run, &b), -EINVAL);
    assert_int_equal(pg_loop_run_once(loop, 0), 0);
    assert_string_equal(o.log, "a cancel");
    assert_int_equal(pg_loop_call_soon_cancel(loop, step_run, &a), -ENOENT); /* ran */
    assert_int_equal(pg_loop_run_once(loop, 0), 0);
    assert_string_equal(o.log, "a cancel");
    assert_int_equal(pg_loop_close(loop), 0);
}

static int seen[300], nseen;

static void record_index(void *arg)
{
    seen[nseen++] = (int)(intptr_t)arg;
}

static void test_call_soon_many(void **state)
{
    (void)state;
    /* More than the ring's initial size, wrapped: it grows and keeps the order. */
    pg_loop *loop = new_loop();
    nseen = 0;
    for (int i = 0; i < 300; i++) {
        assert_int_equal(pg_loop_call_soon(loop, record_index, (void *)(intptr_t)i), 0);
        if (i == 10)
            assert_int_equal(pg_loop_run_once(loop, 0), 0);
    }
    assert_int_equal(nseen, 11);
    assert_int_equal(pg_loop_run_once(loop, 0), 0);
    assert_int_equal(nseen, 300);
    for (int i = 0; i < 300; i++)
        assert_int_equal(seen[i], i);
    pg_loop_close(loop);
}

static void test_timers_order(void **state)
{
    (void)state;
    pg_loop *loop = new_loop();
    order o = { .loop = loop };
    /* Each due time counts from its own clock reading (asyncio's call_later),
     * so the gaps are wide enough for a slow start (valgrind's first calls)
     * between the first call_later and the last. */
    step t150 = { .o = &o, .name = "150" }, t50a = { .o = &o, .name = "50a" };
    step t100 = { .o = &o, .name = "100" }, t50b = { .o = &o, .name = "50b" };
    step *all[] = { &t150, &t50a, &t100, &t50b };
    uint64_t delays[] = { 150, 50, 100, 50 };
    uint64_t start = pg_loop_time_ms(loop); /* before t150's clock reading */
    for (int i = 0; i < 4; i++) {
        pg_timer_init(&all[i]->timer);
        assert_false(pg_timer_is_active(&all[i]->timer));
        assert_int_equal(pg_loop_call_later(loop, &all[i]->timer, delays[i], step_run, all[i]), 0);
        assert_true(pg_timer_is_active(&all[i]->timer));
    }
    RUN_UNTIL(loop, !pg_timer_is_active(&t150.timer));
    assert_string_equal(o.log, "50a 50b 100 150");
    assert_true(pg_loop_time_ms(loop) - start >= 150);
    pg_loop_close(loop);
}

static void test_timers_same_time_fifo(void **state)
{
    (void)state;
    pg_loop *loop = new_loop();
    order o = { .loop = loop };
    step s[5] = {
        { .o = &o, .name = "a" }, { .o = &o, .name = "b" }, { .o = &o, .name = "c" },
        { .o = &o, .name = "d" }, { .o = &o, .name = "e" },
    };
    for (int i = 0; i < 5; i++) {
        pg_timer_init(&s[i].timer);
        assert_int_equal(pg_loop_call_later(loop, &s[i].timer, 0, step_run, &s[i]), 0);
    }
    assert_int_equal(pg_loop_run_once(loop, 0), 0);
    assert_string_equal(o.log, "a b c d e");
    pg_loop_close(loop);
}

static void test_timer_cancel(void **state)
{
    (void)state;
    pg_loop *loop = new_loop();
    order o = { .loop = loop };
    step a = { .o = &o, .name = "a" }, b = { .o = &o, .name = "b" }, c = { .o = &o, .name = "c" };
    step d = { .o = &o, .name = "d" };
    pg_timer_init(&a.timer);
    pg_timer_init(&b.timer);
    pg_timer_init(&c.timer);
    pg_timer_init(&d.timer);
    pg_timer_cancel(&a.timer); /* not active: a no-op */
    a.cancel = &b;             /* a and b are due together: a cancels b */
    assert_int_equal(pg_loop_call_later(loop, &a.timer, 0, step_run, &a), 0);
    assert_int_equal(pg_loop_call_later(loop, &b.timer, 0, step_run, &b), 0);
    assert_int_equal(pg_loop_call_later(loop, &c.timer, 0, step_run, &c), 0);
    assert_int_equal(pg_loop_call_later(loop, &d.timer, 5, step_run, &d), 0);
    pg_timer_cancel(&c.timer);
    assert_false(pg_timer_is_active(&c.timer));
    pg_timer_cancel(&d.timer);
    assert_int_equal(pg_loop_run_once(loop, 0), 0);
    assert_string_equal(o.log, "a");
    assert_false(pg_timer_is_active(&b.timer));
    /* d was cancelled: the loop has nothing left and must not wait for it. */
    assert_int_equal(pg_loop_run_once(loop, 20), 0);
    assert_string_equal(o.log, "a");
    pg_loop_close(loop);
}

static void test_timer_reschedule(void **state)
{
    (void)state;
    pg_loop *loop = new_loop();
    order o = { .loop = loop };
    step a = { .o = &o, .name = "a" }, b = { .o = &o, .name = "b" };
    pg_timer_init(&a.timer);
    pg_timer_init(&b.timer);
    assert_int_equal(pg_loop_call_later(loop, &a.timer, 0, step_run, &a), 0);
    assert_int_equal(pg_loop_call_later(loop, &b.timer, 5, step_run, &b), 0);
    /* Rescheduling an active timer moves it: a now fires after b. */
    assert_int_equal(pg_loop_call_later(loop, &a.timer, 10, step_run, &a), 0);
    RUN_UNTIL(loop, !pg_timer_is_active(&a.timer));
    assert_string_equal(o.log, "b a");
    pg_loop_close(loop);
}

static void rearm(void *arg)
{
    step *s = arg;
    note(s->o, s->name);
    if (strlen(s->o->log) < 10) /* a timer may reschedule itself from its callback */
        assert_int_equal(pg_loop_call_later(s->o->loop, &s->timer, 0, rearm, s), 0);
}

static void test_timer_rearm_from_callback(void **state)
{
    (void)state;
    pg_loop *loop = new_loop();
    order o = { .loop = loop };
    step a = { .o = &o, .name = "x" };
    pg_timer_init(&a.timer);
    assert_int_equal(pg_loop_call_later(loop, &a.timer, 0, rearm, &a), 0);
    RUN_UNTIL(loop, !pg_timer_is_active(&a.timer));
    assert_string_equal(o.log, "x x x x x x");
    pg_loop_close(loop);
}

static void stop_it(void *arg)
{
    order *o = arg;
    note(o, "stop");
    pg_loop_stop(o->loop);
}

static void test_loop_stop(void **state)
{
    (void)state;
    pg_loop *loop = new_loop();
    order o = { .loop = loop };
    pg_timer t;
    pg_timer_init(&t);
    assert_int_equal(pg_loop_call_later(loop, &t, 5, stop_it, &o), 0);
    assert_int_equal(pg_loop_run(loop), 0);
    assert_string_equal(o.log, "stop");

    /* Stop before run: run does one iteration and returns. */
    step a = { .o = &o, .name = "a" };
    assert_int_equal(pg_loop_call_soon(loop, step_run, &a), 0);
    pg_loop_stop(loop);
    assert_int_equal(pg_loop_run(loop), 0);
    assert_string_equal(o.log, "stop a");
    pg_loop_close(loop);
}

static void test_run_once_timeout(void **state)
{
    (void)state;
    pg_loop *loop = new_loop();
    uint64_t t0 = pg_loop_time_ms(loop);
    assert_int_equal(pg_loop_run_once(loop, 0), 0);  /* polls */
    assert_int_equal(pg_loop_run_once(loop, 10), 0); /* nothing to do: waits ~10 ms */
    assert_true(pg_loop_time_ms(loop) >= t0 + 10);
    pg_loop_close(loop);
}

static void on_signal(void *arg)
{
    int *count = arg;
    (*count)++;
}

static void test_signal_handler(void **state)
{
    (void)state;
    pg_loop *loop = new_loop();
    int count = 0;
    assert_int_equal(pg_loop_add_signal_handler(loop, SIGKILL, on_signal, &count), -EINVAL);
    assert_int_equal(pg_loop_add_signal_handler(loop, 0, on_signal, &count), -EINVAL);
    assert_int_equal(pg_loop_remove_signal_handler(loop, SIGUSR1), -ENOENT);
    assert_int_equal(pg_loop_add_signal_handler(loop, SIGUSR1, on_signal, &count), 0);
    assert_int_equal(raise(SIGUSR1), 0); /* blocked: pending until the loop reads it */
    assert_int_equal(count, 0);
    RUN_UNTIL(loop, count == 1);
    assert_int_equal(raise(SIGUSR1), 0);
    RUN_UNTIL(loop, count == 2);
    assert_int_equal(pg_loop_remove_signal_handler(loop, SIGUSR1), 0);
    assert_int_equal(pg_loop_remove_signal_handler(loop, SIGUSR1), -ENOENT);

    /* Unblocked again after removal. */
    sigset_t cur;
    assert_int_equal(sigprocmask(SIG_BLOCK, NULL, &cur), 0);
    assert_int_equal(sigismember(&cur, SIGUSR1), 0);
    pg_loop_close(loop);
}

/* A delivery not yet read when the handler goes must not reach the default
 * action (which would end this test program). */
static void test_signal_pending_at_removal_is_dropped(void **state)
{
    (void)state;
    pg_loop *loop = new_loop();
    int count = 0;
    assert_int_equal(pg_loop_add_signal_handler(loop, SIGUSR2, on_signal, &count), 0);
    assert_int_equal(raise(SIGUSR2), 0);
    assert_int_equal(pg_loop_remove_signal_handler(loop, SIGUSR2), 0);
    assert_int_equal(pg_loop_add_signal_handler(loop, SIGUSR1, on_signal, &count), 0);
    assert_int_equal(raise(SIGUSR1), 0);
    pg_loop_close(loop); /* releases SIGUSR1 with its delivery pending */
    assert_int_equal(count, 0);
    sigset_t pending;
    assert_int_equal(sigpending(&pending), 0);
    assert_int_equal(sigismember(&pending, SIGUSR1), 0);
    assert_int_equal(sigismember(&pending, SIGUSR2), 0);
}

static void test_signal_blocked_before_stays_blocked(void **state)
{
    (void)state;
    sigset_t usr2, cur;
    sigemptyset(&usr2);
    sigaddset(&usr2, SIGUSR2);
    assert_int_equal(sigprocmask(SIG_BLOCK, &usr2, NULL), 0);
    pg_loop *loop = new_loop();
    int count = 0;
    assert_int_equal(pg_loop_add_signal_handler(loop, SIGUSR2, on_signal, &count), 0);
    assert_int_equal(pg_loop_remove_signal_handler(loop, SIGUSR2), 0);
    assert_int_equal(sigprocmask(SIG_BLOCK, NULL, &cur), 0);
    assert_int_equal(sigismember(&cur, SIGUSR2), 1);
    pg_loop_close(loop);
    assert_int_equal(sigprocmask(SIG_UNBLOCK, &usr2, NULL), 0);
}

static void test_close_runs_queued(void **state)
{
    (void)state;
    pg_loop *loop = new_loop();
    order o = { .loop = loop };
    step a = { .o = &o, .name = "a" }, b = { .o = &o, .name = "b" };
    a.again = &b; /* queued while closing: runs too */
    assert_int_equal(pg_loop_call_soon(loop, step_run, &a), 0);
    pg_loop_close(loop);
    assert_string_equal(o.log, "a b");
}

/* ---- pg_loop_stop from a plain signal handler -------------------------- */

static pg_loop *stop_target;

static void stop_from_handler(int signo)
{
    (void)signo;
    pg_loop_stop(stop_target); /* async-signal-safe */
}

typedef struct waker {
    pid_t tid; /* the loop's thread */
    pthread_t thread;
} waker;

/* True while thread tid sits in epoll_wait or io_uring_enter (its current system call, from
 * /proc): the signal must come then, not before the wait. */
static bool in_epoll_wait(pid_t tid)
{
    char path[64], buf[64];
    snprintf(path, sizeof path, "/proc/self/task/%d/syscall", (int)tid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return false;
    bool yes = fgets(buf, sizeof buf, f) != NULL;
    fclose(f);
    if (!yes)
        return false;
    long nr = strtol(buf, NULL, 10);
#ifdef SYS_epoll_wait
    if (nr == SYS_epoll_wait)
        return true;
#endif
#ifdef SYS_io_uring_enter
    if (nr == SYS_io_uring_enter) /* the io_uring backend waits there */
        return true;
#endif
    return nr == SYS_epoll_pwait;
}

static void *wake_when_waiting(void *arg)
{
    waker *w = arg;
    while (!in_epoll_wait(w->tid))
        sched_yield();
    pthread_kill(w->thread, SIGUSR1);
    return NULL;
}

/* README: "pg_loop_stop() from a callback or a signal handler ends it". A
 * plain sigaction handler runs while the loop waits in epoll_wait, which
 * used to go back to waiting; now the stop wakes it. SIGALRM ends the test
 * if it does not. */
static void test_stop_from_a_plain_signal_handler(void **state)
{
    (void)state;
    pg_loop *loop = new_loop();
    stop_target = loop;
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = stop_from_handler;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);
    waker w = { .tid = (pid_t)syscall(SYS_gettid), .thread = pthread_self() };
    pthread_t helper;
    alarm(10);
    assert_int_equal(pthread_create(&helper, NULL, wake_when_waiting, &w), 0);
    assert_int_equal(pg_loop_run(loop), 0); /* nothing to do: waits until the signal */
    alarm(0);
    assert_int_equal(pthread_join(helper, NULL), 0);
    assert_int_equal(sigaction(SIGUSR1, &old, NULL), 0);
    /* The wake-up is used up: the next run_once waits for its timeout. */
    uint64_t t0 = pg_loop_time_ms(loop);
    assert_int_equal(pg_loop_run_once(loop, 20), 0);
    assert_true(pg_loop_time_ms(loop) >= t0 + 20);
    assert_int_equal(pg_loop_close(loop), 0);
}

/* ---- misuse: an error where asyncio raises, never undefined behaviour ---- */

typedef struct nested {
    pg_loop *loop;
    int ran;
    int run_once_rc, run_rc, close_rc;
} nested;

static void nest(void *arg)
{
    nested *n = arg;
    n->ran++;
    n->run_once_rc = pg_loop_run_once(n->loop, 0);
    n->run_rc = pg_loop_run(n->loop);
    n->close_rc = pg_loop_close(n->loop);
}

/* asyncio: "This event loop is already running", "Cannot close a running
 * event loop". Here -EBUSY, and the loop carries on. */
static void test_run_and_close_inside_a_callback_are_ebusy(void **state)
{
    (void)state;
    pg_loop *loop = new_loop();
    nested n = { .loop = loop };
    assert_int_equal(pg_loop_call_soon(loop, nest, &n), 0);
    RUN_UNTIL(loop, n.ran == 1);
    assert_int_equal(n.run_once_rc, -EBUSY);
    assert_int_equal(n.run_rc, -EBUSY);
    assert_int_equal(n.close_rc, -EBUSY);
    /* Intact: it still runs callbacks, and closing the same way in
     * pg_loop_close's own run of the queue is refused too. */
    n.ran = 0;
    assert_int_equal(pg_loop_call_soon(loop, nest, &n), 0);
    assert_int_equal(pg_loop_close(loop), 0);
    assert_int_equal(n.ran, 1);
    assert_int_equal(n.close_rc, -EBUSY);
    assert_int_equal(n.run_once_rc, -EBUSY);
}

/* A loop with a connection still open is not closed (it leaked, and closing
 * the connection afterwards reached the freed loop): -EBUSY, and once the
 * connection is gone, the close succeeds. */
static void test_close_with_a_connection_open_is_ebusy(void **state)
{
    (void)state;
    pg_loop *loop = new_loop();
    int sv[2];
    recorder r;
    make_socketpair(sv, 0);
    recorder_init(&r);
    pg_transport *t;
    assert_int_equal(pg_stream_adopt_fd(loop, sv[0], recorder_factory, &r, &t), 0);
    assert_int_equal(pg_loop_close(loop), -EBUSY); /* before connection_made */
    assert_int_equal(r.made, 0);                   /* nothing ran */
    RUN_UNTIL(loop, r.made == 1);
    assert_int_equal(pg_loop_close(loop), -EBUSY);
    assert_int_equal(pg_transport_write(t, "x", 1), 0);
    uint8_t buf[4];
    /* Sent: on io_uring also its completion seen (nothing buffered). */
    size_t got = 0;
    RUN_UNTIL(loop, (got += drain_socket(sv[1], buf, sizeof buf, NULL), got == 1 && pg_transport_get_write_buffer_size(t) == 0));
    pg_transport_close(t);
    assert_int_equal(pg_loop_close(loop), 0); /* connection_lost was queued: it runs */
    assert_int_equal(r.lost, 1);
    close(sv[1]);
    recorder_free(&r);
}

/* Timers and signal handlers do not keep a loop from closing (asyncio clears
 * them): the timer is left inactive, the signal unblocked. */
static void test_close_with_a_timer_and_a_signal_handler(void **state)
{
    (void)state;
    pg_loop *loop = new_loop();
    order o = { .loop = loop };
    step a = { .o = &o, .name = "a" };
    pg_timer_init(&a.timer);
    assert_int_equal(pg_loop_call_later(loop, &a.timer, 100000, step_run, &a), 0);
    int count = 0;
    assert_int_equal(pg_loop_add_signal_handler(loop, SIGUSR1, on_signal, &count), 0);
    assert_int_equal(pg_loop_close(loop), 0);
    assert_false(pg_timer_is_active(&a.timer));
    pg_timer_cancel(&a.timer); /* harmless */
    sigset_t cur;
    assert_int_equal(sigprocmask(SIG_BLOCK, NULL, &cur), 0);
    assert_int_equal(sigismember(&cur, SIGUSR1), 0);
}

static int accepted;

static int count_accept(void *arg, pg_protocol *out)
{
    (void)arg;
    (void)out;
    accepted++;
    return -ECONNREFUSED;
}

/* pg_server_close twice, one iteration apart, was a use after free: now the
 * second is -EBADF, as is asking a closed server its address. */
static void test_server_close_twice_is_ebadf(void **state)
{
    (void)state;
    pg_loop *loop = new_loop();
    pg_server *server;
    assert_int_equal(pg_tcp_listen(loop, "127.0.0.1", 0, NULL, count_accept, NULL, &server), 0);
    assert_int_equal(pg_loop_close(loop), -EBUSY); /* a server is open */
    assert_int_equal(pg_server_close(server), 0);
    run_idle(loop, 2);
    assert_int_equal(pg_server_close(server), -EBADF);
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    assert_int_equal(pg_server_sockname(server, &ss, &len), -EBADF);
    assert_int_equal(pg_server_close(server), -EBADF);
    assert_int_equal(pg_server_close(NULL), -EINVAL);
    assert_int_equal(pg_loop_close(loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_call_soon_fifo),
        cmocka_unit_test(test_call_soon_many),
        cmocka_unit_test(test_call_soon_cancel),
        cmocka_unit_test(test_timers_order),
        cmocka_unit_test(test_timers_same_time_fifo),
        cmocka_unit_test(test_timer_cancel),
        cmocka_unit_test(test_timer_reschedule),
        cmocka_unit_test(test_timer_rearm_from_callback),
        cmocka_unit_test(test_loop_stop),
        cmocka_unit_test(test_run_once_timeout),
        cmocka_unit_test(test_signal_handler),
        cmocka_unit_test(test_signal_pending_at_removal_is_dropped),
        cmocka_unit_test(test_signal_blocked_before_stays_blocked),
        cmocka_unit_test(test_close_runs_queued),
        cmocka_unit_test(test_stop_from_a_plain_signal_handler),
        cmocka_unit_test(test_run_and_close_inside_a_callback_are_ebusy),
        cmocka_unit_test(test_close_with_a_connection_open_is_ebusy),
        cmocka_unit_test(test_close_with_a_timer_and_a_signal_handler),
        cmocka_unit_test(test_server_close_twice_is_ebadf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
