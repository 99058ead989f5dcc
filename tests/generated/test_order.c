/* The generated dispatch of a stream protocol (order.spec), built with
 * NDEBUG: a runtime callback out of asyncio's order (connection_made,
 * data_received*, eof_received?, connection_lost; pause_writing and
 * resume_writing alternating while open or after the EOF) never reaches a
 * handler, and those in order all do. A debug build asserts instead. The
 * protocol's table is called directly: no transport is needed. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "order.h"
#include "order_test.h"

static void test_callbacks_out_of_order_are_dropped(void **state)
{
    (void)state;
    struct order_log log = { 0 };
    pg_protocol p;
    assert_int_equal(order_protocol_factory(&log, &p), 0);
    const uint8_t bytes[3] = { 'a', 'b', 'c' };

    /* Nothing before connection_made. */
    p.ops->data_received(p.self, bytes, 3);
    p.ops->pause_writing(p.self);
    p.ops->resume_writing(p.self);
    assert_false(p.ops->eof_received(p.self));
    assert_int_equal(log.data + log.pauses + log.resumes + log.eof, 0);

    p.ops->connection_made(p.self, NULL);
    p.ops->connection_made(p.self, NULL); /* once only */
    assert_int_equal(log.made, 1);

    /* Open: reads, and flow control starting with a pause. */
    p.ops->resume_writing(p.self);
    assert_int_equal(log.resumes, 0);
    p.ops->data_received(p.self, bytes, 3);
    p.ops->data_received(p.self, bytes, 2);
    p.ops->pause_writing(p.self);
    p.ops->pause_writing(p.self);
    p.ops->resume_writing(p.self);
    assert_int_equal(log.data, 2);
    assert_int_equal(log.bytes, 5);
    assert_int_equal(log.pauses, 1);
    assert_int_equal(log.resumes, 1);

    /* After the EOF (kept open): no more reads, flow control still. */
    assert_true(p.ops->eof_received(p.self));
    assert_false(p.ops->eof_received(p.self));
    p.ops->data_received(p.self, bytes, 3);
    p.ops->pause_writing(p.self);
    p.ops->resume_writing(p.self);
    assert_int_equal(log.eof, 1);
    assert_int_equal(log.data, 2);
    assert_int_equal(log.pauses, 2);
    assert_int_equal(log.resumes, 2);

    p.ops->connection_lost(p.self, 0); /* frees the connection */
    assert_int_equal(log.lost, 1);
    assert_int_equal(log.made, 1);
}

/* Reads go straight from open to the end: connection_lost without an EOF,
 * a read just before it. */
static void test_reads_until_connection_lost(void **state)
{
    (void)state;
    struct order_log log = { 0 };
    pg_protocol p;
    assert_int_equal(order_protocol_factory(&log, &p), 0);
    const uint8_t bytes[1] = { 'x' };
    p.ops->connection_made(p.self, NULL);
    p.ops->data_received(p.self, bytes, 1);
    p.ops->connection_lost(p.self, -ECONNRESET);
    assert_int_equal(log.data, 1);
    assert_int_equal(log.lost, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_callbacks_out_of_order_are_dropped),
        cmocka_unit_test(test_reads_until_connection_lost),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
