/* PROTOGEN_TRACE: the exact line format, connection numbering and details. */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "testutil.h"

typedef struct trace_file {
    char path[64];
} trace_file;

/* Points PROTOGEN_TRACE at a fresh temporary file and restarts numbering. */
static void trace_to_temp(trace_file *tf)
{
    snprintf(tf->path, sizeof tf->path, "/tmp/pg_trace_XXXXXX");
    int fd = mkstemp(tf->path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(setenv("PROTOGEN_TRACE", tf->path, 1), 0);
    pg__trace_reset();
    assert_true(pg__trace_fd >= 0);
}

static char *trace_read(trace_file *tf)
{
    static char buf[4096];
    int fd = open(tf->path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    ssize_t n = read(fd, buf, sizeof buf - 1);
    assert_true(n >= 0);
    buf[n] = '\0';
    close(fd);
    return buf;
}

static void trace_done(trace_file *tf)
{
    unsetenv("PROTOGEN_TRACE");
    pg__trace_reset();
    unlink(tf->path);
}

static void hello_then_eof(recorder *r)
{
    assert_int_equal(pg_transport_write(r->transport, "hello", 5), 0);
    assert_int_equal(pg_transport_write_eof(r->transport), 0);
}

static bool reply_and_close(recorder *r)
{
    assert_int_equal(pg_transport_write(r->transport, "bye", 3), 0);
    pg_transport_close(r->transport);
    return true;
}

static void test_trace_conversation(void **state)
{
    (void)state;
    trace_file tf;
    trace_to_temp(&tf);
    pg_loop *loop;
    assert_int_equal(pg_loop_new(&loop), 0);
    /* A listening socket gets no number. */
    pg_server *server;
    assert_int_equal(pg_tcp_listen(loop, "127.0.0.1", 0, NULL, recorder_factory, NULL, &server), 0);

    int sv[2];
    recorder a, b;
    make_socketpair(sv, 0);
    recorder_init(&a);
    recorder_init(&b);
    a.hooks.made = hello_then_eof;
    b.hooks.eof = reply_and_close;
    assert_int_equal(pg_stream_adopt_fd(loop, sv[0], recorder_factory, &a, NULL), 0);
    assert_int_equal(pg_stream_adopt_fd(loop, sv[1], recorder_factory, &b, NULL), 0);
    RUN_UNTIL(loop, a.lost && b.lost);
    assert_string_equal(trace_read(&tf),
                        "1 connection_made\n"
                        "2 connection_made\n"
                        "2 data_received 5\n"
                        "2 eof_received\n"
                        "2 connection_lost ok\n"
                        "1 data_received 3\n"
                        "1 eof_received\n"
                        "1 connection_lost ok\n");
    pg_server_close(server);
    recorder_free(&a);
    recorder_free(&b);
    pg_loop_close(loop);
    trace_done(&tf);
}

static void test_trace_flow_control_and_errors(void **state)
{
    (void)state;
    trace_file tf;
    trace_to_temp(&tf);
    pg_loop *loop;
    assert_int_equal(pg_loop_new(&loop), 0);
    int sv[2];
    recorder a;
    make_socketpair(sv, 4096);
    set_nonblocking(sv[1]);
    size_t prefill = fill_socket(sv[0]);
    recorder_init(&a);
    pg_transport *t;
    assert_int_equal(pg_stream_adopt_fd(loop, sv[0], recorder_factory, &a, &t), 0);
    RUN_UNTIL(loop, a.made == 1);
    assert_int_equal(pg_transport_set_write_buffer_limits(t, 4, PG_LIMIT_DEFAULT), 0);
    assert_int_equal(pg_transport_write(t, "abcdef", 6), 0);
    size_t total = 0;
    RUN_UNTIL(loop, (total += drain_socket(sv[1], NULL, 0, NULL), a.resumes == 1));
    RUN_UNTIL(loop, (total += drain_socket(sv[1], NULL, 0, NULL), total == prefill + 6));
    close(sv[1]);
    assert_int_equal(pg_transport_write(t, "x", 1), 0); /* EPIPE: fatal */
    RUN_UNTIL(loop, a.lost == 1);
    assert_string_equal(trace_read(&tf),
                        "1 connection_made\n"
                        "1 pause_writing 6\n"
                        "1 resume_writing 0\n"
                        "1 connection_lost EPIPE\n");
    recorder_free(&a);
    pg_loop_close(loop);
    trace_done(&tf);
}

static void test_trace_off(void **state)
{
    (void)state;
    trace_file tf;
    trace_to_temp(&tf);
    unsetenv("PROTOGEN_TRACE");
    pg__trace_reset();
    assert_int_equal(pg__trace_fd, -1);
    pg_loop *loop;
    assert_int_equal(pg_loop_new(&loop), 0);
    int sv[2];
    recorder a;
    make_socketpair(sv, 0);
    recorder_init(&a);
    pg_transport *t;
    assert_int_equal(pg_stream_adopt_fd(loop, sv[0], recorder_factory, &a, &t), 0);
    RUN_UNTIL(loop, a.made == 1);
    pg_transport_close(t);
    RUN_UNTIL(loop, a.lost == 1);
    assert_string_equal(trace_read(&tf), "");
    close(sv[1]);
    recorder_free(&a);
    pg_loop_close(loop);
    trace_done(&tf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trace_conversation),
        cmocka_unit_test(test_trace_flow_control_and_errors),
        cmocka_unit_test(test_trace_off),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
