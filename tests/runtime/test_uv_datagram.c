/* The libuv datagram driver (pg_uv_datagram_open) over loopback UDP and Unix
 * datagram sockets, the other end a raw socket the test drives: datagrams in
 * and out in order, pause/resume reading, error_received after an ICMP port
 * unreachable, close draining the queue and abort dropping it (each with a
 * deferred connection_lost), bad arguments, and trace lines identical to the
 * built-in loop's for the same exchange. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <unistd.h>

#include "protogen/uv.h"

#include "dgram_recorder.h"
#include "internal.h"
#include "uv_testutil.h"

typedef struct dfix {
    uv_loop_t loop;
    uv_timer_t guard;
    pg_uv_host *host;
} dfix;

static void dfix_start(dfix *f)
{
    memset(f, 0, sizeof *f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    uv_guard_init(&f->loop, &f->guard);
    assert_int_equal(pg_uv_host_new(&f->loop, &f->host), 0);
}

/* After every transport's connection_lost: the handles close, nothing is left. */
static void dfix_done(dfix *f)
{
    pg_uv_host_free(f->host);
    uv_close((uv_handle_t *)&f->guard, NULL);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&f->loop), 0);
}

/* Iterations that do not wait: nothing must happen in them. */
static void uv_idle_turns(dfix *f, int n)
{
    for (int i = 0; i < n; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
}

/* A UDP socket connected to port on the loopback address of family. */
static int connected_udp(int family, uint16_t port)
{
    struct sockaddr_storage addr;
    socklen_t len;
    int fd = udp_socket_on_loopback(family, &addr, &len); /* for the address only */
    close(fd);
    if (family == AF_INET)
        ((struct sockaddr_in *)&addr)->sin_port = htons(port);
    else
        ((struct sockaddr_in6 *)&addr)->sin6_port = htons(port);
    fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&addr, len), 0);
    return fd;
}

/* ---- datagrams in and out ----------------------------------------------- */

static void test_datagrams_in_and_out_in_order(void **state)
{
    (void)state;
    dfix f;
    dfix_start(&f);
    struct sockaddr_storage srv_addr, peer_addr;
    socklen_t srv_len, peer_len;
    int srv_fd = udp_socket_on_loopback(AF_INET, &srv_addr, &srv_len);
    int peer = udp_socket_on_loopback(AF_INET, &peer_addr, &peer_len);
    dgram_rec r;
    dgram_rec_init(&r);
    r.hooks.datagram = dgram_rec_echo_to_sender;
    pg_datagram_transport *t;
    assert_int_equal(pg_uv_datagram_open(f.host, srv_fd, dgram_rec_factory, &r, &t), 0);
    assert_int_equal(r.made, 0); /* connection_made comes from the loop */
    UV_UNTIL(&f, r.made == 1);
    assert_ptr_equal(r.transport, t);
    pg_extra_info info;
    assert_int_equal(pg_datagram_transport_get_extra_info(t, PG_EXTRA_PEERNAME, &info), -ENOTCONN);
    assert_int_equal(pg_datagram_transport_get_extra_info(t, PG_EXTRA_SOCKNAME, &info), 0);
    assert_int_equal(address_port(&info.addr), address_port(&srv_addr));

    /* More than one read batch, each datagram its own length. */
    enum { N = 40 };
    for (int i = 0; i < N; i++) {
        uint8_t b[N + 1];
        memset(b, 'a' + i % 26, sizeof b);
        assert_int_equal(sendto(peer, b, (size_t)i + 1, 0, (struct sockaddr *)&srv_addr, srv_len), i + 1);
    }
    UV_UNTIL(&f, r.datagrams == N);
    assert_int_equal(r.bytes, N * (N + 1) / 2);
    assert_int_equal(address_port(&r.last_addr), address_port(&peer_addr));
    uint8_t firsts[N];
    assert_int_equal(drain_dgram_socket(peer, firsts, N), N); /* the echoes, sent at once */
    for (int i = 0; i < N; i++) {
        assert_int_equal(r.firsts[i], 'a' + i % 26);
        assert_int_equal(firsts[i], 'a' + i % 26);
    }

    pg_datagram_transport_close(t);
    assert_int_equal(r.lost, 0); /* never from inside the call */
    UV_UNTIL(&f, r.lost == 1);
    assert_int_equal(r.lost_error, 0);
    close(peer);
    dfix_done(&f);
}

static void pause_on_first(dgram_rec *r, const uint8_t *data, size_t len, const struct sockaddr *addr,
                           socklen_t addrlen)
{
    (void)data, (void)len, (void)addr, (void)addrlen;
    if (r->datagrams == 1)
        pg_datagram_transport_pause_reading(r->transport);
}

static void test_pause_and_resume_reading(void **state)
{
    (void)state;
    dfix f;
    dfix_start(&f);
    struct sockaddr_storage srv_addr, peer_addr;
    socklen_t srv_len, peer_len;
    int srv_fd = udp_socket_on_loopback(AF_INET6, &srv_addr, &srv_len);
    int peer = udp_socket_on_loopback(AF_INET6, &peer_addr, &peer_len);
    dgram_rec r;
    dgram_rec_init(&r);
    r.hooks.datagram = pause_on_first;
    pg_datagram_transport *t;
    assert_int_equal(pg_uv_datagram_open(f.host, srv_fd, dgram_rec_factory, &r, &t), 0);
    UV_UNTIL(&f, r.made == 1);
    for (int i = 0; i < 3; i++)
        assert_int_equal(sendto(peer, &"abc"[i], 1, 0, (struct sockaddr *)&srv_addr, srv_len), 1);
    UV_UNTIL(&f, r.datagrams == 1);
    /* Paused in the middle of a batch: the other two wait in the kernel. */
    assert_false(pg_datagram_transport_is_reading(t));
    uv_idle_turns(&f, 5);
    assert_int_equal(r.datagrams, 1);

    pg_datagram_transport_resume_reading(t);
    assert_int_equal(r.datagrams, 1); /* from the loop, not from inside resume */
    UV_UNTIL(&f, r.datagrams == 3);
    assert_memory_equal(r.firsts, "abc", 3);
    assert_true(pg_datagram_transport_is_reading(t));

    pg_datagram_transport_close(t);
    UV_UNTIL(&f, r.lost == 1);
    assert_string_equal(r.log, "made d1 d1 d1 lost:ok");
    close(peer);
    dfix_done(&f);
}

/* ---- error_received ----------------------------------------------------- */

static void close_on_error(dgram_rec *r, int error)
{
    (void)error;
    if (r->errors == 2)
        pg_datagram_transport_close(r->transport);
    else /* still open: send again, and get the next port unreachable */
        assert_int_equal(pg_datagram_transport_sendto(r->transport, "again", 5, NULL, 0), 0);
}

/* As on the built-in loop (test_udp.c): the ICMP port unreachable comes back
 * as error_received(ECONNREFUSED), and the endpoint stays open. */
static void connected_to_a_closed_port(int family)
{
    dfix f;
    dfix_start(&f);
    dgram_rec r;
    dgram_rec_init(&r);
    r.hooks.made = dgram_rec_send_ping;
    r.hooks.error = close_on_error;
    int fd = connected_udp(family, closed_udp_port(family));
    pg_datagram_transport *t;
    assert_int_equal(pg_uv_datagram_open(f.host, fd, dgram_rec_factory, &r, &t), 0);
    pg_extra_info info;
    assert_int_equal(pg_datagram_transport_get_extra_info(t, PG_EXTRA_PEERNAME, &info), 0);
    assert_int_equal(info.addr.ss_family, family);
    UV_UNTIL(&f, r.lost == 1);
    assert_string_equal(r.log, "made error:ECONNREFUSED error:ECONNREFUSED lost:ok");
    dfix_done(&f);
}

static void test_error_received_on_connected_socket_to_closed_port_ipv4(void **state)
{
    (void)state;
    connected_to_a_closed_port(AF_INET);
}

static void test_error_received_on_connected_socket_to_closed_port_ipv6(void **state)
{
    (void)state;
    connected_to_a_closed_port(AF_INET6);
}

/* ---- close and abort ---------------------------------------------------- */

static void queue_xyz(dgram_rec *r)
{
    /* The peer's socket is full: all three are queued. */
    for (int i = 0; i < 3; i++)
        assert_int_equal(pg_datagram_transport_sendto(r->transport, &"xyz"[i], 1, NULL, 0), 0);
    assert_int_equal(pg_datagram_transport_get_write_buffer_size(r->transport), 3 * (1 + PG_DATAGRAM_OVERHEAD));
}

static void close_or_abort(bool abort)
{
    dfix f;
    dfix_start(&f);
    int sv[2];
    make_dgram_pair(sv, 4096);
    int filled = fill_dgram_socket(sv[0]);
    dgram_rec r;
    dgram_rec_init(&r);
    r.hooks.made = queue_xyz;
    pg_datagram_transport *t;
    assert_int_equal(pg_uv_datagram_open(f.host, sv[0], dgram_rec_factory, &r, &t), 0);
    UV_UNTIL(&f, r.made == 1);
    if (abort)
        pg_datagram_transport_abort(t);
    else
        pg_datagram_transport_close(t);
    assert_true(pg_datagram_transport_is_closing(t));
    assert_int_equal(r.lost, 0); /* never from inside the call */
    uint8_t firsts[4];
    if (abort) {
        UV_UNTIL(&f, r.lost == 1); /* the queue is dropped */
        assert_int_equal(drain_dgram_socket(sv[1], NULL, 0), filled);
    } else {
        uv_idle_turns(&f, 5);
        assert_int_equal(r.lost, 0); /* the queue waits for room */
        assert_int_equal(drain_dgram_socket(sv[1], NULL, 0), filled);
        UV_UNTIL(&f, r.lost == 1); /* sent, then connection_lost */
        assert_int_equal(drain_dgram_socket(sv[1], firsts, 4), 3);
        assert_memory_equal(firsts, "xyz", 3);
    }
    assert_string_equal(r.log, "made lost:ok");
    dfix_done(&f);
    assert_int_equal(drain_dgram_socket(sv[1], NULL, 0), 0);
    assert_int_equal(send(sv[1], "?", 1, MSG_NOSIGNAL), -1); /* the transport closed its end */
    assert_int_equal(errno, ECONNREFUSED);
    close(sv[1]);
}

static void test_close_sends_the_queue_first(void **state)
{
    (void)state;
    close_or_abort(false);
}

static void test_abort_drops_the_queue(void **state)
{
    (void)state;
    close_or_abort(true);
}

/* ---- bad arguments ------------------------------------------------------ */

static int refuse(void *arg, pg_datagram_protocol *out)
{
    (void)arg, (void)out;
    return -EPERM;
}

static void test_bad_arguments_leave_the_fd_to_the_caller(void **state)
{
    (void)state;
    dfix f;
    dfix_start(&f);
    dgram_rec r;
    dgram_rec_init(&r);
    int sv[2];
    make_socketpair(sv, 0);
    assert_int_equal(pg_uv_datagram_open(f.host, sv[0], dgram_rec_factory, &r, NULL), -EINVAL);
    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(pg_uv_datagram_open(f.host, p[0], dgram_rec_factory, &r, NULL), -ENOTSOCK);
    assert_int_equal(pg_uv_datagram_open(NULL, p[0], dgram_rec_factory, &r, NULL), -EINVAL);
    assert_int_equal(pg_uv_datagram_open(f.host, -1, dgram_rec_factory, &r, NULL), -EINVAL);
    struct sockaddr_storage addr;
    socklen_t len;
    int fd = udp_socket_on_loopback(AF_INET, &addr, &len);
    assert_int_equal(pg_uv_datagram_open(f.host, fd, NULL, &r, NULL), -EINVAL);
    assert_int_equal(pg_uv_datagram_open(f.host, fd, refuse, NULL, NULL), -EPERM);
    uv_idle_turns(&f, 2);
    assert_int_equal(r.made, 0);
    assert_true(fcntl(fd, F_GETFD) >= 0); /* still open, still the caller's */
    int fds[] = { sv[0], sv[1], p[0], p[1], fd };
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
        assert_int_equal(close(fds[i]), 0);
    dfix_done(&f);
}

/* ---- trace lines, the same as the built-in loop's ------------------------- */

/* The exchange, on the built-in loop or on libuv. */
typedef struct hut {
    bool uv;
    pg_loop *loop;
    dfix f;
} hut;

static int hut_open(hut *h, int fd, dgram_rec *r)
{
    return h->uv ? pg_uv_datagram_open(h->f.host, fd, dgram_rec_factory, r, NULL)
                 : pg_datagram_adopt_fd(h->loop, fd, dgram_rec_factory, r, NULL);
}

#define HUT_UNTIL(h, cond)                 \
    do {                                   \
        if ((h)->uv)                       \
            UV_UNTIL(&(h)->f, cond);       \
        else                               \
            RUN_UNTIL((h)->loop, cond);    \
    } while (0)

static void pause_with_a_queue(dgram_rec *r)
{
    /* The peer is a full Unix socket: these are queued, 2 x (100 + 8) > 200. */
    uint8_t b[100] = { 0 };
    assert_int_equal(pg_datagram_transport_set_write_buffer_limits(r->transport, 200, 0), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pg_datagram_transport_sendto(r->transport, b, sizeof b, NULL, 0), 0);
}

static char *read_whole(const char *path)
{
    static char buf[4096];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    ssize_t n = read(fd, buf, sizeof buf - 1);
    assert_true(n >= 0);
    buf[n] = '\0';
    close(fd);
    return buf;
}

/* 1: a bound endpoint that echoes a peer's ping, then closes; 2: connected to
 * a closed port, refused twice; 3: flow control over a full Unix socket, then
 * aborted. */
static void traced_exchange(bool uv)
{
    char path[] = "/tmp/pg_uv_dgram_trace_XXXXXX";
    int tfd = mkstemp(path);
    assert_true(tfd >= 0);
    close(tfd);
    assert_int_equal(setenv("PROTOGEN_TRACE", path, 1), 0);
    pg__trace_reset();
    hut h = { .uv = uv };
    if (uv)
        dfix_start(&h.f);
    else
        assert_int_equal(pg_loop_new(&h.loop), 0);

    dgram_rec srv, ref, flow;
    dgram_rec_init(&srv);
    dgram_rec_init(&ref);
    dgram_rec_init(&flow);
    srv.hooks.datagram = dgram_rec_echo_to_sender;
    struct sockaddr_storage srv_addr, peer_addr;
    socklen_t srv_len, peer_len;
    int srv_fd = udp_socket_on_loopback(AF_INET, &srv_addr, &srv_len);
    int peer = udp_socket_on_loopback(AF_INET, &peer_addr, &peer_len);
    assert_int_equal(hut_open(&h, srv_fd, &srv), 0);
    HUT_UNTIL(&h, srv.made == 1);
    assert_int_equal(sendto(peer, "ping", 4, 0, (struct sockaddr *)&srv_addr, srv_len), 4);
    HUT_UNTIL(&h, srv.datagrams == 1);
    assert_int_equal(drain_dgram_socket(peer, NULL, 0), 1);
    pg_datagram_transport_close(srv.transport);
    HUT_UNTIL(&h, srv.lost == 1);

    ref.hooks.made = dgram_rec_send_ping;
    ref.hooks.error = close_on_error;
    assert_int_equal(hut_open(&h, connected_udp(AF_INET, closed_udp_port(AF_INET)), &ref), 0);
    HUT_UNTIL(&h, ref.lost == 1);

    int sv[2];
    make_dgram_pair(sv, 4096);
    fill_dgram_socket(sv[0]);
    flow.hooks.made = pause_with_a_queue;
    assert_int_equal(hut_open(&h, sv[0], &flow), 0);
    HUT_UNTIL(&h, flow.pauses == 1);
    pg_datagram_transport_abort(flow.transport);
    HUT_UNTIL(&h, flow.lost == 1);
    close(sv[1]);
    close(peer);
    if (uv)
        dfix_done(&h.f);
    else
        pg_loop_close(h.loop);

    char expected[1024];
    snprintf(expected, sizeof expected,
             "1 connection_made\n"
             "1 datagram_received 4 127.0.0.1:%u\n"
             "1 connection_lost ok\n"
             "2 connection_made\n"
             "2 error_received ECONNREFUSED\n"
             "2 error_received ECONNREFUSED\n"
             "2 connection_lost ok\n"
             "3 connection_made\n"
             "3 pause_writing 216\n"
             "3 connection_lost ok\n",
             (unsigned)address_port(&peer_addr));
    assert_string_equal(read_whole(path), expected);
    unsetenv("PROTOGEN_TRACE");
    pg__trace_reset();
    unlink(path);
}

static void test_trace_as_on_the_built_in_loop(void **state)
{
    (void)state;
    traced_exchange(false);
    traced_exchange(true);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_datagrams_in_and_out_in_order),
        cmocka_unit_test(test_pause_and_resume_reading),
        cmocka_unit_test(test_error_received_on_connected_socket_to_closed_port_ipv4),
        cmocka_unit_test(test_error_received_on_connected_socket_to_closed_port_ipv6),
        cmocka_unit_test(test_close_sends_the_queue_first),
        cmocka_unit_test(test_abort_drops_the_queue),
        cmocka_unit_test(test_bad_arguments_leave_the_fd_to_the_caller),
        cmocka_unit_test(test_trace_as_on_the_built_in_loop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
