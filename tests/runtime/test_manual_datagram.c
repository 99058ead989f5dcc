/* The datagram core on the memory driver (protogen/manual.h): asyncio's
 * datagram semantics with no kernel. Callback order, sending and the output
 * as a send buffer, back-pressure at the watermarks, error_received from
 * sends and receives, close (flushes) vs abort (drops), connection_lost
 * deferred and once, datagrams held while reading is paused, trace lines. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <unistd.h>

#include "core_internal.h"
#include "dgram_recorder.h"
#include "protogen/manual.h"

typedef struct dfix {
    pg_manual_host *mh;
    pg_manual_datagram *md;
    dgram_rec r;
    struct sockaddr_in peer; /* the address of the test's datagrams */
} dfix;

static void dfix_new(dfix *f, bool connected)
{
    dgram_rec_init(&f->r);
    memset(&f->peer, 0, sizeof f->peer);
    f->peer.sin_family = AF_INET;
    f->peer.sin_port = htons(5353);
    f->peer.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(pg_manual_host_new(&f->mh), 0);
    assert_int_equal(pg_manual_datagram_new(pg_manual_host_host(f->mh),
                                            connected ? (const struct sockaddr *)&f->peer : NULL,
                                            connected ? sizeof f->peer : 0, dgram_rec_factory, &f->r, &f->md),
                     0);
    assert_int_equal(f->r.made, 0); /* never synchronously */
    assert_false(pg_manual_datagram_wants_read(f->md));
}

static void dfix_start(dfix *f, bool connected)
{
    dfix_new(f, connected);
    assert_int_equal(pg_manual_host_run(f->mh), 2); /* connection_made, then the first read */
    assert_int_equal(f->r.made, 1);
    assert_true(pg_manual_datagram_wants_read(f->md));
}

static void dfix_done(dfix *f)
{
    if (!pg_manual_datagram_closed(f->md)) {
        pg_datagram_transport_abort(pg_manual_datagram_transport(f->md));
        pg_manual_host_run(f->mh);
    }
    assert_true(pg_manual_datagram_closed(f->md));
    assert_int_equal(f->r.lost, 1);
    assert_false(pg_manual_host_pending(f->mh));
    pg_manual_datagram_free(f->md);
    pg_manual_host_free(f->mh);
}

static pg_datagram_transport *dt(dfix *f)
{
    return pg_manual_datagram_transport(f->md);
}

static void feed(dfix *f, const char *text)
{
    pg_manual_datagram_feed(f->md, text, strlen(text), (const struct sockaddr *)&f->peer, sizeof f->peer);
}

/* The next output datagram is text (to addr, or to the connected peer). */
static void expect_output(dfix *f, const char *text, bool with_addr)
{
    size_t len;
    const struct sockaddr *addr;
    socklen_t addrlen;
    const uint8_t *p = pg_manual_datagram_output(f->md, &len, &addr, &addrlen);
    assert_non_null(p);
    assert_int_equal(len, strlen(text));
    assert_memory_equal(p, text, len);
    if (with_addr) {
        assert_non_null(addr);
        assert_int_equal(addrlen, sizeof f->peer);
        assert_memory_equal(addr, &f->peer, sizeof f->peer);
    } else {
        assert_null(addr);
    }
    pg_manual_datagram_consume(f->md);
}

/* ---- order -------------------------------------------------------------- */

static void echo_back(dgram_rec *r, const uint8_t *data, size_t len, const struct sockaddr *addr, socklen_t addrlen)
{
    assert_int_equal(pg_datagram_transport_sendto(r->transport, data, len, addr, addrlen), 0);
}

static void test_order_and_echo(void **state)
{
    (void)state;
    dfix f;
    dfix_start(&f, false);
    f.r.hooks.datagram = echo_back;
    feed(&f, "ping");
    assert_int_equal(f.r.datagrams, 1);
    assert_int_equal(f.r.last_addrlen, sizeof f.peer);
    assert_int_equal(pg_manual_datagram_output_count(f.md), 1);
    expect_output(&f, "ping", true);
    f.r.hooks.datagram = NULL;
    pg_manual_datagram_feed(f.md, NULL, 0, NULL, 0); /* an empty datagram, no address */
    assert_int_equal(f.r.last_addrlen, 0);
    pg_datagram_transport_close(dt(&f));
    assert_true(pg_datagram_transport_is_closing(dt(&f)));
    assert_int_equal(f.r.lost, 0); /* deferred */
    feed(&f, "late"); /* closing: dropped */
    pg_manual_host_run(f.mh);
    assert_string_equal(f.r.log, "made d4 d0 lost:ok");
    dfix_done(&f);
}

/* Datagrams fed before connection_made wait for it and for the first read. */
static void test_fed_before_connection_made(void **state)
{
    (void)state;
    dfix f;
    dfix_new(&f, false);
    feed(&f, "early");
    pg_manual_datagram_feed_error(f.md, -ECONNREFUSED);
    assert_int_equal(f.r.made, 0);
    pg_manual_host_run(f.mh);
    assert_string_equal(f.r.log, "made d5 error:ECONNREFUSED");
    dfix_done(&f);
}

/* A connected endpoint sends to its peer only. */
static void test_connected_addresses(void **state)
{
    (void)state;
    dfix f;
    dfix_start(&f, true);
    assert_int_equal(pg_datagram_transport_sendto(dt(&f), "a", 1, NULL, 0), 0);
    assert_int_equal(pg_datagram_transport_sendto(dt(&f), "b", 1, (const struct sockaddr *)&f.peer, sizeof f.peer),
                     0);
    struct sockaddr_in other = f.peer;
    other.sin_port = htons(1);
    assert_int_equal(pg_datagram_transport_sendto(dt(&f), "c", 1, (const struct sockaddr *)&other, sizeof other),
                     -EINVAL);
    expect_output(&f, "a", false);
    expect_output(&f, "b", false);
    assert_int_equal(pg_manual_datagram_output_count(f.md), 0);
    pg_extra_info info;
    assert_int_equal(pg_datagram_transport_get_extra_info(dt(&f), PG_EXTRA_PEERNAME, &info), 0);
    assert_int_equal(info.addrlen, sizeof f.peer);
    assert_int_equal(pg_datagram_transport_get_extra_info(dt(&f), PG_EXTRA_SOCKNAME, &info), -ENOENT);
    dfix_done(&f);
}

static void test_unconnected_needs_an_address(void **state)
{
    (void)state;
    dfix f;
    dfix_start(&f, false);
    assert_int_equal(pg_datagram_transport_sendto(dt(&f), "a", 1, NULL, 0), -EDESTADDRREQ);
    pg_extra_info info;
    assert_int_equal(pg_datagram_transport_get_extra_info(dt(&f), PG_EXTRA_PEERNAME, &info), -ENOTCONN);
    dfix_done(&f);
}

/* ---- back-pressure ------------------------------------------------------ */

static int send_to_peer(dfix *f, const char *text)
{
    return pg_datagram_transport_sendto(dt(f), text, strlen(text), (const struct sockaddr *)&f->peer,
                                        sizeof f->peer);
}

static void test_queue_and_watermarks(void **state)
{
    (void)state;
    dfix f;
    dfix_start(&f, false);
    pg_manual_datagram_set_capacity(f.md, 0); /* the "kernel" takes nothing */
    assert_int_equal(pg_datagram_transport_set_write_buffer_limits(dt(&f), 20, 10), 0);
    assert_int_equal(send_to_peer(&f, "aaaa"), 0);
    assert_true(pg_manual_datagram_wants_write(f.md));
    assert_int_equal(pg_datagram_transport_get_write_buffer_size(dt(&f)), 4 + PG_DATAGRAM_OVERHEAD);
    assert_int_equal(f.r.pauses, 0);
    assert_int_equal(send_to_peer(&f, "bbbb"), 0); /* 24 > 20 */
    assert_int_equal(f.r.pauses, 1);
    assert_int_equal(f.r.size_at_pause, 2 * (4 + PG_DATAGRAM_OVERHEAD));
    assert_int_equal(send_to_peer(&f, ""), 0); /* an empty datagram still counts */
    assert_int_equal(pg_datagram_transport_get_write_buffer_size(dt(&f)), 8 + 3 * PG_DATAGRAM_OVERHEAD);
    /* Room for one: 20 left, above low. */
    pg_manual_datagram_set_capacity(f.md, 1);
    assert_int_equal(pg_datagram_transport_get_write_buffer_size(dt(&f)), 4 + 2 * PG_DATAGRAM_OVERHEAD);
    assert_int_equal(f.r.resumes, 0);
    expect_output(&f, "aaaa", true); /* room again: the next one goes, 8 <= low */
    assert_int_equal(f.r.resumes, 1);
    assert_int_equal(f.r.size_at_resume, PG_DATAGRAM_OVERHEAD);
    expect_output(&f, "bbbb", true);
    expect_output(&f, "", true);
    assert_false(pg_manual_datagram_wants_write(f.md));
    assert_int_equal(pg_datagram_transport_get_write_buffer_size(dt(&f)), 0);
    assert_string_equal(f.r.log, "made pause resume");
    dfix_done(&f);
}

/* More than one writable batch: everything queued goes, in order. */
static void test_long_queue_drains_in_order(void **state)
{
    (void)state;
    dfix f;
    dfix_start(&f, false);
    pg_manual_datagram_set_capacity(f.md, 0);
    char text[8];
    for (int i = 0; i < 200; i++) {
        snprintf(text, sizeof text, "%d", i);
        assert_int_equal(send_to_peer(&f, text), 0);
    }
    pg_manual_datagram_set_capacity(f.md, 1000);
    assert_int_equal(pg_manual_datagram_output_count(f.md), 200);
    for (int i = 0; i < 200; i++) {
        snprintf(text, sizeof text, "%d", i);
        expect_output(&f, text, true);
    }
    assert_false(pg_manual_datagram_wants_write(f.md));
    dfix_done(&f);
}

/* ---- error_received ----------------------------------------------------- */

static void test_send_errors_keep_the_endpoint(void **state)
{
    (void)state;
    dfix f;
    dfix_start(&f, false);
    /* An immediate send that fails: error_received from inside sendto, as asyncio. */
    pg_manual_datagram_fail_next_send(f.md, -ECONNREFUSED);
    assert_int_equal(send_to_peer(&f, "x"), 0);
    assert_int_equal(f.r.errors, 1);
    assert_false(pg_datagram_transport_is_closing(dt(&f)));
    /* A queued one: dropped, the rest stays queued. */
    pg_manual_datagram_set_capacity(f.md, 0);
    assert_int_equal(send_to_peer(&f, "lost"), 0);
    assert_int_equal(send_to_peer(&f, "kept"), 0);
    pg_manual_datagram_fail_next_send(f.md, -EMSGSIZE);
    pg_manual_datagram_set_capacity(f.md, 10); /* the failure stops this round */
    assert_int_equal(f.r.errors, 2);
    assert_int_equal(pg_datagram_transport_get_write_buffer_size(dt(&f)), 4 + PG_DATAGRAM_OVERHEAD);
    assert_int_equal(pg_manual_datagram_output_count(f.md), 0);
    pg_manual_datagram_set_capacity(f.md, 10);
    expect_output(&f, "kept", true);
    pg_manual_datagram_feed_error(f.md, -ECONNREFUSED);
    assert_string_equal(f.r.log, "made error:ECONNREFUSED error:EMSGSIZE error:ECONNREFUSED");
    dfix_done(&f);
}

/* Before connection_made an immediate send error is returned, not told. */
static void test_send_error_before_connection_made(void **state)
{
    (void)state;
    dfix f;
    dfix_new(&f, false);
    pg_manual_datagram_fail_next_send(f.md, -ENETUNREACH);
    assert_int_equal(send_to_peer(&f, "x"), -ENETUNREACH);
    pg_manual_host_run(f.mh);
    assert_string_equal(f.r.log, "made");
    dfix_done(&f);
}

/* ---- close vs abort, connection_lost deferred ---------------------------- */

static void test_close_flushes_the_queue(void **state)
{
    (void)state;
    dfix f;
    dfix_start(&f, false);
    pg_manual_datagram_set_capacity(f.md, 0);
    assert_int_equal(send_to_peer(&f, "one"), 0);
    assert_int_equal(send_to_peer(&f, "two"), 0);
    pg_datagram_transport_close(dt(&f));
    assert_false(pg_manual_datagram_wants_read(f.md));
    pg_manual_host_run(f.mh);
    assert_int_equal(f.r.lost, 0); /* waits for the queue */
    assert_int_equal(send_to_peer(&f, "three"), 0); /* still queued while closing, as asyncio */
    pg_manual_datagram_set_capacity(f.md, 10);
    /* Drained: connection_lost right away, from the writable event. */
    assert_int_equal(f.r.lost, 1);
    assert_true(pg_manual_datagram_closed(f.md));
    expect_output(&f, "one", true);
    expect_output(&f, "two", true);
    expect_output(&f, "three", true);
    assert_string_equal(f.r.log, "made lost:ok");
    dfix_done(&f);
}

static void test_abort_drops_the_queue(void **state)
{
    (void)state;
    dfix f;
    dfix_start(&f, false);
    pg_manual_datagram_set_capacity(f.md, 0);
    assert_int_equal(send_to_peer(&f, "one"), 0);
    pg_datagram_transport_abort(dt(&f));
    assert_int_equal(pg_datagram_transport_get_write_buffer_size(dt(&f)), 0);
    assert_false(pg_manual_datagram_wants_write(f.md));
    assert_int_equal(send_to_peer(&f, "dropped"), 0);
    assert_int_equal(f.r.lost, 0);
    pg_manual_host_run(f.mh);
    assert_int_equal(f.r.lost, 1);
    assert_int_equal(f.r.lost_error, 0);
    pg_manual_datagram_set_capacity(f.md, 10);
    assert_int_equal(pg_manual_datagram_output_count(f.md), 0);
    dfix_done(&f);
}

static void close_in_datagram(dgram_rec *r, const uint8_t *data, size_t len, const struct sockaddr *addr,
                              socklen_t addrlen)
{
    (void)data, (void)len, (void)addr, (void)addrlen;
    pg_datagram_transport_close(r->transport);
    pg_datagram_transport_close(r->transport); /* idempotent */
    pg_datagram_transport_abort(r->transport);
    assert_int_equal(r->lost, 0); /* never from inside a transport method */
}

static void test_connection_lost_deferred_and_once(void **state)
{
    (void)state;
    dfix f;
    dfix_start(&f, false);
    f.r.hooks.datagram = close_in_datagram;
    feed(&f, "a");
    feed(&f, "b"); /* closing: dropped */
    assert_int_equal(f.r.lost, 0);
    pg_manual_host_run(f.mh);
    assert_string_equal(f.r.log, "made d1 lost:ok");
    dfix_done(&f);
}

static void test_driver_failure(void **state)
{
    (void)state;
    dfix f;
    dfix_start(&f, false);
    pg_manual_datagram_fail(f.md, -EIO);
    assert_int_equal(f.r.lost, 0);
    pg_manual_host_run(f.mh);
    assert_string_equal(f.r.log, "made lost:EIO");
    dfix_done(&f);
}

/* Freed while running: aborted, freed after connection_lost. */
static void test_free_while_open(void **state)
{
    (void)state;
    dfix f;
    dfix_start(&f, false);
    pg_manual_datagram_free(f.md);
    pg_manual_host_run(f.mh);
    assert_string_equal(f.r.log, "made lost:ok");
    pg_manual_host_free(f.mh);
}

/* ---- reading paused ----------------------------------------------------- */

static void pause_in_datagram(dgram_rec *r, const uint8_t *data, size_t len, const struct sockaddr *addr,
                              socklen_t addrlen)
{
    (void)data, (void)len, (void)addr, (void)addrlen;
    pg_datagram_transport_pause_reading(r->transport);
}

/* Paused in the middle of a batch: the rest is held, and delivered in order
 * (errors too) after resume_reading, from the host, not from inside it. */
static void test_held_while_paused(void **state)
{
    (void)state;
    dfix f;
    dfix_start(&f, false);
    f.r.hooks.datagram = pause_in_datagram;
    feed(&f, "a");
    assert_false(pg_manual_datagram_wants_read(f.md));
    assert_false(pg_datagram_transport_is_reading(dt(&f)));
    f.r.hooks.datagram = NULL;
    feed(&f, "bb");
    pg_manual_datagram_feed_error(f.md, -EMSGSIZE);
    feed(&f, "ccc");
    pg_manual_host_run(f.mh);
    assert_string_equal(f.r.log, "made d1");
    pg_datagram_transport_resume_reading(dt(&f));
    assert_string_equal(f.r.log, "made d1");
    assert_false(pg_manual_datagram_wants_read(f.md)); /* held ones first */
    pg_manual_host_run(f.mh);
    assert_string_equal(f.r.log, "made d1 d2 error:EMSGSIZE d3");
    assert_true(pg_manual_datagram_wants_read(f.md));
    dfix_done(&f);
}

/* pause_reading inside connection_made wins over the first read. */
static void test_paused_in_connection_made(void **state)
{
    (void)state;
    dfix f;
    dfix_new(&f, false);
    f.r.pause_reading_in_made = true;
    pg_manual_host_run(f.mh);
    assert_false(pg_manual_datagram_wants_read(f.md));
    pg_datagram_transport_resume_reading(dt(&f));
    assert_true(pg_manual_datagram_wants_read(f.md));
    dfix_done(&f);
}

/* close() right after resume_reading, with held datagrams waiting and a
 * queue that drains at once: connection_lost from writable while the
 * delivery is still deferred; the transport outlives it safely. */
static void test_close_drains_while_delivery_is_deferred(void **state)
{
    (void)state;
    dfix f;
    dfix_start(&f, false);
    f.r.hooks.datagram = pause_in_datagram;
    feed(&f, "a");
    f.r.hooks.datagram = NULL;
    feed(&f, "held");
    pg_manual_datagram_set_capacity(f.md, 0);
    assert_int_equal(send_to_peer(&f, "q"), 0);
    pg_datagram_transport_resume_reading(dt(&f));
    pg_datagram_transport_close(dt(&f));
    pg_manual_datagram_set_capacity(f.md, 1);
    assert_int_equal(f.r.lost, 1);
    pg_manual_host_run(f.mh); /* the deferred delivery: nothing is delivered */
    assert_string_equal(f.r.log, "made d1 lost:ok");
    dfix_done(&f);
}

/* ---- tracing ------------------------------------------------------------ */

static void pause_writing_now(dgram_rec *r)
{
    assert_int_equal(pg_datagram_transport_set_write_buffer_limits(r->transport, 1, 0), 0);
}

/* The core writes the trace, so an endpoint on any driver traces exactly as
 * the built-in loop's. */
static void test_trace_lines(void **state)
{
    (void)state;
    char path[] = "/tmp/pg_dtrace_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(setenv("PROTOGEN_TRACE", path, 1), 0);
    pg__trace_reset();
    dfix f;
    dfix_start(&f, false);
    feed(&f, "ping");
    pg_manual_datagram_feed_error(f.md, -ECONNREFUSED);
    pg_manual_datagram_set_capacity(f.md, 0);
    assert_int_equal(send_to_peer(&f, "q"), 0);
    pause_writing_now(&f.r);
    pg_manual_datagram_set_capacity(f.md, 1);
    dfix_done(&f);
    char buf[512];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_string_equal(buf, "1 connection_made\n"
                             "1 datagram_received 4 127.0.0.1:5353\n"
                             "1 error_received ECONNREFUSED\n"
                             "1 pause_writing 9\n"
                             "1 resume_writing 0\n"
                             "1 connection_lost ok\n");
    close(fd);
    unlink(path);
    unsetenv("PROTOGEN_TRACE");
    pg__trace_reset();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_and_echo),
        cmocka_unit_test(test_fed_before_connection_made),
        cmocka_unit_test(test_connected_addresses),
        cmocka_unit_test(test_unconnected_needs_an_address),
        cmocka_unit_test(test_queue_and_watermarks),
        cmocka_unit_test(test_long_queue_drains_in_order),
        cmocka_unit_test(test_send_errors_keep_the_endpoint),
        cmocka_unit_test(test_send_error_before_connection_made),
        cmocka_unit_test(test_close_flushes_the_queue),
        cmocka_unit_test(test_abort_drops_the_queue),
        cmocka_unit_test(test_connection_lost_deferred_and_once),
        cmocka_unit_test(test_driver_failure),
        cmocka_unit_test(test_free_while_open),
        cmocka_unit_test(test_held_while_paused),
        cmocka_unit_test(test_paused_in_connection_made),
        cmocka_unit_test(test_close_drains_while_delivery_is_deferred),
        cmocka_unit_test(test_trace_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
