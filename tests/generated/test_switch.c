/* Generated code, end to end over socketpairs: NAME_adopt and
 * NAME_switch_protocol between a stream protocol and a buffered one
 * (asyncio's connect_accepted_socket and set_protocol). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "switch_test.h"

#define RUN_UNTIL(loop, cond)                                    \
    do {                                                         \
        int run_i_ = 0;                                          \
        while (!(cond)) {                                        \
            assert_true(run_i_++ < 2000);                        \
            assert_int_equal(pg_loop_run_once((loop), 1000), 0); \
        }                                                        \
    } while (0)

typedef struct fixture {
    pg_loop *loop;
    int sv[2];
    struct switch_test t;
} fixture;

static void start(fixture *f)
{
    memset(f, 0, sizeof *f);
    assert_int_equal(pg_loop_new(&f->loop), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, f->sv), 0);
    sw_line_conn *conn = NULL;
    assert_int_equal(sw_line_adopt(f->loop, f->sv[0], &f->t, &conn), 0);
    assert_non_null(conn);
    /* Usable at once, but switching waits for connection_made. */
    assert_int_equal(sw_line_switch_protocol(conn, sw_bulk_protocol_factory, &f->t, NULL, 0), -EINVAL);
    assert_int_equal(f->t.bulk_made, 0);
    RUN_UNTIL(f->loop, f->t.line_made == 1);
    assert_ptr_equal(f->t.line, conn);
}

static void finish(fixture *f)
{
    close(f->sv[1]);
    RUN_UNTIL(f->loop, f->t.line_lost + f->t.bulk_lost == 1);
    pg_loop_close(f->loop);
}

/* From inside data_received: the rest of the read goes to the buffered
 * protocol (several get_buffer calls: its buffer is 5 bytes), then every
 * later read; connection_lost goes to the new protocol only. */
static void test_switch_inside_handler_with_pending(void **state)
{
    (void)state;
    fixture f;
    start(&f);
    f.t.switch_on_newline = true;
    f.t.buffer_size = 5;
    const char msg[] = "HELLO\nfirst-bytes-after";
    assert_int_equal(send(f.sv[1], msg, sizeof msg - 1, 0), (ssize_t)(sizeof msg - 1));
    RUN_UNTIL(f.loop, f.t.bulk_made == 1);
    assert_int_equal(f.t.switch_rc, 0);
    assert_int_equal(f.t.rx_len, strlen("first-bytes-after"));
    assert_memory_equal(f.t.rx, "first-bytes-after", f.t.rx_len);
    assert_int_equal(send(f.sv[1], "more", 4, 0), 4);
    RUN_UNTIL(f.loop, f.t.rx_len == strlen("first-bytes-aftermore"));
    shutdown(f.sv[1], SHUT_WR);
    RUN_UNTIL(f.loop, f.t.bulk_lost == 1);
    assert_int_equal(f.t.bulk_eof, 1);
    assert_int_equal(f.t.line_lost, 0); /* the old protocol is never called again */
    assert_int_equal(f.t.line_data, 1);
    close(f.sv[1]);
    pg_loop_close(f.loop);
}

/* From outside any handler (here: the test itself, between iterations):
 * the old connection is freed at once (ASan checks it is freed once). */
static void test_switch_outside_handler(void **state)
{
    (void)state;
    fixture f;
    start(&f);
    assert_int_equal(sw_line_switch_protocol(f.t.line, sw_bulk_protocol_factory, &f.t, "abc", 3), 0);
    assert_int_equal(f.t.bulk_made, 1);
    assert_int_equal(f.t.rx_len, 3);
    assert_int_equal(send(f.sv[1], "de", 2, 0), 2);
    RUN_UNTIL(f.loop, f.t.rx_len == 5);
    assert_memory_equal(f.t.rx, "abcde", 5);
    finish(&f);
    assert_int_equal(f.t.bulk_lost, 1);
}

/* While writing is paused the next protocol hears of it right after its
 * connection_made, and gets the resume_writing once the peer has read the
 * buffer; the old protocol hears nothing more (fuzz_hello: the switch was
 * refused, -EBUSY, and examples/handshake aborted a slow reader). */
static void test_switch_while_paused(void **state)
{
    (void)state;
    fixture f;
    start(&f);
    static uint8_t big[1 << 20];
    assert_int_equal(sw_line_write(f.t.line, big, sizeof big), 0);
    assert_int_equal(f.t.line_pauses, 1);
    assert_int_equal(sw_line_switch_protocol(f.t.line, NULL, &f.t, NULL, 0), -EINVAL);
    assert_int_equal(sw_line_switch_protocol(f.t.line, sw_bulk_protocol_factory, &f.t, NULL, 0), 0);
    assert_int_equal(f.t.bulk_made, 1);
    assert_int_equal(f.t.bulk_pauses, 1);
    assert_int_equal(f.t.bulk_resumes, 0);
    size_t got = 0;
    for (int i = 0; got < sizeof big; i++) {
        assert_true(i < 1000000);
        char buf[65536];
        ssize_t n = recv(f.sv[1], buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0)
            got += (size_t)n;
        assert_int_equal(pg_loop_run_once(f.loop, 0), 0);
    }
    RUN_UNTIL(f.loop, f.t.bulk_resumes == 1);
    assert_int_equal(f.t.line_pauses, 1);
    finish(&f);
    assert_int_equal(f.t.bulk_lost, 1);
    assert_int_equal(f.t.line_lost, 0);
}

/* NAME_adopt refuses what is not a connected stream socket; the fd stays
 * the caller's. */
static void test_adopt_errors(void **state)
{
    (void)state;
    pg_loop *loop;
    assert_int_equal(pg_loop_new(&loop), 0);
    struct switch_test t = { 0 };
    int p[2];
    assert_int_equal(pipe(p), 0);
    sw_line_conn *conn = NULL;
    assert_int_equal(sw_line_adopt(loop, p[0], &t, &conn), -ENOTSOCK);
    assert_null(conn);
    assert_int_equal(close(p[0]), 0);
    assert_int_equal(close(p[1]), 0);
    pg_loop_close(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_switch_inside_handler_with_pending),
        cmocka_unit_test(test_switch_outside_handler),
        cmocka_unit_test(test_switch_while_paused),
        cmocka_unit_test(test_adopt_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
