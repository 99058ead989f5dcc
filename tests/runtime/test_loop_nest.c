/* Nesting the built-in loop in another one (pg_loop_backend_fd and
 * pg_loop_backend_timeout, loop.h): the timeout's values, a timer alone
 * making the backend fd readable when due, and an outer poll() loop that
 * owns a client socket driving the loop with pg_loop_run_once(loop, 0)
 * through a timer and an echo round trip, never spinning. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testutil.h"

static void count(void *arg)
{
    (*(int *)arg)++;
}

static int readable(int fd, int timeout_ms)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    int n;
    do
        n = poll(&p, 1, timeout_ms);
    while (n < 0 && errno == EINTR);
    assert_true(n >= 0);
    return n > 0 && (p.revents & POLLIN);
}

static void test_timeout(void **state)
{
    (void)state;
    pg_loop *loop;
    assert_int_equal(pg_loop_new(&loop), 0);
    assert_int_equal(pg_loop_backend_timeout(NULL), -EINVAL);
    assert_int_equal(pg_loop_backend_fd(NULL), -EINVAL);
    assert_int_equal(pg_loop_backend_timeout(loop), -1); /* nothing to do: wait for the fd */
    int ran = 0;
    assert_int_equal(pg_loop_call_soon(loop, count, &ran), 0);
    assert_int_equal(pg_loop_backend_timeout(loop), 0); /* ready: do not wait */
    assert_int_equal(pg_loop_run_once(loop, 0), 0);
    assert_int_equal(ran, 1);
    assert_int_equal(pg_loop_backend_timeout(loop), -1);

    pg_timer t;
    pg_timer_init(&t);
    assert_int_equal(pg_loop_call_later(loop, &t, 100000, count, &ran), 0);
    int timeout = pg_loop_backend_timeout(loop);
    assert_true(timeout > 0 && timeout <= 100000);
    pg_timer_cancel(&t);
    assert_int_equal(pg_loop_backend_timeout(loop), -1);
    assert_int_equal(pg_loop_call_later(loop, &t, 0, count, &ran), 0);
    assert_int_equal(pg_loop_backend_timeout(loop), 0); /* due */
    assert_int_equal(pg_loop_run_once(loop, 0), 0);
    assert_int_equal(ran, 2);
    assert_int_equal(pg_loop_close(loop), 0);
}

/* No I/O at all: the timerfd alone wakes a poll() on the backend fd. */
static void test_timer_makes_fd_readable(void **state)
{
    (void)state;
    pg_loop *loop;
    assert_int_equal(pg_loop_new(&loop), 0);
    int ran = 0;
    pg_timer early, late;
    pg_timer_init(&early);
    pg_timer_init(&late);
    /* Started before the loop was nested: armed by the first backend_fd. Due
     * late enough that a slow run (valgrind, a loaded machine) cannot see the
     * fd readable before the check below that it is not yet. */
    assert_int_equal(pg_loop_call_later(loop, &early, 1000, count, &ran), 0);
    int fd = pg_loop_backend_fd(loop);
    assert_true(fd >= 0);
    assert_int_equal(pg_loop_backend_fd(loop), fd);
    assert_false(readable(fd, 0));
    assert_true(readable(fd, 10000)); /* no timeout given: woken by the timer */
    assert_int_equal(ran, 0);         /* it runs from the loop, not before */
    assert_int_equal(pg_loop_run_once(loop, 0), 0);
    assert_int_equal(ran, 1);
    assert_false(readable(fd, 0)); /* used up, nothing armed */

    /* Started once nested; an earlier cancelled one only wakes early. */
    assert_int_equal(pg_loop_call_later(loop, &early, 5, count, &ran), 0);
    assert_int_equal(pg_loop_call_later(loop, &late, 30, count, &ran), 0);
    pg_timer_cancel(&early);
    int wakeups = 0;
    while (ran < 2) { /* ran changes in the loop's callback */
        assert_true(wakeups++ < 10);
        assert_true(readable(fd, 10000));
        assert_int_equal(pg_loop_run_once(loop, 0), 0);
    }
    assert_int_equal(ran, 2);
    assert_false(pg_timer_is_active(&late));
    assert_int_equal(pg_loop_close(loop), 0);
}

/* ---- an outer poll() loop ------------------------------------------------ */

static pg_transport *server_side;

static void echo(recorder *r, const uint8_t *data, size_t len)
{
    assert_int_equal(pg_transport_write(r->transport, data, len), 0);
}

static void made(recorder *r)
{
    server_side = r->transport;
}

static uint16_t port_of(pg_server *server)
{
    struct sockaddr_storage ss;
    socklen_t len;
    assert_int_equal(pg_server_sockname(server, &ss, &len), 0);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

typedef struct outer {
    pg_loop *loop;
    int client;
    int wakeups;
} outer;

/* One turn of the outer loop: wait for the loop's fd or the client's, as
 * long as the loop allows, then let the loop run without waiting. Returns
 * the client's revents. */
static short outer_turn(outer *o, short client_events)
{
    struct pollfd p[2] = { { .fd = pg_loop_backend_fd(o->loop), .events = POLLIN },
                           { .fd = o->client, .events = client_events } };
    int timeout = pg_loop_backend_timeout(o->loop);
    int n;
    do
        n = poll(p, 2, timeout < 0 ? 10000 : timeout); /* never for ever in a test */
    while (n < 0 && errno == EINTR);
    assert_true(n >= 0);
    o->wakeups++;
    assert_int_equal(pg_loop_run_once(o->loop, 0), 0);
    return p[1].revents;
}

static void test_outer_poll_loop(void **state)
{
    (void)state;
    outer o = { 0 };
    assert_int_equal(pg_loop_new(&o.loop), 0);
    recorder r;
    recorder_init(&r);
    r.hooks.data = echo;
    r.hooks.made = made;
    pg_server *server;
    assert_int_equal(pg_tcp_listen(o.loop, "127.0.0.1", 0, NULL, recorder_factory, &r, &server), 0);

    int fired = 0;
    pg_timer t;
    pg_timer_init(&t);
    assert_int_equal(pg_loop_call_later(o.loop, &t, 15, count, &fired), 0);

    o.client = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    assert_true(o.client >= 0);
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port_of(server)) };
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int c = connect(o.client, (struct sockaddr *)&sin, sizeof sin);
    assert_true(c == 0 || errno == EINPROGRESS);
    while (!(outer_turn(&o, POLLOUT) & POLLOUT))
        assert_true(o.wakeups < 50);
    assert_int_equal(send(o.client, "ping", 4, MSG_NOSIGNAL), 4);

    char buf[8];
    size_t got = 0;
    while (got < 4 || fired == 0) {
        assert_true(o.wakeups < 100); /* woken by events, never a spin */
        if (outer_turn(&o, got < 4 ? POLLIN : 0) & POLLIN) {
            ssize_t n = recv(o.client, buf + got, sizeof buf - got, 0);
            assert_true(n > 0);
            got += (size_t)n;
        }
    }
    assert_int_equal(got, 4);
    assert_memory_equal(buf, "ping", 4);
    assert_int_equal(fired, 1);
    assert_string_equal(r.log, "made data");

    /* EOF from the client: the server side's eof and connection_lost. */
    close(o.client);
    o.client = -1;
    while (r.lost == 0)
        assert_true(outer_turn(&o, 0) >= 0 && o.wakeups < 150);
    assert_string_equal(r.log, "made data eof lost:ok");
    pg_server_close(server);
    while (pg_loop_close(o.loop) == -EBUSY)
        assert_int_equal(pg_loop_run_once(o.loop, 0), 0);
    recorder_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_timer_makes_fd_readable),
        cmocka_unit_test(test_outer_poll_loop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
