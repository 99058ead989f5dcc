/* The libuv host and stream driver (protogen/uv.h) on a socketpair, the
 * other end a raw peer the test drives: the order of callbacks, back-pressure
 * at the watermarks over a small send buffer, close draining the buffer,
 * abort dropping it, EOF, and timers through the host table. */
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "protogen/uv.h"
#include "uv_testutil.h"

typedef struct ufix {
    uv_loop_t loop;
    uv_timer_t guard; /* unreferenced: only wakes a wait that would hang */
    pg_uv_host *host;
    uv_pipe_t pipe;
    int sv[2]; /* sv[0]: the transport's; sv[1]: the raw peer */
    bool handle_closed;
    recorder r;
    pg_transport *t;
} ufix;

static void on_pipe_closed(uv_handle_t *handle)
{
    ufix *f = handle->data;
    f->handle_closed = true;
}

static void ufix_start_with(ufix *f, int sndbuf, pg_protocol_factory factory, void *arg)
{
    memset(f, 0, sizeof *f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    uv_guard_init(&f->loop, &f->guard);
    assert_int_equal(pg_uv_host_new(&f->loop, &f->host), 0);
    make_socketpair(f->sv, sndbuf);
    set_nonblocking(f->sv[1]);
    recorder_init(&f->r);
    assert_int_equal(uv_pipe_init(&f->loop, &f->pipe, 0), 0);
    assert_int_equal(uv_pipe_open(&f->pipe, f->sv[0]), 0);
    f->pipe.data = f;
    assert_int_equal(pg_uv_stream_open(f->host, (uv_stream_t *)&f->pipe, on_pipe_closed, factory, arg, &f->t), 0);
    assert_int_equal(f->r.made, 0); /* connection_made comes from the loop */
    UV_UNTIL(f, f->r.made == 1);
    assert_ptr_equal(f->r.transport, f->t);
}

static void ufix_start(ufix *f, int sndbuf)
{
    ufix_start_with(f, sndbuf, recorder_factory, &f->r);
}

static void ufix_done(ufix *f)
{
    if (f->r.made && !f->r.lost)
        pg_transport_abort(f->t);
    UV_UNTIL(f, f->r.lost == 1 && f->handle_closed);
    assert_ptr_equal(f->pipe.data, f); /* given back */
    close(f->sv[1]);
    pg_uv_host_free(f->host);
    uv_close((uv_handle_t *)&f->guard, NULL);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    recorder_free(&f->r);
}

static void echo(recorder *r, const uint8_t *data, size_t len)
{
    assert_int_equal(pg_transport_write(r->transport, data, len), 0);
}

static void test_order_and_eof(void **state)
{
    (void)state;
    ufix f;
    ufix_start(&f, 0);
    f.r.hooks.data = echo;
    assert_int_equal(send(f.sv[1], "hello", 5, 0), 5);
    UV_UNTIL(&f, f.r.rx_len == 5);
    uint8_t buf[16];
    bool eof = false;
    assert_int_equal(drain_socket(f.sv[1], buf, sizeof buf, &eof), 5);
    assert_memory_equal(buf, "hello", 5);
    /* The peer's EOF: eof_received says close, then connection_lost. */
    shutdown(f.sv[1], SHUT_WR);
    UV_UNTIL(&f, f.r.lost == 1);
    assert_string_equal(f.r.log, "made data eof lost:ok");
    ufix_done(&f);
    assert_false(eof);
}

static void test_back_pressure_and_close_drains(void **state)
{
    (void)state;
    ufix f;
    ufix_start(&f, 4096);
    static uint8_t chunk[64 * 1024];
    memset(chunk, 'x', sizeof chunk);
    size_t sent = 0;
    while (f.r.pauses == 0) {
        assert_int_equal(pg_transport_write(f.t, chunk, sizeof chunk), 0);
        sent += sizeof chunk;
        assert_true(sent <= 64 * sizeof chunk);
    }
    assert_true(f.r.size_at_pause > 64 * 1024); /* above the default high */
    pg_transport_close(f.t);
    assert_int_equal(f.r.lost, 0); /* the buffer drains first */
    size_t got = 0;
    bool eof = false;
    for (int i = 0; !eof; i++) {
        assert_true(i < 10000);
        got += drain_socket(f.sv[1], NULL, 0, &eof);
        if (!eof)
            UV_TURN(&f); /* the kernel has room again: the transport sends more */
    }
    assert_int_equal(got, sent); /* every byte, then EOF */
    assert_string_equal(f.r.log, "made pause resume lost:ok");
    assert_true(f.r.size_at_resume <= 16 * 1024); /* at or below the default low */
    ufix_done(&f);
}

static void test_abort_drops_the_buffer(void **state)
{
    (void)state;
    ufix f;
    ufix_start(&f, 4096);
    static uint8_t chunk[32 * 1024];
    memset(chunk, 'y', sizeof chunk);
    assert_int_equal(pg_transport_write(f.t, chunk, sizeof chunk), 0);
    assert_true(pg_transport_get_write_buffer_size(f.t) > 0); /* more than the kernel took */
    pg_transport_abort(f.t);
    assert_int_equal(f.r.lost, 0); /* never from inside the call */
    UV_UNTIL(&f, f.r.lost == 1 && f.handle_closed);
    assert_string_equal(f.r.log, "made lost:ok");
    size_t got = 0;
    bool eof = false;
    while (!eof)
        got += drain_socket(f.sv[1], NULL, 0, &eof); /* closed: no wait */
    assert_true(got < sizeof chunk);
    ufix_done(&f);
}

/* ---- input held while paused ------------------------------------------- */

/* A buffered protocol over the fixture's recorder that can pause inside
 * get_buffer: libuv reads then all the same, and the core holds it. */
typedef struct pausing_buf {
    recorder *r;
    uint8_t buf[64];
    bool pause_in_get;
    int gets;
} pausing_buf;

static void pb_made(void *self, pg_transport *t)
{
    recorder_ops.connection_made(((pausing_buf *)self)->r, t);
}

static uint8_t *pb_get_buffer(void *self, size_t hint, size_t *len)
{
    pausing_buf *b = self;
    (void)hint;
    b->gets++;
    if (b->pause_in_get) {
        b->pause_in_get = false;
        pg_transport_pause_reading(b->r->transport);
    }
    *len = sizeof b->buf;
    return b->buf;
}

static void pb_updated(void *self, size_t n)
{
    pausing_buf *b = self;
    recorder_ops.data_received(b->r, b->buf, n);
}

static bool pb_eof(void *self)
{
    return recorder_ops.eof_received(((pausing_buf *)self)->r);
}

static void pb_lost(void *self, int error)
{
    recorder_ops.connection_lost(((pausing_buf *)self)->r, error);
}

static const pg_protocol_ops pausing_buf_ops = {
    .connection_made = pb_made,
    .get_buffer = pb_get_buffer,
    .buffer_updated = pb_updated,
    .eof_received = pb_eof,
    .connection_lost = pb_lost,
};

static int pausing_buf_factory(void *arg, pg_protocol *out)
{
    out->ops = &pausing_buf_ops;
    out->self = arg;
    return 0;
}

/* Nothing waits in the socket to be read. */
static bool socket_empty(int fd)
{
    char c;
    return recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

/* Turns that never wait: nothing may happen in them. */
static void uv_idle_turns(ufix *f, int n)
{
    for (int i = 0; i < n; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
}

/* Paused inside get_buffer, so during a read: what libuv read reaches the
 * protocol only once it resumes, from the host's dispatch, and the EOF after
 * it; nothing in between. */
static void test_read_while_paused_is_held(void **state)
{
    (void)state;
    ufix f;
    pausing_buf b = { .r = &f.r };
    ufix_start_with(&f, 0, pausing_buf_factory, &b);
    b.pause_in_get = true;
    assert_int_equal(send(f.sv[1], "abc", 3, 0), 3);
    UV_UNTIL(&f, b.gets == 1);
    assert_true(socket_empty(f.sv[0])); /* libuv read it: the core holds it */
    assert_int_equal(shutdown(f.sv[1], SHUT_WR), 0);
    uv_idle_turns(&f, 5);
    assert_false(pg_transport_is_reading(f.t));
    assert_string_equal(f.r.log, "made");
    pg_transport_resume_reading(f.t);
    assert_string_equal(f.r.log, "made"); /* from the dispatch, not from resume_reading */
    UV_UNTIL(&f, f.r.lost == 1);
    assert_int_equal(f.r.rx_len, 3);
    assert_memory_equal(f.r.rx, "abc", 3);
    assert_string_equal(f.r.log, "made data eof lost:ok");
    ufix_done(&f);
}

/* Closed while it holds input: none of it is delivered, nothing leaks. */
static void test_close_while_held(void **state)
{
    (void)state;
    ufix f;
    pausing_buf b = { .r = &f.r };
    ufix_start_with(&f, 0, pausing_buf_factory, &b);
    b.pause_in_get = true;
    assert_int_equal(send(f.sv[1], "abc", 3, 0), 3);
    UV_UNTIL(&f, b.gets == 1);
    assert_true(socket_empty(f.sv[0]));
    pg_transport_resume_reading(f.t); /* the delivery is deferred ... */
    pg_transport_close(f.t);          /* ... and finds the transport closing */
    UV_UNTIL(&f, f.r.lost == 1);
    assert_string_equal(f.r.log, "made lost:ok");
    ufix_done(&f);
}

/* ---- timers through the host table -------------------------------------- */

typedef struct tctx {
    char log[16];
    size_t n;
    pg_timer t[3];
} tctx;

static tctx *tc;

static void note(void *arg)
{
    tc->log[tc->n++] = (char)(uintptr_t)arg;
}

static void note_and_cancel(void *arg)
{
    note(arg);
    pg_timer_cancel(&tc->t[2]); /* due with it: never delivered */
}

static void test_timers(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    pg_uv_host *host;
    assert_int_equal(pg_uv_host_new(&loop, &host), 0);
    pg_host *core = pg_uv_host_core(host);
    tctx c = { 0 };
    tc = &c;
    for (int i = 0; i < 3; i++)
        pg_timer_init(&c.t[i]);
    assert_int_equal(pg_host_timer_start(core, &c.t[0], 2, note_and_cancel, (void *)(uintptr_t)'a'), 0);
    assert_int_equal(pg_host_timer_start(core, &c.t[1], 2, note, (void *)(uintptr_t)'b'), 0);
    assert_int_equal(pg_host_timer_start(core, &c.t[2], 2, note, (void *)(uintptr_t)'c'), 0);
    /* The active timers keep the loop running; then it has nothing left. */
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_string_equal(c.log, "ab");
    for (int i = 0; i < 3; i++)
        assert_false(pg_timer_is_active(&c.t[i]));

    /* Cancelled before due: the loop no longer waits for it. */
    assert_int_equal(pg_host_timer_start(core, &c.t[0], 60000, note, (void *)(uintptr_t)'x'), 0);
    pg_timer_cancel(&c.t[0]);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_string_equal(c.log, "ab");

    /* Freed with a timer active: left inactive. */
    assert_int_equal(pg_host_timer_start(core, &c.t[1], 60000, note, (void *)(uintptr_t)'y'), 0);
    pg_uv_host_free(host);
    assert_false(pg_timer_is_active(&c.t[1]));
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
    tc = NULL;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_and_eof),
        cmocka_unit_test(test_back_pressure_and_close_drains),
        cmocka_unit_test(test_abort_drops_the_buffer),
        cmocka_unit_test(test_read_while_paused_is_held),
        cmocka_unit_test(test_close_while_held),
        cmocka_unit_test(test_timers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
