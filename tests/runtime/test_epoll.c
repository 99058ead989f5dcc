/* A failing EPOLL_CTL_MOD (the kernel out of memory) is an error of that
 * transport: connection_lost(that error), never a stale interest that makes
 * the loop spin. epoll_ctl goes through the test's wrapper. */
#include <sys/epoll.h>
#include <unistd.h>

#include "dgram_recorder.h"

int __real_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev);
int __wrap_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev);

static int fail_mod_fd = -1; /* the fd whose next EPOLL_CTL_MOD fails */

int __wrap_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
    if (op == EPOLL_CTL_MOD && fd == fail_mod_fd) {
        fail_mod_fd = -1;
        errno = ENOMEM;
        return -1;
    }
    return __real_epoll_ctl(epfd, op, fd, ev);
}

/* The write buffer drains and the write watcher goes (READ stays: a MOD);
 * the MOD fails. Before, EPOLLOUT stayed in the set, always ready and masked
 * out: every wait returned at once, and nothing ever ended the connection. */
static void test_failed_mod_when_the_buffer_drains(void **state)
{
    (void)state;
    stream_fixture f;
    stream_fixture_start(&f, true); /* sv[0]'s send buffer is full */
    assert_int_equal(pg_transport_write(f.t, "abc", 3), 0);
    assert_int_equal(pg_transport_get_write_buffer_size(f.t), 3);
    fail_mod_fd = f.sv[0];
    RUN_UNTIL(f.loop, (drain_socket(f.sv[1], NULL, 0, NULL), f.r.lost == 1));
    assert_int_equal(f.r.lost_error, -ENOMEM);
    assert_int_equal(fail_mod_fd, -1); /* the MOD was tried */
    stream_fixture_done(&f);
}

/* pause_reading with the write watcher on: the same, from pause_reading. */
static void test_failed_mod_in_pause_reading(void **state)
{
    (void)state;
    stream_fixture f;
    stream_fixture_start(&f, true);
    assert_int_equal(pg_transport_write(f.t, "abc", 3), 0); /* WRITE on, with READ */
    fail_mod_fd = f.sv[0];
    pg_transport_pause_reading(f.t);
    assert_int_equal(write(f.sv[1], "x", 1), 1); /* a stale EPOLLIN would be ready for ever */
    RUN_UNTIL(f.loop, f.r.lost == 1);
    assert_int_equal(f.r.lost_error, -ENOMEM);
    stream_fixture_done(&f);
}

/* A datagram endpoint: the queue drains and the write watcher goes (READ
 * stays: a MOD); the MOD fails. Before, the result was ignored: the fd was out
 * of the epoll set, the endpoint deaf for ever and nothing ended it. */
static void test_failed_mod_when_the_datagram_queue_drains(void **state)
{
    (void)state;
    pg_loop *loop;
    int sv[2];
    dgram_rec r;
    assert_int_equal(pg_loop_new(&loop), 0);
    make_dgram_pair(sv, 4096);
    dgram_rec_init(&r);
    assert_int_equal(pg_datagram_adopt_fd(loop, sv[0], dgram_rec_factory, &r, NULL), 0);
    RUN_UNTIL(loop, r.made == 1);
    fill_dgram_socket(sv[0]);
    assert_int_equal(pg_datagram_transport_sendto(r.transport, "abc", 3, NULL, 0), 0);
    assert_int_equal(pg_datagram_transport_get_write_buffer_size(r.transport), 3 + PG_DATAGRAM_OVERHEAD);
    fail_mod_fd = sv[0];
    RUN_UNTIL(loop, (drain_dgram_socket(sv[1], NULL, 0), r.lost == 1));
    assert_int_equal(r.lost_error, -ENOMEM);
    assert_int_equal(fail_mod_fd, -1);
    pg_loop_close(loop);
    close(sv[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_failed_mod_when_the_buffer_drains),
        cmocka_unit_test(test_failed_mod_in_pause_reading),
        cmocka_unit_test(test_failed_mod_when_the_datagram_queue_drains),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
