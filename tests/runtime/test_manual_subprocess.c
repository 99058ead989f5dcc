/* The subprocess core on the manual host with a fake process driver
 * (pg_manual_process): asyncio's subprocess semantics with no child and no
 * kernel. pipe_connection_lost/process_exited in any order, connection_lost
 * last and in a turn of its own once every pipe is lost and the child is
 * reaped, events before connection_made replayed after it, signals
 * (kill/terminate/send_signal, close kills a running child), pid and
 * returncode, stdin's flow control. */
#include <signal.h>

#include "protogen/manual.h"
#include "subprocess_recorder.h"

typedef struct pfix {
    pg_manual_host *mh;
    pg_manual_process *mp;
    subrec r;
} pfix;

static void pfix_new(pfix *f, unsigned pipes)
{
    subrec_init(&f->r);
    assert_int_equal(pg_manual_host_new(&f->mh), 0);
    pg_subprocess_protocol protocol = subrec_protocol(&f->r);
    assert_int_equal(pg_manual_process_new(pg_manual_host_host(f->mh), 4242, pipes, &protocol, &f->mp), 0);
    assert_int_equal(f->r.made, 0); /* never synchronously */
}

static void pfix_start(pfix *f, unsigned pipes)
{
    pfix_new(f, pipes);
    pg_manual_host_run(f->mh);
    assert_int_equal(f->r.made, 1);
}

static void pfix_done(pfix *f)
{
    assert_int_equal(f->r.lost, 1);
    assert_true(pg_manual_process_closed(f->mp));
    assert_false(pg_manual_host_pending(f->mh));
    pg_manual_process_free(f->mp);
    pg_manual_host_free(f->mh);
    subrec_free(&f->r);
}

static pg_subprocess *proc(pfix *f)
{
    return pg_manual_process_transport(f->mp);
}

static pg_manual_stream *pipe_of(pfix *f, int fd)
{
    return pg_manual_process_pipe(f->mp, fd);
}

static void run_all(pfix *f)
{
    while (pg_manual_host_pending(f->mh))
        pg_manual_host_run(f->mh);
}

/* ---- order -------------------------------------------------------------- */

static void test_pipes_then_exit(void **state)
{
    (void)state;
    pfix f;
    pfix_start(&f, PG_MANUAL_PIPE(1) | PG_MANUAL_PIPE(2));
    assert_int_equal(pg_subprocess_get_pid(proc(&f)), 4242);
    assert_true(pg_manual_stream_wants_read(pipe_of(&f, 1)));
    assert_null(pg_manual_process_pipe(f.mp, 0));
    assert_int_equal(pg_manual_stream_feed(pipe_of(&f, 1), "out", 3), 3);
    assert_int_equal(pg_manual_stream_feed(pipe_of(&f, 2), "err", 3), 3);
    pg_manual_stream_feed_eof(pipe_of(&f, 1));
    pg_manual_stream_feed_eof(pipe_of(&f, 2));
    run_all(&f);
    assert_false(pg_subprocess_get_returncode(proc(&f), NULL));
    assert_int_equal(f.r.lost, 0); /* the child runs */
    pg_manual_process_exit(f.mp, 3);
    int rc = 0;
    assert_true(pg_subprocess_get_returncode(proc(&f), &rc));
    assert_int_equal(rc, 3);
    assert_int_equal(f.r.lost, 0); /* a turn of its own */
    pg_manual_host_run(f.mh);
    assert_string_equal(f.r.log, "made out1 out2 lost1:ok lost2:ok exited:3 lost:ok");
    assert_string_equal(subrec_text(&f.r, 1), "out");
    pfix_done(&f);
}

/* Exited first: connection_lost waits for the last pipe. */
static void test_exit_then_pipes(void **state)
{
    (void)state;
    pfix f;
    pfix_start(&f, PG_MANUAL_PIPE(1));
    pg_manual_process_exit(f.mp, 0);
    run_all(&f);
    assert_int_equal(f.r.lost, 0);
    assert_int_equal(pg_manual_stream_feed(pipe_of(&f, 1), "late", 4), 4);
    pg_manual_stream_feed_eof(pipe_of(&f, 1));
    run_all(&f);
    assert_string_equal(f.r.log, "made exited:0 out1 lost1:ok lost:ok");
    pfix_done(&f);
}

/* What happens before connection_made is replayed right after it. */
static void test_exit_before_connection_made(void **state)
{
    (void)state;
    pfix f;
    pfix_new(&f, 0);
    pg_manual_process_exit(f.mp, -9);
    assert_int_equal(f.r.made, 0);
    run_all(&f);
    assert_string_equal(f.r.log, "made exited:-9 lost:ok");
    pfix_done(&f);
}

/* ---- signals ------------------------------------------------------------ */

static void test_signals(void **state)
{
    (void)state;
    pfix f;
    pfix_start(&f, 0);
    assert_int_equal(pg_subprocess_terminate(proc(&f)), 0);
    assert_int_equal(pg_subprocess_kill(proc(&f)), 0);
    assert_int_equal(pg_subprocess_send_signal(proc(&f), SIGUSR1), 0);
    assert_int_equal(pg_subprocess_send_signal(proc(&f), -1), -EINVAL);
    const int *sigs;
    assert_int_equal(pg_manual_process_signals(f.mp, &sigs), 3);
    assert_int_equal(sigs[0], SIGTERM);
    assert_int_equal(sigs[1], SIGKILL);
    assert_int_equal(sigs[2], SIGUSR1);
    pg_manual_process_exit(f.mp, -SIGKILL);
    /* Exited: a no-op, as asyncio (Popen.send_signal). */
    assert_int_equal(pg_subprocess_kill(proc(&f)), 0);
    assert_int_equal(pg_manual_process_signals(f.mp, &sigs), 3);
    run_all(&f);
    /* After connection_lost: ProcessLookupError. */
    assert_int_equal(pg_subprocess_send_signal(proc(&f), SIGTERM), -ESRCH);
    assert_string_equal(f.r.log, "made exited:-9 lost:ok");
    pfix_done(&f);
}

/* close() closes every pipe and kills a child that runs; the rest follows. */
static void test_close_kills_a_running_child(void **state)
{
    (void)state;
    pfix f;
    pfix_start(&f, PG_MANUAL_PIPE(0) | PG_MANUAL_PIPE(1));
    pg_subprocess_close(proc(&f));
    assert_true(pg_subprocess_is_closing(proc(&f)));
    pg_subprocess_close(proc(&f)); /* idempotent */
    const int *sigs;
    assert_int_equal(pg_manual_process_signals(f.mp, &sigs), 1);
    assert_int_equal(sigs[0], SIGKILL);
    run_all(&f);
    assert_int_equal(f.r.lost, 0); /* until it is reaped */
    pg_manual_process_exit(f.mp, -SIGKILL);
    run_all(&f);
    assert_string_equal(f.r.log, "made lost0:ok lost1:ok exited:-9 lost:ok");
    pfix_done(&f);
}

static void test_close_after_exit_sends_nothing(void **state)
{
    (void)state;
    pfix f;
    pfix_start(&f, 0);
    pg_manual_process_exit(f.mp, 0);
    pg_subprocess_close(proc(&f));
    const int *sigs;
    assert_int_equal(pg_manual_process_signals(f.mp, &sigs), 0);
    run_all(&f);
    pfix_done(&f);
}

/* ---- stdin -------------------------------------------------------------- */

static void test_stdin_flow_control(void **state)
{
    (void)state;
    pfix f;
    pfix_start(&f, PG_MANUAL_PIPE(0));
    pg_manual_stream *in = pipe_of(&f, 0);
    pg_manual_stream_set_capacity(in, 0);
    assert_int_equal(pg_subprocess_set_write_buffer_limits(proc(&f), 8, 2), 0);
    assert_int_equal(pg_subprocess_write(proc(&f), "0123456789", 10), 0);
    assert_int_equal(f.r.pauses, 1);
    assert_int_equal(pg_subprocess_get_write_buffer_size(proc(&f)), 10);
    pg_manual_stream_set_capacity(in, 100);
    assert_int_equal(f.r.resumes, 1);
    size_t len;
    const uint8_t *out = pg_manual_stream_output(in, &len);
    assert_int_equal(len, 10);
    assert_memory_equal(out, "0123456789", 10);
    pg_manual_stream_consume(in, len);
    assert_int_equal(pg_subprocess_write_eof(proc(&f)), 0);
    run_all(&f);
    assert_int_equal(f.r.pipe_lost[0], 1);
    assert_int_equal(pg_subprocess_write(proc(&f), "x", 1), 0); /* dropped once closed */
    size_t high = 0;
    assert_int_equal(pg_subprocess_get_write_buffer_limits(proc(&f), &high, NULL), 0);
    assert_int_equal(high, 8); /* the closed pipe's last limits */
    pg_manual_process_exit(f.mp, 0);
    run_all(&f);
    assert_string_equal(f.r.log, "made lost0:ok exited:0 lost:ok");
    pfix_done(&f);
}

/* The child stops reading with bytes still buffered for it: -EPIPE. */
static void test_stdin_reader_gone(void **state)
{
    (void)state;
    pfix f;
    pfix_start(&f, PG_MANUAL_PIPE(0));
    pg_manual_stream_set_capacity(pipe_of(&f, 0), 0);
    assert_int_equal(pg_subprocess_write(proc(&f), "abc", 3), 0);
    pg_manual_stream_feed_eof(pipe_of(&f, 0)); /* the write pipe's reader went away */
    pg_manual_process_exit(f.mp, 1);
    run_all(&f);
    assert_string_equal(f.r.log, "made exited:1 lost0:EPIPE lost:ok");
    pfix_done(&f);
}

/* A write to stdin before connection_made: the pause waits for it. */
static void test_pause_before_connection_made(void **state)
{
    (void)state;
    pfix f;
    pfix_new(&f, PG_MANUAL_PIPE(0));
    pg_manual_stream_set_capacity(pipe_of(&f, 0), 0);
    assert_int_equal(pg_subprocess_set_write_buffer_limits(proc(&f), 4, 1), 0);
    assert_int_equal(pg_subprocess_write(proc(&f), "0123456789", 10), 0);
    assert_int_equal(f.r.pauses, 0);
    pg_manual_host_run(f.mh);
    assert_int_equal(f.r.made, 1);
    assert_int_equal(f.r.pauses, 1);
    pg_subprocess_close(proc(&f));
    pg_manual_stream_set_capacity(pipe_of(&f, 0), 100); /* the close flushes */
    pg_manual_process_exit(f.mp, -SIGKILL);
    run_all(&f);
    assert_int_equal(f.r.lost, 1);
    pfix_done(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pipes_then_exit),
        cmocka_unit_test(test_exit_then_pipes),
        cmocka_unit_test(test_exit_before_connection_made),
        cmocka_unit_test(test_signals),
        cmocka_unit_test(test_close_kills_a_running_child),
        cmocka_unit_test(test_close_after_exit_sends_nothing),
        cmocka_unit_test(test_stdin_flow_control),
        cmocka_unit_test(test_stdin_reader_gone),
        cmocka_unit_test(test_pause_before_connection_made),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
