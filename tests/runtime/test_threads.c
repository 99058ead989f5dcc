/* Loops and threads: pg_loop_call_soon_threadsafe from other threads (order,
 * wake-up, the loop's own thread, a close racing with callers),
 * pg_loop_stop from another thread, one loop per thread with its own
 * listener on a shared port, name lookups from loops on several threads, and
 * the signal-mask rule of docs/runtime.md.
 * Every test joins its threads and counts: no sleeps. Run under TSan by
 * make tsan. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

/* ---- order: several producers, one loop --------------------------------- */

#define PRODUCERS 4
#define PER_PRODUCER 2000

typedef struct order_ctx {
    pg_loop *loop;
    size_t next[PRODUCERS]; /* the loop's thread only */
    size_t ran;
    bool out_of_order;
} order_ctx;

typedef struct producer {
    order_ctx *ctx;
    size_t id;
    pthread_t thread;
} producer;

static order_ctx *the_order;

static void order_cb(void *arg)
{
    uintptr_t v = (uintptr_t)arg;
    size_t id = v >> 20, seq = v & 0xfffff;
    order_ctx *ctx = the_order;
    if (ctx->next[id] != seq)
        ctx->out_of_order = true;
    ctx->next[id] = seq + 1;
    if (++ctx->ran == PRODUCERS * PER_PRODUCER)
        pg_loop_stop(ctx->loop);
}

static void *produce(void *arg)
{
    producer *p = arg;
    for (size_t seq = 0; seq < PER_PRODUCER; seq++) {
        int r = pg_loop_call_soon_threadsafe(p->ctx->loop, order_cb, (void *)(uintptr_t)(p->id << 20 | seq));
        if (r != 0)
            return (void *)1;
    }
    return NULL;
}

/* Each producer's callbacks run on the loop's thread in the order it queued
 * them, and every one of them runs. */
static void test_threadsafe_order(void **state)
{
    (void)state;
    order_ctx ctx = { 0 };
    the_order = &ctx;
    assert_int_equal(pg_loop_new(&ctx.loop), 0);
    producer p[PRODUCERS];
    for (size_t i = 0; i < PRODUCERS; i++) {
        p[i] = (producer){ .ctx = &ctx, .id = i };
        assert_int_equal(pthread_create(&p[i].thread, NULL, produce, &p[i]), 0);
    }
    assert_int_equal(pg_loop_run(ctx.loop), 0);
    for (size_t i = 0; i < PRODUCERS; i++) {
        void *rv;
        assert_int_equal(pthread_join(p[i].thread, &rv), 0);
        assert_null(rv);
    }
    assert_int_equal(ctx.ran, PRODUCERS * PER_PRODUCER);
    assert_false(ctx.out_of_order);
    for (size_t i = 0; i < PRODUCERS; i++)
        assert_int_equal(ctx.next[i], PER_PRODUCER);
    assert_int_equal(pg_loop_close(ctx.loop), 0);
}

/* ---- the wake-up --------------------------------------------------------- */

typedef struct waiter {
    pg_loop *loop;
    int ran; /* the loop's thread only, read after the join */
    int rc;
} waiter;

static void count_cb(void *arg)
{
    ((waiter *)arg)->ran++;
}

static void *wait_once(void *arg)
{
    waiter *w = arg;
    w->rc = pg_loop_run_once(w->loop, -1); /* nothing but the wake-up ends this */
    return NULL;
}

/* A loop blocked in an endless wait on another thread is woken and runs the
 * callback there. Without the wake-up the join never returns (the ctest
 * timeout fails it). */
static void test_threadsafe_wakes_a_waiting_loop(void **state)
{
    (void)state;
    waiter w = { 0 };
    assert_int_equal(pg_loop_new(&w.loop), 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, wait_once, &w), 0);
    assert_int_equal(pg_loop_call_soon_threadsafe(w.loop, count_cb, &w), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(w.rc, 0);
    /* The callback ran in that one iteration, or (queued before the thread
     * started waiting) in it all the same: the eventfd was readable. */
    assert_int_equal(w.ran, 1);
    assert_int_equal(pg_loop_close(w.loop), 0);
}

static void *stop_from_thread(void *arg)
{
    pg_loop_stop(arg);
    return NULL;
}

/* pg_loop_stop from another thread ends pg_loop_run (the flag is atomic:
 * TSan checks). */
static void test_stop_from_another_thread(void **state)
{
    (void)state;
    pg_loop *loop;
    assert_int_equal(pg_loop_new(&loop), 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, stop_from_thread, loop), 0);
    assert_int_equal(pg_loop_run(loop), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(pg_loop_close(loop), 0);
}

/* ---- from the loop's own thread ----------------------------------------- */

typedef struct chain {
    pg_loop *loop;
    char log[16];
    size_t n;
} chain;

static chain *the_chain;

static void chain_b(void *arg)
{
    the_chain->log[the_chain->n++] = (char)(uintptr_t)arg;
}

static void chain_a(void *arg)
{
    the_chain->log[the_chain->n++] = (char)(uintptr_t)arg;
    /* Queued from a callback: a later wake-up runs it, never this batch. */
    assert_int_equal(pg_loop_call_soon_threadsafe(the_chain->loop, chain_b, (void *)(uintptr_t)'c'), 0);
}

static void test_threadsafe_from_the_loop_thread(void **state)
{
    (void)state;
    chain c = { 0 };
    the_chain = &c;
    assert_int_equal(pg_loop_new(&c.loop), 0);
    assert_int_equal(pg_loop_call_soon_threadsafe(c.loop, chain_a, (void *)(uintptr_t)'a'), 0);
    assert_int_equal(pg_loop_call_soon_threadsafe(c.loop, chain_b, (void *)(uintptr_t)'b'), 0);
    assert_int_equal(pg_loop_run_once(c.loop, 1000), 0);
    assert_int_equal(c.n, 2);
    assert_memory_equal(c.log, "ab", 2);
    assert_int_equal(pg_loop_run_once(c.loop, 1000), 0);
    assert_int_equal(c.n, 3);
    assert_memory_equal(c.log, "abc", 3);
    assert_int_equal(pg_loop_call_soon_threadsafe(NULL, chain_b, NULL), -EINVAL);
    assert_int_equal(pg_loop_call_soon_threadsafe(c.loop, NULL, NULL), -EINVAL);
    assert_int_equal(pg_loop_close(c.loop), 0);
}

/* A stop drains the wake-up eventfd at the end of pg_loop_run: callbacks
 * queued meanwhile still wake the next run_once. */
static void stop_and_queue(void *arg)
{
    waiter *w = arg;
    pg_loop_stop(w->loop);
    assert_int_equal(pg_loop_call_soon_threadsafe(w->loop, count_cb, w), 0);
}

static void test_threadsafe_survives_a_stop(void **state)
{
    (void)state;
    waiter w = { 0 };
    assert_int_equal(pg_loop_new(&w.loop), 0);
    assert_int_equal(pg_loop_call_soon(w.loop, stop_and_queue, &w), 0);
    assert_int_equal(pg_loop_run(w.loop), 0);
    /* Either the run's last iteration ran it, or the eventfd still says so. */
    if (w.ran == 0)
        assert_int_equal(pg_loop_run_once(w.loop, 1000), 0);
    assert_int_equal(w.ran, 1);
    /* The same after a stop made outside the loop, which run_once drains. */
    pg_loop_stop(w.loop);
    assert_int_equal(pg_loop_call_soon_threadsafe(w.loop, count_cb, &w), 0);
    assert_int_equal(pg_loop_run_once(w.loop, -1), 0);
    assert_int_equal(w.ran, 2);
    assert_int_equal(pg_loop_run(w.loop), 0); /* the pending stop: one iteration */
    assert_int_equal(pg_loop_close(w.loop), 0);
}

/* ---- closing ------------------------------------------------------------ */

typedef struct racer {
    pg_loop *loop;
    atomic_size_t ran;
    size_t accepted; /* the racer's, read after the join */
    int last;
} racer;

static void race_cb(void *arg)
{
    atomic_fetch_add(&((racer *)arg)->ran, 1);
}

static void *race(void *arg)
{
    racer *r = arg;
    /* Until the close turns it away; no loop is made meanwhile, so the
     * pointer names no other loop. */
    while ((r->last = pg_loop_call_soon_threadsafe(r->loop, race_cb, r)) == 0)
        r->accepted++;
    return NULL;
}

/* A thread queueing while the loop closes: every call is accepted and its
 * callback run (by an iteration or by the close), or refused with -EBADF;
 * none is lost and none touches the freed loop (ASan, TSan). */
static void test_threadsafe_racing_close(void **state)
{
    (void)state;
    racer r = { 0 };
    assert_int_equal(pg_loop_new(&r.loop), 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, race, &r), 0);
    while (atomic_load(&r.ran) < 100)
        assert_int_equal(pg_loop_run_once(r.loop, 1000), 0);
    assert_int_equal(pg_loop_close(r.loop), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(r.last, -EBADF);
    assert_int_equal(atomic_load(&r.ran), r.accepted);
}

/* Queued before the close: run inside it. */
static void test_threadsafe_queued_runs_at_close(void **state)
{
    (void)state;
    waiter w = { 0 };
    assert_int_equal(pg_loop_new(&w.loop), 0);
    assert_int_equal(pg_loop_call_soon_threadsafe(w.loop, count_cb, &w), 0);
    assert_int_equal(pg_loop_close(w.loop), 0);
    assert_int_equal(w.ran, 1);
}

/* A loop that refuses to close (-EBUSY: a server open) still takes
 * callbacks from other threads. */
static int refuse_factory(void *arg, pg_protocol *out)
{
    (void)arg;
    (void)out;
    return -ECONNREFUSED;
}

static void test_threadsafe_after_a_refused_close(void **state)
{
    (void)state;
    waiter w = { 0 };
    assert_int_equal(pg_loop_new(&w.loop), 0);
    pg_server *server;
    assert_int_equal(pg_tcp_listen(w.loop, "127.0.0.1", 0, NULL, refuse_factory, NULL, &server), 0);
    assert_int_equal(pg_loop_close(w.loop), -EBUSY);
    assert_int_equal(pg_loop_call_soon_threadsafe(w.loop, count_cb, &w), 0);
    assert_int_equal(pg_loop_run_once(w.loop, 1000), 0);
    assert_int_equal(w.ran, 1);
    assert_int_equal(pg_server_close(server), 0);
    assert_int_equal(pg_loop_close(w.loop), 0);
}

/* ---- one loop per thread, one port --------------------------------------- */

#define LOOPS 2
#define CLIENTS 64

typedef struct worker {
    pg_loop *loop;
    pg_server *server;
    recorder conns[CLIENTS];
    int n; /* the worker's thread only until the join */
    pthread_t thread;
    int rc;
} worker;

static void echo_back(recorder *r, const uint8_t *data, size_t len)
{
    assert_int_equal(pg_transport_write(r->transport, data, len), 0);
}

static int worker_factory(void *arg, pg_protocol *out)
{
    worker *w = arg;
    if (w->n == CLIENTS)
        return -ENOMEM;
    recorder *r = &w->conns[w->n++];
    recorder_init(r);
    r->hooks.data = echo_back;
    return recorder_factory(r, out);
}

/* Queued by the main thread, run on the worker's: the shutdown. */
static void worker_shutdown(void *arg)
{
    worker *w = arg;
    pg_server_close(w->server);
    pg_server_abort_clients(w->server);
    pg_loop_stop(w->loop);
}

static int worker_lost(const worker *w)
{
    int lost = 0;
    for (int i = 0; i < w->n; i++)
        lost += w->conns[i].lost;
    return lost;
}

static void *worker_run(void *arg)
{
    worker *w = arg;
    w->rc = pg_loop_run(w->loop);
    for (int i = 0; i < 2000 && w->rc == 0 && worker_lost(w) < w->n; i++)
        w->rc = pg_loop_run_once(w->loop, 1000);
    return NULL;
}

static uint16_t sockname_port(pg_server *server)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    assert_int_equal(pg_server_sockname(server, &ss, &len), 0);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* Each thread runs a loop of its own with a listener of its own on the same
 * port (reuse_port). Every client is served (its byte comes back) by one of
 * them, both serve some (64 clients all on one: probability 2^-63), and
 * pg_loop_call_soon_threadsafe shuts each down from the main thread. */
static void test_one_loop_per_thread_on_one_port(void **state)
{
    (void)state;
    worker w[LOOPS];
    memset(w, 0, sizeof w);
    pg_listen_options opts = { .reuse_port = true };
    uint16_t port = 0;
    for (int i = 0; i < LOOPS; i++) {
        assert_int_equal(pg_loop_new(&w[i].loop), 0);
        assert_int_equal(pg_tcp_listen(w[i].loop, "127.0.0.1", port, &opts, worker_factory, &w[i], &w[i].server), 0);
        port = sockname_port(w[i].server);
    }
    /* From here on each loop is its thread's, until the join. */
    for (int i = 0; i < LOOPS; i++)
        assert_int_equal(pthread_create(&w[i].thread, NULL, worker_run, &w[i]), 0);

    int fds[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(fds[i] >= 0);
        struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port),
                                   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        assert_int_equal(connect(fds[i], (struct sockaddr *)&sin, sizeof sin), 0);
        char c = (char)('a' + i % 26), back = 0;
        assert_int_equal(write(fds[i], &c, 1), 1);
        assert_int_equal(read(fds[i], &back, 1), 1); /* blocking: served */
        assert_int_equal(back, c);
    }
    for (int i = 0; i < LOOPS; i++)
        assert_int_equal(pg_loop_call_soon_threadsafe(w[i].loop, worker_shutdown, &w[i]), 0);
    int served = 0;
    for (int i = 0; i < LOOPS; i++) {
        assert_int_equal(pthread_join(w[i].thread, NULL), 0);
        assert_int_equal(w[i].rc, 0);
        assert_true(w[i].n > 0);
        assert_int_equal(worker_lost(&w[i]), w[i].n);
        served += w[i].n;
    }
    assert_int_equal(served, CLIENTS);
    for (int i = 0; i < CLIENTS; i++) {
        char c;
        assert_true(read(fds[i], &c, 1) <= 0); /* aborted: EOF or a reset */
        close(fds[i]);
    }
    for (int i = 0; i < LOOPS; i++) {
        for (int j = 0; j < w[i].n; j++)
            recorder_free(&w[i].conns[j]);
        assert_int_equal(pg_loop_close(w[i].loop), 0);
    }
}

/* ---- lookups and traces from loops on several threads -------------------- */

#define LOOKUP_LOOPS 4

typedef struct lookup {
    pg_loop *loop;
    pg_server *server;
    recorder served, client;
    int done, error;
    pthread_t thread;
    int failed; /* what went wrong, on the thread: checked after the join */
} lookup;

static int lookup_server_factory(void *arg, pg_protocol *out)
{
    lookup *l = arg;
    recorder_init(&l->served);
    return recorder_factory(&l->served, out);
}

static int lookup_client_factory(void *arg, pg_protocol *out)
{
    return recorder_factory(&((lookup *)arg)->client, out);
}

static void lookup_done(void *arg, pg_transport *t, int error)
{
    lookup *l = arg;
    l->done++;
    l->error = error;
    if (t != NULL)
        pg_transport_close(t);
}

/* Each thread: a loop that listens, resolves "localhost" on the runtime's
 * helper thread (the in-flight counter and the trace's numbers are shared by
 * every loop) and connects to itself. */
static void *lookup_run(void *arg)
{
    lookup *l = arg;
    pg_listen_options opts = { 0 };
    if (pg_loop_new(&l->loop) < 0
        || pg_tcp_listen(l->loop, "127.0.0.1", 0, &opts, lookup_server_factory, l, &l->server) < 0) {
        l->failed = 1;
        return NULL;
    }
    recorder_init(&l->client);
    if (pg_tcp_connect(l->loop, "localhost", sockname_port(l->server), 5000, lookup_client_factory, l,
                       lookup_done, l) < 0)
        l->failed = 2;
    for (int i = 0; i < 2000 && !l->failed && (l->done == 0 || (l->error == 0 && l->client.lost == 0)
                                                || (l->error == 0 && l->served.lost == 0)); i++)
        if (pg_loop_run_once(l->loop, 1000) < 0)
            l->failed = 3;
    pg_server_close(l->server);
    if (pg_loop_close(l->loop) < 0)
        l->failed = 4;
    return NULL;
}

static void test_lookups_from_loops_on_several_threads(void **state)
{
    (void)state;
    lookup l[LOOKUP_LOOPS];
    memset(l, 0, sizeof l);
    for (int i = 0; i < LOOKUP_LOOPS; i++)
        assert_int_equal(pthread_create(&l[i].thread, NULL, lookup_run, &l[i]), 0);
    for (int i = 0; i < LOOKUP_LOOPS; i++)
        assert_int_equal(pthread_join(l[i].thread, NULL), 0);
    for (int i = 0; i < LOOKUP_LOOPS; i++) {
        assert_int_equal(l[i].failed, 0);
        assert_int_equal(l[i].done, 1);
        if (l[i].error != 0) /* see test_tcp's round trip: a machine without "localhost" */
            fail_msg("cannot connect to localhost: %s", strerror(-l[i].error));
        assert_string_equal(l[i].client.log, "made lost:ok");
        assert_string_equal(l[i].served.log, "made eof lost:ok");
        recorder_free(&l[i].client);
        recorder_free(&l[i].served);
    }
}

/* ---- the signal-mask rule ------------------------------------------------ */

typedef struct sig_loop {
    pg_loop *loop;
    int got; /* the loop's thread only, read after the join */
    pthread_barrier_t ready;
} sig_loop;

static void on_usr1(void *arg)
{
    sig_loop *s = arg;
    s->got++;
    pg_loop_stop(s->loop);
}

static void *sig_loop_run(void *arg)
{
    sig_loop *s = arg;
    if (pg_loop_new(&s->loop) < 0 || pg_loop_add_signal_handler(s->loop, SIGUSR1, on_usr1, s) < 0)
        abort();
    pthread_barrier_wait(&s->ready);
    if (pg_loop_run(s->loop) < 0)
        abort();
    pg_loop_remove_signal_handler(s->loop, SIGUSR1);
    pg_loop_close(s->loop);
    return NULL;
}

/* Blocked in every thread (here: in the main thread before the loop's
 * thread starts, which inherits the mask), a signal sent to the process is
 * read by the loop's signalfd on the loop's thread. */
static void test_signal_blocked_everywhere_reaches_the_loop_thread(void **state)
{
    (void)state;
    sigset_t usr1, old;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    assert_int_equal(pthread_sigmask(SIG_BLOCK, &usr1, &old), 0);
    sig_loop s = { 0 };
    assert_int_equal(pthread_barrier_init(&s.ready, NULL, 2), 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, sig_loop_run, &s), 0);
    pthread_barrier_wait(&s.ready);
    assert_int_equal(kill(getpid(), SIGUSR1), 0); /* to the process, not a thread */
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(s.got, 1);
    pthread_barrier_destroy(&s.ready);
    assert_int_equal(pthread_sigmask(SIG_SETMASK, &old, NULL), 0);
}

/* The rule's reason: a thread that does not block the signal (here the main
 * thread of a child process) takes it, and its default action ends the
 * process although a loop on another thread handles it. */
static void test_signal_not_blocked_everywhere_kills(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        sig_loop s = { 0 };
        pthread_t t;
        if (pthread_barrier_init(&s.ready, NULL, 2) != 0 || pthread_create(&t, NULL, sig_loop_run, &s) != 0)
            _exit(2);
        pthread_barrier_wait(&s.ready);
        kill(getpid(), SIGUSR1);
        pthread_join(t, NULL);
        _exit(s.got == 1 ? 0 : 3); /* the loop got it: the rule would be moot */
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGUSR1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threadsafe_order),
        cmocka_unit_test(test_threadsafe_wakes_a_waiting_loop),
        cmocka_unit_test(test_stop_from_another_thread),
        cmocka_unit_test(test_threadsafe_from_the_loop_thread),
        cmocka_unit_test(test_threadsafe_survives_a_stop),
        cmocka_unit_test(test_threadsafe_racing_close),
        cmocka_unit_test(test_threadsafe_queued_runs_at_close),
        cmocka_unit_test(test_threadsafe_after_a_refused_close),
        cmocka_unit_test(test_one_loop_per_thread_on_one_port),
        cmocka_unit_test(test_signal_blocked_everywhere_reaches_the_loop_thread),
        cmocka_unit_test(test_signal_not_blocked_everywhere_kills),
        /* last: its lookup threads may still be ending, and the test above forks */
        cmocka_unit_test(test_lookups_from_loops_on_several_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
