/* Pipe transports (asyncio's connect_read_pipe / connect_write_pipe): the
 * relevant cases of CPython's test_unix_events.py UnixReadPipeTransportTests
 * and UnixWritePipeTransportTests, over real pipes, plus SIGPIPE handling. */
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testutil.h"

typedef struct pipe_fixture {
    pg_loop *loop;
    int p[2]; /* p[0] read end, p[1] write end */
    recorder r;
    pg_transport *t;
} pipe_fixture;

static void fx_read(pipe_fixture *f)
{
    memset(f, 0, sizeof *f);
    assert_int_equal(pg_loop_new(&f->loop), 0);
    assert_int_equal(pipe2(f->p, O_CLOEXEC), 0);
    recorder_init(&f->r);
}

static void fx_start_read(pipe_fixture *f)
{
    assert_int_equal(pg_pipe_connect_read(f->loop, f->p[0], recorder_factory, &f->r, &f->t), 0);
    assert_int_equal(f->r.made, 0);
    RUN_UNTIL(f->loop, f->r.made == 1);
}

static void fx_start_write(pipe_fixture *f)
{
    assert_int_equal(pg_pipe_connect_write(f->loop, f->p[1], recorder_factory, &f->r, &f->t), 0);
    RUN_UNTIL(f->loop, f->r.made == 1);
}

static void fx_done(pipe_fixture *f, int other_end)
{
    if (f->r.made && !f->r.lost) {
        pg_transport_abort(f->t);
        RUN_UNTIL(f->loop, f->r.lost == 1);
    }
    if (other_end >= 0)
        close(other_end);
    recorder_free(&f->r);
    pg_loop_close(f->loop);
}

/* ---- read pipes ----------------------------------------------------------- */

/* test_read_ready, test_read_ready_eof: data, then eof_received and
 * connection_lost(None), whatever eof_received answers. */
static void test_read_data_then_eof(void **state)
{
    (void)state;
    pipe_fixture f;
    fx_read(&f);
    f.r.eof_keep_open = true; /* ignored by read pipes */
    fx_start_read(&f);
    assert_true(pg_transport_is_reading(f.t));
    assert_false(pg_transport_can_write_eof(f.t));
    assert_int_equal(write(f.p[1], "data", 4), 4);
    RUN_UNTIL(f.loop, f.r.rx_len == 4);
    close(f.p[1]);
    RUN_UNTIL(f.loop, f.r.lost == 1);
    assert_string_equal(f.r.log, "made data eof lost:ok");
    assert_memory_equal(f.r.rx, "data", 4);
    fx_done(&f, -1);
}

/* test_pause_reading / test_resume_reading, and pause inside connection_made. */
static void test_read_pause_resume(void **state)
{
    (void)state;
    pipe_fixture f;
    fx_read(&f);
    f.r.pause_reading_in_made = true;
    assert_int_equal(write(f.p[1], "abc", 3), 3);
    fx_start_read(&f);
    run_idle(f.loop, 3);
    assert_int_equal(f.r.data_calls, 0);
    assert_false(pg_transport_is_reading(f.t));
    pg_transport_resume_reading(f.t);
    pg_transport_resume_reading(f.t); /* idempotent */
    RUN_UNTIL(f.loop, f.r.rx_len == 3);
    pg_transport_pause_reading(f.t);
    pg_transport_pause_reading(f.t);
    assert_int_equal(write(f.p[1], "d", 1), 1);
    run_idle(f.loop, 3);
    assert_int_equal(f.r.rx_len, 3);
    fx_done(&f, f.p[1]);
}

/* test_close, test_close_already_closing: connection_lost(None) once. */
static void test_read_close(void **state)
{
    (void)state;
    pipe_fixture f;
    fx_read(&f);
    fx_start_read(&f);
    pg_transport_close(f.t);
    assert_true(pg_transport_is_closing(f.t));
    assert_false(pg_transport_is_reading(f.t));
    pg_transport_close(f.t);
    RUN_UNTIL(f.loop, f.r.lost == 1);
    assert_string_equal(f.r.log, "made lost:ok");
    assert_true(fcntl(f.p[1], F_GETFD) >= 0);
    /* The transport closed the read end: writing now fails with EPIPE. */
    signal(SIGPIPE, SIG_IGN);
    assert_int_equal(write(f.p[1], "x", 1), -1);
    assert_int_equal(errno, EPIPE);
    signal(SIGPIPE, SIG_DFL);
    fx_done(&f, f.p[1]);
}

/* A read pipe cannot be written; extra info names the pipe. */
static void test_read_pipe_is_read_only(void **state)
{
    (void)state;
    pipe_fixture f;
    fx_read(&f);
    fx_start_read(&f);
    assert_int_equal(pg_transport_write(f.t, "x", 1), -ENOTSUP);
    assert_int_equal(pg_transport_write_eof(f.t), -ENOTSUP);
    pg_extra_info info;
    assert_int_equal(pg_transport_get_extra_info(f.t, PG_EXTRA_PIPE, &info), 0);
    assert_int_equal(info.fd, f.p[0]);
    assert_int_equal(pg_transport_get_extra_info(f.t, PG_EXTRA_PEERNAME, &info), -ENOENT);
    fx_done(&f, f.p[1]);
}

/* test_ctor with a bad fd type: asyncio's ValueError for a regular file. */
static void test_reject_regular_files(void **state)
{
    (void)state;
    pg_loop *loop;
    assert_int_equal(pg_loop_new(&loop), 0);
    recorder r;
    recorder_init(&r);
    char path[] = "/tmp/pg_pipe_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    assert_int_equal(pg_pipe_connect_read(loop, fd, recorder_factory, &r, NULL), -EINVAL);
    assert_int_equal(pg_pipe_connect_write(loop, fd, recorder_factory, &r, NULL), -EINVAL);
    assert_int_equal(pg_pipe_connect_read(loop, -1, recorder_factory, &r, NULL), -EINVAL);
    run_idle(loop, 2);
    assert_int_equal(r.made, 0);
    close(fd);
    pg_loop_close(loop);
}

/* ---- write pipes ---------------------------------------------------------- */

/* test_write, test_write_no_data, then write_eof: the reader sees the bytes
 * and then EOF; connection_lost(None). */
static void test_write_then_eof(void **state)
{
    (void)state;
    pipe_fixture f;
    fx_read(&f);
    fx_start_write(&f);
    assert_false(pg_transport_is_reading(f.t));
    assert_true(pg_transport_can_write_eof(f.t));
    assert_int_equal(pg_transport_write(f.t, "", 0), 0);
    assert_int_equal(pg_transport_write(f.t, "data", 4), 0);
    assert_int_equal(pg_transport_get_write_buffer_size(f.t), 0);
    assert_int_equal(pg_transport_write_eof(f.t), 0);
    assert_true(pg_transport_is_closing(f.t));
    RUN_UNTIL(f.loop, f.r.lost == 1);
    assert_string_equal(f.r.log, "made lost:ok");
    char buf[8];
    assert_int_equal(read(f.p[0], buf, sizeof buf), 4);
    assert_int_equal(read(f.p[0], buf, sizeof buf), 0); /* EOF: the transport closed its end */
    fx_done(&f, f.p[0]);
}

/* test_write_buffer / test_write_again / test__write_ready: what the pipe does
 * not take is buffered, pause_writing above high, flushed as the reader reads;
 * close() flushes, then connection_lost(None). Writes after close are dropped
 * (test_write_close). */
static void test_write_buffer_and_close(void **state)
{
    (void)state;
    pipe_fixture f;
    fx_read(&f);
    fx_start_write(&f);
    assert_int_equal(pg_transport_set_write_buffer_limits(f.t, 1024, 0), 0);
    static uint8_t big[256 * 1024];
    memset(big, 'x', sizeof big);
    assert_int_equal(pg_transport_write(f.t, big, sizeof big), 0);
    size_t buffered = pg_transport_get_write_buffer_size(f.t);
    assert_true(buffered > 0); /* a pipe holds 64 KiB */
    assert_int_equal(f.r.pauses, 1);
    pg_transport_close(f.t);
    assert_int_equal(pg_transport_write(f.t, "dropped", 7), 0);
    assert_int_equal(pg_transport_get_write_buffer_size(f.t), buffered);
    size_t got = 0;
    bool eof = false;
    set_nonblocking(f.p[0]);
    while (!eof) {
        uint8_t buf[65536];
        ssize_t n = read(f.p[0], buf, sizeof buf);
        if (n > 0)
            got += (size_t)n;
        else if (n == 0)
            eof = true;
        else
            assert_int_equal(pg_loop_run_once(f.loop, 1000), 0);
    }
    assert_int_equal(got, sizeof big);
    RUN_UNTIL(f.loop, f.r.lost == 1);
    assert_string_equal(f.r.log, "made pause resume lost:ok");
    fx_done(&f, f.p[0]);
}

/* test__read_ready with an empty buffer: the reader went away while idle,
 * connection_lost(None). */
static void test_reader_gone_idle(void **state)
{
    (void)state;
    pipe_fixture f;
    fx_read(&f);
    fx_start_write(&f);
    close(f.p[0]);
    RUN_UNTIL(f.loop, f.r.lost == 1);
    assert_string_equal(f.r.log, "made lost:ok");
    fx_done(&f, -1);
}

/* test__read_ready with a buffer: connection_lost(BrokenPipeError), and no
 * SIGPIPE (its default action would kill this test). */
static void test_reader_gone_with_pending_data(void **state)
{
    (void)state;
    pipe_fixture f;
    fx_read(&f);
    fx_start_write(&f);
    static uint8_t big[256 * 1024];
    assert_int_equal(pg_transport_write(f.t, big, sizeof big), 0);
    assert_true(pg_transport_get_write_buffer_size(f.t) > 0);
    close(f.p[0]);
    RUN_UNTIL(f.loop, f.r.lost == 1);
    assert_int_equal(f.r.lost_error, -EPIPE);
    assert_string_equal(f.r.log, "made pause lost:EPIPE");
    fx_done(&f, -1);
}

/* test_write_err: a write that fails at once (EPIPE) is fatal, and raises no
 * SIGPIPE; a later write is dropped. The SIGPIPE disposition is the default
 * one throughout. */
static void test_write_error_no_sigpipe(void **state)
{
    (void)state;
    pipe_fixture f;
    fx_read(&f);
    signal(SIGPIPE, SIG_DFL);
    assert_int_equal(pg_pipe_connect_write(f.loop, f.p[1], recorder_factory, &f.r, &f.t), 0);
    close(f.p[0]);
    /* Before the loop runs: no reader-gone event has been seen yet. */
    assert_int_equal(pg_transport_write(f.t, "x", 1), 0);
    assert_true(pg_transport_is_closing(f.t));
    assert_int_equal(pg_transport_write(f.t, "y", 1), 0); /* dropped */
    RUN_UNTIL(f.loop, f.r.lost == 1);
    assert_string_equal(f.r.log, "made lost:EPIPE");
    sigset_t pending;
    assert_int_equal(sigpending(&pending), 0);
    assert_false(sigismember(&pending, SIGPIPE));
    fx_done(&f, -1);
}

/* A SIGPIPE that was pending before the write is not ours: it stays pending. */
static void test_foreign_sigpipe_kept(void **state)
{
    (void)state;
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    assert_int_equal(pthread_sigmask(SIG_BLOCK, &set, &old), 0);
    assert_int_equal(raise(SIGPIPE), 0);
    int p[2];
    assert_int_equal(pipe(p), 0);
    close(p[0]);
    struct iovec iov = { .iov_base = "x", .iov_len = 1 };
    errno = 0;
    /* The runtime's internal writer, through a write pipe transport. */
    pg_loop *loop;
    assert_int_equal(pg_loop_new(&loop), 0);
    recorder r;
    recorder_init(&r);
    pg_transport *t;
    assert_int_equal(pg_pipe_connect_write(loop, p[1], recorder_factory, &r, &t), 0);
    assert_int_equal(pg_transport_writelines(t, &iov, 1), 0);
    RUN_UNTIL(loop, r.lost == 1);
    assert_int_equal(r.lost_error, -EPIPE);
    sigset_t pending;
    assert_int_equal(sigpending(&pending), 0);
    assert_true(sigismember(&pending, SIGPIPE));
    int sig;
    assert_int_equal(sigwait(&set, &sig), 0);
    assert_int_equal(sig, SIGPIPE);
    assert_int_equal(pthread_sigmask(SIG_SETMASK, &old, NULL), 0);
    recorder_free(&r);
    pg_loop_close(loop);
}

/* test_abort: the buffer is dropped, connection_lost(None) next iteration. */
static void test_write_abort(void **state)
{
    (void)state;
    pipe_fixture f;
    fx_read(&f);
    fx_start_write(&f);
    static uint8_t big[256 * 1024];
    assert_int_equal(pg_transport_write(f.t, big, sizeof big), 0);
    pg_transport_abort(f.t);
    assert_int_equal(pg_transport_get_write_buffer_size(f.t), 0);
    assert_int_equal(f.r.lost, 0);
    RUN_UNTIL(f.loop, f.r.lost == 1);
    assert_string_equal(f.r.log, "made pause lost:ok");
    fx_done(&f, f.p[0]);
}

/* A write pipe does not read: pause/resume_reading are no-ops. */
static void test_write_pipe_does_not_read(void **state)
{
    (void)state;
    pipe_fixture f;
    fx_read(&f);
    fx_start_write(&f);
    pg_transport_pause_reading(f.t);
    pg_transport_resume_reading(f.t);
    assert_false(pg_transport_is_reading(f.t));
    pg_extra_info info;
    assert_int_equal(pg_transport_get_extra_info(f.t, PG_EXTRA_PIPE, &info), 0);
    assert_int_equal(info.fd, f.p[1]);
    fx_done(&f, f.p[0]);
}

/* A socket used as a write pipe (asyncio allows it): its peer closing is the
 * reader going away. */
static void test_socket_as_write_pipe(void **state)
{
    (void)state;
    pg_loop *loop;
    assert_int_equal(pg_loop_new(&loop), 0);
    int sv[2];
    make_socketpair(sv, 0);
    recorder r;
    recorder_init(&r);
    pg_transport *t;
    assert_int_equal(pg_pipe_connect_write(loop, sv[0], recorder_factory, &r, &t), 0);
    RUN_UNTIL(loop, r.made == 1);
    assert_int_equal(pg_transport_write(t, "hi", 2), 0);
    char buf[4];
    assert_int_equal(recv(sv[1], buf, sizeof buf, 0), 2);
    close(sv[1]);
    RUN_UNTIL(loop, r.lost == 1);
    assert_string_equal(r.log, "made lost:ok");
    recorder_free(&r);
    pg_loop_close(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_data_then_eof),
        cmocka_unit_test(test_read_pause_resume),
        cmocka_unit_test(test_read_close),
        cmocka_unit_test(test_read_pipe_is_read_only),
        cmocka_unit_test(test_reject_regular_files),
        cmocka_unit_test(test_write_then_eof),
        cmocka_unit_test(test_write_buffer_and_close),
        cmocka_unit_test(test_reader_gone_idle),
        cmocka_unit_test(test_reader_gone_with_pending_data),
        cmocka_unit_test(test_write_error_no_sigpipe),
        cmocka_unit_test(test_foreign_sigpipe_kept),
        cmocka_unit_test(test_write_abort),
        cmocka_unit_test(test_write_pipe_does_not_read),
        cmocka_unit_test(test_socket_as_write_pipe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
