/* UDP endpoints over loopback: bound and connected, IPv4 and IPv6, sendto's
 * address rules, error_received after an ICMP port unreachable (asyncio's
 * connected-socket case), options, bad arguments, and the trace format. */
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dgram_recorder.h"
#include "internal.h"

static const char *loopback(int family)
{
    return family == AF_INET ? "127.0.0.1" : "::1";
}

static uint16_t endpoint_port(pg_datagram_transport *t)
{
    pg_extra_info info;
    assert_int_equal(pg_datagram_transport_get_extra_info(t, PG_EXTRA_SOCKNAME, &info), 0);
    return address_port(&info.addr);
}

static int open_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n;
}

/* ---- round trips -------------------------------------------------------- */

static void close_on_reply(dgram_rec *r, const uint8_t *data, size_t len, const struct sockaddr *addr,
                           socklen_t addrlen)
{
    (void)data, (void)len, (void)addr, (void)addrlen;
    pg_datagram_transport_close(r->transport);
}

static void round_trip(int family)
{
    pg_loop *loop;
    assert_int_equal(pg_loop_new(&loop), 0);
    dgram_rec srv, cli;
    dgram_rec_init(&srv);
    dgram_rec_init(&cli);
    srv.hooks.datagram = dgram_rec_echo_to_sender;
    cli.hooks.made = dgram_rec_send_ping;
    cli.hooks.datagram = close_on_reply;
    pg_datagram_transport *st, *ct;
    assert_int_equal(pg_udp_bind(loop, loopback(family), 0, NULL, dgram_rec_factory, &srv, &st), 0);
    uint16_t port = endpoint_port(st);
    assert_true(port > 0);
    assert_int_equal(pg_udp_connect(loop, loopback(family), port, NULL, dgram_rec_factory, &cli, &ct), 0);
    assert_int_equal(srv.made + cli.made, 0); /* never synchronously */
    RUN_UNTIL(loop, cli.lost == 1);
    assert_string_equal(cli.log, "made d4 lost:ok");
    assert_memory_equal(cli.last, "ping", 4);

    /* Each side saw the other's address. */
    assert_int_equal(srv.last_addr.ss_family, family);
    pg_extra_info info;
    assert_int_equal(pg_datagram_transport_get_extra_info(st, PG_EXTRA_PEERNAME, &info), -ENOTCONN);
    assert_int_equal(address_port(&cli.last_addr), port);
    assert_int_equal(cli.last_addr.ss_family, family);

    pg_datagram_transport_close(st);
    RUN_UNTIL(loop, srv.lost == 1);
    assert_string_equal(srv.log, "made d4 lost:ok");
    pg_loop_close(loop);
}

static void test_round_trip_ipv4(void **state)
{
    (void)state;
    round_trip(AF_INET);
}

static void test_round_trip_ipv6(void **state)
{
    (void)state;
    round_trip(AF_INET6);
}

/* ---- sendto's address --------------------------------------------------- */

static void sendto_address_rules(int family)
{
    pg_loop *loop;
    assert_int_equal(pg_loop_new(&loop), 0);
    struct sockaddr_storage peer, other;
    socklen_t peerlen, otherlen;
    int peer_fd = udp_socket_on_loopback(family, &peer, &peerlen);
    int other_fd = udp_socket_on_loopback(family, &other, &otherlen);
    dgram_rec cli;
    dgram_rec_init(&cli);
    pg_datagram_transport *t;
    assert_int_equal(pg_udp_connect(loop, loopback(family), address_port(&peer), NULL, dgram_rec_factory, &cli, &t),
                     0);
    RUN_UNTIL(loop, cli.made == 1);

    pg_extra_info info;
    assert_int_equal(pg_datagram_transport_get_extra_info(t, PG_EXTRA_PEERNAME, &info), 0);
    assert_int_equal(info.addrlen, peerlen);
    assert_int_equal(address_port(&info.addr), address_port(&peer));

    /* NULL or the peer's own address: sent. */
    assert_int_equal(pg_datagram_transport_sendto(t, "a", 1, NULL, 0), 0);
    assert_int_equal(pg_datagram_transport_sendto(t, "b", 1, (struct sockaddr *)&peer, peerlen), 0);
    /* Any other address: asyncio's ValueError, here -EINVAL; nothing sent. */
    assert_int_equal(pg_datagram_transport_sendto(t, "c", 1, (struct sockaddr *)&other, otherlen), -EINVAL);
    struct sockaddr_storage v4 = { 0 };
    ((struct sockaddr_in *)&v4)->sin_family = AF_INET;
    ((struct sockaddr_in *)&v4)->sin_port = htons(address_port(&peer));
    ((struct sockaddr_in *)&v4)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (family == AF_INET6) /* the same port on another family is another address */
        assert_int_equal(pg_datagram_transport_sendto(t, "d", 1, (struct sockaddr *)&v4,
                                                      sizeof(struct sockaddr_in)), -EINVAL);
    assert_int_equal(pg_datagram_transport_sendto(t, "e", 1, (struct sockaddr *)&peer, 1), -EINVAL);
    assert_int_equal(cli.errors, 0);

    uint8_t firsts[8];
    assert_int_equal(drain_dgram_socket(peer_fd, firsts, 8), 2);
    assert_memory_equal(firsts, "ab", 2);
    assert_int_equal(drain_dgram_socket(other_fd, NULL, 0), 0);

    pg_datagram_transport_close(t);
    RUN_UNTIL(loop, cli.lost == 1);
    close(peer_fd);
    close(other_fd);
    pg_loop_close(loop);
}

static void test_connected_sendto_takes_no_other_address_ipv4(void **state)
{
    (void)state;
    sendto_address_rules(AF_INET);
}

static void test_connected_sendto_takes_no_other_address_ipv6(void **state)
{
    (void)state;
    sendto_address_rules(AF_INET6);
}

static void test_bound_sendto_needs_an_address(void **state)
{
    (void)state;
    pg_loop *loop;
    assert_int_equal(pg_loop_new(&loop), 0);
    dgram_rec r;
    dgram_rec_init(&r);
    pg_datagram_transport *t;
    assert_int_equal(pg_udp_bind(loop, "127.0.0.1", 0, NULL, dgram_rec_factory, &r, &t), 0);
    RUN_UNTIL(loop, r.made == 1);
    assert_int_equal(pg_datagram_transport_sendto(t, "x", 1, NULL, 0), -EDESTADDRREQ);
    struct sockaddr_storage dst;
    socklen_t dstlen;
    int fd = udp_socket_on_loopback(AF_INET, &dst, &dstlen);
    assert_int_equal(pg_datagram_transport_sendto(t, "x", 1, (struct sockaddr *)&dst, dstlen), 0);
    assert_int_equal(drain_dgram_socket(fd, NULL, 0), 1);
    close(fd);
    pg_datagram_transport_close(t);
    RUN_UNTIL(loop, r.lost == 1);
    pg_loop_close(loop);
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

/* asyncio's test for a connected socket to a closed port: the ICMP port
 * unreachable comes back as error_received(ECONNREFUSED), and the transport
 * stays open. */
static void connected_to_a_closed_port(int family)
{
    pg_loop *loop;
    assert_int_equal(pg_loop_new(&loop), 0);
    dgram_rec cli;
    dgram_rec_init(&cli);
    cli.hooks.made = dgram_rec_send_ping;
    cli.hooks.error = close_on_error;
    assert_int_equal(
        pg_udp_connect(loop, loopback(family), closed_udp_port(family), NULL, dgram_rec_factory, &cli, NULL), 0);
    RUN_UNTIL(loop, cli.lost == 1);
    assert_string_equal(cli.log, "made error:ECONNREFUSED error:ECONNREFUSED lost:ok");
    pg_loop_close(loop);
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

static void reply_seen(dgram_rec *r, const uint8_t *data, size_t len, const struct sockaddr *addr, socklen_t addrlen)
{
    (void)data, (void)len, (void)addr, (void)addrlen;
    pg_datagram_transport_close(r->transport);
}

/* A bound (unconnected) socket hears nothing of a closed port, as in asyncio
 * on Linux: the kernel reports ICMP errors only to connected UDP sockets. */
static void test_bound_socket_gets_no_error_from_a_closed_port(void **state)
{
    (void)state;
    pg_loop *loop;
    assert_int_equal(pg_loop_new(&loop), 0);
    dgram_rec r;
    dgram_rec_init(&r);
    r.hooks.datagram = reply_seen;
    pg_datagram_transport *t;
    assert_int_equal(pg_udp_bind(loop, "127.0.0.1", 0, NULL, dgram_rec_factory, &r, &t), 0);
    RUN_UNTIL(loop, r.made == 1);
    struct sockaddr_in closed = { .sin_family = AF_INET, .sin_port = htons(closed_udp_port(AF_INET)),
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    assert_int_equal(pg_datagram_transport_sendto(t, "x", 1, (struct sockaddr *)&closed, sizeof closed), 0);
    /* Then a live peer answers: the reply comes after any ICMP error would have. */
    struct sockaddr_storage live;
    socklen_t livelen;
    int fd = udp_socket_on_loopback(AF_INET, &live, &livelen);
    assert_int_equal(pg_datagram_transport_sendto(t, "y", 1, (struct sockaddr *)&live, livelen), 0);
    uint8_t b[4];
    struct sockaddr_storage from;
    socklen_t fromlen = sizeof from;
    for (int i = 0; recvfrom(fd, b, sizeof b, 0, (struct sockaddr *)&from, &fromlen) < 0; i++) {
        assert_true(i < 1000);
        assert_int_equal(pg_loop_run_once(loop, 10), 0);
    }
    assert_int_equal(sendto(fd, "z", 1, 0, (struct sockaddr *)&from, fromlen), 1);
    RUN_UNTIL(loop, r.lost == 1);
    assert_string_equal(r.log, "made d1 lost:ok");
    close(fd);
    pg_loop_close(loop);
}

/* ---- addresses and options ---------------------------------------------- */

static void test_bad_arguments(void **state)
{
    (void)state;
    pg_loop *loop;
    assert_int_equal(pg_loop_new(&loop), 0);
    dgram_rec r;
    dgram_rec_init(&r);
    int fds = open_fds();
    assert_int_equal(pg_udp_bind(loop, "example.com", 0, NULL, dgram_rec_factory, &r, NULL), -EINVAL);
    assert_int_equal(pg_udp_bind(loop, "300.1.1.1", 0, NULL, dgram_rec_factory, &r, NULL), -EINVAL);
    assert_int_equal(pg_udp_bind(NULL, "127.0.0.1", 0, NULL, dgram_rec_factory, &r, NULL), -EINVAL);
    assert_int_equal(pg_udp_bind(loop, "127.0.0.1", 0, NULL, NULL, &r, NULL), -EINVAL);
    assert_int_equal(pg_udp_connect(loop, "127.0.0.1", 0, NULL, dgram_rec_factory, &r, NULL), -EINVAL);
    assert_int_equal(pg_udp_connect(loop, NULL, 9, NULL, dgram_rec_factory, &r, NULL), -EINVAL);
    assert_int_equal(pg_udp_connect(loop, "", 9, NULL, dgram_rec_factory, &r, NULL), -EINVAL);
    pg_udp_options bad = { .send_buffer_size = -1 };
    assert_int_equal(pg_udp_bind(loop, "127.0.0.1", 0, &bad, dgram_rec_factory, &r, NULL), -EINVAL);
    pg_udp_options mixed = { .local_host = "127.0.0.1" };
    assert_int_equal(pg_udp_connect(loop, "::1", 9, &mixed, dgram_rec_factory, &r, NULL), -EAFNOSUPPORT);
    run_idle(loop, 2);
    assert_int_equal(r.made, 0);
    assert_int_equal(open_fds(), fds); /* nothing leaked */
    pg_loop_close(loop);
}

static int refuse(void *arg, pg_datagram_protocol *out)
{
    int *calls = arg;
    (*calls)++;
    (void)out;
    return -EPERM;
}

static void test_refusing_factory_leaves_nothing_behind(void **state)
{
    (void)state;
    pg_loop *loop;
    assert_int_equal(pg_loop_new(&loop), 0);
    int fds = open_fds(), calls = 0;
    assert_int_equal(pg_udp_bind(loop, "127.0.0.1", 0, NULL, refuse, &calls, NULL), -EPERM);
    assert_int_equal(pg_udp_connect(loop, "127.0.0.1", 9, NULL, refuse, &calls, NULL), -EPERM);
    assert_int_equal(calls, 2);
    assert_int_equal(open_fds(), fds);
    run_idle(loop, 2);
    pg_loop_close(loop);
}

static void close_now(dgram_rec *r)
{
    pg_datagram_transport_close(r->transport);
}

static void test_localhost_port_in_use_and_reuse_port(void **state)
{
    (void)state;
    pg_loop *loop;
    assert_int_equal(pg_loop_new(&loop), 0);
    dgram_rec a, b, c;
    dgram_rec_init(&a);
    dgram_rec_init(&b);
    dgram_rec_init(&c);
    pg_datagram_transport *ta, *tb;
    assert_int_equal(pg_udp_bind(loop, "localhost", 0, NULL, dgram_rec_factory, &a, &ta), 0);
    uint16_t port = endpoint_port(ta);
    assert_int_equal(pg_udp_bind(loop, "127.0.0.1", port, NULL, dgram_rec_factory, &b, NULL), -EADDRINUSE);

    pg_udp_options reuse = { .reuse_port = true };
    assert_int_equal(pg_udp_bind(loop, "127.0.0.1", 0, &reuse, dgram_rec_factory, &b, &tb), 0);
    assert_int_equal(pg_udp_bind(loop, "127.0.0.1", endpoint_port(tb), &reuse, dgram_rec_factory, &c, NULL), 0);
    c.hooks.made = close_now;

    /* A connected endpoint to "localhost", from a chosen local address. */
    dgram_rec d;
    dgram_rec_init(&d);
    d.hooks.made = dgram_rec_send_ping;
    struct sockaddr_storage local;
    socklen_t locallen;
    int probe = udp_socket_on_loopback(AF_INET, &local, &locallen);
    close(probe); /* a free port, to bind to on purpose */
    pg_udp_options from = { .local_host = "127.0.0.1", .local_port = address_port(&local) };
    pg_datagram_transport *td;
    assert_int_equal(pg_udp_connect(loop, "localhost", port, &from, dgram_rec_factory, &d, &td), 0);
    assert_int_equal(endpoint_port(td), address_port(&local));
    RUN_UNTIL(loop, a.datagrams == 1 && c.lost == 1);
    assert_int_equal(address_port(&a.last_addr), address_port(&local));

    pg_datagram_transport_close(ta);
    pg_datagram_transport_close(tb);
    pg_datagram_transport_close(td);
    RUN_UNTIL(loop, a.lost && b.lost && d.lost);
    pg_loop_close(loop);
}

static void test_socket_options(void **state)
{
    (void)state;
    pg_loop *loop;
    assert_int_equal(pg_loop_new(&loop), 0);
    dgram_rec r;
    dgram_rec_init(&r);
    pg_udp_options opts = { .send_buffer_size = 32768, .recv_buffer_size = 65536, .allow_broadcast = true };
    pg_datagram_transport *t;
    assert_int_equal(pg_udp_bind(loop, NULL, 0, &opts, dgram_rec_factory, &r, &t), 0);
    pg_extra_info info;
    assert_int_equal(pg_datagram_transport_get_extra_info(t, PG_EXTRA_SOCKET, &info), 0);
    int v = 0;
    socklen_t len = sizeof v;
    assert_int_equal(getsockopt(info.fd, SOL_SOCKET, SO_BROADCAST, &v, &len), 0);
    assert_int_equal(v, 1);
    assert_int_equal(getsockopt(info.fd, SOL_SOCKET, SO_RCVBUF, &v, &len), 0);
    assert_true(v >= 65536); /* Linux doubles it */
    assert_int_equal(getsockopt(info.fd, SOL_SOCKET, SO_SNDBUF, &v, &len), 0);
    assert_true(v >= 32768);
    assert_int_equal(pg_datagram_transport_get_extra_info(t, PG_EXTRA_SOCKNAME, &info), 0);
    assert_int_equal(info.addr.ss_family, AF_INET); /* NULL host: any IPv4 address */
    /* The IPv6 endpoint carries IPv6 only. */
    dgram_rec r6;
    dgram_rec_init(&r6);
    pg_datagram_transport *t6;
    assert_int_equal(pg_udp_bind(loop, "::", 0, NULL, dgram_rec_factory, &r6, &t6), 0);
    assert_int_equal(pg_datagram_transport_get_extra_info(t6, PG_EXTRA_SOCKET, &info), 0);
    assert_int_equal(getsockopt(info.fd, IPPROTO_IPV6, IPV6_V6ONLY, &v, &len), 0);
    assert_int_equal(v, 1);
    pg_datagram_transport_close(t);
    pg_datagram_transport_close(t6);
    RUN_UNTIL(loop, r.lost == 1 && r6.lost == 1);
    pg_loop_close(loop);
}

/* ---- tracing ------------------------------------------------------------ */

static char *read_file(const char *path)
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

static void pause_with_a_queue(dgram_rec *r)
{
    /* The peer is a full Unix socket: these are queued, 2 x (100 + 8) > 200. */
    uint8_t b[100] = { 0 };
    assert_int_equal(pg_datagram_transport_set_write_buffer_limits(r->transport, 200, 0), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pg_datagram_transport_sendto(r->transport, b, sizeof b, NULL, 0), 0);
}

static void test_trace_format(void **state)
{
    (void)state;
    char path[] = "/tmp/pg_udp_trace_XXXXXX";
    int tfd = mkstemp(path);
    assert_true(tfd >= 0);
    close(tfd);
    assert_int_equal(setenv("PROTOGEN_TRACE", path, 1), 0);
    pg__trace_reset();

    pg_loop *loop;
    assert_int_equal(pg_loop_new(&loop), 0);
    /* 1: a bound IPv6 endpoint that echoes; 2: a client that closes on the echo. */
    dgram_rec srv, cli;
    dgram_rec_init(&srv);
    dgram_rec_init(&cli);
    srv.hooks.datagram = dgram_rec_echo_to_sender;
    cli.hooks.made = dgram_rec_send_ping;
    cli.hooks.datagram = close_on_reply;
    pg_datagram_transport *st, *ct;
    assert_int_equal(pg_udp_bind(loop, "::1", 0, NULL, dgram_rec_factory, &srv, &st), 0);
    assert_int_equal(pg_udp_connect(loop, "::1", endpoint_port(st), NULL, dgram_rec_factory, &cli, &ct), 0);
    uint16_t cport = endpoint_port(ct), sport = endpoint_port(st);
    RUN_UNTIL(loop, cli.lost == 1);
    pg_datagram_transport_close(st);
    RUN_UNTIL(loop, srv.lost == 1);

    /* 3: refused; 4: flow control over a full Unix socket, then aborted. */
    dgram_rec ref, flow;
    dgram_rec_init(&ref);
    dgram_rec_init(&flow);
    ref.hooks.made = dgram_rec_send_ping;
    ref.hooks.error = close_on_error;
    assert_int_equal(pg_udp_connect(loop, "127.0.0.1", closed_udp_port(AF_INET), NULL, dgram_rec_factory, &ref, NULL),
                     0);
    RUN_UNTIL(loop, ref.lost == 1);
    int sv[2];
    make_dgram_pair(sv, 4096);
    fill_dgram_socket(sv[0]);
    flow.hooks.made = pause_with_a_queue;
    assert_int_equal(pg_datagram_adopt_fd(loop, sv[0], dgram_rec_factory, &flow, NULL), 0);
    RUN_UNTIL(loop, flow.pauses == 1);
    pg_datagram_transport_abort(flow.transport);
    RUN_UNTIL(loop, flow.lost == 1);
    close(sv[1]);
    pg_loop_close(loop);

    char expected[1024];
    snprintf(expected, sizeof expected,
             "1 connection_made\n"
             "2 connection_made\n"
             "1 datagram_received 4 [::1]:%u\n"
             "2 datagram_received 4 [::1]:%u\n"
             "2 connection_lost ok\n"
             "1 connection_lost ok\n"
             "3 connection_made\n"
             "3 error_received ECONNREFUSED\n"
             "3 error_received ECONNREFUSED\n"
             "3 connection_lost ok\n"
             "4 connection_made\n"
             "4 pause_writing 216\n"
             "4 connection_lost ok\n",
             (unsigned)cport, (unsigned)sport);
    assert_string_equal(read_file(path), expected);
    unsetenv("PROTOGEN_TRACE");
    pg__trace_reset();
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_ipv4),
        cmocka_unit_test(test_round_trip_ipv6),
        cmocka_unit_test(test_connected_sendto_takes_no_other_address_ipv4),
        cmocka_unit_test(test_connected_sendto_takes_no_other_address_ipv6),
        cmocka_unit_test(test_bound_sendto_needs_an_address),
        cmocka_unit_test(test_error_received_on_connected_socket_to_closed_port_ipv4),
        cmocka_unit_test(test_error_received_on_connected_socket_to_closed_port_ipv6),
        cmocka_unit_test(test_bound_socket_gets_no_error_from_a_closed_port),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_refusing_factory_leaves_nothing_behind),
        cmocka_unit_test(test_localhost_port_in_use_and_reuse_port),
        cmocka_unit_test(test_socket_options),
        cmocka_unit_test(test_trace_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
