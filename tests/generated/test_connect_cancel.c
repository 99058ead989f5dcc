/* The generated NAME_connect_cancel (dialer.spec) on the built-in loop:
 * asyncio's cancel of a create_connection task. A cancelled connect ends in
 * done(-ECANCELED) on a later iteration and makes no connection; an
 * uncancelled one beside it is not touched; a second cancel, or one after
 * done, is refused. Loopback only: a listener that accepts in the kernel's
 * backlog is enough for the connect to succeed. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "dialer.h"
#include "dialer_test.h"

static void done(void *context, dialer_conn *conn, int error)
{
    struct dialer_log *log = context;
    log->done++;
    log->error = error;
    log->conn = conn;
}

static void other_done(void *context, dialer_conn *conn, int error)
{
    done(context, conn, error);
}

static int listen_loopback(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(fd, 8), 0);
    socklen_t len = sizeof sa;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

static void run_until(pg_loop *loop, const int *counter, int value)
{
    for (int i = 0; i < 1000 && *counter < value; i++)
        assert_int_equal(pg_loop_run_once(loop, 100), 0);
    assert_int_equal(*counter, value);
}

static void test_cancel_before_the_connect_ends(void **state)
{
    (void)state;
    uint16_t port;
    int lfd = listen_loopback(&port);
    pg_loop *loop;
    assert_int_equal(pg_loop_new(&loop), 0);
    struct dialer_log cancelled = { 0 }, kept = { 0 };
    assert_int_equal(dialer_connect(loop, "127.0.0.1", port, 0, &cancelled, done), 0);
    assert_int_equal(dialer_connect(loop, "127.0.0.1", port, 0, &kept, done), 0);

    assert_int_equal(dialer_connect_cancel(loop, &cancelled, other_done), -ENOENT); /* not its done */
    assert_int_equal(dialer_connect_cancel(loop, &cancelled, done), 0);
    assert_int_equal(cancelled.done, 0); /* never from inside the cancel */
    assert_int_equal(dialer_connect_cancel(loop, &cancelled, done), -EALREADY);

    run_until(loop, &kept.lost, 1);
    run_until(loop, &cancelled.done, 1);
    assert_int_equal(cancelled.error, -ECANCELED);
    assert_null(cancelled.conn);
    assert_int_equal(cancelled.made, 0);
    assert_int_equal(kept.done, 1);
    assert_int_equal(kept.error, 0);
    assert_int_equal(kept.made, 1);
    assert_int_equal(dialer_connect_cancel(loop, &cancelled, done), -ENOENT); /* done has run */
    assert_int_equal(dialer_connect_cancel(loop, &kept, done), -ENOENT);
    assert_int_equal(pg_loop_close(loop), 0);
    close(lfd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cancel_before_the_connect_ends),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
