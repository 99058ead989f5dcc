/* The stream transport (asyncio's _SelectorSocketTransport) over Unix
 * socketpairs: watermarks, limits, close/abort, EOF, flow control, errors.
 * Back-pressure comes from a small, pre-filled kernel send buffer. */
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "internal.h"
#include "testutil.h"

/* Drains the peer until the transport under test reached cond. */
#define DRAIN_UNTIL(f, total, cond) \
    RUN_UNTIL((f)->loop, ((total) += drain_socket((f)->sv[1], NULL, 0, NULL), (cond)))

/* ---- basics ------------------------------------------------------------- */

static void write_hello_and_close(recorder *r)
{
    assert_int_equal(pg_transport_write(r->transport, "hello", 5), 0);
    pg_transport_close(r->transport);
}

static void test_round_trip_order(void **state)
{
    (void)state;
    pg_loop *loop;
    int sv[2];
    recorder a, b;
    assert_int_equal(pg_loop_new(&loop), 0);
    make_socketpair(sv, 0);
    recorder_init(&a);
    recorder_init(&b);
    a.hooks.made = write_hello_and_close;
    assert_int_equal(pg_stream_adopt_fd(loop, sv[0], recorder_factory, &a, NULL), 0);
    assert_int_equal(pg_stream_adopt_fd(loop, sv[1], recorder_factory, &b, NULL), 0);
    RUN_UNTIL(loop, a.lost && b.lost);
    assert_string_equal(a.log, "made lost:ok");
    assert_string_equal(b.log, "made data eof lost:ok"); /* eof_received false: closes */
    assert_int_equal(b.rx_len, 5);
    assert_memory_equal(b.rx, "hello", 5);
    recorder_free(&a);
    recorder_free(&b);
    pg_loop_close(loop);
}

static void check_no_data_yet(recorder *r)
{
    assert_int_equal(r->data_calls, 0);
}

static void test_no_data_before_made(void **state)
{
    (void)state;
    stream_fixture f;
    memset(&f, 0, sizeof f);
    assert_int_equal(pg_loop_new(&f.loop), 0);
    make_socketpair(f.sv, 0);
    assert_int_equal(send(f.sv[1], "early", 5, 0), 5); /* already there */
    recorder_init(&f.r);
    f.r.hooks.made = check_no_data_yet;
    assert_int_equal(pg_stream_adopt_fd(f.loop, f.sv[0], recorder_factory, &f.r, &f.t), 0);
    RUN_UNTIL(f.loop, f.r.rx_len == 5);
    assert_string_equal(f.r.log, "made data");
    stream_fixture_done(&f);
}

static void test_pause_reading_in_made(void **state)
{
    (void)state;
    stream_fixture f;
    memset(&f, 0, sizeof f);
    assert_int_equal(pg_loop_new(&f.loop), 0);
    make_socketpair(f.sv, 0);
    assert_int_equal(send(f.sv[1], "data", 4, 0), 4);
    recorder_init(&f.r);
    f.r.pause_reading_in_made = true;
    assert_int_equal(pg_stream_adopt_fd(f.loop, f.sv[0], recorder_factory, &f.r, &f.t), 0);
    RUN_UNTIL(f.loop, f.r.made == 1);
    assert_false(pg_transport_is_reading(f.t));
    /* Readable for several iterations, yet nothing is read. */
    run_idle(f.loop, 3);
    assert_int_equal(pg_loop_run_once(f.loop, 10), 0);
    assert_int_equal(f.r.data_calls, 0);

    pg_transport_pause_reading(f.t); /* idempotent */
    pg_transport_resume_reading(f.t);
    pg_transport_resume_reading(f.t);
    assert_true(pg_transport_is_reading(f.t));
    RUN_UNTIL(f.loop, f.r.rx_len == 4);
    assert_string_equal(f.r.log, "made data");
    stream_fixture_done(&f);
}

/* Reading paused while a read is under way (on io_uring a receive is in the
 * ring, and what it brings is held): the bytes that arrive meanwhile, and
 * the end after them, reach the protocol only once it resumes, in order. */
static void test_bytes_while_paused_come_after_resume(void **state)
{
    (void)state;
    stream_fixture f;
    stream_fixture_start(&f, false);
    assert_int_equal(send(f.sv[1], "one", 3, 0), 3);
    RUN_UNTIL(f.loop, f.r.data_calls == 1);
    pg_transport_pause_reading(f.t); /* the next read is asked for already */
    assert_int_equal(send(f.sv[1], "two", 3, 0), 3);
    assert_int_equal(shutdown(f.sv[1], SHUT_WR), 0);
    run_idle(f.loop, 3);
    assert_int_equal(pg_loop_run_once(f.loop, 10), 0);
    assert_int_equal(f.r.data_calls, 1);
    assert_int_equal(f.r.eofs, 0);
    pg_transport_resume_reading(f.t);
    assert_int_equal(f.r.data_calls, 1); /* from the loop, not from resume_reading */
    RUN_UNTIL(f.loop, f.r.eofs == 1);
    assert_int_equal(f.r.rx_len, 6);
    assert_memory_equal(f.r.rx, "onetwo", 6);
    assert_string_equal(f.r.log, "made data eof");
    stream_fixture_done(&f);
}

/* Aborted while it holds what came during a pause (on io_uring), with its
 * delivery deferred: none of it reaches the protocol, nothing leaks. */
static void test_abort_while_bytes_held(void **state)
{
    (void)state;
    stream_fixture f;
    stream_fixture_start(&f, false);
    assert_int_equal(send(f.sv[1], "one", 3, 0), 3);
    RUN_UNTIL(f.loop, f.r.data_calls == 1);
    pg_transport_pause_reading(f.t);
    assert_int_equal(send(f.sv[1], "two", 3, 0), 3);
    run_idle(f.loop, 3);
    assert_int_equal(pg_loop_run_once(f.loop, 10), 0);
    pg_transport_resume_reading(f.t);
    pg_transport_abort(f.t);
    RUN_UNTIL(f.loop, f.r.lost == 1);
    assert_int_equal(f.r.rx_len, 3);
    assert_string_equal(f.r.log, "made data lost:ok");
    stream_fixture_done(&f);
}

static void test_extra_info(void **state)
{
    (void)state;
    stream_fixture f;
    stream_fixture_start(&f, false);
    pg_extra_info info;
    assert_int_equal(pg_transport_get_extra_info(f.t, PG_EXTRA_SOCKET, &info), 0);
    assert_int_equal(info.fd, f.sv[0]);
    assert_int_equal(pg_transport_get_extra_info(f.t, PG_EXTRA_PEERNAME, &info), 0);
    assert_int_equal(info.addr.ss_family, AF_UNIX);
    assert_int_equal(pg_transport_get_extra_info(f.t, PG_EXTRA_SOCKNAME, &info), 0);
    assert_int_equal(info.addr.ss_family, AF_UNIX);
    assert_true(pg_transport_can_write_eof(f.t));
    assert_false(pg_transport_is_closing(f.t));
    assert_true(pg_transport_is_reading(f.t));
    stream_fixture_done(&f);
}

static int refuse(void *arg, pg_protocol *out)
{
    (void)arg;
    (void)out;
    return -EPERM;
}

static void test_adopt_errors(void **state)
{
    (void)state;
    pg_loop *loop;
    assert_int_equal(pg_loop_new(&loop), 0);
    recorder r;
    recorder_init(&r);
    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(pg_stream_adopt_fd(loop, p[0], recorder_factory, &r, NULL), -ENOTSOCK);
    int d[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM, 0, d), 0);
    assert_int_equal(pg_stream_adopt_fd(loop, d[0], recorder_factory, &r, NULL), -EINVAL);
    int s[2];
    make_socketpair(s, 0);
    assert_int_equal(pg_stream_adopt_fd(loop, s[0], refuse, NULL, NULL), -EPERM);
    assert_true(fcntl(s[0], F_GETFD) >= 0); /* still the caller's */
    assert_int_equal(pg_stream_adopt_fd(loop, -1, recorder_factory, &r, NULL), -EINVAL);
    run_idle(loop, 2);
    assert_int_equal(r.made, 0);
    for (int i = 0; i < 2; i++) {
        close(p[i]);
        close(d[i]);
        close(s[i]);
    }
    pg_loop_close(loop);
}

static void test_transport_size(void **state)
{
    (void)state;
    /* Idle connections must stay cheap: no buffer, a small block. 176 bytes
     * (it was 128): the server's list of connections (for
     * pg_server_close_clients) takes two links, the input held while the
     * protocol paused reading a pointer (the core's), the io_uring receive
     * path its mode, and the bytes an io_uring send has in flight a count.
     * The block comes from the loop's pool with no malloc header. */
    print_message("sizeof(stream transport) = %zu\n", pg__stream_sizeof());
    assert_true(pg__stream_sizeof() <= 176);
    assert_true(pg__stream_sizeof() <= PG__STREAM_BLOCK);
}

/* ---- watermarks and limits ---------------------------------------------- */

static void test_watermark_high_boundary(void **state)
{
    (void)state;
    stream_fixture f;
    stream_fixture_start(&f, true);
    size_t high, low;
    assert_int_equal(pg_transport_set_write_buffer_limits(f.t, 4, PG_LIMIT_DEFAULT), 0);
    pg_transport_get_write_buffer_limits(f.t, &high, &low);
    assert_int_equal(high, 4);
    assert_int_equal(low, 1);

    assert_int_equal(pg_transport_write(f.t, "abc", 3), 0);
    assert_int_equal(pg_transport_get_write_buffer_size(f.t), 3);
    assert_int_equal(f.r.pauses, 0);
    assert_int_equal(pg_transport_write(f.t, "d", 1), 0); /* 4 == high: not above */
    assert_int_equal(pg_transport_get_write_buffer_size(f.t), 4);
    assert_int_equal(f.r.pauses, 0);
    assert_int_equal(pg_transport_write(f.t, "ef", 2), 0); /* 6 > high: paused, synchronously */
    assert_int_equal(f.r.pauses, 1);
    assert_int_equal(f.r.size_at_pause, 6);
    assert_int_equal(pg_transport_write(f.t, "ghijk", 5), 0); /* once per pause */
    assert_int_equal(f.r.pauses, 1);
    assert_int_equal(pg_transport_get_write_buffer_size(f.t), 11);

    size_t total = 0;
    DRAIN_UNTIL(&f, total, f.r.resumes == 1);
    assert_true(f.r.size_at_resume <= 1);
    DRAIN_UNTIL(&f, total, total == f.prefill + 11);
    assert_string_equal(f.r.log, "made pause resume");
    stream_fixture_done(&f);
}

static void test_watermark_resume_at_low(void **state)
{
    (void)state;
    stream_fixture f;
    stream_fixture_start(&f, true);
    assert_int_equal(pg_transport_set_write_buffer_limits(f.t, 64 * 1024, 8 * 1024), 0);
    static uint8_t big[256 * 1024];
    assert_int_equal(pg_transport_write(f.t, big, sizeof big), 0);
    assert_int_equal(f.r.pauses, 1);

    /* The peer reads a little per turn, so the buffer drains in steps: no
     * resume while above low, one resume at or below it. */
    bool seen_between = false;
    size_t total = 0;
    uint8_t chunk[8192];
    for (int i = 0; f.r.resumes == 0; i++) {
        assert_true(i < 100000);
        ssize_t n = recv(f.sv[1], chunk, sizeof chunk, MSG_DONTWAIT);
        if (n > 0)
            total += (size_t)n;
        assert_int_equal(pg_loop_run_once(f.loop, 1000), 0);
        size_t size = pg_transport_get_write_buffer_size(f.t);
        if (f.r.resumes == 0 && size > 8 * 1024 && size < sizeof big)
            seen_between = true;
    }
    assert_true(seen_between);
    assert_true(f.r.size_at_resume <= 8 * 1024);
    DRAIN_UNTIL(&f, total, total == f.prefill + sizeof big);
    assert_string_equal(f.r.log, "made pause resume");
    stream_fixture_done(&f);
}

static void test_limits_validation(void **state)
{
    (void)state;
    stream_fixture f;
    stream_fixture_start(&f, false);
    size_t high, low;
    pg_transport_get_write_buffer_limits(f.t, &high, &low);
    assert_int_equal(high, 64 * 1024);
    assert_int_equal(low, 16 * 1024);

    assert_int_equal(pg_transport_set_write_buffer_limits(f.t, 1000, PG_LIMIT_DEFAULT), 0);
    pg_transport_get_write_buffer_limits(f.t, &high, &low);
    assert_int_equal(high, 1000);
    assert_int_equal(low, 250); /* only high: low = high / 4 */

    assert_int_equal(pg_transport_set_write_buffer_limits(f.t, 7, PG_LIMIT_DEFAULT), 0);
    pg_transport_get_write_buffer_limits(f.t, &high, &low);
    assert_int_equal(low, 1); /* rounds down */

    assert_int_equal(pg_transport_set_write_buffer_limits(f.t, PG_LIMIT_DEFAULT, 100), 0);
    pg_transport_get_write_buffer_limits(f.t, &high, &low);
    assert_int_equal(high, 400); /* only low: high = 4 * low */
    assert_int_equal(low, 100);

    assert_int_equal(pg_transport_set_write_buffer_limits(f.t, 10, 20), -EINVAL);
    pg_transport_get_write_buffer_limits(f.t, &high, &low);
    assert_int_equal(high, 400); /* unchanged */
    assert_int_equal(low, 100);

    assert_int_equal(pg_transport_set_write_buffer_limits(f.t, 0, 0), 0);
    assert_int_equal(pg_transport_set_write_buffer_limits(f.t, 5, 5), 0);
    assert_int_equal(pg_transport_set_write_buffer_limits(f.t, PG_LIMIT_DEFAULT, 0), 0);
    pg_transport_get_write_buffer_limits(f.t, &high, &low);
    assert_int_equal(high, 0);
    assert_int_equal(low, 0);

    assert_int_equal(pg_transport_set_write_buffer_limits(f.t, PG_LIMIT_DEFAULT, PG_LIMIT_DEFAULT), 0);
    pg_transport_get_write_buffer_limits(f.t, &high, &low);
    assert_int_equal(high, 64 * 1024);
    assert_int_equal(low, 16 * 1024);
    assert_int_equal(f.r.pauses, 0);
    stream_fixture_done(&f);
}

static void test_limits_pause_never_resume(void **state)
{
    (void)state;
    stream_fixture f;
    stream_fixture_start(&f, true);
    assert_int_equal(pg_transport_write(f.t, "0123456789", 10), 0);
    assert_int_equal(f.r.pauses, 0);
    assert_int_equal(pg_transport_set_write_buffer_limits(f.t, 4, PG_LIMIT_DEFAULT), 0);
    assert_int_equal(f.r.pauses, 1); /* at once */
    assert_int_equal(pg_transport_set_write_buffer_limits(f.t, 100, 50), 0);
    assert_int_equal(f.r.resumes, 0); /* setting limits never resumes */
    size_t total = 0;
    DRAIN_UNTIL(&f, total, f.r.resumes == 1); /* the next drain does */
    assert_string_equal(f.r.log, "made pause resume");
    stream_fixture_done(&f);
}

/* ---- close, abort, write_eof -------------------------------------------- */

static void test_close_flushes(void **state)
{
    (void)state;
    stream_fixture f;
    stream_fixture_start(&f, true);
    assert_int_equal(pg_transport_write(f.t, "tail", 4), 0);
    assert_int_equal(pg_transport_get_write_buffer_size(f.t), 4);
    pg_transport_close(f.t);
    pg_transport_close(f.t); /* idempotent */
    assert_true(pg_transport_is_closing(f.t));
    assert_false(pg_transport_is_reading(f.t));
    /* As asyncio: still appended while the buffer is not empty. */
    assert_int_equal(pg_transport_write(f.t, "more", 4), 0);
    assert_int_equal(pg_transport_get_write_buffer_size(f.t), 8);
    run_idle(f.loop, 3);
    assert_int_equal(f.r.lost, 0); /* waits for the buffer to drain */

    uint8_t *all = malloc(f.prefill + 16);
    size_t total = 0;
    bool eof = false;
    RUN_UNTIL(f.loop, (total += drain_socket(f.sv[1], all + total, f.prefill + 16 - total, &eof), eof));
    assert_int_equal(total, f.prefill + 8);
    assert_memory_equal(all + f.prefill, "tailmore", 8);
    free(all);
    RUN_UNTIL(f.loop, f.r.lost == 1);
    assert_string_equal(f.r.log, "made lost:ok");
    stream_fixture_done(&f);
}

static void test_abort_drops_buffer(void **state)
{
    (void)state;
    stream_fixture f;
    stream_fixture_start(&f, true);
    assert_int_equal(pg_transport_write(f.t, "tail", 4), 0);
    pg_transport_abort(f.t);
    assert_int_equal(pg_transport_get_write_buffer_size(f.t), 0);
    assert_true(pg_transport_is_closing(f.t));
    assert_int_equal(f.r.lost, 0); /* on the next iteration, not inside abort() */
    assert_int_equal(pg_transport_write(f.t, "late", 4), 0); /* dropped */
    pg_transport_abort(f.t);
    pg_transport_close(f.t);
    assert_int_equal(pg_loop_run_once(f.loop, 0), 0);
    assert_string_equal(f.r.log, "made lost:ok");

    size_t total = 0;
    bool eof = false;
    RUN_UNTIL(f.loop, (total += drain_socket(f.sv[1], NULL, 0, &eof), eof));
    assert_int_equal(total, f.prefill); /* "tail" never left */
    stream_fixture_done(&f);
}

static void test_abort_while_closing(void **state)
{
    (void)state;
    stream_fixture f;
    stream_fixture_start(&f, true);
    assert_int_equal(pg_transport_write(f.t, "tail", 4), 0);
    pg_transport_close(f.t);
    pg_transport_abort(f.t); /* drops what close() was flushing */
    assert_int_equal(pg_transport_get_write_buffer_size(f.t), 0);
    RUN_UNTIL(f.loop, f.r.lost == 1);
    assert_string_equal(f.r.log, "made lost:ok");
    stream_fixture_done(&f);
}

static void test_write_after_close(void **state)
{
    (void)state;
    stream_fixture f;
    stream_fixture_start(&f, false);
    pg_transport_close(f.t); /* empty buffer: connection_lost is scheduled */
    assert_int_equal(pg_transport_write(f.t, "x", 1), 0); /* dropped, no crash */
    struct iovec iov = { .iov_base = "yz", .iov_len = 2 };
    assert_int_equal(pg_transport_writelines(f.t, &iov, 1), 0);
    assert_int_equal(pg_transport_get_write_buffer_size(f.t), 0);
    pg_transport_pause_reading(f.t); /* no effect once closing */
    pg_transport_resume_reading(f.t);
    assert_false(pg_transport_is_reading(f.t));
    assert_int_equal(pg_transport_write_eof(f.t), 0); /* no-op when closing */
    RUN_UNTIL(f.loop, f.r.lost == 1);
    bool eof = false;
    size_t total = 0;
    RUN_UNTIL(f.loop, (total += drain_socket(f.sv[1], NULL, 0, &eof), eof));
    assert_int_equal(total, 0);
    assert_string_equal(f.r.log, "made lost:ok");
    stream_fixture_done(&f);
}

static void test_write_after_write_eof(void **state)
{
    (void)state;
    stream_fixture f;
    stream_fixture_start(&f, false);
    assert_int_equal(pg_transport_write(f.t, "abc", 3), 0);
    assert_int_equal(pg_transport_write_eof(f.t), 0);
    assert_int_equal(pg_transport_write_eof(f.t), 0); /* no-op */
    assert_int_equal(pg_transport_write(f.t, "x", 1), -EPIPE);
    assert_int_equal(pg_transport_write(f.t, "", 0), -EPIPE);
    struct iovec iov = { .iov_base = "x", .iov_len = 1 };
    assert_int_equal(pg_transport_writelines(f.t, &iov, 1), -EPIPE);
    assert_false(pg_transport_is_closing(f.t));

    bool eof = false;
    size_t total = 0;
    RUN_UNTIL(f.loop, (total += drain_socket(f.sv[1], NULL, 0, &eof), eof));
    assert_int_equal(total, 3);
    /* Half-closed: the transport still reads. */
    assert_int_equal(send(f.sv[1], "back", 4, 0), 4);
    RUN_UNTIL(f.loop, f.r.rx_len == 4);
    pg_transport_close(f.t);
    RUN_UNTIL(f.loop, f.r.lost == 1);
    assert_string_equal(f.r.log, "made data lost:ok");
    stream_fixture_done(&f);
}

static void test_write_eof_waits_for_drain(void **state)
{
    (void)state;
    stream_fixture f;
    stream_fixture_start(&f, true);
    assert_int_equal(pg_transport_write(f.t, "last", 4), 0);
    assert_int_equal(pg_transport_write_eof(f.t), 0);
    assert_int_equal(pg_transport_get_write_buffer_size(f.t), 4);
    assert_int_equal(pg_transport_write(f.t, "x", 1), -EPIPE);

    /* The peer sees every byte, then EOF: SHUT_WR came after the drain. */
    uint8_t *all = malloc(f.prefill + 8);
    size_t total = 0;
    bool eof = false;
    RUN_UNTIL(f.loop, (total += drain_socket(f.sv[1], all + total, f.prefill + 8 - total, &eof), eof));
    assert_int_equal(total, f.prefill + 4);
    assert_memory_equal(all + f.prefill, "last", 4);
    free(all);
    assert_false(pg_transport_is_closing(f.t));
    assert_int_equal(f.r.lost, 0);
    stream_fixture_done(&f);
}

static bool eof_reply(recorder *r)
{
    /* Half-open: still writable. */
    assert_false(pg_transport_is_closing(r->transport));
    assert_int_equal(pg_transport_write(r->transport, "bye", 3), 0);
    return true;
}

static void test_eof_received_true_half_open(void **state)
{
    (void)state;
    stream_fixture f;
    stream_fixture_start(&f, false);
    f.r.hooks.eof = eof_reply;
    assert_int_equal(send(f.sv[1], "hi", 2, 0), 2);
    assert_int_equal(shutdown(f.sv[1], SHUT_WR), 0);
    RUN_UNTIL(f.loop, f.r.eofs == 1);
    /* Nothing more to read (asyncio still says is_reading() here; see stream.c). */
    assert_false(pg_transport_is_reading(f.t));

    uint8_t buf[16];
    size_t total = 0;
    RUN_UNTIL(f.loop, (total += drain_socket(f.sv[1], buf + total, sizeof buf - total, NULL), total == 3));
    assert_memory_equal(buf, "bye", 3);
    /* Still open; reading stays off, even after pause/resume. */
    pg_transport_pause_reading(f.t);
    pg_transport_resume_reading(f.t);
    assert_int_equal(pg_transport_write(f.t, "!", 1), 0);
    run_idle(f.loop, 3);
    assert_false(pg_transport_is_closing(f.t));
    assert_int_equal(f.r.lost, 0);
    assert_int_equal(drain_socket(f.sv[1], buf, sizeof buf, NULL), 1);

    pg_transport_close(f.t);
    RUN_UNTIL(f.loop, f.r.lost == 1);
    assert_string_equal(f.r.log, "made data eof lost:ok");
    stream_fixture_done(&f);
}

static void test_eof_received_false_closes(void **state)
{
    (void)state;
    stream_fixture f;
    stream_fixture_start(&f, false);
    assert_int_equal(shutdown(f.sv[1], SHUT_WR), 0);
    RUN_UNTIL(f.loop, f.r.lost == 1);
    assert_string_equal(f.r.log, "made eof lost:ok");
    assert_int_equal(f.r.lost_error, 0);
    stream_fixture_done(&f);
}

static void test_resume_before_lost_on_graceful_close(void **state)
{
    (void)state;
    stream_fixture f;
    stream_fixture_start(&f, true);
    assert_int_equal(pg_transport_set_write_buffer_limits(f.t, 4, PG_LIMIT_DEFAULT), 0);
    assert_int_equal(pg_transport_write(f.t, "0123456789", 10), 0);
    assert_int_equal(f.r.pauses, 1);
    pg_transport_close(f.t);
    size_t total = 0;
    DRAIN_UNTIL(&f, total, f.r.lost == 1);
    assert_string_equal(f.r.log, "made pause resume lost:ok");
    stream_fixture_done(&f);
}

/* ---- writelines, errors, bulk ------------------------------------------- */

static void test_writelines(void **state)
{
    (void)state;
    stream_fixture f;
    stream_fixture_start(&f, false);
    struct iovec iov[3] = { { "ab", 2 }, { NULL, 0 }, { "cde", 3 } };
    assert_int_equal(pg_transport_writelines(f.t, iov, 3), 0);
    assert_int_equal(pg_transport_writelines(f.t, iov, 0), 0);
    assert_int_equal(pg_transport_writelines(f.t, iov, -1), -EINVAL);
    uint8_t buf[16];
    size_t total = 0;
    RUN_UNTIL(f.loop, (total += drain_socket(f.sv[1], buf + total, sizeof buf - total, NULL), total == 5));
    assert_memory_equal(buf, "abcde", 5);
    stream_fixture_done(&f);
}

/* Runs the loop, draining the peer, until the n bytes written after the
 * prefill came, and checks them (nothing more may come). */
static void drain_past_prefill(stream_fixture *f, const char *want, size_t n)
{
    uint8_t *all = malloc(f->prefill + n + 2);
    size_t total = 0;
    RUN_UNTIL(f->loop, (total += drain_socket(f->sv[1], all + total, f->prefill + n + 2 - total, NULL),
                        total == f->prefill + n));
    assert_memory_equal(all + f->prefill, want, n);
    free(all);
}

static void test_writelines_flow_control(void **state)
{
    (void)state;
    stream_fixture f;
    stream_fixture_start(&f, true);
    assert_int_equal(pg_transport_set_write_buffer_limits(f.t, 4, PG_LIMIT_DEFAULT), 0);
    struct iovec two[2] = { { "abc", 3 }, { "def", 3 } };
    assert_int_equal(pg_transport_writelines(f.t, two, 1), 0);
    assert_int_equal(f.r.pauses, 0);
    assert_int_equal(pg_transport_writelines(f.t, two + 1, 1), 0);
    assert_int_equal(f.r.pauses, 1);
    assert_int_equal(pg_transport_get_write_buffer_size(f.t), 6);

    drain_past_prefill(&f, "abcdef", 6);
    RUN_UNTIL(f.loop, f.r.resumes == 1);
    assert_string_equal(f.r.log, "made pause resume");
    stream_fixture_done(&f);
}

/* A write made outside the loop's callbacks (an embedding program, a test)
 * reaches the peer without the loop running: on io_uring its send is
 * submitted at once, not with the next iteration's wait. */
static void test_write_outside_the_loop_goes_at_once(void **state)
{
    (void)state;
    stream_fixture f;
    stream_fixture_start(&f, false);
    assert_int_equal(pg_transport_write(f.t, "hello", 5), 0);
    struct pollfd pfd = { .fd = f.sv[1], .events = POLLIN };
    assert_int_equal(poll(&pfd, 1, 5000), 1);
    uint8_t buf[8];
    assert_int_equal(drain_socket(f.sv[1], buf, sizeof buf, NULL), 5);
    assert_memory_equal(buf, "hello", 5);
    stream_fixture_done(&f);
}

/* Bytes a send has in flight count as buffered, as asyncio's proactor
 * counts its pending write. A quiet loop's write goes at once on both
 * backends (on io_uring a send system call of its own); what the kernel
 * does not take stays buffered, on io_uring in the ring's send, until it
 * went (pause_writing above high, resume_writing once it went). */
static void test_bytes_in_flight_count_as_buffered(void **state)
{
    (void)state;
    stream_fixture f;
    stream_fixture_start(&f, false);
    assert_int_equal(pg_transport_set_write_buffer_limits(f.t, 4, PG_LIMIT_DEFAULT), 0);
    assert_int_equal(pg_transport_write(f.t, "0123456789", 10), 0);
    assert_int_equal(pg_transport_get_write_buffer_size(f.t), 0);
    assert_int_equal(f.r.pauses, 0);
    uint8_t buf[16];
    assert_int_equal(drain_socket(f.sv[1], buf, sizeof buf, NULL), 10);
    assert_memory_equal(buf, "0123456789", 10);
    stream_fixture_done(&f);

    stream_fixture_start(&f, true); /* the kernel's buffer is full */
    assert_int_equal(pg_transport_set_write_buffer_limits(f.t, 4, PG_LIMIT_DEFAULT), 0);
    assert_int_equal(pg_transport_write(f.t, "0123456789", 10), 0);
    assert_int_equal(pg_transport_get_write_buffer_size(f.t), 10);
    assert_int_equal(f.r.pauses, 1);
    drain_past_prefill(&f, "0123456789", 10);
    RUN_UNTIL(f.loop, pg_transport_get_write_buffer_size(f.t) == 0 && f.r.resumes == 1);
    assert_string_equal(f.r.log, "made pause resume");
    stream_fixture_done(&f);
}

/* A large write in pieces: a quiet loop's send takes what the kernel does,
 * on io_uring the ring's send the next part (cut inside an entry), the
 * write buffer the rest; the peer gets every byte once, in order. */
static void test_large_writelines_arrive_whole_in_order(void **state)
{
    (void)state;
    stream_fixture f;
    stream_fixture_start(&f, false);
    static uint8_t data[1100 * 1024];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(i * 7 + i / 251);
    struct iovec iov[4] = { { data, 100 * 1024 }, { NULL, 0 }, { data + 100 * 1024, 300 * 1024 },
                            { data + 400 * 1024, 700 * 1024 } };
    assert_int_equal(pg_transport_writelines(f.t, iov, 4), 0);
    uint8_t *got = malloc(sizeof data + 1);
    size_t total = 0;
    RUN_UNTIL(f.loop, (total += drain_socket(f.sv[1], got + total, sizeof data + 1 - total, NULL),
                       total == sizeof data && pg_transport_get_write_buffer_size(f.t) == 0));
    assert_memory_equal(got, data, sizeof data);
    free(got);
    stream_fixture_done(&f);
}

/* abort() with a send stuck in flight (the peer reads nothing): the peer
 * sees the connection close once connection_lost ran, without the loop
 * running again, and what was in flight is released (ASan and valgrind
 * tell a leak). */
static void test_abort_with_a_send_in_flight_closes(void **state)
{
    (void)state;
    stream_fixture f;
    stream_fixture_start(&f, true); /* the kernel's buffer is full */
    static uint8_t big[32 * 1024];
    assert_int_equal(pg_transport_write(f.t, big, sizeof big), 0);
    assert_int_equal(pg_loop_run_once(f.loop, 0), 0);
    assert_true(pg_transport_get_write_buffer_size(f.t) > 0);
    pg_transport_abort(f.t);
    RUN_UNTIL(f.loop, f.r.lost == 1);
    assert_string_equal(f.r.log, "made lost:ok");
    bool eof = false;
    size_t got = 0;
    for (int i = 0; i < 100 && !eof; i++) {
        struct pollfd pfd = { .fd = f.sv[1], .events = POLLIN };
        assert_int_equal(poll(&pfd, 1, 5000), 1);
        uint8_t chunk[4096];
        ssize_t n = recv(f.sv[1], chunk, sizeof chunk, MSG_DONTWAIT);
        if (n <= 0)
            eof = true; /* the end, or a reset */
        else
            got += (size_t)n;
    }
    assert_true(eof);
    assert_true(got >= f.prefill);
    stream_fixture_done(&f);
}

static void test_write_error_is_fatal(void **state)
{
    (void)state;
    stream_fixture f;
    stream_fixture_start(&f, false);
    close(f.sv[1]);
    f.sv[1] = open("/dev/null", O_RDONLY | O_CLOEXEC); /* for teardown */
    /* No SIGPIPE (MSG_NOSIGNAL); asyncio returns normally, connection_lost
     * tells. (The write fails at once on epoll, at its send's completion on
     * io_uring.) */
    assert_int_equal(pg_transport_write(f.t, "x", 1), 0);
    assert_int_equal(f.r.lost, 0);
    RUN_UNTIL(f.loop, pg_transport_is_closing(f.t));
    RUN_UNTIL(f.loop, f.r.lost == 1);
    assert_string_equal(f.r.log, "made lost:EPIPE");
    assert_int_equal(f.r.lost_error, -EPIPE);
    stream_fixture_done(&f);
}

static void test_peer_closed_with_unread_data_resets(void **state)
{
    (void)state;
    stream_fixture f;
    stream_fixture_start(&f, false);
    assert_int_equal(pg_transport_write(f.t, "unread", 6), 0);
    run_idle(f.loop, 1);
    close(f.sv[1]); /* with unread data: the kernel resets the connection */
    f.sv[1] = open("/dev/null", O_RDONLY | O_CLOEXEC);
    RUN_UNTIL(f.loop, f.r.lost == 1);
    assert_string_equal(f.r.log, "made lost:ECONNRESET");
    stream_fixture_done(&f);
}

/* Two transports readable in the same epoll batch: whichever is dispatched
 * first aborts the other, whose pending event must then be skipped (no data
 * after abort), and whose memory lives until its deferred connection_lost. */
static void abort_the_other(recorder *r, const uint8_t *data, size_t len)
{
    recorder *other = r->user;
    (void)data;
    (void)len;
    assert_false(pg_transport_is_closing(r->transport)); /* never data after abort */
    if (other->transport != NULL && !pg_transport_is_closing(other->transport))
        pg_transport_abort(other->transport);
}

static void test_abort_other_in_same_batch(void **state)
{
    (void)state;
    pg_loop *loop;
    int p1[2], p2[2];
    recorder a, b;
    assert_int_equal(pg_loop_new(&loop), 0);
    make_socketpair(p1, 0);
    make_socketpair(p2, 0);
    recorder_init(&a);
    recorder_init(&b);
    a.user = &b;
    b.user = &a;
    a.hooks.data = abort_the_other;
    b.hooks.data = abort_the_other;
    assert_int_equal(pg_stream_adopt_fd(loop, p1[0], recorder_factory, &a, NULL), 0);
    assert_int_equal(pg_stream_adopt_fd(loop, p2[0], recorder_factory, &b, NULL), 0);
    RUN_UNTIL(loop, a.made && b.made);
    assert_int_equal(send(p1[1], "1", 1, 0), 1);
    assert_int_equal(send(p2[1], "2", 1, 0), 1);
    RUN_UNTIL(loop, a.lost + b.lost == 1);
    assert_int_equal(a.data_calls + b.data_calls, 1);
    recorder *survivor = a.lost ? &b : &a;
    assert_string_equal(survivor->log, "made data");
    recorder *aborted = survivor->user;
    assert_string_equal(aborted->log, "made lost:ok");
    pg_transport_close(survivor->transport);
    RUN_UNTIL(loop, a.lost && b.lost);
    close(p1[1]);
    close(p2[1]);
    recorder_free(&a);
    recorder_free(&b);
    pg_loop_close(loop);
}

#define BULK_SIZE (1024 * 1024)

typedef struct pump {
    size_t sent;
} pump;

static void pump_more(recorder *r)
{
    pump *p = r->user;
    uint8_t chunk[1000];
    while (!r->paused && p->sent < BULK_SIZE) {
        size_t n = BULK_SIZE - p->sent < sizeof chunk ? BULK_SIZE - p->sent : sizeof chunk;
        for (size_t i = 0; i < n; i++)
            chunk[i] = (uint8_t)((p->sent + i) % 251);
        assert_int_equal(pg_transport_write(r->transport, chunk, n), 0);
        p->sent += n;
    }
    if (p->sent == BULK_SIZE)
        pg_transport_close(r->transport);
}

static void test_bulk_transfer(void **state)
{
    (void)state;
    /* 1 MiB through a small kernel buffer: flow control alternates, every byte
     * arrives in order, and close() flushes the rest. */
    pg_loop *loop;
    int sv[2];
    recorder a, b;
    pump p = { 0 };
    assert_int_equal(pg_loop_new(&loop), 0);
    make_socketpair(sv, 4096);
    recorder_init(&a);
    recorder_init(&b);
    a.user = &p;
    a.hooks.made = pump_more;
    a.hooks.resume = pump_more;
    assert_int_equal(pg_stream_adopt_fd(loop, sv[0], recorder_factory, &a, NULL), 0);
    assert_int_equal(pg_stream_adopt_fd(loop, sv[1], recorder_factory, &b, NULL), 0);
    RUN_UNTIL(loop, a.lost && b.lost);
    assert_int_equal(b.rx_len, BULK_SIZE);
    for (size_t i = 0; i < BULK_SIZE; i++)
        if (b.rx[i] != (uint8_t)(i % 251))
            fail_msg("byte %zu differs", i);
    assert_true(a.pauses >= 1);
    assert_int_equal(a.pauses, a.resumes);
    assert_string_equal(b.log, "made data eof lost:ok");
    recorder_free(&a);
    recorder_free(&b);
    pg_loop_close(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_order),
        cmocka_unit_test(test_no_data_before_made),
        cmocka_unit_test(test_pause_reading_in_made),
        cmocka_unit_test(test_bytes_while_paused_come_after_resume),
        cmocka_unit_test(test_abort_while_bytes_held),
        cmocka_unit_test(test_extra_info),
        cmocka_unit_test(test_adopt_errors),
        cmocka_unit_test(test_transport_size),
        cmocka_unit_test(test_watermark_high_boundary),
        cmocka_unit_test(test_watermark_resume_at_low),
        cmocka_unit_test(test_limits_validation),
        cmocka_unit_test(test_limits_pause_never_resume),
        cmocka_unit_test(test_close_flushes),
        cmocka_unit_test(test_abort_drops_buffer),
        cmocka_unit_test(test_abort_while_closing),
        cmocka_unit_test(test_write_after_close),
        cmocka_unit_test(test_write_after_write_eof),
        cmocka_unit_test(test_write_eof_waits_for_drain),
        cmocka_unit_test(test_eof_received_true_half_open),
        cmocka_unit_test(test_eof_received_false_closes),
        cmocka_unit_test(test_resume_before_lost_on_graceful_close),
        cmocka_unit_test(test_writelines),
        cmocka_unit_test(test_writelines_flow_control),
        cmocka_unit_test(test_write_outside_the_loop_goes_at_once),
        cmocka_unit_test(test_bytes_in_flight_count_as_buffered),
        cmocka_unit_test(test_large_writelines_arrive_whole_in_order),
        cmocka_unit_test(test_abort_with_a_send_in_flight_closes),
        cmocka_unit_test(test_write_error_is_fatal),
        cmocka_unit_test(test_peer_closed_with_unread_data_resets),
        cmocka_unit_test(test_abort_other_in_same_batch),
        cmocka_unit_test(test_bulk_transfer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
