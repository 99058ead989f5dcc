/* Edge semantics of stream transports, each named after the CPython test in
 * Lib/test/test_asyncio/test_selector_events.py (SelectorSocketTransportTests)
 * that checks the same rule, run here over real socketpairs: EOF while writes
 * are pending, write_eof then close, close and abort while writing is paused,
 * writes after the connection is lost, callbacks from inside callbacks. */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testutil.h"

/* Reads everything the transport sends until EOF; returns the byte count. */
static size_t drain_to_eof(stream_fixture *f, bool *eof)
{
    size_t total = 0;
    *eof = false;
    RUN_UNTIL(f->loop, (total += drain_socket(f->sv[1], NULL, 0, eof), *eof));
    return total;
}

static void write_payload(recorder *r)
{
    static const uint8_t payload[8192];
    assert_int_equal(pg_transport_write(r->transport, payload, sizeof payload), 0);
}

/* test_read_ready_eof + pending writes: the peer's EOF arrives while our
 * buffer is not empty; eof_received() returns false, so the transport closes
 * gracefully: the buffer is flushed first, then connection_lost(None). */
static bool write_then_close_on_eof(recorder *r)
{
    write_payload(r);
    assert_true(pg_transport_get_write_buffer_size(r->transport) > 0);
    return false;
}

static void test_eof_while_writes_pending(void **state)
{
    (void)state;
    stream_fixture f;
    stream_fixture_start(&f, true);
    f.r.hooks.eof = write_then_close_on_eof;
    assert_int_equal(shutdown(f.sv[1], SHUT_WR), 0);
    RUN_UNTIL(f.loop, f.r.eofs == 1);
    assert_true(pg_transport_is_closing(f.t));
    assert_int_equal(f.r.lost, 0); /* not before the buffer drained */
    bool eof;
    size_t got = drain_to_eof(&f, &eof);
    assert_int_equal(got, f.prefill + 8192);
    RUN_UNTIL(f.loop, f.r.lost == 1);
    assert_string_equal(f.r.log, "made eof lost:ok");
    stream_fixture_done(&f);
}

/* test_write_eof_buffer + close: write_eof with a buffer waits for it, close
 * after it changes nothing: the peer gets every byte, then EOF. */
static void test_write_eof_then_close(void **state)
{
    (void)state;
    stream_fixture f;
    stream_fixture_start(&f, true);
    write_payload(&f.r);
    assert_int_equal(pg_transport_write_eof(f.t), 0);
    assert_int_equal(pg_transport_write(f.t, "x", 1), -EPIPE); /* test_write_eof_after_close's rule */
    pg_transport_close(f.t);
    assert_int_equal(pg_transport_write_eof(f.t), 0); /* no-op when closing */
    bool eof;
    size_t got = drain_to_eof(&f, &eof);
    assert_int_equal(got, f.prefill + 8192);
    RUN_UNTIL(f.loop, f.r.lost == 1);
    assert_string_equal(f.r.log, "made lost:ok");
    stream_fixture_done(&f);
}

/* test_write_eof: with an empty buffer, SHUT_WR at once; the peer can still
 * write to us (half-close). */
static void test_write_eof_now_then_read(void **state)
{
    (void)state;
    stream_fixture f;
    stream_fixture_start(&f, false);
    assert_int_equal(pg_transport_write_eof(f.t), 0);
    char c;
    RUN_UNTIL(f.loop, recv(f.sv[1], &c, 1, MSG_DONTWAIT) == 0);
    assert_int_equal(send(f.sv[1], "late", 4, 0), 4);
    RUN_UNTIL(f.loop, f.r.rx_len == 4);
    assert_false(pg_transport_is_closing(f.t));
    stream_fixture_done(&f);
}

/* close() while writing is paused: resume_writing once the buffer drains,
 * before connection_lost (asyncio's _write_ready order). */
static void test_close_during_pause_resumes_first(void **state)
{
    (void)state;
    stream_fixture f;
    stream_fixture_start(&f, true);
    assert_int_equal(pg_transport_set_write_buffer_limits(f.t, 1024, PG_LIMIT_DEFAULT), 0);
    write_payload(&f.r);
    assert_int_equal(f.r.pauses, 1);
    pg_transport_close(f.t);
    bool eof;
    drain_to_eof(&f, &eof);
    RUN_UNTIL(f.loop, f.r.lost == 1);
    assert_string_equal(f.r.log, "made pause resume lost:ok");
    stream_fixture_done(&f);
}

/* test_force_close: abort() while paused drops the buffer, and no
 * resume_writing comes at all. */
static void test_abort_during_pause_no_resume(void **state)
{
    (void)state;
    stream_fixture f;
    stream_fixture_start(&f, true);
    assert_int_equal(pg_transport_set_write_buffer_limits(f.t, 1024, PG_LIMIT_DEFAULT), 0);
    write_payload(&f.r);
    pg_transport_close(f.t);
    pg_transport_abort(f.t); /* abort wins over a graceful close in progress */
    assert_int_equal(pg_transport_get_write_buffer_size(f.t), 0);
    RUN_UNTIL(f.loop, f.r.lost == 1);
    assert_string_equal(f.r.log, "made pause lost:ok");
    stream_fixture_done(&f);
}

/* test_write_after_abort / _conn_lost: writes once the connection is lost are
 * dropped silently, however many there are; is_closing tells. */
static void test_writes_after_loss_dropped(void **state)
{
    (void)state;
    stream_fixture f;
    stream_fixture_start(&f, false);
    pg_transport_abort(f.t);
    for (int i = 0; i < 10; i++)
        assert_int_equal(pg_transport_write(f.t, "data", 4), 0);
    struct iovec iov = { .iov_base = "more", .iov_len = 4 };
    assert_int_equal(pg_transport_writelines(f.t, &iov, 1), 0);
    assert_int_equal(pg_transport_get_write_buffer_size(f.t), 0);
    assert_true(pg_transport_is_closing(f.t));
    RUN_UNTIL(f.loop, f.r.lost == 1);
    char c;
    assert_int_equal(recv(f.sv[1], &c, 1, MSG_DONTWAIT), 0); /* nothing was sent */
    stream_fixture_done(&f);
}

/* A write error (the peer is gone, EPIPE/ECONNRESET) drops the buffer and
 * ends the connection with that error; later writes are dropped. (On epoll
 * the write itself fails; on io_uring its send's completion tells, as in
 * asyncio's proactor.) */
static void test_write_error_then_writes_dropped(void **state)
{
    (void)state;
    stream_fixture f;
    stream_fixture_start(&f, false);
    close(f.sv[1]);
    f.sv[1] = -1;
    assert_int_equal(pg_transport_write(f.t, "data", 4), 0);
    RUN_UNTIL(f.loop, pg_transport_is_closing(f.t));
    assert_int_equal(f.r.lost, 0);
    assert_int_equal(pg_transport_write(f.t, "more", 4), 0);
    RUN_UNTIL(f.loop, f.r.lost == 1);
    assert_true(f.r.lost_error == -EPIPE || f.r.lost_error == -ECONNRESET);
    stream_fixture_done(&f);
}

/* test_pause_resume_reading with close: pause/resume do nothing once closing,
 * and is_reading is false. */
static void test_reading_calls_after_close(void **state)
{
    (void)state;
    stream_fixture f;
    stream_fixture_start(&f, false);
    pg_transport_close(f.t);
    pg_transport_resume_reading(f.t);
    pg_transport_pause_reading(f.t);
    assert_false(pg_transport_is_reading(f.t));
    RUN_UNTIL(f.loop, f.r.lost == 1);
    stream_fixture_done(&f);
}

/* test_close in connection_made: connection_lost still comes after
 * connection_made, on a later iteration, and no data is delivered. */
static void close_in_made(recorder *r)
{
    pg_transport_close(r->transport);
}

static void test_close_inside_connection_made(void **state)
{
    (void)state;
    pg_loop *loop;
    assert_int_equal(pg_loop_new(&loop), 0);
    int sv[2];
    make_socketpair(sv, 0);
    assert_int_equal(send(sv[1], "early", 5, 0), 5);
    recorder r;
    recorder_init(&r);
    r.hooks.made = close_in_made;
    assert_int_equal(pg_stream_adopt_fd(loop, sv[0], recorder_factory, &r, NULL), 0);
    RUN_UNTIL(loop, r.lost == 1);
    assert_string_equal(r.log, "made lost:ok");
    close(sv[1]);
    recorder_free(&r);
    pg_loop_close(loop);
}

/* abort() before connection_made ran (e.g. right after adopting): the order
 * stays made, lost. */
static void test_abort_before_connection_made(void **state)
{
    (void)state;
    pg_loop *loop;
    assert_int_equal(pg_loop_new(&loop), 0);
    int sv[2];
    make_socketpair(sv, 0);
    recorder r;
    recorder_init(&r);
    pg_transport *t;
    assert_int_equal(pg_stream_adopt_fd(loop, sv[0], recorder_factory, &r, &t), 0);
    pg_transport_abort(t);
    RUN_UNTIL(loop, r.lost == 1);
    assert_string_equal(r.log, "made lost:ok");
    close(sv[1]);
    recorder_free(&r);
    pg_loop_close(loop);
}

/* Pause writing, then the peer's EOF with eof_received true: still writable;
 * draining resumes; the order stays made pause eof resume lost. */
static bool keep_open(recorder *r)
{
    (void)r;
    return true;
}

static void test_half_open_while_paused(void **state)
{
    (void)state;
    stream_fixture f;
    stream_fixture_start(&f, true);
    f.r.hooks.eof = keep_open;
    assert_int_equal(pg_transport_set_write_buffer_limits(f.t, 1024, PG_LIMIT_DEFAULT), 0);
    write_payload(&f.r);
    assert_int_equal(shutdown(f.sv[1], SHUT_WR), 0);
    RUN_UNTIL(f.loop, f.r.eofs == 1);
    RUN_UNTIL(f.loop, (drain_socket(f.sv[1], NULL, 0, NULL), f.r.resumes == 1));
    pg_transport_close(f.t);
    RUN_UNTIL(f.loop, f.r.lost == 1);
    assert_string_equal(f.r.log, "made pause eof resume lost:ok");
    stream_fixture_done(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eof_while_writes_pending),
        cmocka_unit_test(test_write_eof_then_close),
        cmocka_unit_test(test_write_eof_now_then_read),
        cmocka_unit_test(test_close_during_pause_resumes_first),
        cmocka_unit_test(test_abort_during_pause_no_resume),
        cmocka_unit_test(test_writes_after_loss_dropped),
        cmocka_unit_test(test_write_error_then_writes_dropped),
        cmocka_unit_test(test_reading_calls_after_close),
        cmocka_unit_test(test_close_inside_connection_made),
        cmocka_unit_test(test_abort_before_connection_made),
        cmocka_unit_test(test_half_open_while_paused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
