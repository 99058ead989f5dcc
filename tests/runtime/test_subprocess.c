/* The subprocess transport and protocol (asyncio's SubprocessTransport):
 * callback order, signals, close, stdio modes, spawn errors, reaping (pidfd
 * and the SIGCHLD fallback), tracing. Many are ports of CPython's
 * test_asyncio/test_subprocess.py and test_events.py SubprocessTestsMixin.
 *
 * Every test waits for connection_lost, so every child is reaped; none sleeps. */
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "subprocess_internal.h"
#include "subprocess_recorder.h"

#ifndef SUBPROCESS_CHILD
#error "SUBPROCESS_CHILD must name the helper child program"
#endif

#define ARGV(...) ((const char *const[]){ __VA_ARGS__, NULL })

/* Each test runs twice: reaping through pidfds, then through SIGCHLD. */
static int use_sigchld_setup(void **state)
{
    (void)state;
    pg__child_force_sigchld = true;
    return 0;
}

static int use_pidfd_setup(void **state)
{
    (void)state;
    pg__child_force_sigchld = false;
    return 0;
}

typedef struct fixture {
    pg_loop *loop;
    subrec r;
    pg_subprocess *proc; /* held */
} fixture;

static void start(fixture *f, const char *const *argv, const pg_subprocess_options *opts)
{
    memset(f, 0, sizeof *f);
    assert_int_equal(pg_loop_new(&f->loop), 0);
    subrec_init(&f->r);
    assert_int_equal(subrec_spawn(f->loop, &f->r, argv, opts, &f->proc), 0);
    assert_non_null(f->proc);
    assert_true(pg_subprocess_get_pid(f->proc) > 0);
    assert_int_equal(f->r.made, 0); /* connection_made comes from the loop */
}

static void wait_lost(fixture *f)
{
    RUN_UNTIL(f->loop, f->r.lost == 1);
}

static void finish(fixture *f)
{
    if (f->r.made == 0 || f->r.lost == 0) {
        pg_subprocess_close(f->proc);
        wait_lost(f);
    }
    pg_subprocess_release(f->proc);
    subrec_free(&f->r);
    pg_loop_close(f->loop);
}

static int returncode(fixture *f)
{
    int rc = 12345;
    assert_true(pg_subprocess_get_returncode(f->proc, &rc));
    return rc;
}

/* ---- order ------------------------------------------------------------------ */

/* CPython's test_subprocess_consistent_callbacks: every callback, per-fd order,
 * connection_lost last. The recorder asserts the order as it goes. */
static void test_consistent_callbacks(void **state)
{
    (void)state;
    fixture f;
    pg_subprocess_options opts = { .stdio = { PG_STDIO_INHERIT, PG_STDIO_PIPE, PG_STDIO_PIPE } };
    start(&f, ARGV("sh", "-c", "printf stdout; printf stderr >&2"), &opts);
    wait_lost(&f);
    assert_string_equal(subrec_text(&f.r, 1), "stdout");
    assert_string_equal(subrec_text(&f.r, 2), "stderr");
    assert_int_equal(f.r.pipe_error[1], 0);
    assert_int_equal(f.r.pipe_error[2], 0);
    assert_false(f.r.pipe_at_made[0]);
    assert_int_equal(f.r.exited, 1);
    assert_int_equal(returncode(&f), 0);
    assert_true(strncmp(f.r.log, "made ", 5) == 0);
    assert_true(strstr(f.r.log, " lost:ok") == f.r.log + strlen(f.r.log) - strlen(" lost:ok"));
    finish(&f);
}

/* test_subprocess_exec / test_subprocess_interactive: a round trip through cat. */
static void write_and_eof(subrec *r)
{
    pg_transport *in = pg_subprocess_get_pipe_transport(r->proc, 0);
    assert_non_null(in);
    assert_true(pg_transport_can_write_eof(in));
    assert_int_equal(pg_transport_write(in, "Python The Winner", 17), 0);
    assert_int_equal(pg_transport_write_eof(in), 0);
}

static void test_cat_round_trip(void **state)
{
    (void)state;
    fixture f;
    start(&f, ARGV("cat"), NULL);
    f.r.hooks.made = write_and_eof;
    wait_lost(&f);
    assert_string_equal(subrec_text(&f.r, 1), "Python The Winner");
    assert_string_equal(subrec_text(&f.r, 2), "");
    assert_int_equal(returncode(&f), 0);
    for (int fd = 0; fd < 3; fd++) {
        assert_int_equal(f.r.pipe_lost[fd], 1);
        assert_int_equal(f.r.pipe_error[fd], 0);
    }
    finish(&f);
}

/* Interactive: each line written comes back before the next is sent. */
static void echo_next_line(subrec *r, int fd, const uint8_t *data, size_t len)
{
    (void)fd;
    (void)data;
    (void)len;
    int *lines = r->user;
    if (r->out_len[1] < 6u * (size_t)*lines)
        return;
    pg_transport *in = pg_subprocess_get_pipe_transport(r->proc, 0);
    if (++*lines <= 3)
        assert_int_equal(pg_transport_write(in, "line.\n", 6), 0);
    else
        pg_transport_close(in);
}

static void first_line(subrec *r)
{
    int *lines = r->user;
    *lines = 1;
    assert_int_equal(pg_transport_write(pg_subprocess_get_pipe_transport(r->proc, 0), "line.\n", 6), 0);
}

static void test_interactive(void **state)
{
    (void)state;
    fixture f;
    int lines = 0;
    start(&f, ARGV("cat"), NULL);
    f.r.user = &lines;
    f.r.hooks.made = first_line;
    f.r.hooks.data = echo_next_line;
    wait_lost(&f);
    assert_string_equal(subrec_text(&f.r, 1), "line.\nline.\nline.\n");
    assert_int_equal(returncode(&f), 0);
    finish(&f);
}

static void test_shell(void **state)
{
    (void)state;
    fixture f;
    pg_subprocess_options opts = { .shell = true, .stdio = { PG_STDIO_DEVNULL } };
    start(&f, ARGV("echo \"$0\" \"$1\"; exit 7", "zero", "one"), &opts);
    wait_lost(&f);
    assert_string_equal(subrec_text(&f.r, 1), "zero one\n");
    assert_int_equal(returncode(&f), 7);
    finish(&f);
}

static void test_exitcode(void **state)
{
    (void)state;
    fixture f;
    start(&f, ARGV("sh", "-c", "exit 7"), NULL);
    wait_lost(&f);
    assert_int_equal(returncode(&f), 7);
    assert_int_equal(f.r.returncode, 7);
    finish(&f);
}

/* Events before connection_made wait for it: a close() straight after
 * spawning kills the child before the loop ever ran. */
static void test_events_before_connection_made_are_replayed(void **state)
{
    (void)state;
    fixture f;
    start(&f, ARGV("cat"), NULL);
    pg_subprocess_close(f.proc);
    assert_true(pg_subprocess_is_closing(f.proc));
    wait_lost(&f);
    assert_true(strncmp(f.r.log, "made ", 5) == 0);
    assert_int_equal(returncode(&f), -SIGKILL);
    for (int fd = 0; fd < 3; fd++)
        assert_int_equal(f.r.pipe_lost[fd], 1);
    finish(&f);
}

/* A child that is gone before the loop runs: its exit may well be seen before
 * connection_made has run, and still comes after it. */
static void test_child_exiting_at_once(void **state)
{
    (void)state;
    for (int i = 0; i < 20; i++) {
        fixture f;
        pg_subprocess_options opts = { .stdio = { PG_STDIO_DEVNULL, PG_STDIO_DEVNULL, PG_STDIO_DEVNULL } };
        start(&f, ARGV("true"), &opts);
        /* Let it exit first: its pidfd or SIGCHLD is ready at the first poll. */
        siginfo_t info;
        assert_int_equal(waitid(P_PID, (id_t)pg_subprocess_get_pid(f.proc), &info, WEXITED | WNOWAIT), 0);
        wait_lost(&f);
        assert_string_equal(f.r.log, "made exited:0 lost:ok");
        finish(&f);
    }
}

/* ---- signals and close ------------------------------------------------------- */

static void test_kill(void **state)
{
    (void)state;
    fixture f;
    start(&f, ARGV("cat"), NULL);
    RUN_UNTIL(f.loop, f.r.made == 1);
    assert_false(pg_subprocess_get_returncode(f.proc, NULL));
    assert_int_equal(pg_subprocess_kill(f.proc), 0);
    wait_lost(&f);
    assert_int_equal(returncode(&f), -SIGKILL);
    finish(&f);
}

static void test_terminate(void **state)
{
    (void)state;
    fixture f;
    start(&f, ARGV("cat"), NULL);
    RUN_UNTIL(f.loop, f.r.made == 1);
    assert_int_equal(pg_subprocess_terminate(f.proc), 0);
    wait_lost(&f);
    assert_int_equal(returncode(&f), -SIGTERM);
    finish(&f);
}

static void test_send_signal_sighup(void **state)
{
    (void)state;
    fixture f;
    start(&f, ARGV("cat"), NULL);
    RUN_UNTIL(f.loop, f.r.made == 1);
    assert_int_equal(pg_subprocess_send_signal(f.proc, SIGHUP), 0);
    wait_lost(&f);
    assert_int_equal(returncode(&f), -SIGHUP);
    assert_int_equal(pg_subprocess_send_signal(f.proc, -1), -EINVAL);
    finish(&f);
}

/* After process_exited: nothing to signal (a no-op, as asyncio); after
 * connection_lost: ESRCH, as asyncio's ProcessLookupError. */
static void signal_after_exit(subrec *r)
{
    assert_int_equal(pg_subprocess_kill(r->proc), 0);
    assert_int_equal(pg_subprocess_terminate(r->proc), 0);
}

static void test_signals_after_connection_lost_fail_with_esrch(void **state)
{
    (void)state;
    fixture f;
    start(&f, ARGV("sh", "-c", "exit 3"), NULL);
    f.r.hooks.exited = signal_after_exit;
    wait_lost(&f);
    assert_int_equal(returncode(&f), 3); /* not -9: the kill after exit did nothing */
    assert_int_equal(pg_subprocess_send_signal(f.proc, SIGHUP), -ESRCH);
    assert_int_equal(pg_subprocess_terminate(f.proc), -ESRCH);
    assert_int_equal(pg_subprocess_kill(f.proc), -ESRCH);
    assert_int_equal(returncode(&f), 3); /* still readable */
    pg_subprocess_close(f.proc);         /* harmless */
    finish(&f);
}

/* Inside connection_lost the process is still there (asyncio clears _proc
 * only after the callback): a signal is a no-op, as after process_exited. */
static void signal_in_connection_lost(subrec *r)
{
    assert_int_equal(pg_subprocess_kill(r->proc), 0);
    assert_int_equal(pg_subprocess_terminate(r->proc), 0);
    assert_int_equal(pg_subprocess_send_signal(r->proc, SIGHUP), 0);
}

static void test_signals_in_connection_lost_are_no_ops(void **state)
{
    (void)state;
    fixture f;
    start(&f, ARGV("sh", "-c", "exit 3"), NULL);
    f.r.hooks.lost = signal_in_connection_lost;
    wait_lost(&f);
    assert_int_equal(returncode(&f), 3);
    assert_int_equal(pg_subprocess_kill(f.proc), -ESRCH); /* after it: gone */
    finish(&f);
}

/* Releasing the hold from inside connection_lost: the memory goes once the
 * callback has returned, not under its feet (ASan sees any use after free). */
static void release_in_connection_lost(subrec *r)
{
    pg_subprocess_release(r->proc);
}

static void test_release_in_connection_lost(void **state)
{
    (void)state;
    fixture f;
    start(&f, ARGV("sh", "-c", "exit 0"), NULL);
    f.r.hooks.lost = release_in_connection_lost;
    wait_lost(&f);
    run_idle(f.loop, 2);
    subrec_free(&f.r);
    pg_loop_close(f.loop);
}

/* test_close_kill_running: close() kills a child that has not exited. */
static void test_close_kills_running_child(void **state)
{
    (void)state;
    fixture f;
    start(&f, ARGV("cat"), NULL);
    RUN_UNTIL(f.loop, f.r.made == 1);
    pg_subprocess_close(f.proc);
    pg_subprocess_close(f.proc); /* idempotent */
    assert_true(pg_subprocess_is_closing(f.proc));
    assert_false(pg_subprocess_get_returncode(f.proc, NULL)); /* close does not wait */
    wait_lost(&f);
    assert_int_equal(returncode(&f), -SIGKILL);
    finish(&f);
}

/* test_close_dont_kill_finished: a child that exited keeps its status. */
static void test_close_leaves_finished_child_alone(void **state)
{
    (void)state;
    fixture f;
    start(&f, ARGV("sh", "-c", "exit 5"), NULL);
    RUN_UNTIL(f.loop, f.r.exited == 1);
    pg_subprocess_close(f.proc);
    wait_lost(&f);
    assert_int_equal(returncode(&f), 5);
    finish(&f);
}

/* Closing from inside a callback. */
static void close_on_first_output(subrec *r, int fd, const uint8_t *data, size_t len)
{
    (void)fd;
    (void)data;
    (void)len;
    pg_subprocess_close(r->proc);
}

static void test_close_from_pipe_data_received(void **state)
{
    (void)state;
    fixture f;
    start(&f, ARGV("sh", "-c", "echo hello; exec cat"), NULL);
    f.r.hooks.data = close_on_first_output;
    wait_lost(&f);
    assert_int_equal(returncode(&f), -SIGKILL);
    finish(&f);
}

/* A child that ignores SIGTERM: terminate() does nothing, kill() after a
 * grace period does. */
typedef struct grace {
    fixture *f;
    pg_timer timer;
    bool killed;
} grace;

static void grace_over(void *arg)
{
    grace *g = arg;
    assert_false(pg_subprocess_get_returncode(g->f->proc, NULL)); /* SIGTERM did nothing */
    g->killed = true;
    assert_int_equal(pg_subprocess_kill(g->f->proc), 0);
}

static void terminate_when_ready(subrec *r, int fd, const uint8_t *data, size_t len)
{
    (void)data;
    (void)len;
    grace *g = r->user;
    if (fd != 1 || strcmp(subrec_text(r, 1), "ready\n") != 0)
        return;
    assert_int_equal(pg_subprocess_terminate(r->proc), 0);
    pg_timer_init(&g->timer);
    assert_int_equal(pg_loop_call_later(g->f->loop, &g->timer, 200, grace_over, g), 0);
}

static void test_child_ignoring_sigterm_is_killed_after_grace(void **state)
{
    (void)state;
    fixture f;
    grace g = { .f = &f };
    start(&f, ARGV(SUBPROCESS_CHILD, "ignore-term"), NULL);
    f.r.user = &g;
    f.r.hooks.data = terminate_when_ready;
    wait_lost(&f);
    assert_true(g.killed);
    assert_int_equal(returncode(&f), -SIGKILL);
    finish(&f);
}

/* test_kill_issue43884 and the like: a grandchild holding the child's pipes
 * keeps the transport open after the child exited, until it lets go. */
static void release_grandchild(subrec *r)
{
    /* The child has exited; the grandchild still holds stdout. */
    assert_int_equal(r->pipe_lost[1], 0);
    pg_transport *in = pg_subprocess_get_pipe_transport(r->proc, 0);
    assert_non_null(in);
    assert_int_equal(pg_transport_write(in, "go\n", 3), 0);
    assert_int_equal(pg_transport_write_eof(in), 0);
}

static void test_grandchild_holding_a_pipe_delays_connection_lost(void **state)
{
    (void)state;
    fixture f;
    /* Through fd 3: a non-interactive shell gives background jobs /dev/null for stdin. */
    start(&f, ARGV("sh", "-c", "exec 3<&0; { read line <&3; echo \"late $line\"; } & exit 3"), NULL);
    f.r.hooks.exited = release_grandchild;
    wait_lost(&f);
    assert_int_equal(returncode(&f), 3);
    assert_string_equal(subrec_text(&f.r, 1), "late go\n");
    /* The grandchild's output came after process_exited. */
    assert_true(strstr(f.r.log, "exited:3") < strstr(f.r.log, "out1"));
    assert_int_equal(f.r.pipe_error[1], 0);
    finish(&f);
}

/* The child stops reading with bytes still buffered for it: EPIPE. */
static void write_a_lot(subrec *r)
{
    static uint8_t big[1 << 20];
    assert_int_equal(pg_transport_write(pg_subprocess_get_pipe_transport(r->proc, 0), big, sizeof big), 0);
}

static void test_stdin_reader_gone_with_buffered_data(void **state)
{
    (void)state;
    fixture f;
    start(&f, ARGV("sh", "-c", "exit 0"), NULL);
    f.r.hooks.made = write_a_lot;
    wait_lost(&f);
    assert_int_equal(f.r.pipe_error[0], -EPIPE);
    assert_int_equal(returncode(&f), 0);
    finish(&f);
}

/* ---- flow control --------------------------------------------------------------- */

/* pause_reading on stdout inside connection_made: nothing is read until resume. */
typedef struct paused_reader {
    fixture *f;
    bool resumed;
} paused_reader;

static void pause_stdout(subrec *r)
{
    pg_transport *out = pg_subprocess_get_pipe_transport(r->proc, 1);
    pg_transport_pause_reading(out);
    assert_false(pg_transport_is_reading(out));
}

static void resume_stdout_after_exit(subrec *r)
{
    paused_reader *pr = r->user;
    assert_int_equal(r->out_total[1], 0);
    pr->resumed = true;
    pg_transport_resume_reading(pg_subprocess_get_pipe_transport(r->proc, 1));
}

static void test_pause_reading_in_connection_made(void **state)
{
    (void)state;
    fixture f;
    paused_reader pr = { .f = &f };
    pg_subprocess_options opts = { .stdio = { PG_STDIO_DEVNULL, PG_STDIO_PIPE, PG_STDIO_DEVNULL } };
    start(&f, ARGV("sh", "-c", "echo data"), &opts);
    f.r.user = &pr;
    f.r.hooks.made = pause_stdout;
    f.r.hooks.exited = resume_stdout_after_exit;
    wait_lost(&f);
    assert_true(pr.resumed);
    assert_string_equal(subrec_text(&f.r, 1), "data\n");
    assert_string_equal(f.r.log, "made exited:0 out1 lost1:ok lost:ok");
    finish(&f);
}

/* pause_writing / resume_writing come from the stdin pipe's watermarks. */
static void fill_stdin(subrec *r)
{
    pg_transport *in = pg_subprocess_get_pipe_transport(r->proc, 0);
    static uint8_t chunk[256 * 1024];
    assert_int_equal(pg_transport_set_write_buffer_limits(in, 4096, 1024), 0);
    assert_int_equal(pg_transport_write(in, chunk, sizeof chunk), 0); /* more than a pipe holds */
    assert_int_equal(r->pauses, 1);
    assert_int_equal(pg_transport_write_eof(in), 0);
}

static void test_stdin_flow_control(void **state)
{
    (void)state;
    fixture f;
    pg_subprocess_options opts = { .stdio = { PG_STDIO_PIPE, PG_STDIO_PIPE, PG_STDIO_DEVNULL } };
    start(&f, ARGV("cat"), &opts);
    f.r.discard_data = true;
    f.r.hooks.made = fill_stdin;
    wait_lost(&f);
    assert_int_equal(f.r.pauses, 1);
    assert_int_equal(f.r.resumes, 1);
    assert_int_equal(f.r.out_total[1], 256 * 1024);
    assert_int_equal(returncode(&f), 0);
    finish(&f);
}

/* The pipes' methods on the transport (asyncio's get_pipe_transport(fd).m()):
 * is_reading and the write buffer limits, while the pipes are open. */
static void check_pipe_methods(subrec *r)
{
    size_t high = 0, low = 0;
    assert_int_equal(pg_subprocess_get_write_buffer_limits(r->proc, &high, &low), 0);
    assert_int_equal(high, PG_DEFAULT_HIGH_WATER);
    assert_int_equal(low, PG_DEFAULT_HIGH_WATER / 4);
    assert_int_equal(pg_subprocess_set_write_buffer_limits(r->proc, 8192, PG_LIMIT_DEFAULT), 0);
    assert_int_equal(pg_subprocess_get_write_buffer_limits(r->proc, &high, &low), 0);
    assert_int_equal(high, 8192);
    assert_int_equal(low, 2048);
    assert_int_equal(pg_subprocess_set_write_buffer_limits(r->proc, 1, 2), -EINVAL);
    assert_int_equal(pg_subprocess_get_write_buffer_size(r->proc), 0);

    assert_true(pg_subprocess_is_reading(r->proc, 1));
    assert_true(pg_subprocess_is_reading(r->proc, 2));
    assert_false(pg_subprocess_is_reading(r->proc, 0)); /* a write pipe */
    assert_false(pg_subprocess_is_reading(r->proc, 3));
    pg_subprocess_pause_reading(r->proc, 1);
    assert_false(pg_subprocess_is_reading(r->proc, 1));
    assert_true(pg_subprocess_is_reading(r->proc, 2));
    pg_subprocess_resume_reading(r->proc, 1);
    assert_true(pg_subprocess_is_reading(r->proc, 1));
}

/* The child closes its stdin: writing to it afterwards is dropped (0), as
 * asyncio's closed pipe transport drops it, not -EPIPE; the limits are still
 * the last ones the pipe had. */
static void write_to_closed_stdin(subrec *r, int fd, int error)
{
    assert_int_equal(error, 0);
    if (fd != 0)
        return;
    assert_null(pg_subprocess_get_pipe_transport(r->proc, 0));
    assert_int_equal(pg_subprocess_write(r->proc, "late", 4), 0);
    struct iovec iov = { .iov_base = "x", .iov_len = 1 };
    assert_int_equal(pg_subprocess_writelines(r->proc, &iov, 1), 0);
    assert_int_equal(pg_subprocess_write_eof(r->proc), 0);
    assert_int_equal(pg_subprocess_get_write_buffer_size(r->proc), 0);
    size_t high = 0, low = 0;
    assert_int_equal(pg_subprocess_get_write_buffer_limits(r->proc, &high, &low), 0);
    assert_int_equal(high, 8192);
    assert_int_equal(low, 2048);
    assert_int_equal(pg_subprocess_set_write_buffer_limits(r->proc, 100, 10), 0);
    assert_int_equal(pg_subprocess_get_write_buffer_limits(r->proc, &high, &low), 0);
    assert_int_equal(high, 100);
    assert_int_equal(low, 10);
}

static void stdout_done(subrec *r, int fd, int error)
{
    write_to_closed_stdin(r, fd, error);
    if (fd == 1)
        assert_false(pg_subprocess_is_reading(r->proc, 1)); /* closed */
}

static void test_pipe_methods_and_writes_after_stdin_closed(void **state)
{
    (void)state;
    fixture f;
    start(&f, ARGV("sh", "-c", "exec 0<&-; printf out"), NULL);
    f.r.hooks.made = check_pipe_methods;
    f.r.hooks.pipe_lost = stdout_done;
    wait_lost(&f);
    assert_int_equal(f.r.pipe_lost[0], 1);
    assert_string_equal(subrec_text(&f.r, 1), "out");
    assert_int_equal(pg_subprocess_write(f.proc, "after", 5), 0); /* after connection_lost too */
    finish(&f);
}

/* Without a stdin pipe there is nothing to write to: -EPIPE. */
static void test_pipe_methods_without_pipes(void **state)
{
    (void)state;
    fixture f;
    pg_subprocess_options opts = { .stdio = { PG_STDIO_DEVNULL, PG_STDIO_DEVNULL, PG_STDIO_DEVNULL } };
    start(&f, ARGV("sh", "-c", "exit 0"), &opts);
    RUN_UNTIL(f.loop, f.r.made == 1);
    assert_int_equal(pg_subprocess_write(f.proc, "x", 1), -EPIPE);
    assert_int_equal(pg_subprocess_write_eof(f.proc), -EPIPE);
    size_t high, low;
    assert_int_equal(pg_subprocess_get_write_buffer_limits(f.proc, &high, &low), -EPIPE);
    assert_int_equal(pg_subprocess_set_write_buffer_limits(f.proc, 10, 1), -EPIPE);
    assert_false(pg_subprocess_is_reading(f.proc, 1));
    pg_subprocess_pause_reading(f.proc, 1); /* no-ops */
    pg_subprocess_resume_reading(f.proc, 2);
    wait_lost(&f);
    finish(&f);
}

/* ---- stdio, environment, working directory ---------------------------------- */

static void test_stdio_devnull(void **state)
{
    (void)state;
    fixture f;
    pg_subprocess_options opts = { .stdio = { PG_STDIO_DEVNULL, PG_STDIO_PIPE, PG_STDIO_DEVNULL } };
    start(&f, ARGV("sh", "-c", "cat; echo err >&2; echo done"), &opts);
    RUN_UNTIL(f.loop, f.r.made == 1);
    assert_null(pg_subprocess_get_pipe_transport(f.proc, 0));
    assert_non_null(pg_subprocess_get_pipe_transport(f.proc, 1));
    assert_null(pg_subprocess_get_pipe_transport(f.proc, 2));
    assert_null(pg_subprocess_get_pipe_transport(f.proc, 3));
    assert_null(pg_subprocess_get_pipe_transport(f.proc, -1));
    wait_lost(&f);
    assert_string_equal(subrec_text(&f.r, 1), "done\n");
    assert_int_equal(f.r.out_total[2], 0);
    finish(&f);
}

static void test_stderr_into_stdout(void **state)
{
    (void)state;
    fixture f;
    pg_subprocess_options opts = { .stdio = { PG_STDIO_DEVNULL, PG_STDIO_PIPE, PG_STDIO_STDOUT } };
    start(&f, ARGV("sh", "-c", "echo out; echo err >&2; echo out2"), &opts);
    wait_lost(&f);
    assert_string_equal(subrec_text(&f.r, 1), "out\nerr\nout2\n");
    assert_false(f.r.pipe_at_made[2]);
    finish(&f);
}

static void test_environment_and_cwd(void **state)
{
    (void)state;
    fixture f;
    pg_subprocess_options opts = {
        .env = ARGV("PROTOGEN_TEST=from the test", "PATH=/usr/bin:/bin"),
        .cwd = "/",
        .stdio = { PG_STDIO_DEVNULL },
    };
    start(&f, ARGV("sh", "-c", "echo \"$PROTOGEN_TEST\"; pwd; echo \"${HOME-unset}\""), &opts);
    wait_lost(&f);
    assert_string_equal(subrec_text(&f.r, 1), "from the test\n/\nunset\n");
    finish(&f);
}

static void test_file_overrides_argv0(void **state)
{
    (void)state;
    fixture f;
    pg_subprocess_options opts = { .file = "/bin/sh", .stdio = { PG_STDIO_DEVNULL } };
    start(&f, ARGV("custom-name", "-c", "echo \"$0\""), &opts);
    wait_lost(&f);
    assert_string_equal(subrec_text(&f.r, 1), "custom-name\n");
    finish(&f);
}

/* Nothing of this process leaks into the child but fds 0, 1 and 2: not the
 * loop's epoll fd, not the other pipes' ends, not an fd opened without
 * O_CLOEXEC. */
static void test_no_fd_leaks_into_the_child(void **state)
{
    (void)state;
    int leaky = open("/dev/null", O_RDONLY); /* deliberately without O_CLOEXEC */
    assert_true(leaky >= 0);
    fixture f;
    start(&f, ARGV(SUBPROCESS_CHILD, "fds"), NULL);
    wait_lost(&f);
    assert_string_equal(subrec_text(&f.r, 1), "0 1 2\n");
    finish(&f);
    close(leaky);
}

/* The loop blocks the signals it handles; the child starts with none blocked
 * and SIGPIPE at its default action. */
static void noop(void *arg)
{
    (void)arg;
}

static void test_child_signal_state_is_clean(void **state)
{
    (void)state;
    void (*old_pipe)(int) = signal(SIGPIPE, SIG_IGN);
    fixture f;
    memset(&f, 0, sizeof f);
    assert_int_equal(pg_loop_new(&f.loop), 0);
    assert_int_equal(pg_loop_add_signal_handler(f.loop, SIGTERM, noop, NULL), 0); /* blocked now */
    assert_int_equal(pg_loop_add_signal_handler(f.loop, SIGUSR1, noop, NULL), 0);
    subrec_init(&f.r);
    assert_int_equal(subrec_spawn(f.loop, &f.r, ARGV(SUBPROCESS_CHILD, "signals"), NULL, &f.proc), 0);
    wait_lost(&f);
    assert_string_equal(subrec_text(&f.r, 1), "blocked: none\nSIGPIPE: default\n");
    assert_int_equal(returncode(&f), 0);
    assert_int_equal(pg_loop_remove_signal_handler(f.loop, SIGTERM), 0);
    assert_int_equal(pg_loop_remove_signal_handler(f.loop, SIGUSR1), 0);
    finish(&f);
    signal(SIGPIPE, old_pipe);
}

static void test_new_process_group(void **state)
{
    (void)state;
    fixture f;
    pg_subprocess_options opts = { .new_process_group = true, .stdio = { PG_STDIO_DEVNULL } };
    start(&f, ARGV(SUBPROCESS_CHILD, "pgrp"), &opts);
    wait_lost(&f);
    assert_string_equal(subrec_text(&f.r, 1), "leader\n");
    finish(&f);

    start(&f, ARGV(SUBPROCESS_CHILD, "pgrp"), NULL);
    wait_lost(&f);
    assert_string_equal(subrec_text(&f.r, 1), "member\n");
    finish(&f);
}

/* ---- spawn errors --------------------------------------------------------------- */

static int spawn_error(const char *const *argv, const pg_subprocess_options *opts)
{
    pg_loop *loop;
    subrec r;
    pg_subprocess *proc = NULL;
    assert_int_equal(pg_loop_new(&loop), 0);
    subrec_init(&r);
    int fds = count_open_fds();
    int rc = subrec_spawn(loop, &r, argv, opts, &proc);
    assert_null(proc);
    run_idle(loop, 3);
    assert_int_equal(r.made, 0); /* no callback at all */
    assert_int_equal(count_open_fds(), fds);
    assert_true(no_children_left());
    pg_loop_close(loop);
    return rc;
}

static void test_spawn_errors(void **state)
{
    (void)state;
    char script[] = "/tmp/pg_not_executable_XXXXXX";
    int fd = mkstemp(script);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "#!/bin/sh\n", 10), 10);
    close(fd);
    assert_int_equal(chmod(script, 0644), 0);

    if (under_valgrind()) {
        unlink(script);
        skip(); /* a failed exec cannot be told there: see under_valgrind() */
    }
    assert_int_equal(spawn_error(ARGV("/nonexistent/program"), NULL), -ENOENT);
    assert_int_equal(spawn_error(ARGV("protogen-no-such-program-anywhere"), NULL), -ENOENT);
    assert_int_equal(spawn_error(ARGV(script), NULL), -EACCES);
    assert_int_equal(spawn_error(ARGV("/"), NULL), -EACCES);
    pg_subprocess_options bad_cwd = { .cwd = "/nonexistent/dir" };
    assert_int_equal(spawn_error(ARGV("true"), &bad_cwd), -ENOENT);
    unlink(script);

    /* Options that make no sense. */
    pg_subprocess_options stdout_on_stdin = { .stdio = { PG_STDIO_STDOUT } };
    assert_int_equal(spawn_error(ARGV("true"), &stdout_on_stdin), -EINVAL);
    pg_subprocess_options bogus = { .stdio = { PG_STDIO_PIPE, (pg_stdio)42 } };
    assert_int_equal(spawn_error(ARGV("true"), &bogus), -EINVAL);
    assert_int_equal(spawn_error((const char *const[]){ NULL }, NULL), -EINVAL);
    pg_loop *loop;
    assert_int_equal(pg_loop_new(&loop), 0);
    pg_subprocess_protocol none = { 0 };
    pg_subprocess_options opts = { .argv = ARGV("true") };
    assert_int_equal(pg_subprocess_spawn(loop, &opts, &none, NULL), -EINVAL);
    assert_int_equal(pg_subprocess_spawn(loop, NULL, &none, NULL), -EINVAL);
    pg_loop_close(loop);
}

/* ---- reaping ------------------------------------------------------------------- */

/* Something else in the process reaps the child first: reported with 255,
 * as asyncio, never waited for forever. */
static void test_child_reaped_elsewhere_is_reported(void **state)
{
    (void)state;
    fixture f;
    pg_subprocess_options opts = { .stdio = { PG_STDIO_DEVNULL, PG_STDIO_DEVNULL, PG_STDIO_DEVNULL } };
    start(&f, ARGV("sh", "-c", "exit 9"), &opts);
    int status;
    assert_int_equal(waitpid(pg_subprocess_get_pid(f.proc), &status, 0), pg_subprocess_get_pid(f.proc));
    assert_int_equal(WEXITSTATUS(status), 9);
    /* Under SIGCHLD the signal came before anyone listened; the check at spawn finds it. */
    wait_lost(&f);
    assert_int_equal(returncode(&f), 255);
    finish(&f);
}

/* The loop reaps only its own children: one started elsewhere is left alone. */
static void test_foreign_child_is_not_reaped(void **state)
{
    (void)state;
    pid_t foreign = fork();
    assert_true(foreign >= 0);
    if (foreign == 0) { /* exec: under valgrind, an _exit here would report this copy's "leaks" */
        execl("/bin/sh", "sh", "-c", "exit 42", (char *)NULL);
        _exit(127);
    }
    fixture f;
    start(&f, ARGV("sh", "-c", "exit 1"), NULL);
    wait_lost(&f);
    assert_int_equal(returncode(&f), 1);
    finish(&f);
    int status;
    assert_int_equal(waitpid(foreign, &status, 0), foreign); /* still ours to reap */
    assert_int_equal(WEXITSTATUS(status), 42);
}

/* Without a hold, the transport is valid until connection_lost returns, and
 * then freed (ASan would see a leak or a use after free). */
static void test_without_a_hold(void **state)
{
    (void)state;
    pg_loop *loop;
    subrec r;
    assert_int_equal(pg_loop_new(&loop), 0);
    subrec_init(&r);
    assert_int_equal(subrec_spawn(loop, &r, ARGV("sh", "-c", "echo hi"), NULL, NULL), 0);
    RUN_UNTIL(loop, r.lost == 1);
    assert_string_equal(subrec_text(&r, 1), "hi\n");
    assert_int_equal(r.returncode, 0);
    subrec_free(&r);
    pg_loop_close(loop);
}

static void test_extra_info(void **state)
{
    (void)state;
    fixture f;
    start(&f, ARGV("cat"), NULL);
    RUN_UNTIL(f.loop, f.r.made == 1);
    pg_extra_info info;
    assert_int_equal(pg_subprocess_get_extra_info(f.proc, PG_EXTRA_PEERNAME, &info), -ENOENT);
    assert_int_equal(pg_subprocess_get_extra_info(f.proc, PG_EXTRA_SUBPROCESS, &info), 0);
    if (pg__child_force_sigchld || !have_pidfd()) {
        assert_int_equal(info.fd, -1);
    } else {
        assert_true(info.fd >= 0); /* a pidfd */
        struct stat st;
        assert_int_equal(fstat(info.fd, &st), 0);
    }
    pg_extra_info pipe;
    assert_int_equal(pg_transport_get_extra_info(pg_subprocess_get_pipe_transport(f.proc, 1), PG_EXTRA_PIPE, &pipe), 0);
    assert_true(pipe.fd >= 3);
    pg_subprocess_close(f.proc);
    wait_lost(&f);
    finish(&f);
}

/* ---- tracing -------------------------------------------------------------------- */

static void test_trace_lines(void **state)
{
    (void)state;
    char path[] = "/tmp/pg_subprocess_trace_XXXXXX";
    int tfd = mkstemp(path);
    assert_true(tfd >= 0);
    assert_int_equal(setenv("PROTOGEN_TRACE", path, 1), 0);
    pg__trace_reset();

    fixture f;
    pg_subprocess_options opts = { .stdio = { PG_STDIO_DEVNULL, PG_STDIO_PIPE, PG_STDIO_PIPE } };
    start(&f, ARGV("sh", "-c", "printf ab; printf c >&2; exec 1>&- 2>&-; kill -TERM $$"), &opts);
    wait_lost(&f);
    finish(&f);

    char buf[1024];
    ssize_t n = read(tfd, buf, sizeof buf - 1);
    assert_true(n > 0);
    buf[n] = '\0';
    close(tfd);
    unlink(path);
    unsetenv("PROTOGEN_TRACE");
    pg__trace_reset();

    /* The pipes' own order between them is the kernel's: compare sorted
     * middles, exact first and last lines. */
    assert_true(strncmp(buf, "1 connection_made\n", 18) == 0);
    const char *last = "1 connection_lost ok\n";
    assert_string_equal(buf + strlen(buf) - strlen(last), last);
    assert_non_null(strstr(buf, "\n1 pipe_data_received 1 2\n"));
    assert_non_null(strstr(buf, "\n1 pipe_data_received 2 1\n"));
    assert_non_null(strstr(buf, "\n1 pipe_connection_lost 1 ok\n"));
    assert_non_null(strstr(buf, "\n1 pipe_connection_lost 2 ok\n"));
    assert_non_null(strstr(buf, "\n1 process_exited -15\n"));
    int lines = 0;
    for (const char *p = buf; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 7); /* nothing from the pipes' own transports */
}

#define BOTH(test) cmocka_unit_test_setup(test, use_pidfd_setup), cmocka_unit_test_setup(test, use_sigchld_setup)

int main(void)
{
    const struct CMUnitTest tests[] = {
        BOTH(test_consistent_callbacks),
        BOTH(test_cat_round_trip),
        cmocka_unit_test(test_interactive),
        cmocka_unit_test(test_shell),
        cmocka_unit_test(test_exitcode),
        BOTH(test_events_before_connection_made_are_replayed),
        BOTH(test_child_exiting_at_once),
        BOTH(test_kill),
        BOTH(test_terminate),
        BOTH(test_send_signal_sighup),
        BOTH(test_signals_after_connection_lost_fail_with_esrch),
        BOTH(test_signals_in_connection_lost_are_no_ops),
        BOTH(test_release_in_connection_lost),
        BOTH(test_close_kills_running_child),
        BOTH(test_close_leaves_finished_child_alone),
        cmocka_unit_test(test_close_from_pipe_data_received),
        BOTH(test_child_ignoring_sigterm_is_killed_after_grace),
        BOTH(test_grandchild_holding_a_pipe_delays_connection_lost),
        cmocka_unit_test(test_stdin_reader_gone_with_buffered_data),
        cmocka_unit_test(test_pause_reading_in_connection_made),
        cmocka_unit_test(test_stdin_flow_control),
        BOTH(test_pipe_methods_and_writes_after_stdin_closed),
        cmocka_unit_test(test_pipe_methods_without_pipes),
        cmocka_unit_test(test_stdio_devnull),
        cmocka_unit_test(test_stderr_into_stdout),
        cmocka_unit_test(test_environment_and_cwd),
        cmocka_unit_test(test_file_overrides_argv0),
        cmocka_unit_test(test_no_fd_leaks_into_the_child),
        cmocka_unit_test(test_child_signal_state_is_clean),
        cmocka_unit_test(test_new_process_group),
        cmocka_unit_test(test_spawn_errors),
        BOTH(test_child_reaped_elsewhere_is_reported),
        BOTH(test_foreign_child_is_not_reaped),
        cmocka_unit_test(test_without_a_hold),
        BOTH(test_extra_info),
        cmocka_unit_test(test_trace_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
