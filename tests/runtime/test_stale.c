/* Stale handles: a pg_transport * (or pg_datagram_transport *) kept past
 * connection_lost, a pg_subprocess * past its memory's end. Its block may
 * be the next connection's by then; every call through the old handle must
 * leave that connection alone and be dropped, as asyncio drops writes on a
 * lost transport (writes return 0, other calls do nothing or fail). Debug
 * builds assert on such a call; these tests switch that off to check what a
 * release build does, and check the assert itself in a child process. */
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dgram_recorder.h"
#include "internal.h" /* pg__loop_host */
#include "protogen/manual.h"
#include "subprocess_recorder.h"
#include "testutil.h"

/* The address part of a handle (the runtime keeps a generation above it). */
static uintptr_t block_of(const void *t)
{
    return (uintptr_t)t & (((uintptr_t)1 << 48) - 1);
}

/* ---- on the memory driver ----------------------------------------------- */

typedef struct mconn {
    pg_manual_stream *ms;
    recorder r;
} mconn;

static void mconn_open(pg_manual_host *mh, mconn *c)
{
    recorder_init(&c->r);
    assert_int_equal(pg_manual_stream_new(pg_manual_host_host(mh), PG_STREAM_CAN_WRITE_EOF, recorder_factory, &c->r,
                                          &c->ms),
                     0);
    pg_manual_host_run(mh);
    assert_int_equal(c->r.made, 1);
}

/* Ends c (abort, connection_lost) and frees its stream. */
static void mconn_end(pg_manual_host *mh, mconn *c)
{
    pg_transport_abort(c->r.transport);
    pg_manual_host_run(mh);
    assert_int_equal(c->r.lost, 1);
    assert_true(pg_manual_stream_closed(c->ms));
    pg_manual_stream_free(c->ms);
    recorder_free(&c->r);
}

static pg_manual_host *quiet_host(void)
{
    pg_manual_host *mh;
    assert_int_equal(pg_manual_host_new(&mh), 0);
    pg_manual_host_host(mh)->stale_assert = false; /* what a release build does */
    return mh;
}

static void test_stale_calls_leave_the_next_connection_alone(void **state)
{
    (void)state;
    pg_manual_host *mh = quiet_host();
    pg_host *host = pg_manual_host_host(mh);
    mconn a, b;
    mconn_open(mh, &a);
    pg_transport *stale = a.r.transport;
    mconn_end(mh, &a);
    mconn_open(mh, &b); /* takes a's block */
    pg_transport *live = b.r.transport;
    assert_true(block_of(stale) == block_of(live));
    assert_ptr_not_equal(stale, live);

    size_t len;
    assert_int_equal(pg_transport_write(stale, "stale", 5), 0); /* dropped, as on a lost transport */
    struct iovec iov = { .iov_base = "lines", .iov_len = 5 };
    assert_int_equal(pg_transport_writelines(stale, &iov, 1), 0);
    pg_manual_stream_output(b.ms, &len);
    assert_int_equal(len, 0); /* not b's bytes */
    pg_transport_close(stale);
    pg_transport_abort(stale);
    pg_manual_host_run(mh);
    assert_int_equal(b.r.lost, 0); /* not b's close */
    assert_int_equal(pg_transport_write_eof(stale), 0);
    pg_transport_pause_reading(stale);
    pg_transport_resume_reading(stale);
    assert_int_equal(pg_transport_set_write_buffer_limits(stale, 1, 0), -EBADF);
    size_t high = 1, low = 1;
    pg_transport_get_write_buffer_limits(stale, &high, &low);
    assert_int_equal(high, 0);
    assert_int_equal(low, 0);
    pg_extra_info info;
    assert_int_equal(pg_transport_get_extra_info(stale, PG_EXTRA_SOCKET, &info), -EBADF);
    pg_protocol p = { 0 };
    assert_int_equal(pg_transport_get_protocol(stale, &p), -EBADF);
    assert_int_equal(pg_transport_set_protocol(stale, &p), -EBADF);
    assert_int_equal(pg_transport_switch_protocol(stale, recorder_factory, &b.r, NULL, 0), -EINVAL);
    assert_true(pg_transport_is_closing(stale));
    assert_false(pg_transport_is_reading(stale));
    assert_false(pg_transport_can_write_eof(stale));
    assert_int_equal(pg_transport_get_write_buffer_size(stale), 0);
    assert_int_equal(host->stale_calls, 17);

    /* b saw none of it: nothing written, still reading, still open. */
    pg_manual_stream_output(b.ms, &len);
    assert_int_equal(len, 0);
    assert_false(pg_manual_stream_output_shut(b.ms));
    assert_true(pg_manual_stream_wants_read(b.ms));
    assert_false(pg_transport_is_closing(live));
    pg_transport_get_write_buffer_limits(live, &high, &low);
    assert_int_equal(high, PG_DEFAULT_HIGH_WATER);
    assert_string_equal(b.r.log, "made");
    assert_int_equal(pg_transport_write(live, "live", 4), 0);
    const uint8_t *out = pg_manual_stream_output(b.ms, &len);
    assert_int_equal(len, 4);
    assert_memory_equal(out, "live", 4);
    assert_int_equal(host->stale_calls, 17); /* the live handle is never stale */
    mconn_end(mh, &b);
    pg_manual_host_free(mh);
}

/* Before any reuse: the block is free, the call is still dropped. */
static void test_stale_handle_of_a_free_block(void **state)
{
    (void)state;
    pg_manual_host *mh = quiet_host();
    mconn a;
    mconn_open(mh, &a);
    pg_transport *stale = a.r.transport;
    mconn_end(mh, &a);
    assert_int_equal(pg_transport_write(stale, "x", 1), 0);
    pg_transport_close(stale);
    pg_manual_host_run(mh);
    assert_int_equal(pg_manual_host_host(mh)->stale_calls, 2);
    pg_manual_host_free(mh);
}

/* Calls from inside connection_lost are on a live handle (asyncio allows
 * them; they do nothing on a lost transport): not stale. */
static void write_in_lost(recorder *r, int error)
{
    (void)error;
    assert_int_equal(pg_transport_write(r->transport, "late", 4), 0);
    assert_true(pg_transport_is_closing(r->transport));
}

static void test_calls_in_connection_lost_are_not_stale(void **state)
{
    (void)state;
    pg_manual_host *mh = quiet_host();
    mconn a;
    mconn_open(mh, &a);
    a.r.hooks.lost = write_in_lost;
    mconn_end(mh, &a);
    assert_int_equal(pg_manual_host_host(mh)->stale_calls, 0);
    pg_manual_host_free(mh);
}

/* A block is reused with a new generation each time; before its 16 bits
 * could repeat, the block is retired for good: a kept handle never matches
 * a later connection however many come after it. */
static void test_generations_never_repeat(void **state)
{
    (void)state;
    pg_manual_host *mh = quiet_host();
    mconn a;
    mconn_open(mh, &a);
    pg_transport *stale = a.r.transport;
    mconn_end(mh, &a);
    bool moved = false; /* the block was retired and another one took over */
    for (int i = 0; i < 70000; i++) {
        mconn c;
        mconn_open(mh, &c);
        assert_ptr_not_equal(c.r.transport, stale);
        moved = moved || block_of(c.r.transport) != block_of(stale);
        if (i % 4096 == 0 || i > 65530) {
            assert_int_equal(pg_transport_write(stale, "x", 1), 0);
            size_t len;
            pg_manual_stream_output(c.ms, &len);
            assert_int_equal(len, 0);
        }
        mconn_end(mh, &c);
    }
    assert_true(moved);
    pg_manual_host_free(mh);
}

/* Runs fn in a child process: true when it stopped on an assertion. */
static bool aborts(void (*fn)(void))
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* No core file, no assertion text on the test's output. */
        if (freopen("/dev/null", "w", stderr) == NULL)
            _exit(2);
        fn();
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
}

static void stale_stream_write(void)
{
    pg_manual_host *mh;
    if (pg_manual_host_new(&mh) != 0)
        _exit(2);
    mconn a;
    mconn_open(mh, &a);
    pg_transport *stale = a.r.transport;
    mconn_end(mh, &a);
    (void)pg_transport_write(stale, "x", 1);
}

/* Debug builds stop at the first stale call (it is a bug of the caller). */
static void test_stale_call_asserts_in_debug_builds(void **state)
{
    (void)state;
#ifdef NDEBUG
    skip();
#endif
    assert_true(aborts(stale_stream_write));
}

/* ---- datagram endpoints, on the memory driver ---------------------------- */

typedef struct mdgram {
    pg_manual_datagram *md;
    dgram_rec r;
} mdgram;

static const struct sockaddr_in dgram_peer = {
    .sin_family = AF_INET,
    .sin_port = 0x3514, /* any port: the memory driver only records it */
    .sin_addr = { .s_addr = 0x0100007f },
};

static void mdgram_open(pg_manual_host *mh, mdgram *e)
{
    dgram_rec_init(&e->r);
    assert_int_equal(pg_manual_datagram_new(pg_manual_host_host(mh), NULL, 0, dgram_rec_factory, &e->r, &e->md), 0);
    pg_manual_host_run(mh);
    assert_int_equal(e->r.made, 1);
}

/* Ends e (abort, connection_lost) and frees its driver. */
static void mdgram_end(pg_manual_host *mh, mdgram *e)
{
    pg_datagram_transport_abort(e->r.transport);
    pg_manual_host_run(mh);
    assert_int_equal(e->r.lost, 1);
    assert_true(pg_manual_datagram_closed(e->md));
    pg_manual_datagram_free(e->md);
}

static int dgram_send(pg_datagram_transport *t, const char *text)
{
    return pg_datagram_transport_sendto(t, text, strlen(text), (const struct sockaddr *)&dgram_peer, sizeof dgram_peer);
}

static void test_stale_datagram_calls_leave_the_next_endpoint_alone(void **state)
{
    (void)state;
    pg_manual_host *mh = quiet_host();
    pg_host *host = pg_manual_host_host(mh);
    mdgram a, b;
    mdgram_open(mh, &a);
    pg_datagram_transport *stale = a.r.transport;
    mdgram_end(mh, &a);
    mdgram_open(mh, &b); /* takes a's block */
    pg_datagram_transport *live = b.r.transport;
    assert_true(block_of(stale) == block_of(live));
    assert_ptr_not_equal(stale, live);

    assert_int_equal(dgram_send(stale, "stale"), 0); /* dropped, as on a lost endpoint */
    assert_int_equal(pg_manual_datagram_output_count(b.md), 0);
    pg_datagram_transport_close(stale);
    pg_datagram_transport_abort(stale);
    pg_datagram_transport_pause_reading(stale);
    pg_datagram_transport_resume_reading(stale);
    pg_manual_host_run(mh);
    assert_int_equal(b.r.lost, 0); /* not b's close */
    assert_true(pg_manual_datagram_wants_read(b.md));
    assert_int_equal(pg_datagram_transport_set_write_buffer_limits(stale, 1, 0), -EBADF);
    size_t high = 1, low = 1;
    pg_datagram_transport_get_write_buffer_limits(stale, &high, &low);
    assert_int_equal(high, 0);
    assert_int_equal(low, 0);
    pg_extra_info info;
    assert_int_equal(pg_datagram_transport_get_extra_info(stale, PG_EXTRA_SOCKET, &info), -EBADF);
    assert_true(pg_datagram_transport_is_closing(stale));
    assert_false(pg_datagram_transport_is_reading(stale));
    assert_int_equal(pg_datagram_transport_get_write_buffer_size(stale), 0);
    assert_int_equal(host->stale_calls, 11);

    /* b saw none of it: nothing sent, still reading, still open. */
    assert_int_equal(pg_manual_datagram_output_count(b.md), 0);
    assert_false(pg_datagram_transport_is_closing(live));
    assert_true(pg_datagram_transport_is_reading(live));
    pg_datagram_transport_get_write_buffer_limits(live, &high, &low);
    assert_int_equal(high, PG_DEFAULT_HIGH_WATER);
    assert_string_equal(b.r.log, "made");
    assert_int_equal(dgram_send(live, "live"), 0);
    size_t len;
    const struct sockaddr *to;
    socklen_t tolen;
    const uint8_t *out = pg_manual_datagram_output(b.md, &len, &to, &tolen);
    assert_int_equal(len, 4);
    assert_memory_equal(out, "live", 4);
    assert_int_equal(host->stale_calls, 11); /* the live handle is never stale */
    mdgram_end(mh, &b);
    pg_manual_host_free(mh);
}

/* A datagram endpoint's block never serves a stream (nor the reverse), and
 * each keeps its generation through the other's churn. */
static void test_stale_datagram_handle_past_streams(void **state)
{
    (void)state;
    pg_manual_host *mh = quiet_host();
    mdgram a, b;
    mdgram_open(mh, &a);
    pg_datagram_transport *stale = a.r.transport;
    mdgram_end(mh, &a);
    mconn c;
    mconn_open(mh, &c);
    assert_true(block_of(c.r.transport) != block_of(stale));
    mdgram_open(mh, &b);
    assert_int_equal(dgram_send(stale, "x"), 0);
    assert_int_equal(pg_manual_datagram_output_count(b.md), 0);
    size_t len;
    pg_manual_stream_output(c.ms, &len);
    assert_int_equal(len, 0);
    assert_int_equal(pg_manual_host_host(mh)->stale_calls, 1);
    mconn_end(mh, &c);
    mdgram_end(mh, &b);
    pg_manual_host_free(mh);
}

/* Calls from inside connection_lost are on a live handle: not stale. */
static void dgram_send_in_lost(dgram_rec *r, int error)
{
    (void)error;
    assert_int_equal(dgram_send(r->transport, "late"), 0);
    assert_true(pg_datagram_transport_is_closing(r->transport));
}

static void test_datagram_calls_in_connection_lost_are_not_stale(void **state)
{
    (void)state;
    pg_manual_host *mh = quiet_host();
    mdgram a;
    mdgram_open(mh, &a);
    a.r.hooks.lost = dgram_send_in_lost;
    mdgram_end(mh, &a);
    assert_int_equal(pg_manual_host_host(mh)->stale_calls, 0);
    pg_manual_host_free(mh);
}

static void test_datagram_generations_never_repeat(void **state)
{
    (void)state;
    pg_manual_host *mh = quiet_host();
    mdgram a;
    mdgram_open(mh, &a);
    pg_datagram_transport *stale = a.r.transport;
    mdgram_end(mh, &a);
    bool moved = false; /* the block was retired and another one took over */
    for (int i = 0; i < 70000; i++) {
        mdgram e;
        mdgram_open(mh, &e);
        assert_ptr_not_equal(e.r.transport, stale);
        moved = moved || block_of(e.r.transport) != block_of(stale);
        if (i % 4096 == 0 || i > 65530) {
            assert_int_equal(dgram_send(stale, "x"), 0);
            assert_int_equal(pg_manual_datagram_output_count(e.md), 0);
        }
        mdgram_end(mh, &e);
    }
    assert_true(moved);
    pg_manual_host_free(mh);
}

static void stale_datagram_send(void)
{
    pg_manual_host *mh;
    if (pg_manual_host_new(&mh) != 0)
        _exit(2);
    mdgram a;
    mdgram_open(mh, &a);
    pg_datagram_transport *stale = a.r.transport;
    mdgram_end(mh, &a);
    (void)dgram_send(stale, "x");
}

static void test_stale_datagram_call_asserts_in_debug_builds(void **state)
{
    (void)state;
#ifdef NDEBUG
    skip();
#endif
    assert_true(aborts(stale_datagram_send));
}

/* ---- subprocess transports, on the manual host --------------------------- */

/* A child that is only counters: the signals it got, the bytes its stdin
 * pipe was given. */
typedef struct fakeproc {
    int signals;
    size_t written;
} fakeproc;

static int fakeproc_signal(void *self, int signo)
{
    (void)signo;
    ((fakeproc *)self)->signals++;
    return 0;
}

static void fakeproc_close(void *self) { (void)self; }

static const pg_process_driver_ops fakeproc_ops = { .send_signal = fakeproc_signal, .close = fakeproc_close };

static ssize_t fakepipe_writev(void *self, const struct iovec *iov, int iovcnt)
{
    size_t n = 0;
    for (int i = 0; i < iovcnt; i++)
        n += iov[i].iov_len;
    ((fakeproc *)self)->written += n;
    return (ssize_t)n;
}

static int fakepipe_shutdown(void *self) { (void)self; return 0; }
static int fakepipe_want(void *self, bool on) { (void)self; (void)on; return 0; }
static void fakepipe_close(void *self) { (void)self; }

static const pg_stream_driver_ops fakepipe_ops = {
    .writev = fakepipe_writev,
    .shutdown_write = fakepipe_shutdown,
    .want_read = fakepipe_want,
    .want_write = fakepipe_want,
    .close = fakepipe_close,
};

/* A subprocess with a stdin pipe and no hold (no out): its handle is the one
 * connection_made gave, valid until connection_lost returns. */
static void fakeproc_open(pg_manual_host *mh, fakeproc *f, subrec *r)
{
    subrec_init(r);
    pg_subprocess_protocol protocol = subrec_protocol(r);
    void *pipes[3] = { f, NULL, NULL };
    assert_int_equal(pg_subprocess_new(pg_manual_host_host(mh), &fakeproc_ops, f, 4242, &fakepipe_ops, pipes,
                                       &protocol, NULL),
                     0);
    pg_manual_host_run(mh);
    assert_int_equal(r->made, 1);
}

/* Ends it: closed (a SIGKILL to the child), reaped, connection_lost. */
static void fakeproc_end(pg_manual_host *mh, subrec *r)
{
    pg_subprocess *p = r->proc;
    pg_subprocess_close(p);
    pg_subprocess_exited(p, -SIGKILL);
    while (pg_manual_host_pending(mh))
        pg_manual_host_run(mh);
    assert_int_equal(r->lost, 1);
}

static void test_stale_subprocess_calls_leave_the_next_one_alone(void **state)
{
    (void)state;
    pg_manual_host *mh = quiet_host();
    pg_host *host = pg_manual_host_host(mh);
    fakeproc fa = { 0 }, fb = { 0 };
    subrec ra, rb;
    fakeproc_open(mh, &fa, &ra);
    pg_subprocess *stale = ra.proc;
    fakeproc_end(mh, &ra);
    fakeproc_open(mh, &fb, &rb); /* takes a's block */
    pg_subprocess *live = rb.proc;
    assert_true(block_of(stale) == block_of(live));
    assert_ptr_not_equal(stale, live);

    assert_int_equal(pg_subprocess_write(stale, "stale", 5), 0); /* dropped */
    assert_int_equal(pg_subprocess_write_eof(stale), 0);
    assert_int_equal(pg_subprocess_kill(stale), -ESRCH);
    assert_int_equal(pg_subprocess_send_signal(stale, SIGTERM), -ESRCH);
    pg_subprocess_close(stale);
    pg_subprocess_exited(stale, 0);
    assert_int_equal(pg_subprocess_get_extra_info(stale, PG_EXTRA_SUBPROCESS, &(pg_extra_info){ 0 }), -EBADF);
    assert_int_equal(pg_subprocess_set_write_buffer_limits(stale, 10, 1), -EBADF);
    assert_null(pg_subprocess_get_pipe_transport(stale, 0));
    assert_false(pg_subprocess_get_returncode(stale, NULL));
    assert_true(pg_subprocess_is_closing(stale));
    assert_int_equal(host->stale_calls, 11);

    /* Nothing reached b. */
    assert_int_equal(fb.written, 0);
    assert_int_equal(fb.signals, 0);
    assert_false(pg_subprocess_is_closing(live));
    assert_false(pg_subprocess_get_returncode(live, NULL));
    assert_int_equal(pg_subprocess_write(live, "live", 4), 0);
    assert_int_equal(fb.written, 4);

    fakeproc_end(mh, &rb);
    subrec_free(&ra);
    subrec_free(&rb);
    pg_manual_host_free(mh);
}

/* A held handle (spawn's out) stays the caller's past connection_lost, until
 * pg_subprocess_release(); then it is stale. */
static void test_held_subprocess_handle_lives_until_release(void **state)
{
    (void)state;
    pg_manual_host *mh = quiet_host();
    pg_host *host = pg_manual_host_host(mh);
    subrec ra, rb;
    subrec_init(&ra);
    subrec_init(&rb);
    pg_subprocess_protocol protocol = subrec_protocol(&ra);
    pg_manual_process *a;
    assert_int_equal(pg_manual_process_new(host, 4242, PG_MANUAL_PIPE(0), &protocol, &a), 0);
    pg_subprocess *held = pg_manual_process_transport(a);
    pg_manual_host_run(mh);
    pg_subprocess_close(held);
    pg_manual_process_exit(a, 7);
    while (pg_manual_host_pending(mh))
        pg_manual_host_run(mh);
    assert_int_equal(ra.lost, 1);

    /* Past connection_lost, still live. */
    int rc = 0;
    assert_true(pg_subprocess_get_returncode(held, &rc));
    assert_int_equal(rc, 7);
    assert_int_equal(pg_subprocess_get_pid(held), 4242);
    assert_int_equal(pg_subprocess_kill(held), -ESRCH); /* asyncio's ProcessLookupError */
    assert_int_equal(host->stale_calls, 0);

    pg_manual_process_free(a); /* releases the hold */
    protocol = subrec_protocol(&rb);
    pg_manual_process *b;
    assert_int_equal(pg_manual_process_new(host, 4343, PG_MANUAL_PIPE(0), &protocol, &b), 0);
    pg_subprocess *live = pg_manual_process_transport(b);
    pg_manual_host_run(mh);
    assert_true(block_of(held) == block_of(live));
    assert_int_equal(pg_subprocess_write(held, "stale", 5), 0);
    assert_int_equal(pg_subprocess_kill(held), -ESRCH);
    pg_subprocess_close(held);
    pg_subprocess_release(held);
    assert_int_equal(host->stale_calls, 4);
    size_t len;
    pg_manual_stream_output(pg_manual_process_pipe(b, 0), &len);
    assert_int_equal(len, 0);
    const int *sigs;
    assert_int_equal(pg_manual_process_signals(b, &sigs), 0);
    assert_false(pg_subprocess_is_closing(live));

    pg_subprocess_close(live);
    pg_manual_process_exit(b, -SIGKILL);
    while (pg_manual_host_pending(mh))
        pg_manual_host_run(mh);
    pg_manual_process_free(b);
    subrec_free(&ra);
    subrec_free(&rb);
    pg_manual_host_free(mh);
}

static void stale_subprocess_kill(void)
{
    pg_manual_host *mh;
    if (pg_manual_host_new(&mh) != 0)
        _exit(2);
    fakeproc f = { 0 };
    subrec r;
    fakeproc_open(mh, &f, &r);
    pg_subprocess *stale = r.proc;
    fakeproc_end(mh, &r);
    (void)pg_subprocess_kill(stale);
}

static void test_stale_subprocess_call_asserts_in_debug_builds(void **state)
{
    (void)state;
#ifdef NDEBUG
    skip();
#endif
    assert_true(aborts(stale_subprocess_kill));
}

/* ---- on the built-in loop, over sockets --------------------------------- */

static void test_stale_handle_on_the_loop(void **state)
{
    (void)state;
    pg_loop *loop;
    assert_int_equal(pg_loop_new(&loop), 0);
    pg__loop_host(loop)->stale_assert = false;
    int sa[2], sb[2];
    make_socketpair(sa, 0);
    make_socketpair(sb, 0);
    set_nonblocking(sb[1]);
    recorder ra, rb;
    recorder_init(&ra);
    recorder_init(&rb);
    pg_transport *stale;
    assert_int_equal(pg_stream_adopt_fd(loop, sa[0], recorder_factory, &ra, &stale), 0);
    RUN_UNTIL(loop, ra.made == 1);
    pg_transport_close(stale);
    RUN_UNTIL(loop, ra.lost == 1);
    pg_transport *live;
    assert_int_equal(pg_stream_adopt_fd(loop, sb[0], recorder_factory, &rb, &live), 0);
    RUN_UNTIL(loop, rb.made == 1);
    assert_true(block_of(stale) == block_of(live)); /* the loop reuses the block */

    assert_int_equal(pg_transport_write(stale, "stale", 5), 0);
    pg_transport_abort(stale);
    pg_transport_close(stale);
    run_idle(loop, 3);
    bool eof = false;
    uint8_t buf[16];
    assert_int_equal(drain_socket(sb[1], buf, sizeof buf, &eof), 0); /* b's peer got nothing */
    assert_false(eof);
    assert_int_equal(rb.lost, 0);
    assert_int_equal(pg__loop_host(loop)->stale_calls, 3);

    assert_int_equal(pg_transport_write(live, "live", 4), 0);
    size_t got = 0;
    RUN_UNTIL(loop, (got += drain_socket(sb[1], buf + got, sizeof buf - got, &eof), got == 4));
    assert_memory_equal(buf, "live", 4);
    pg_transport_close(live);
    RUN_UNTIL(loop, rb.lost == 1);
    close(sa[1]);
    close(sb[1]);
    recorder_free(&ra);
    recorder_free(&rb);
    assert_int_equal(pg_loop_close(loop), 0);
}

/* The same on the loop's datagram sockets: nothing reaches the next
 * endpoint's peer. */
static void test_stale_datagram_handle_on_the_loop(void **state)
{
    (void)state;
    pg_loop *loop;
    assert_int_equal(pg_loop_new(&loop), 0);
    pg__loop_host(loop)->stale_assert = false;
    int sa[2], sb[2];
    make_dgram_pair(sa, 0);
    make_dgram_pair(sb, 0);
    dgram_rec ra, rb;
    dgram_rec_init(&ra);
    dgram_rec_init(&rb);
    pg_datagram_transport *stale;
    assert_int_equal(pg_datagram_adopt_fd(loop, sa[0], dgram_rec_factory, &ra, &stale), 0);
    RUN_UNTIL(loop, ra.made == 1);
    pg_datagram_transport_close(stale);
    RUN_UNTIL(loop, ra.lost == 1);
    pg_datagram_transport *live;
    assert_int_equal(pg_datagram_adopt_fd(loop, sb[0], dgram_rec_factory, &rb, &live), 0);
    RUN_UNTIL(loop, rb.made == 1);
    assert_true(block_of(stale) == block_of(live)); /* the loop reuses the block */

    assert_int_equal(pg_datagram_transport_sendto(stale, "stale", 5, NULL, 0), 0);
    pg_datagram_transport_abort(stale);
    pg_datagram_transport_close(stale);
    run_idle(loop, 3);
    assert_int_equal(drain_dgram_socket(sb[1], NULL, 0), 0); /* b's peer got nothing */
    assert_int_equal(rb.lost, 0);
    assert_int_equal(pg__loop_host(loop)->stale_calls, 3);

    assert_int_equal(pg_datagram_transport_sendto(live, "live", 4, NULL, 0), 0);
    uint8_t first = 0;
    int got = 0;
    RUN_UNTIL(loop, (got += drain_dgram_socket(sb[1], &first, 1), got == 1));
    assert_int_equal(first, 'l');
    pg_datagram_transport_close(live);
    RUN_UNTIL(loop, rb.lost == 1);
    close(sa[1]);
    close(sb[1]);
    assert_int_equal(pg_loop_close(loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stale_calls_leave_the_next_connection_alone),
        cmocka_unit_test(test_stale_handle_of_a_free_block),
        cmocka_unit_test(test_calls_in_connection_lost_are_not_stale),
        cmocka_unit_test(test_generations_never_repeat),
        cmocka_unit_test(test_stale_call_asserts_in_debug_builds),
        cmocka_unit_test(test_stale_handle_on_the_loop),
        cmocka_unit_test(test_stale_datagram_calls_leave_the_next_endpoint_alone),
        cmocka_unit_test(test_stale_datagram_handle_past_streams),
        cmocka_unit_test(test_datagram_calls_in_connection_lost_are_not_stale),
        cmocka_unit_test(test_datagram_generations_never_repeat),
        cmocka_unit_test(test_stale_datagram_call_asserts_in_debug_builds),
        cmocka_unit_test(test_stale_datagram_handle_on_the_loop),
        cmocka_unit_test(test_stale_subprocess_calls_leave_the_next_one_alone),
        cmocka_unit_test(test_held_subprocess_handle_lives_until_release),
        cmocka_unit_test(test_stale_subprocess_call_asserts_in_debug_builds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
