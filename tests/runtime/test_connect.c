/* Connects that would otherwise hang: the default timeout, a lookup that is
 * never answered, cancelling a pending connect or lookup, and closing the
 * loop with connects pending. getaddrinfo is wrapped (-Wl,--wrap) so that a
 * test can hold a lookup for as long as it likes: a resolver that never
 * answers, without a network. */
#include <arpa/inet.h>
#include <dirent.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "testutil.h"

int __real_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                       struct addrinfo **res);

/* While held, lookups wait (on their helper threads) until released, then
 * fail with EAI_AGAIN, as a resolver that timed out at last. */
static pthread_mutex_t gai_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gai_cond = PTHREAD_COND_INITIALIZER;
static bool gai_held;

int __wrap_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                       struct addrinfo **res)
{
    pthread_mutex_lock(&gai_lock);
    bool held = gai_held;
    while (gai_held)
        pthread_cond_wait(&gai_cond, &gai_lock);
    pthread_mutex_unlock(&gai_lock);
    return held ? EAI_AGAIN : __real_getaddrinfo(node, service, hints, res);
}

static void gai_hold(bool hold)
{
    pthread_mutex_lock(&gai_lock);
    gai_held = hold;
    pthread_cond_broadcast(&gai_cond);
    pthread_mutex_unlock(&gai_lock);
}

/* Releases held lookups and waits for their abandoned threads to end (they
 * signal nothing the test could wait on: a bounded poll of the count). */
static void gai_release_and_wait(void)
{
    gai_hold(false);
    for (int i = 0; i < 10000 && pg__resolve_in_flight() > 0; i++)
        nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
    assert_int_equal(pg__resolve_in_flight(), 0);
}

static int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int n = 0;
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n;
}

typedef struct client {
    recorder rec;
    int factory_calls, done_calls, error;
    pg_transport *transport;
    pg_loop *loop; /* for cancels from done */
    int cancel_in_done;
} client;

static int client_factory(void *arg, pg_protocol *out)
{
    client *c = arg;
    c->factory_calls++;
    return recorder_factory(&c->rec, out);
}

static void client_done(void *arg, pg_transport *t, int error)
{
    client *c = arg;
    c->done_calls++;
    c->error = error;
    c->transport = t;
    if (c->loop != NULL)
        c->cancel_in_done = pg_connect_cancel(c->loop, client_done, c);
}

/* A loopback listener that answers no connect: backlog 0 and one connection
 * queued already, so further SYNs are dropped. */
typedef struct deaf {
    int lfd, filler;
    uint16_t port;
} deaf;

static void deaf_open(deaf *d)
{
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof sin;
    d->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_int_equal(bind(d->lfd, (struct sockaddr *)&sin, sizeof sin), 0);
    assert_int_equal(listen(d->lfd, 0), 0);
    assert_int_equal(getsockname(d->lfd, (struct sockaddr *)&sin, &len), 0);
    d->port = ntohs(sin.sin_port);
    d->filler = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_int_equal(connect(d->filler, (struct sockaddr *)&sin, sizeof sin), 0);
}

static void deaf_close(deaf *d)
{
    close(d->filler);
    close(d->lfd);
}

/* 0 asks for the default timeout: a timer PG_CONNECT_DEFAULT_TIMEOUT_MS out. */
static void test_default_timeout(void **state)
{
    (void)state;
    pg_loop *loop;
    assert_int_equal(pg_loop_new(&loop), 0);
    deaf d;
    deaf_open(&d);
    client c = { 0 };
    recorder_init(&c.rec);
    uint64_t before = pg_loop_time_ms(loop);
    assert_int_equal(pg_tcp_connect(loop, "127.0.0.1", d.port, 0, client_factory, &c, client_done, &c), 0);
    uint64_t due;
    assert_true(pg_timer_queue_next(&loop->timers, &due));
    assert_true(due >= before + PG_CONNECT_DEFAULT_TIMEOUT_MS);
    assert_true(due <= pg_loop_time_ms(loop) + PG_CONNECT_DEFAULT_TIMEOUT_MS);
    /* PG_CONNECT_NO_TIMEOUT: none. */
    client n = { 0 };
    recorder_init(&n.rec);
    assert_int_equal(pg_tcp_connect(loop, "127.0.0.1", d.port, PG_CONNECT_NO_TIMEOUT, client_factory, &n,
                                    client_done, &n), 0);
    assert_int_equal(loop->timers.len_, 1);
    assert_int_equal(pg_loop_close(loop), 0); /* cancels both */
    assert_int_equal(c.done_calls, 1);
    assert_int_equal(c.error, -ECANCELED);
    assert_int_equal(n.done_calls, 1);
    assert_int_equal(n.error, -ECANCELED);
    deaf_close(&d);
}

/* A lookup that is never answered times out: done gets -ETIMEDOUT, and the
 * loop closes at once although the lookup's thread still waits. */
static void test_lookup_never_answered_times_out(void **state)
{
    (void)state;
    int fds = open_fds();
    pg_loop *loop;
    assert_int_equal(pg_loop_new(&loop), 0);
    gai_hold(true);
    client c = { 0 };
    recorder_init(&c.rec);
    assert_int_equal(pg_tcp_connect(loop, "unanswered.test", 80, 50, client_factory, &c, client_done, &c), 0);
    RUN_UNTIL(loop, c.done_calls == 1);
    assert_int_equal(c.error, -ETIMEDOUT);
    assert_int_equal(c.factory_calls, 0);
    assert_int_equal(pg__resolve_in_flight(), 1); /* still asking */
    assert_int_equal(pg_loop_close(loop), 0);
    gai_release_and_wait();
    assert_int_equal(open_fds(), fds); /* the lookup's eventfd too */
    assert_string_equal(c.rec.log, "");
}

/* Cancelling a lookup: done once with -ECANCELED, from the loop, and nothing
 * after, even when the lookup ends later. */
static void test_cancel_lookup(void **state)
{
    (void)state;
    pg_loop *loop;
    assert_int_equal(pg_loop_new(&loop), 0);
    gai_hold(true);
    client c = { 0 };
    recorder_init(&c.rec);
    assert_int_equal(pg_tcp_connect(loop, "unanswered.test", 80, PG_CONNECT_NO_TIMEOUT, client_factory, &c,
                                    client_done, &c), 0);
    run_idle(loop, 2);
    assert_int_equal(pg_connect_cancel(loop, client_done, &c), 0);
    assert_int_equal(c.done_calls, 0); /* never from inside the cancel */
    assert_int_equal(pg_connect_cancel(loop, client_done, &c), -EALREADY);
    run_idle(loop, 1);
    assert_int_equal(c.done_calls, 1);
    assert_int_equal(c.error, -ECANCELED);
    assert_int_equal(pg_connect_cancel(loop, client_done, &c), -ENOENT);
    gai_release_and_wait();
    run_idle(loop, 2);
    assert_int_equal(c.done_calls, 1);
    assert_int_equal(c.factory_calls, 0);
    assert_int_equal(pg_loop_close(loop), 0);
}

/* Cancelling a connect the kernel is still attempting: the socket is closed,
 * done gets -ECANCELED once, and nothing comes later. */
static void test_cancel_connect(void **state)
{
    (void)state;
    pg_loop *loop;
    assert_int_equal(pg_loop_new(&loop), 0);
    deaf d;
    deaf_open(&d);
    int fds = open_fds();
    client c = { 0 }, other = { 0 };
    recorder_init(&c.rec);
    recorder_init(&other.rec);
    c.loop = loop; /* done tries to cancel again: -ENOENT */
    assert_int_equal(pg_tcp_connect(loop, "127.0.0.1", d.port, PG_CONNECT_NO_TIMEOUT, client_factory, &c,
                                    client_done, &c), 0);
    assert_int_equal(pg_tcp_connect(loop, "127.0.0.1", d.port, PG_CONNECT_NO_TIMEOUT, client_factory, &other,
                                    client_done, &other), 0);
    run_idle(loop, 2);
    assert_int_equal(open_fds(), fds + 2);
    assert_int_equal(pg_connect_cancel(loop, client_done, &c), 0);
    assert_int_equal(open_fds(), fds + 1); /* only the other one's socket */
    RUN_UNTIL(loop, c.done_calls == 1);
    assert_int_equal(c.error, -ECANCELED);
    assert_int_equal(c.cancel_in_done, -ENOENT);
    run_idle(loop, 2);
    assert_int_equal(c.done_calls, 1);
    assert_int_equal(other.done_calls, 0); /* untouched */
    assert_int_equal(pg_connect_cancel(loop, client_done, NULL), -ENOENT);
    assert_int_equal(pg_connect_cancel(loop, NULL, &c), -EINVAL);
    assert_int_equal(pg_loop_close(loop), 0);
    assert_int_equal(other.error, -ECANCELED);
    assert_int_equal(c.factory_calls + other.factory_calls, 0);
    deaf_close(&d);
}

/* A connect whose outcome is decided (connected; done queued) is not undone:
 * -EALREADY, and done gets the connection. */
static void test_cancel_after_connected(void **state)
{
    (void)state;
    pg_loop *loop;
    assert_int_equal(pg_loop_new(&loop), 0);
    recorder srv = { 0 };
    recorder_init(&srv);
    pg_server *server;
    assert_int_equal(pg_tcp_listen(loop, "127.0.0.1", 0, NULL, recorder_factory, &srv, &server), 0);
    struct sockaddr_storage ss;
    socklen_t len;
    assert_int_equal(pg_server_sockname(server, &ss, &len), 0);
    uint16_t port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    client c = { 0 };
    recorder_init(&c.rec);
    assert_int_equal(pg_tcp_connect(loop, "127.0.0.1", port, 0, client_factory, &c, client_done, &c), 0);
    RUN_UNTIL(loop, c.factory_calls == 1);
    if (c.done_calls == 0)
        assert_int_equal(pg_connect_cancel(loop, client_done, &c), -EALREADY);
    RUN_UNTIL(loop, c.done_calls == 1);
    assert_int_equal(c.error, 0);
    pg_transport_close(c.transport);
    RUN_UNTIL(loop, c.rec.lost == 1 && srv.lost == 1);
    pg_server_close(server);
    recorder_free(&c.rec);
    recorder_free(&srv);
    assert_int_equal(pg_loop_close(loop), 0);
}

/* pg_loop_close with a connect and a lookup pending: both cancelled, done
 * called inside the close, no fd left behind. With a transport open the
 * close is refused and the connects stay pending. */
static void test_loop_close_cancels_pending(void **state)
{
    (void)state;
    deaf d;
    deaf_open(&d);
    int fds = open_fds();
    pg_loop *loop;
    assert_int_equal(pg_loop_new(&loop), 0);
    gai_hold(true);
    client c = { 0 }, l = { 0 };
    recorder_init(&c.rec);
    recorder_init(&l.rec);
    assert_int_equal(pg_tcp_connect(loop, "127.0.0.1", d.port, 0, client_factory, &c, client_done, &c), 0);
    assert_int_equal(pg_tcp_connect(loop, "unanswered.test", 80, 0, client_factory, &l, client_done, &l), 0);
    run_idle(loop, 2);

    recorder r;
    recorder_init(&r);
    int sv[2];
    make_socketpair(sv, 0);
    pg_transport *t;
    assert_int_equal(pg_stream_adopt_fd(loop, sv[0], recorder_factory, &r, &t), 0);
    assert_int_equal(pg_loop_close(loop), -EBUSY);
    assert_int_equal(c.done_calls + l.done_calls, 0); /* left intact */
    pg_transport_close(t);
    RUN_UNTIL(loop, r.lost == 1);
    close(sv[1]);

    assert_int_equal(pg_loop_close(loop), 0);
    assert_int_equal(c.done_calls, 1);
    assert_int_equal(c.error, -ECANCELED);
    assert_int_equal(l.done_calls, 1);
    assert_int_equal(l.error, -ECANCELED);
    gai_release_and_wait();
    assert_int_equal(open_fds(), fds);
    recorder_free(&r);
    deaf_close(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_timeout),
        cmocka_unit_test(test_lookup_never_answered_times_out),
        cmocka_unit_test(test_cancel_lookup),
        cmocka_unit_test(test_cancel_connect),
        cmocka_unit_test(test_cancel_after_connected),
        cmocka_unit_test(test_loop_close_cancels_pending),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
