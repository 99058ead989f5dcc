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

static void ufix_start(ufix *f, int sndbuf)
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
    assert_int_equal(pg_uv_stream_open(f->host, (uv_stream_t *)&f->pipe, on_pipe_closed, recorder_factory, &f->r, &f->t),
                     0);
    assert_int_equal(f->r.made, 0); /* connection_made comes from the loop */
    UV_UNTIL(f, f->r.made == 1);
    assert_ptr_equal(f->r.transport, f->t);
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
        cmocka_unit_test(test_timers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
