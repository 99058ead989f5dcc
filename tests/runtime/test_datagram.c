/* The datagram transport (asyncio's _SelectorDatagramTransport): callback
 * order, the send queue (immediate send, copy on EAGAIN, flow control, close
 * flushes, abort drops), the receive path (a bounded batch per readiness
 * event, pause_reading in the middle of a batch, no allocation per datagram),
 * and adopting sockets. Unix datagram socketpairs make "the kernel takes no
 * more" deterministic; UDP on loopback covers the batches. */
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <unistd.h>

#include "dgram_recorder.h"
#include "internal.h"

/* ---- counting allocations (linked with -Wl,--wrap=malloc,...) ----------- */

void *__real_malloc(size_t size);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t size);
static long allocations;

void *__wrap_malloc(size_t size)
{
    allocations++;
    return __real_malloc(size);
}

void *__wrap_calloc(size_t n, size_t size)
{
    allocations++;
    return __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t size)
{
    allocations++;
    return __real_realloc(p, size);
}

/* ---- helpers ------------------------------------------------------------ */

typedef struct pair_fixture {
    pg_loop *loop;
    int sv[2]; /* sv[0]: the transport's; sv[1]: the test's peer */
    dgram_rec rec;
} pair_fixture;

/* A transport over sv[0]; sndbuf > 0 makes its send buffer small. */
static void pair_open(pair_fixture *f, int sndbuf)
{
    assert_int_equal(pg_loop_new(&f->loop), 0);
    make_dgram_pair(f->sv, sndbuf);
    dgram_rec_init(&f->rec);
}

static void pair_adopt(pair_fixture *f)
{
    pg_datagram_transport *t = NULL;
    assert_int_equal(pg_datagram_adopt_fd(f->loop, f->sv[0], dgram_rec_factory, &f->rec, &t), 0);
    assert_non_null(t);
    assert_int_equal(f->rec.made, 0); /* never synchronously */
    RUN_UNTIL(f->loop, f->rec.made == 1);
    assert_ptr_equal(f->rec.transport, t);
}

static void pair_close(pair_fixture *f)
{
    if (f->rec.transport != NULL && f->rec.lost == 0)
        pg_datagram_transport_abort(f->rec.transport);
    if (f->rec.made)
        RUN_UNTIL(f->loop, f->rec.lost == 1);
    pg_loop_close(f->loop);
    close(f->sv[1]);
}

static int sendto_peer(dgram_rec *r, const void *data, size_t len)
{
    return pg_datagram_transport_sendto(r->transport, data, len, NULL, 0);
}

static void peer_send(int fd, uint8_t first, size_t len)
{
    uint8_t buf[2048];
    assert_true(len <= sizeof buf);
    memset(buf, first, len);
    assert_int_equal(send(fd, buf, len, MSG_DONTWAIT), (ssize_t)len);
}

/* The peer reads while the loop runs, until the transport's queue is empty
 * (and, with until_lost, connection_lost came). The first byte of each
 * datagram goes to firsts. Returns how many the peer got. */
static int drain_while_running(pair_fixture *f, uint8_t *firsts, int cap, bool until_lost)
{
    int got = 0;
    for (int spins = 0;; spins++) {
        assert_true(spins < 5000);
        got += drain_dgram_socket(f->sv[1], firsts + got, cap - got);
        bool empty = f->rec.lost == 1 || pg_datagram_transport_get_write_buffer_size(f->rec.transport) == 0;
        if (empty && (!until_lost || f->rec.lost == 1))
            break;
        assert_int_equal(pg_loop_run_once(f->loop, 100), 0);
    }
    return got + drain_dgram_socket(f->sv[1], firsts + got, cap - got);
}

static uint8_t firsts[8192];

/* ---- order -------------------------------------------------------------- */

static void test_made_before_datagrams_and_empty_datagrams(void **state)
{
    (void)state;
    pair_fixture f;
    pair_open(&f, 0);
    peer_send(f.sv[1], 'a', 5); /* waiting before the transport exists */
    peer_send(f.sv[1], 'b', 0);
    pair_adopt(&f);
    RUN_UNTIL(f.loop, f.rec.datagrams == 2);
    assert_string_equal(f.rec.log, "made d5 d0");
    assert_int_equal(f.rec.last_len, 0);
    pair_close(&f);
    assert_string_equal(f.rec.log, "made d5 d0 lost:ok");
}

static void test_pause_reading_in_connection_made(void **state)
{
    (void)state;
    pair_fixture f;
    pair_open(&f, 0);
    f.rec.pause_reading_in_made = true;
    peer_send(f.sv[1], 'a', 3);
    pair_adopt(&f);
    assert_false(pg_datagram_transport_is_reading(f.rec.transport));
    run_idle(f.loop, 5);
    assert_int_equal(f.rec.datagrams, 0);
    pg_datagram_transport_resume_reading(f.rec.transport);
    assert_true(pg_datagram_transport_is_reading(f.rec.transport));
    RUN_UNTIL(f.loop, f.rec.datagrams == 1);
    pair_close(&f);
}

static void close_in_made(dgram_rec *r)
{
    pg_datagram_transport_close(r->transport);
    pg_datagram_transport_close(r->transport); /* idempotent */
    assert_true(pg_datagram_transport_is_closing(r->transport));
    assert_false(pg_datagram_transport_is_reading(r->transport));
}

static void test_close_in_connection_made(void **state)
{
    (void)state;
    pair_fixture f;
    pair_open(&f, 0);
    f.rec.hooks.made = close_in_made;
    peer_send(f.sv[1], 'a', 3);
    pair_adopt(&f);
    RUN_UNTIL(f.loop, f.rec.lost == 1);
    run_idle(f.loop, 3);
    assert_string_equal(f.rec.log, "made lost:ok"); /* nothing read after close() */
    pair_close(&f);
}

/* ---- sending ------------------------------------------------------------ */

static void test_sendto_with_an_empty_queue_sends_at_once(void **state)
{
    (void)state;
    pair_fixture f;
    pair_open(&f, 0);
    pair_adopt(&f);
    long before = allocations;
    for (int i = 0; i < 100; i++)
        assert_int_equal(sendto_peer(&f.rec, "ping", 4), 0);
    assert_int_equal(allocations, before); /* nothing queued, nothing allocated */
    assert_int_equal(pg_datagram_transport_get_write_buffer_size(f.rec.transport), 0);
    /* Already at the peer: no loop iteration has run. */
    assert_int_equal(drain_dgram_socket(f.sv[1], NULL, 0), 100);
    assert_int_equal(sendto_peer(&f.rec, NULL, 0), 0); /* an empty datagram */
    uint8_t buf[8];
    assert_int_equal(recv(f.sv[1], buf, sizeof buf, MSG_DONTWAIT), 0);
    assert_int_equal(sendto_peer(&f.rec, NULL, 3), -EINVAL);
    pair_close(&f);
}

static void test_eagain_copies_and_queues_in_order(void **state)
{
    (void)state;
    pair_fixture f;
    pair_open(&f, 4096);
    int prefill = fill_dgram_socket(f.sv[0]);
    assert_true(prefill > 0);
    pair_adopt(&f);

    uint8_t data[100];
    for (uint8_t i = 1; i <= 200; i++) {
        memset(data, i, sizeof data);
        assert_int_equal(sendto_peer(&f.rec, data, sizeof data), 0);
        assert_int_equal(pg_datagram_transport_get_write_buffer_size(f.rec.transport),
                         i * (sizeof data + PG_DATAGRAM_OVERHEAD));
    }
    memset(data, 0xee, sizeof data); /* the queue holds copies */

    int got = drain_while_running(&f, firsts, (int)sizeof firsts, false);
    assert_int_equal(got, prefill + 200);
    for (int i = 0; i < 200; i++)
        assert_int_equal(firsts[prefill + i], i + 1);
    pair_close(&f);
}

static void test_flow_control_at_asyncios_thresholds(void **state)
{
    (void)state;
    pair_fixture f;
    pair_open(&f, 4096);
    int prefill = fill_dgram_socket(f.sv[0]);
    pair_adopt(&f);
    pg_datagram_transport *t = f.rec.transport;
    assert_int_equal(pg_datagram_transport_set_write_buffer_limits(t, 100, 36), 0);
    size_t high, low;
    pg_datagram_transport_get_write_buffer_limits(t, &high, &low);
    assert_int_equal(high, 100);
    assert_int_equal(low, 36);

    uint8_t b[10] = { 0 };
    for (int i = 1; i <= 5; i++) /* 5 x 18 = 90: not above high */
        assert_int_equal(sendto_peer(&f.rec, b, sizeof b), 0);
    assert_int_equal(f.rec.pauses, 0);
    assert_int_equal(sendto_peer(&f.rec, b, 2), 0); /* 100: still not above */
    assert_int_equal(f.rec.pauses, 0);
    assert_int_equal(sendto_peer(&f.rec, NULL, 0), 0); /* 108: an empty datagram counts too */
    assert_int_equal(f.rec.pauses, 1);
    assert_int_equal(f.rec.size_at_pause, 108);
    assert_int_equal(sendto_peer(&f.rec, b, 1), 0); /* once per pause */
    assert_int_equal(f.rec.pauses, 1);

    /* Drain: resume once, at 36 or below. */
    assert_int_equal(drain_while_running(&f, firsts, (int)sizeof firsts, false), prefill + 8);
    assert_true(f.rec.size_at_resume <= 36);
    assert_int_equal(f.rec.resumes, 1);
    assert_string_equal(f.rec.log, "made pause resume");
    pair_close(&f);
}

static void test_set_write_buffer_limits(void **state)
{
    (void)state;
    pair_fixture f;
    pair_open(&f, 4096);
    fill_dgram_socket(f.sv[0]);
    pair_adopt(&f);
    pg_datagram_transport *t = f.rec.transport;
    size_t high, low;
    pg_datagram_transport_get_write_buffer_limits(t, &high, &low);
    assert_int_equal(high, 64 * 1024); /* asyncio's defaults */
    assert_int_equal(low, 16 * 1024);
    assert_int_equal(pg_datagram_transport_set_write_buffer_limits(t, 10, 20), -EINVAL);
    assert_int_equal(pg_datagram_transport_set_write_buffer_limits(t, 400, PG_LIMIT_DEFAULT), 0);
    pg_datagram_transport_get_write_buffer_limits(t, &high, &low);
    assert_int_equal(low, 100);
    assert_int_equal(pg_datagram_transport_set_write_buffer_limits(t, PG_LIMIT_DEFAULT, 30), 0);
    pg_datagram_transport_get_write_buffer_limits(t, &high, &low);
    assert_int_equal(high, 120);

    uint8_t b[50] = { 0 };
    assert_int_equal(sendto_peer(&f.rec, b, sizeof b), 0); /* 58 queued */
    assert_int_equal(f.rec.pauses, 0);
    /* Lowering high below the queue pauses at once... */
    assert_int_equal(pg_datagram_transport_set_write_buffer_limits(t, 40, 0), 0);
    assert_int_equal(f.rec.pauses, 1);
    assert_int_equal(f.rec.size_at_pause, 58);
    /* ...raising it never resumes. */
    assert_int_equal(pg_datagram_transport_set_write_buffer_limits(t, 1000, 10), 0);
    assert_int_equal(f.rec.resumes, 0);
    pair_close(&f);
}

/* ---- closing ------------------------------------------------------------ */

static void test_close_flushes_the_queue_then_resume_then_lost(void **state)
{
    (void)state;
    pair_fixture f;
    pair_open(&f, 4096);
    int prefill = fill_dgram_socket(f.sv[0]);
    pair_adopt(&f);
    pg_datagram_transport *t = f.rec.transport;
    assert_int_equal(pg_datagram_transport_set_write_buffer_limits(t, 20, 0), 0);
    uint8_t b[10];
    memset(b, 7, sizeof b);
    assert_int_equal(sendto_peer(&f.rec, b, sizeof b), 0);
    assert_int_equal(sendto_peer(&f.rec, b, sizeof b), 0); /* 36 > 20: paused */
    assert_int_equal(f.rec.pauses, 1);
    pg_datagram_transport_close(t);
    assert_true(pg_datagram_transport_is_closing(t));
    /* asyncio: sendto while the queue flushes is still queued. */
    assert_int_equal(sendto_peer(&f.rec, b, sizeof b), 0);
    run_idle(f.loop, 3);
    assert_int_equal(f.rec.lost, 0); /* waits for the queue */

    int got = drain_while_running(&f, firsts, (int)sizeof firsts, true);
    assert_int_equal(got, prefill + 3);
    assert_int_equal(firsts[got - 1], 7);
    assert_string_equal(f.rec.log, "made pause resume lost:ok");
    pair_close(&f);
}

static void test_abort_drops_the_queue(void **state)
{
    (void)state;
    pair_fixture f;
    pair_open(&f, 4096);
    int prefill = fill_dgram_socket(f.sv[0]);
    pair_adopt(&f);
    uint8_t b[10] = { 0 };
    assert_int_equal(sendto_peer(&f.rec, b, sizeof b), 0);
    assert_int_equal(sendto_peer(&f.rec, b, sizeof b), 0);
    pg_datagram_transport_abort(f.rec.transport);
    assert_int_equal(f.rec.lost, 0); /* on the next iteration */
    RUN_UNTIL(f.loop, f.rec.lost == 1);
    assert_int_equal(drain_dgram_socket(f.sv[1], NULL, 0), prefill); /* none of the queued */
    assert_string_equal(f.rec.log, "made lost:ok");
    pair_close(&f);
}

/* asyncio's test_sendto_closing: a connected transport that is closing drops
 * sendto silently: no error, no error_received. */
static void test_sendto_on_a_closing_transport_is_dropped(void **state)
{
    (void)state;
    pair_fixture f;
    pair_open(&f, 0);
    pair_adopt(&f);
    pg_datagram_transport *t = f.rec.transport;
    pg_datagram_transport_close(t);
    for (int i = 0; i < 6; i++) /* asyncio warns after the fifth: we say nothing */
        assert_int_equal(sendto_peer(&f.rec, "late", 4), 0);
    assert_int_equal(pg_datagram_transport_get_write_buffer_size(t), 0);
    RUN_UNTIL(f.loop, f.rec.lost == 1);
    assert_int_equal(drain_dgram_socket(f.sv[1], NULL, 0), 0);
    assert_string_equal(f.rec.log, "made lost:ok");
    pair_close(&f);
}

static void test_close_and_abort_are_idempotent(void **state)
{
    (void)state;
    pair_fixture f;
    pair_open(&f, 0);
    pair_adopt(&f);
    pg_datagram_transport *t = f.rec.transport;
    pg_datagram_transport_close(t);
    pg_datagram_transport_abort(t);
    pg_datagram_transport_close(t);
    pg_datagram_transport_pause_reading(t);
    pg_datagram_transport_resume_reading(t);
    assert_false(pg_datagram_transport_is_reading(t));
    RUN_UNTIL(f.loop, f.rec.lost == 1);
    run_idle(f.loop, 3);
    assert_string_equal(f.rec.log, "made lost:ok");
    pair_close(&f);
}

/* The transport exists before connection_made (pg_datagram_adopt_fd and the
 * UDP functions hand it out at once): sending and closing then still give
 * connection_made first, and connection_lost only after it. */
static void test_send_and_close_before_connection_made(void **state)
{
    (void)state;
    pair_fixture f;
    pair_open(&f, 4096);
    int prefill = fill_dgram_socket(f.sv[0]);
    pg_datagram_transport *t;
    assert_int_equal(pg_datagram_adopt_fd(f.loop, f.sv[0], dgram_rec_factory, &f.rec, &t), 0);
    assert_int_equal(pg_datagram_transport_sendto(t, "\x05", 1, NULL, 0), 0); /* queued: the peer is full */
    static uint8_t huge[1024 * 1024];
    assert_int_equal(pg_datagram_transport_set_write_buffer_limits(t, 1, 0), 0);
    pg_datagram_transport_close(t);
    /* The peer reads at once, so the queue can drain before connection_made runs. */
    assert_int_equal(drain_dgram_socket(f.sv[1], NULL, 0), prefill);
    RUN_UNTIL(f.loop, f.rec.lost == 1);
    assert_int_equal(drain_dgram_socket(f.sv[1], firsts, 1), 1);
    assert_int_equal(firsts[0], 5);
    assert_string_equal(f.rec.log, "made pause resume lost:ok");

    /* Errors before connection_made are returned, not sent to error_received. */
    int sv[2];
    dgram_rec r;
    dgram_rec_init(&r);
    make_dgram_pair(sv, 0);
    assert_int_equal(pg_datagram_adopt_fd(f.loop, sv[0], dgram_rec_factory, &r, &t), 0);
    assert_int_equal(pg_datagram_transport_sendto(t, huge, sizeof huge, NULL, 0), -EMSGSIZE);
    RUN_UNTIL(f.loop, r.made == 1);
    pg_datagram_transport_close(t);
    RUN_UNTIL(f.loop, r.lost == 1);
    assert_string_equal(r.log, "made lost:ok");
    close(sv[1]);
    pair_close(&f);
}

/* ---- send errors -------------------------------------------------------- */

static void test_send_error_goes_to_error_received_and_stays_open(void **state)
{
    (void)state;
    pair_fixture f;
    pair_open(&f, 0);
    pair_adopt(&f);
    size_t big = 1024 * 1024; /* more than the send buffer can ever hold */
    uint8_t *huge = calloc(1, big);
    assert_non_null(huge);
    assert_int_equal(sendto_peer(&f.rec, huge, big), 0);
    assert_int_equal(f.rec.errors, 1); /* from inside sendto, as asyncio */
    assert_int_equal(f.rec.last_error, -EMSGSIZE);
    assert_false(pg_datagram_transport_is_closing(f.rec.transport));
    assert_int_equal(sendto_peer(&f.rec, "ok", 2), 0);
    assert_int_equal(drain_dgram_socket(f.sv[1], NULL, 0), 1);
    free(huge);
    pair_close(&f);
    assert_string_equal(f.rec.log, "made error:EMSGSIZE lost:ok");
}

/* A queued datagram the kernel refuses when its turn comes is dropped with
 * error_received; the rest of the queue goes on. */
static void test_queued_datagram_that_fails_is_dropped(void **state)
{
    (void)state;
    pair_fixture f;
    pair_open(&f, 4096);
    int prefill = fill_dgram_socket(f.sv[0]);
    pair_adopt(&f);
    size_t big = 1024 * 1024;
    uint8_t *huge = calloc(1, big);
    assert_non_null(huge);
    assert_int_equal(sendto_peer(&f.rec, "\x01", 1), 0);
    assert_int_equal(sendto_peer(&f.rec, huge, big), 0); /* queued behind the first: a copy */
    assert_int_equal(sendto_peer(&f.rec, "\x03", 1), 0);
    free(huge);
    assert_int_equal(f.rec.errors, 0);
    int got = drain_while_running(&f, firsts, (int)sizeof firsts, false);
    assert_int_equal(got, prefill + 2);
    assert_int_equal(firsts[got - 2], 1);
    assert_int_equal(firsts[got - 1], 3);
    assert_string_equal(f.rec.log, "made pause error:EMSGSIZE resume"); /* 1 MiB queued is above high */
    pair_close(&f);
}

/* ---- receiving ---------------------------------------------------------- */

typedef struct udp_fixture {
    pg_loop *loop;
    int sender; /* a plain UDP socket that sends to the endpoints */
    struct sockaddr_storage sender_addr;
    socklen_t sender_len;
    int fds[2];
    struct sockaddr_storage addrs[2];
    socklen_t lens[2];
    dgram_rec recs[2];
} udp_fixture;

static void udp_open(udp_fixture *f, int n)
{
    assert_int_equal(pg_loop_new(&f->loop), 0);
    f->sender = udp_socket_on_loopback(AF_INET, &f->sender_addr, &f->sender_len);
    for (int i = 0; i < n; i++) {
        f->fds[i] = udp_socket_on_loopback(AF_INET, &f->addrs[i], &f->lens[i]);
        dgram_rec_init(&f->recs[i]);
        assert_int_equal(pg_datagram_adopt_fd(f->loop, f->fds[i], dgram_rec_factory, &f->recs[i], NULL), 0);
    }
    RUN_UNTIL(f->loop, f->recs[0].made == 1 && (n < 2 || f->recs[1].made == 1));
}

/* count datagrams whose first byte counts up from 0. */
static void udp_send_many(udp_fixture *f, int to, int count)
{
    for (int i = 0; i < count; i++) {
        uint8_t b[32];
        memset(b, (uint8_t)i, sizeof b);
        assert_int_equal(sendto(f->sender, b, sizeof b, 0, (struct sockaddr *)&f->addrs[to], f->lens[to]),
                         (ssize_t)sizeof b);
    }
}

static void udp_close(udp_fixture *f, int n)
{
    for (int i = 0; i < n; i++)
        if (f->recs[i].transport != NULL && !pg_datagram_transport_is_closing(f->recs[i].transport))
            pg_datagram_transport_close(f->recs[i].transport);
    RUN_UNTIL(f->loop, f->recs[0].lost == 1 && (n < 2 || f->recs[1].lost == 1));
    pg_loop_close(f->loop);
    close(f->sender);
}

/* One readiness event reads at most PG__DGRAM_BATCH datagrams, so a busy
 * socket cannot starve the others; two busy sockets share each iteration. */
static void test_one_batch_per_readiness_event(void **state)
{
    (void)state;
    udp_fixture f;
    udp_open(&f, 2);
    udp_send_many(&f, 0, 40);
    udp_send_many(&f, 1, 40);
    assert_int_equal(pg_loop_run_once(f.loop, 1000), 0);
    assert_int_equal(f.recs[0].datagrams, PG__DGRAM_BATCH);
    assert_int_equal(f.recs[1].datagrams, PG__DGRAM_BATCH);
    assert_int_equal(pg_loop_run_once(f.loop, 1000), 0);
    assert_int_equal(f.recs[0].datagrams, 2 * PG__DGRAM_BATCH);
    assert_int_equal(f.recs[1].datagrams, 2 * PG__DGRAM_BATCH);
    RUN_UNTIL(f.loop, f.recs[0].datagrams == 40 && f.recs[1].datagrams == 40);
    for (int i = 0; i < 40; i++) {
        assert_int_equal(f.recs[0].firsts[i], i);
        assert_int_equal(f.recs[1].firsts[i], i);
    }
    /* The sender's address comes with every datagram. */
    assert_int_equal(f.recs[0].last_addrlen, f.sender_len);
    assert_int_equal(address_port(&f.recs[0].last_addr), address_port(&f.sender_addr));
    udp_close(&f, 2);
}

static void test_receiving_does_not_allocate_per_datagram(void **state)
{
    (void)state;
    udp_fixture f;
    udp_open(&f, 1);
    udp_send_many(&f, 0, 1); /* the first read allocates the loop's receive area */
    RUN_UNTIL(f.loop, f.recs[0].datagrams == 1);
    long before = allocations;
    for (int round = 0; round < 10; round++) {
        udp_send_many(&f, 0, 50);
        RUN_UNTIL(f.loop, f.recs[0].datagrams == 1 + 50 * (round + 1));
    }
    assert_int_equal(allocations, before);
    udp_close(&f, 1);
}

static void pause_at_third(dgram_rec *r, const uint8_t *data, size_t len, const struct sockaddr *addr,
                           socklen_t addrlen)
{
    (void)data, (void)len, (void)addr, (void)addrlen;
    if (r->datagrams == 3 || r->datagrams == 6)
        pg_datagram_transport_pause_reading(r->transport);
}

/* pause_reading in the middle of a batch: nothing more until resume_reading,
 * then the rest of that batch first, in order, and nothing lost. */
static void test_pause_reading_in_the_middle_of_a_batch(void **state)
{
    (void)state;
    udp_fixture f;
    udp_open(&f, 1);
    dgram_rec *r = &f.recs[0];
    r->hooks.datagram = pause_at_third;
    udp_send_many(&f, 0, 10);
    assert_int_equal(pg_loop_run_once(f.loop, 1000), 0);
    assert_int_equal(r->datagrams, 3);
    run_idle(f.loop, 5);
    udp_send_many(&f, 0, 2); /* more waits in the kernel meanwhile */
    run_idle(f.loop, 5);
    assert_int_equal(r->datagrams, 3);
    assert_false(pg_datagram_transport_is_reading(r->transport));

    pg_datagram_transport_resume_reading(r->transport);
    assert_int_equal(r->datagrams, 3); /* never from inside resume_reading */
    RUN_UNTIL(f.loop, r->datagrams == 6); /* paused again at the sixth, from the held ones */
    run_idle(f.loop, 5);
    assert_int_equal(r->datagrams, 6);
    pg_datagram_transport_resume_reading(r->transport);
    RUN_UNTIL(f.loop, r->datagrams == 12);
    static const uint8_t expected[12] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1 };
    assert_memory_equal(r->firsts, expected, 12);
    udp_close(&f, 1);
}

static void close_at_third(dgram_rec *r, const uint8_t *data, size_t len, const struct sockaddr *addr,
                           socklen_t addrlen)
{
    (void)data, (void)len, (void)addr, (void)addrlen;
    if (r->datagrams == 3)
        pg_datagram_transport_close(r->transport);
}

static void test_close_in_the_middle_of_a_batch(void **state)
{
    (void)state;
    udp_fixture f;
    udp_open(&f, 1);
    dgram_rec *r = &f.recs[0];
    r->hooks.datagram = close_at_third;
    udp_send_many(&f, 0, 10);
    RUN_UNTIL(f.loop, r->lost == 1);
    assert_string_equal(r->log, "made d32 d32 d32 lost:ok");
    udp_close(&f, 1);
}

static void pause_then_close_at_second(dgram_rec *r, const uint8_t *data, size_t len, const struct sockaddr *addr,
                                       socklen_t addrlen)
{
    (void)data, (void)len, (void)addr, (void)addrlen;
    if (r->datagrams == 2) {
        pg_datagram_transport_pause_reading(r->transport);
        pg_datagram_transport_resume_reading(r->transport); /* schedules the held ones... */
        pg_datagram_transport_abort(r->transport);          /* ...which never come */
    }
}

static void test_abort_with_held_datagrams(void **state)
{
    (void)state;
    udp_fixture f;
    udp_open(&f, 1);
    dgram_rec *r = &f.recs[0];
    r->hooks.datagram = pause_then_close_at_second;
    udp_send_many(&f, 0, 10);
    RUN_UNTIL(f.loop, r->lost == 1);
    run_idle(f.loop, 3);
    assert_string_equal(r->log, "made d32 d32 lost:ok");
    udp_close(&f, 1);
}

/* A Unix datagram larger than a receive slot is reported, not cut short. */
static void test_datagram_larger_than_a_slot_is_an_error(void **state)
{
    (void)state;
    pair_fixture f;
    pair_open(&f, 0);
    int sndbuf = 1024 * 1024;
    assert_int_equal(setsockopt(f.sv[1], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf), 0);
    size_t big = PG__DGRAM_SLOT + 1000;
    uint8_t *huge = calloc(1, big);
    assert_non_null(huge);
    assert_int_equal(send(f.sv[1], huge, big, MSG_DONTWAIT), (ssize_t)big);
    free(huge);
    peer_send(f.sv[1], 'z', 4);
    pair_adopt(&f);
    RUN_UNTIL(f.loop, f.rec.datagrams == 1);
    assert_string_equal(f.rec.log, "made error:EMSGSIZE d4");
    pair_close(&f);
}

/* ---- adopting ----------------------------------------------------------- */

static int refuse(void *arg, pg_datagram_protocol *out)
{
    (void)arg, (void)out;
    return -EPERM;
}

static void test_adopt_checks_the_socket(void **state)
{
    (void)state;
    pg_loop *loop;
    assert_int_equal(pg_loop_new(&loop), 0);
    dgram_rec r;
    dgram_rec_init(&r);
    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(pg_datagram_adopt_fd(loop, p[0], dgram_rec_factory, &r, NULL), -ENOTSOCK);
    close(p[0]);
    close(p[1]);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(pg_datagram_adopt_fd(loop, sv[0], dgram_rec_factory, &r, NULL), -EINVAL);
    close(sv[0]);
    close(sv[1]);
    make_dgram_pair(sv, 0);
    assert_int_equal(pg_datagram_adopt_fd(loop, sv[0], refuse, NULL, NULL), -EPERM);
    assert_true(fcntl(sv[0], F_GETFD) >= 0); /* still the caller's */
    assert_int_equal(pg_datagram_adopt_fd(NULL, sv[0], dgram_rec_factory, &r, NULL), -EINVAL);
    assert_int_equal(pg_datagram_adopt_fd(loop, -1, dgram_rec_factory, &r, NULL), -EINVAL);
    run_idle(loop, 2);
    assert_int_equal(r.made, 0);
    close(sv[0]);
    close(sv[1]);
    pg_loop_close(loop);
}

static void test_extra_info(void **state)
{
    (void)state;
    udp_fixture f;
    udp_open(&f, 1);
    pg_datagram_transport *t = f.recs[0].transport;
    pg_extra_info info;
    assert_int_equal(pg_datagram_transport_get_extra_info(t, PG_EXTRA_SOCKNAME, &info), 0);
    assert_int_equal(address_port(&info.addr), address_port(&f.addrs[0]));
    assert_int_equal(pg_datagram_transport_get_extra_info(t, PG_EXTRA_PEERNAME, &info), -ENOTCONN);
    assert_int_equal(pg_datagram_transport_get_extra_info(t, PG_EXTRA_SOCKET, &info), 0);
    assert_int_equal(info.fd, f.fds[0]);
    assert_int_equal(pg_datagram_transport_get_extra_info(t, PG_EXTRA_SOCKET, NULL), -EINVAL);
    assert_int_equal(pg_datagram_transport_sendto(t, "x", 1, NULL, 0), -EDESTADDRREQ);
    udp_close(&f, 1);
}

static void test_report_sizes(void **state)
{
    (void)state;
    /* Not a limit: a number to watch. */
    printf("# sizeof datagram transport: %zu bytes\n", pg__datagram_sizeof());
    assert_true(pg__datagram_sizeof() <= 512);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_made_before_datagrams_and_empty_datagrams),
        cmocka_unit_test(test_pause_reading_in_connection_made),
        cmocka_unit_test(test_close_in_connection_made),
        cmocka_unit_test(test_sendto_with_an_empty_queue_sends_at_once),
        cmocka_unit_test(test_eagain_copies_and_queues_in_order),
        cmocka_unit_test(test_flow_control_at_asyncios_thresholds),
        cmocka_unit_test(test_set_write_buffer_limits),
        cmocka_unit_test(test_close_flushes_the_queue_then_resume_then_lost),
        cmocka_unit_test(test_abort_drops_the_queue),
        cmocka_unit_test(test_sendto_on_a_closing_transport_is_dropped),
        cmocka_unit_test(test_close_and_abort_are_idempotent),
        cmocka_unit_test(test_send_and_close_before_connection_made),
        cmocka_unit_test(test_send_error_goes_to_error_received_and_stays_open),
        cmocka_unit_test(test_queued_datagram_that_fails_is_dropped),
        cmocka_unit_test(test_one_batch_per_readiness_event),
        cmocka_unit_test(test_receiving_does_not_allocate_per_datagram),
        cmocka_unit_test(test_pause_reading_in_the_middle_of_a_batch),
        cmocka_unit_test(test_close_in_the_middle_of_a_batch),
        cmocka_unit_test(test_abort_with_held_datagrams),
        cmocka_unit_test(test_datagram_larger_than_a_slot_is_an_error),
        cmocka_unit_test(test_adopt_checks_the_socket),
        cmocka_unit_test(test_extra_info),
        cmocka_unit_test(test_report_sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
