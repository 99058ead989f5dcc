/* PROTOGEN_TRACE: the exact line format, connection numbering and details. */
#include <fcntl.h>
#include <signal.h>
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

/* ---- tracing never blocks the loop ---------------------------------------- */

/* Reads what the pipe holds now (non-blocking) and appends it to buf. */
static size_t read_pipe(int fd, char *buf, size_t len, size_t cap)
{
    for (;;) {
        assert_true(len < cap - 1);
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    return len;
}

/* The lines of text that start with prefix. */
static int count_lines(const char *text, const char *prefix)
{
    int n = 0;
    size_t plen = strlen(prefix);
    for (const char *p = text; *p;) {
        if (strncmp(p, prefix, plen) == 0)
            n++;
        const char *nl = strchr(p, '\n');
        if (nl == NULL)
            break;
        p = nl + 1;
    }
    return n;
}

/* The n of the one "0 trace_dropped <n>" line in text, and that it comes
 * right before `next`. */
static long dropped_before(const char *text, const char *next)
{
    const char *note = strstr(text, "0 trace_dropped ");
    assert_non_null(note);
    assert_true(note == text || note[-1] == '\n');
    char *end;
    long n = strtol(note + strlen("0 trace_dropped "), &end, 10);
    assert_true(n > 0);
    assert_true(end[0] == '\n');
    assert_true(strncmp(end + 1, next, strlen(next)) == 0);
    assert_null(strstr(end, "0 trace_dropped "));
    return n;
}

static void one_connection(pg_loop *loop)
{
    int sv[2];
    recorder a;
    make_socketpair(sv, 0);
    recorder_init(&a);
    pg_transport *t;
    assert_int_equal(pg_stream_adopt_fd(loop, sv[0], recorder_factory, &a, &t), 0);
    RUN_UNTIL(loop, a.made == 1);
    pg_transport_close(t);
    RUN_UNTIL(loop, a.lost == 1);
    close(sv[1]);
    recorder_free(&a);
}

/* A FIFO nobody reads: the program starts anyway (opening it used to wait for
 * a reader), lines wait in the pipe until it is full, the rest are dropped
 * and counted, and the count is in the trace once a reader has made room. A
 * SIGALRM ends the test if anything blocks. */
static void test_trace_fifo_without_reader_never_blocks(void **state)
{
    (void)state;
    char path[] = "/tmp/pg_trace_fifo_XXXXXX";
    int tmp = mkstemp(path);
    assert_true(tmp >= 0);
    close(tmp);
    unlink(path);
    assert_int_equal(mkfifo(path, 0600), 0);
    assert_int_equal(setenv("PROTOGEN_TRACE", path, 1), 0);
    alarm(10);
    pg__trace_reset();
    assert_true(pg__trace_fd >= 0);

    enum { LINES = 20000 }; /* 180 KB: more than a pipe holds */
    for (int i = 0; i < LINES; i++)
        pg__trace_write(7, "filler");
    int reader = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    assert_true(reader >= 0);
    static char buf[1 << 20];
    size_t len = read_pipe(reader, buf, 0, sizeof buf);
    int kept = count_lines(buf, "7 filler\n");
    assert_true(kept > 0 && kept < LINES);
    assert_int_equal(count_lines(buf, "0 trace_dropped"), 0); /* said with the next line */

    pg_loop *loop;
    assert_int_equal(pg_loop_new(&loop), 0);
    one_connection(loop);
    len = read_pipe(reader, buf, len, sizeof buf);
    assert_int_equal(kept + dropped_before(buf, "1 connection_made\n"), LINES);
    assert_non_null(strstr(buf, "\n1 connection_made\n1 connection_lost ok\n"));
    pg_loop_close(loop);
    alarm(0);
    close(reader);
    unsetenv("PROTOGEN_TRACE");
    pg__trace_reset();
    unlink(path);
}

/* PROTOGEN_TRACE=- with stderr a pipe nobody drains (it froze the loop after
 * 804 connections): the loop keeps running, and the drop count is reported
 * once the pipe is drained. fd 2 itself stays blocking. */
static void test_trace_undrained_stderr_never_blocks(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    assert_true(fcntl(p[1], F_SETPIPE_SZ, 4096) > 0); /* ~220 lines */
    set_nonblocking(p[0]);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_int_equal(dup2(p[1], STDERR_FILENO), STDERR_FILENO);
    assert_int_equal(setenv("PROTOGEN_TRACE", "-", 1), 0);
    alarm(10);
    pg__trace_reset();
    assert_true(pg__trace_fd >= 0);
    assert_false(fcntl(STDERR_FILENO, F_GETFL) & O_NONBLOCK);

    pg_loop *loop;
    assert_int_equal(pg_loop_new(&loop), 0);
    int sv[2];
    recorder a;
    make_socketpair(sv, 0);
    recorder_init(&a);
    pg_transport *t;
    assert_int_equal(pg_stream_adopt_fd(loop, sv[0], recorder_factory, &a, &t), 0);
    RUN_UNTIL(loop, a.made == 1);
    enum { EVENTS = 1000 };
    for (int i = 1; i <= EVENTS; i++) {
        assert_int_equal(write(sv[1], "x", 1), 1);
        RUN_UNTIL(loop, a.data_calls == i); /* the loop keeps running */
    }
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(p[1]);
    static char buf[1 << 20];
    size_t len = read_pipe(p[0], buf, 0, sizeof buf);
    int kept = count_lines(buf, "1 data_received 1\n");
    assert_true(kept > 0 && kept < EVENTS);
    pg_transport_close(t);
    RUN_UNTIL(loop, a.lost == 1);
    len = read_pipe(p[0], buf, len, sizeof buf);
    assert_int_equal(kept + dropped_before(buf, "1 connection_lost ok\n"), EVENTS);
    alarm(0);
    close(sv[1]);
    recorder_free(&a);
    pg_loop_close(loop);
    unsetenv("PROTOGEN_TRACE");
    pg__trace_reset();
    close(p[0]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trace_conversation),
        cmocka_unit_test(test_trace_flow_control_and_errors),
        cmocka_unit_test(test_trace_off),
        cmocka_unit_test(test_trace_fifo_without_reader_never_blocks),
        cmocka_unit_test(test_trace_undrained_stderr_never_blocks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
