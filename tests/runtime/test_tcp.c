/* TCP over loopback: listen on port 0, connect round trips over 127.0.0.1
 * and ::1, refused and timed-out connects, peer reset, listen options, server
 * close, clients beyond the fd limit, closing a server's clients, address
 * parsing and formatting. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "testutil.h"

#define MAX_CONNS 4

typedef struct server_ctx {
    recorder conns[MAX_CONNS];
    int n;
    recorder_hooks hooks;
    pg_server *server;
    bool close_server_in_factory;
} server_ctx;

static int server_factory(void *arg, pg_protocol *out)
{
    server_ctx *ctx = arg;
    assert_true(ctx->n < MAX_CONNS);
    recorder *r = &ctx->conns[ctx->n++];
    recorder_init(r);
    r->hooks = ctx->hooks;
    if (ctx->close_server_in_factory)
        pg_server_close(ctx->server);
    return recorder_factory(r, out);
}

static void server_ctx_free(server_ctx *ctx)
{
    for (int i = 0; i < ctx->n; i++)
        recorder_free(&ctx->conns[i]);
}

typedef struct client_ctx {
    recorder rec;
    int factory_calls;
    int done_calls;
    int error;
    pg_transport *transport;
} client_ctx;

static int client_factory(void *arg, pg_protocol *out)
{
    client_ctx *c = arg;
    c->factory_calls++;
    return recorder_factory(&c->rec, out);
}

static void on_connected(void *arg, pg_transport *t, int error)
{
    client_ctx *c = arg;
    c->done_calls++;
    c->error = error;
    c->transport = t;
    if (error == 0) {
        assert_non_null(t);
        assert_int_equal(c->rec.made, 1); /* asyncio: create_connection returns after connection_made */
        assert_ptr_equal(c->rec.transport, t);
    } else {
        assert_null(t);
        assert_int_equal(c->factory_calls, 0);
    }
}

static uint16_t server_port(pg_server *server)
{
    struct sockaddr_storage ss;
    socklen_t len;
    assert_int_equal(pg_server_sockname(server, &ss, &len), 0);
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

/* ---- round trips -------------------------------------------------------- */

static void echo_data(recorder *r, const uint8_t *data, size_t len)
{
    assert_int_equal(pg_transport_write(r->transport, data, len), 0);
}

static void send_ping(recorder *r)
{
    assert_int_equal(pg_transport_write(r->transport, "ping", 4), 0);
}

static void close_after_pong(recorder *r, const uint8_t *data, size_t len)
{
    (void)data;
    (void)len;
    if (r->rx_len == 4)
        pg_transport_close(r->transport);
}

static void round_trip(const char *host)
{
    pg_loop *loop;
    assert_int_equal(pg_loop_new(&loop), 0);
    server_ctx srv = { .hooks = { .data = echo_data } };
    assert_int_equal(pg_tcp_listen(loop, host, 0, NULL, server_factory, &srv, &srv.server), 0);
    uint16_t port = server_port(srv.server);
    assert_true(port > 0);

    client_ctx cli = { 0 };
    recorder_init(&cli.rec);
    cli.rec.hooks.made = send_ping;
    cli.rec.hooks.data = close_after_pong;
    assert_int_equal(pg_tcp_connect(loop, host, port, 5000, client_factory, &cli, on_connected, &cli), 0);
    assert_int_equal(cli.done_calls, 0); /* never synchronously */
    RUN_UNTIL(loop, cli.done_calls == 1);
    /* A machine whose resolver does not know "localhost" (no /etc/hosts in a
     * bare root file system) is told in words, within the timeout. */
    if (cli.error != 0)
        fail_msg("cannot connect to %s:%u: %s%s", host, (unsigned)port, strerror(-cli.error),
                 strcmp(host, "localhost") == 0 ? " (does \"localhost\" resolve here? see /etc/hosts)" : "");
    RUN_UNTIL(loop, cli.rec.lost == 1 && srv.n == 1 && srv.conns[0].lost == 1);

    assert_int_equal(cli.done_calls, 1);
    assert_int_equal(cli.error, 0);
    assert_int_equal(cli.factory_calls, 1);
    assert_string_equal(cli.rec.log, "made data lost:ok");
    assert_memory_equal(cli.rec.rx, "ping", 4);
    assert_string_equal(srv.conns[0].log, "made data eof lost:ok");
    assert_memory_equal(srv.conns[0].rx, "ping", 4);

    pg_server_close(srv.server);
    server_ctx_free(&srv);
    recorder_free(&cli.rec);
    pg_loop_close(loop);
}

static void test_round_trip_ipv4(void **state)
{
    (void)state;
    round_trip("127.0.0.1");
}

static bool ipv6_available(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
    bool ok = bind(fd, (struct sockaddr *)&sin6, sizeof sin6) == 0;
    close(fd);
    return ok;
}

static void test_round_trip_ipv6(void **state)
{
    (void)state;
    if (!ipv6_available())
        skip();
    round_trip("::1");
}

static void test_round_trip_localhost(void **state)
{
    (void)state;
    round_trip("localhost");
}

/* ---- failures ----------------------------------------------------------- */

static void test_connect_refused(void **state)
{
    (void)state;
    pg_loop *loop;
    assert_int_equal(pg_loop_new(&loop), 0);
    /* Bound but not listening: the port is ours and refuses connections. */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof sin;
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);

    client_ctx cli = { 0 };
    recorder_init(&cli.rec);
    assert_int_equal(pg_tcp_connect(loop, "127.0.0.1", ntohs(sin.sin_port), 0, client_factory, &cli,
                                    on_connected, &cli), 0);
    RUN_UNTIL(loop, cli.done_calls == 1);
    assert_int_equal(cli.error, -ECONNREFUSED);
    assert_int_equal(cli.factory_calls, 0);
    run_idle(loop, 2);
    assert_int_equal(cli.done_calls, 1);
    assert_string_equal(cli.rec.log, ""); /* no protocol callbacks at all */
    close(fd);
    pg_loop_close(loop);
}

static void test_connect_timeout(void **state)
{
    (void)state;
    pg_loop *loop;
    assert_int_equal(pg_loop_new(&loop), 0);
    /* A listener with backlog 0 and one queued connection drops further SYNs,
     * so the next connect hangs until our timeout. */
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof sin;
    assert_int_equal(bind(lfd, (struct sockaddr *)&sin, sizeof sin), 0);
    assert_int_equal(listen(lfd, 0), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&sin, &len), 0);
    int filler = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_int_equal(connect(filler, (struct sockaddr *)&sin, sizeof sin), 0);

    client_ctx cli = { 0 };
    recorder_init(&cli.rec);
    assert_int_equal(pg_tcp_connect(loop, "127.0.0.1", ntohs(sin.sin_port), 50, client_factory, &cli,
                                    on_connected, &cli), 0);
    RUN_UNTIL(loop, cli.done_calls == 1);
    if (cli.error == 0) { /* the kernel queued it after all: nothing to test here */
        pg_transport_abort(cli.transport);
        RUN_UNTIL(loop, cli.rec.lost == 1);
        close(filler);
        close(lfd);
        recorder_free(&cli.rec);
        pg_loop_close(loop);
        skip();
    }
    assert_int_equal(cli.error, -ETIMEDOUT);
    assert_int_equal(cli.factory_calls, 0);
    close(filler);
    close(lfd);
    pg_loop_close(loop);
}

/* A lookup racing a 1 ms timeout: whichever wins, done is called exactly
 * once, with success (a connection that then closes) or -ETIMEDOUT and no
 * protocol; a lookup that lost the race still ends, and nothing leaks. */
typedef struct race {
    int done, ok, timed_out, made;
    recorder recs[16];
} race;

static int race_factory(void *arg, pg_protocol *out)
{
    race *r = arg;
    assert_true(r->made < 16);
    recorder *rec = &r->recs[r->made++];
    recorder_init(rec);
    return recorder_factory(rec, out);
}

static void race_done(void *arg, pg_transport *t, int error)
{
    race *r = arg;
    r->done++;
    if (error == 0) {
        r->ok++;
        pg_transport_close(t);
    } else {
        assert_int_equal(error, -ETIMEDOUT);
        assert_null(t);
        r->timed_out++;
    }
}

static void test_resolve_racing_timeout(void **state)
{
    (void)state;
    pg_loop *loop;
    assert_int_equal(pg_loop_new(&loop), 0);
    server_ctx srv = { 0 };
    assert_int_equal(pg_tcp_listen(loop, "127.0.0.1", 0, NULL, server_factory, &srv, &srv.server), 0);
    uint16_t port = server_port(srv.server);
    race r = { 0 };
    for (int i = 0; i < 4; i++)
        assert_int_equal(pg_tcp_connect(loop, "localhost", port, 1, race_factory, &r, race_done, &r), 0);
    RUN_UNTIL(loop, r.done == 4);
    assert_int_equal(r.ok + r.timed_out, 4);
    assert_int_equal(r.made, r.ok); /* no protocol for a timed-out connect */
    for (int i = 0; i < r.made; i++) {
        RUN_UNTIL(loop, r.recs[i].lost == 1);
        recorder_free(&r.recs[i]);
    }
    /* The server may also have accepted connects that timed out once
     * connected: every one it accepted ends (their peers are closed). */
    run_idle(loop, 3);
    for (int i = 0; i < srv.n; i++)
        RUN_UNTIL(loop, srv.conns[i].lost == 1);
    assert_true(srv.n >= r.ok);
    print_message("lookups against a 1 ms timeout: %d connected, %d timed out\n", r.ok, r.timed_out);
    pg_server_close(srv.server);
    run_idle(loop, 1);
    server_ctx_free(&srv);
    assert_int_equal(pg_loop_close(loop), 0);
    /* Lookups that lost the race end on their own threads; a moment for
     * them, so that a leak checker at exit finds their memory freed (a
     * resolver that hangs keeps them, and does not hang the test). */
    for (int i = 0; i < 2000 && pg__resolve_in_flight() > 0; i++)
        nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
}

static void test_bad_addresses(void **state)
{
    (void)state;
    pg_loop *loop;
    assert_int_equal(pg_loop_new(&loop), 0);
    client_ctx cli = { 0 };
    /* Names are resolved (never in a test: no DNS here); malformed hosts are
     * refused at once, without a lookup. */
    const char *bad[] = { "exa mple.com", "", "1.2.3", "999.0.0.1", "[::1", "::1]", "127.0.0.1:80",
                          "a..b", ".a", "-a_b", "localhost:80" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(pg_tcp_connect(loop, bad[i], 80, 0, client_factory, &cli, on_connected, &cli), -EINVAL);
    assert_int_equal(pg_tcp_connect(loop, NULL, 80, 0, client_factory, &cli, on_connected, &cli), -EINVAL);
    assert_int_equal(pg_tcp_connect(loop, "127.0.0.1", 0, 0, client_factory, &cli, on_connected, &cli), -EINVAL);

    server_ctx srv = { 0 };
    pg_server *server = NULL;
    assert_int_equal(pg_tcp_listen(loop, "nonsense", 0, NULL, server_factory, &srv, &server), -EINVAL);
    pg_listen_options bad_opts = { .backlog = -1 };
    assert_int_equal(pg_tcp_listen(loop, "127.0.0.1", 0, &bad_opts, server_factory, &srv, &server), -EINVAL);
    assert_null(server);
    run_idle(loop, 2);
    assert_int_equal(cli.done_calls, 0);
    assert_int_equal(cli.factory_calls, 0);
    pg_loop_close(loop);
}

static void test_peer_reset(void **state)
{
    (void)state;
    pg_loop *loop;
    assert_int_equal(pg_loop_new(&loop), 0);
    server_ctx srv = { 0 };
    assert_int_equal(pg_tcp_listen(loop, "127.0.0.1", 0, NULL, server_factory, &srv, &srv.server), 0);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                               .sin_port = htons(server_port(srv.server)) };
    assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    RUN_UNTIL(loop, srv.n == 1 && srv.conns[0].made == 1);

    struct linger lg = { .l_onoff = 1, .l_linger = 0 }; /* close sends RST */
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    close(fd);
    RUN_UNTIL(loop, srv.conns[0].lost == 1);
    assert_string_equal(srv.conns[0].log, "made lost:ECONNRESET");
    assert_int_equal(srv.conns[0].lost_error, -ECONNRESET);
    pg_server_close(srv.server);
    server_ctx_free(&srv);
    pg_loop_close(loop);
}

/* ---- servers ------------------------------------------------------------ */

static void test_listen_options_and_socket_setup(void **state)
{
    (void)state;
    pg_loop *loop;
    assert_int_equal(pg_loop_new(&loop), 0);
    server_ctx srv = { 0 };
    pg_listen_options opts = { .backlog = 5, .send_buffer_size = 4096 };
    assert_int_equal(pg_tcp_listen(loop, "127.0.0.1", 0, &opts, server_factory, &srv, &srv.server), 0);
    client_ctx cli = { 0 };
    recorder_init(&cli.rec);
    assert_int_equal(pg_tcp_connect(loop, "127.0.0.1", server_port(srv.server), 5000, client_factory, &cli,
                                    on_connected, &cli), 0);
    RUN_UNTIL(loop, cli.done_calls == 1 && srv.n == 1 && srv.conns[0].made == 1);
    assert_int_equal(cli.error, 0);

    pg_transport *st = srv.conns[0].transport;
    pg_extra_info info, peer;
    assert_int_equal(pg_transport_get_extra_info(st, PG_EXTRA_SOCKET, &info), 0);
    int v = 0;
    socklen_t len = sizeof v;
    assert_int_equal(getsockopt(info.fd, SOL_SOCKET, SO_SNDBUF, &v, &len), 0);
    assert_true(v <= 2 * 4096); /* inherited from the listening socket (the kernel doubles it) */
    assert_int_equal(getsockopt(info.fd, IPPROTO_TCP, TCP_NODELAY, &v, &len), 0);
    assert_int_equal(v, 1);
    assert_true(fcntl(info.fd, F_GETFD) & FD_CLOEXEC);

    /* Each side's peername is the other's sockname. */
    assert_int_equal(pg_transport_get_extra_info(st, PG_EXTRA_PEERNAME, &info), 0);
    assert_int_equal(pg_transport_get_extra_info(cli.transport, PG_EXTRA_SOCKNAME, &peer), 0);
    assert_int_equal(info.addrlen, peer.addrlen);
    assert_memory_equal(&info.addr, &peer.addr, info.addrlen);
    assert_int_equal(pg_transport_get_extra_info(cli.transport, PG_EXTRA_SOCKET, &info), 0);
    assert_int_equal(getsockopt(info.fd, IPPROTO_TCP, TCP_NODELAY, &v, &len), 0);
    assert_int_equal(v, 1);

    pg_transport_close(cli.transport);
    RUN_UNTIL(loop, cli.rec.lost == 1 && srv.conns[0].lost == 1);
    pg_server_close(srv.server);
    server_ctx_free(&srv);
    recorder_free(&cli.rec);
    pg_loop_close(loop);
}

/* ---- reuse_port ---------------------------------------------------------- */

#define REUSE_CLIENTS 64

typedef struct reuse_ctx {
    recorder conns[REUSE_CLIENTS];
    int n;
} reuse_ctx;

static int reuse_factory(void *arg, pg_protocol *out)
{
    reuse_ctx *ctx = arg;
    assert_true(ctx->n < REUSE_CLIENTS);
    recorder *r = &ctx->conns[ctx->n++];
    recorder_init(r);
    return recorder_factory(r, out);
}

static int reuse_lost(const reuse_ctx *ctx)
{
    int lost = 0;
    for (int i = 0; i < ctx->n; i++)
        lost += ctx->conns[i].lost;
    return lost;
}

/* Two listeners on one port: without reuse_port the second is refused; with
 * it on both, the kernel spreads connections between them by the clients'
 * addresses, so among 64 clients (distinct source ports) each listener gets
 * some (all on one would happen with probability 2^-63). */
static void test_reuse_port_two_listeners_both_accept(void **state)
{
    (void)state;
    pg_loop *loop;
    assert_int_equal(pg_loop_new(&loop), 0);
    reuse_ctx a = { 0 }, b = { 0 };
    pg_server *sa, *sb, *plain;
    pg_listen_options opts = { .reuse_port = true };
    assert_int_equal(pg_tcp_listen(loop, "127.0.0.1", 0, &opts, reuse_factory, &a, &sa), 0);
    uint16_t port = server_port(sa);
    assert_int_equal(pg_tcp_listen(loop, "127.0.0.1", port, NULL, reuse_factory, &b, &plain), -EADDRINUSE);
    assert_int_equal(pg_tcp_listen(loop, "127.0.0.1", port, &opts, reuse_factory, &b, &sb), 0);
    assert_int_equal(server_port(sb), port);

    int fds[REUSE_CLIENTS];
    int n = 0;
    while (n < REUSE_CLIENTS && (a.n == 0 || b.n == 0)) {
        fds[n] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(fds[n] >= 0);
        struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port),
                                   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        assert_int_equal(connect(fds[n], (struct sockaddr *)&sin, sizeof sin), 0);
        n++;
        RUN_UNTIL(loop, a.n + b.n == n && (a.n == 0 || a.conns[a.n - 1].made == 1)
                            && (b.n == 0 || b.conns[b.n - 1].made == 1));
    }
    assert_true(a.n > 0 && b.n > 0);

    for (int i = 0; i < n; i++)
        close(fds[i]);
    RUN_UNTIL(loop, reuse_lost(&a) + reuse_lost(&b) == n);
    pg_server_close(sa);
    pg_server_close(sb);
    for (int i = 0; i < a.n; i++)
        recorder_free(&a.conns[i]);
    for (int i = 0; i < b.n; i++)
        recorder_free(&b.conns[i]);
    assert_int_equal(pg_loop_close(loop), 0);
}

static void test_server_close_keeps_connections(void **state)
{
    (void)state;
    pg_loop *loop;
    assert_int_equal(pg_loop_new(&loop), 0);
    server_ctx srv = { .hooks = { .data = echo_data } };
    assert_int_equal(pg_tcp_listen(loop, "127.0.0.1", 0, NULL, server_factory, &srv, &srv.server), 0);
    uint16_t port = server_port(srv.server);
    client_ctx cli = { 0 };
    recorder_init(&cli.rec);
    assert_int_equal(pg_tcp_connect(loop, "127.0.0.1", port, 5000, client_factory, &cli, on_connected, &cli), 0);
    RUN_UNTIL(loop, cli.done_calls == 1 && srv.n == 1 && srv.conns[0].made == 1);

    pg_server_close(srv.server);
    pg_server_close(srv.server); /* idempotent until freed on the next turn */
    struct sockaddr_storage ss;
    socklen_t len;
    assert_int_equal(pg_server_sockname(srv.server, &ss, &len), -EBADF);
    run_idle(loop, 1);

    /* The accepted connection still echoes. */
    assert_int_equal(pg_transport_write(cli.transport, "ping", 4), 0);
    RUN_UNTIL(loop, cli.rec.rx_len == 4);

    /* New connections are refused. */
    client_ctx late = { 0 };
    recorder_init(&late.rec);
    assert_int_equal(pg_tcp_connect(loop, "127.0.0.1", port, 5000, client_factory, &late, on_connected, &late), 0);
    RUN_UNTIL(loop, late.done_calls == 1);
    assert_int_equal(late.error, -ECONNREFUSED);

    pg_transport_close(cli.transport);
    RUN_UNTIL(loop, cli.rec.lost == 1 && srv.conns[0].lost == 1);
    server_ctx_free(&srv);
    recorder_free(&cli.rec);
    pg_loop_close(loop);
}

static void test_server_close_in_factory(void **state)
{
    (void)state;
    /* The factory closes the server in the middle of an accept batch. */
    pg_loop *loop;
    assert_int_equal(pg_loop_new(&loop), 0);
    server_ctx srv = { .close_server_in_factory = true };
    assert_int_equal(pg_tcp_listen(loop, "127.0.0.1", 0, NULL, server_factory, &srv, &srv.server), 0);
    uint16_t port = server_port(srv.server);
    int fds[3];
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                               .sin_port = htons(port) };
    for (int i = 0; i < 3; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_int_equal(connect(fds[i], (struct sockaddr *)&sin, sizeof sin), 0);
    }
    RUN_UNTIL(loop, srv.n == 1 && srv.conns[0].made == 1);
    run_idle(loop, 2);
    assert_int_equal(srv.n, 1); /* no more accepts after close */
    pg_transport_close(srv.conns[0].transport);
    RUN_UNTIL(loop, srv.conns[0].lost == 1);
    for (int i = 0; i < 3; i++)
        close(fds[i]);
    server_ctx_free(&srv);
    pg_loop_close(loop);
}

/* A raw client connected to port on 127.0.0.1 (the server accepts it later). */
static int connect_raw(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                               .sin_port = htons(port) };
    assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    return fd;
}

/* Lowers the soft fd limit to n (the fds below it must all be open, so that
 * no new one can be made); false when this system does not allow it. */
static bool lower_fd_limit(rlim_t n, struct rlimit *saved)
{
    assert_int_equal(getrlimit(RLIMIT_NOFILE, saved), 0);
    struct rlimit low = *saved;
    low.rlim_cur = n;
    if (setrlimit(RLIMIT_NOFILE, &low) != 0 || dup(0) >= 0) {
        assert_int_equal(setrlimit(RLIMIT_NOFILE, saved), 0);
        return false;
    }
    return true;
}

/* The lowest free fd. */
static int lowest_free_fd(void)
{
    int fd = dup(0);
    assert_true(fd >= 0);
    close(fd);
    return fd;
}

/* True once the peer of fd has closed it (EOF or reset). */
static bool closed_by_peer(int fd)
{
    uint8_t byte;
    ssize_t n = recv(fd, &byte, 1, MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

static void test_accept_out_of_fds_backs_off(void **state)
{
    (void)state;
    /* accept4 fails with EMFILE and the spare descriptor cannot help (the
     * limit is below it): the server stops accepting for a second
     * (asyncio's ACCEPT_RETRY_DELAY) instead of spinning, then resumes. */
    if (under_valgrind())
        skip(); /* no EMFILE from the kernel there */
    pg_loop *loop;
    assert_int_equal(pg_loop_new(&loop), 0);
    server_ctx srv = { 0 };
    int listening = lowest_free_fd();
    assert_int_equal(pg_tcp_listen(loop, "127.0.0.1", 0, NULL, server_factory, &srv, &srv.server), 0);
    /* The server's spare descriptor comes right after its socket. */
    char path[64], target[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", listening + 1);
    ssize_t len = readlink(path, target, sizeof target - 1);
    assert_true(len > 0);
    target[len] = '\0';
    assert_string_equal(target, "/dev/null");
    uint16_t port = server_port(srv.server);
    int fd = connect_raw(port);

    struct rlimit saved;
    if (!lower_fd_limit((rlim_t)listening + 1, &saved)) {
        close(fd);
        pg_server_close(srv.server);
        pg_loop_close(loop);
        skip();
    }
    uint64_t t0 = pg_loop_time_ms(loop);
    assert_int_equal(pg_loop_run_once(loop, 1000), 0); /* EMFILE: backs off */
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved), 0);
    assert_int_equal(srv.n, 0);
    run_idle(loop, 3); /* not spinning on the readable socket */
    assert_int_equal(srv.n, 0);
    assert_int_equal(pg_server_connections_shed(srv.server), 0);
    int fd2 = connect_raw(port);
    RUN_UNTIL(loop, srv.n >= 1 && srv.conns[0].made == 1);
    assert_true(pg_loop_time_ms(loop) - t0 >= 900);

    for (int i = 0; i < srv.n; i++) {
        RUN_UNTIL(loop, srv.conns[i].made == 1);
        pg_transport_close(srv.conns[i].transport);
        RUN_UNTIL(loop, srv.conns[i].lost == 1);
    }
    close(fd);
    close(fd2);
    pg_server_close(srv.server);
    server_ctx_free(&srv);
    pg_loop_close(loop);
}

static size_t count_lines(const char *path, const char *line)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char buf[256];
    size_t n = 0;
    while (fgets(buf, sizeof buf, f) != NULL)
        n += strcmp(buf, line) == 0;
    fclose(f);
    return n;
}

/* Beyond the fd limit a client is accepted and closed at once (libuv's
 * spare descriptor) instead of waiting unanswered in the backlog; counted
 * and traced; the server keeps listening, and accepts again once fds are
 * free. */
static void test_clients_beyond_the_fd_limit_are_closed_at_once(void **state)
{
    (void)state;
    if (under_valgrind())
        skip(); /* no EMFILE from the kernel there */
    char trace[] = "/tmp/protogen-test-shed-XXXXXX";
    int tfd = mkstemp(trace);
    assert_true(tfd >= 0);
    close(tfd);
    assert_int_equal(setenv("PROTOGEN_TRACE", trace, 1), 0);
    pg__trace_reset();

    pg_loop *loop;
    assert_int_equal(pg_loop_new(&loop), 0);
    server_ctx srv = { 0 };
    assert_int_equal(pg_tcp_listen(loop, "127.0.0.1", 0, NULL, server_factory, &srv, &srv.server), 0);
    uint16_t port = server_port(srv.server);
    int a = connect_raw(port), b = connect_raw(port);
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0); /* made now, connected once out of fds */
    assert_true(c >= 0);

    struct rlimit saved;
    if (!lower_fd_limit((rlim_t)lowest_free_fd(), &saved)) {
        close(a);
        close(b);
        close(c);
        pg_server_close(srv.server);
        pg_loop_close(loop);
        unsetenv("PROTOGEN_TRACE");
        pg__trace_reset();
        unlink(trace);
        skip();
    }
    RUN_UNTIL(loop, closed_by_peer(a) && closed_by_peer(b));
    assert_int_equal(pg_server_connections_shed(srv.server), 2);
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                               .sin_port = htons(port) };
    assert_int_equal(connect(c, (struct sockaddr *)&sin, sizeof sin), 0);
    RUN_UNTIL(loop, closed_by_peer(c)); /* again, while it helps */
    assert_int_equal(pg_server_connections_shed(srv.server), 3);
    run_idle(loop, 3);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved), 0);
    assert_int_equal(srv.n, 0); /* no protocol was made for them */

    int d = connect_raw(port); /* fds again: accepted as usual, at once */
    RUN_UNTIL(loop, srv.n == 1 && srv.conns[0].made == 1);
    assert_int_equal(pg_server_connections_shed(srv.server), 3);
    pg_transport_close(srv.conns[0].transport);
    RUN_UNTIL(loop, srv.conns[0].lost == 1);
    close(a);
    close(b);
    close(c);
    close(d);
    pg_server_close(srv.server);
    assert_int_equal(pg_server_connections_shed(srv.server), 3); /* still there after close */
    assert_int_equal(pg_server_connections_shed(NULL), 0);
    server_ctx_free(&srv);
    pg_loop_close(loop);

    unsetenv("PROTOGEN_TRACE");
    pg__trace_reset();
    assert_int_equal(count_lines(trace, "0 connections_shed 2\n"), 1);
    assert_int_equal(count_lines(trace, "0 connections_shed 1\n"), 1);
    unlink(trace);
}

/* ---- closing a server's clients (asyncio 3.13's close_clients) ---------- */

/* connection_lost in the order it came. */
static recorder *lost_order[MAX_CONNS];
static int n_lost;

static void note_lost(recorder *r, int error)
{
    (void)error;
    lost_order[n_lost++] = r;
}

/* n clients of srv, accepted and connected; the server's sockets have a
 * small send buffer, so that a write stays buffered in the transport. */
static void accept_clients(pg_loop *loop, server_ctx *srv, int *fds, int n)
{
    n_lost = 0;
    srv->hooks.lost = note_lost;
    pg_listen_options opts = { .send_buffer_size = 4096 };
    assert_int_equal(pg_tcp_listen(loop, "127.0.0.1", 0, &opts, server_factory, srv, &srv->server), 0);
    for (int i = 0; i < n; i++) {
        fds[i] = connect_raw(server_port(srv->server));
        RUN_UNTIL(loop, srv->n == i + 1 && srv->conns[i].made == 1); /* in this order */
        set_nonblocking(fds[i]);
    }
}

static void test_close_clients(void **state)
{
    (void)state;
    pg_loop *loop;
    assert_int_equal(pg_loop_new(&loop), 0);
    server_ctx srv = { 0 };
    int fds[3];
    accept_clients(loop, &srv, fds, 3);
    static uint8_t big[256 * 1024];
    assert_int_equal(pg_transport_write(srv.conns[0].transport, big, sizeof big), 0);
    assert_true(pg_transport_get_write_buffer_size(srv.conns[0].transport) > 0);

    assert_int_equal(pg_server_close_clients(srv.server), 0);
    /* Newest first; each one gracefully: the idle ones end at once, the
     * busy one once its client has read everything. */
    RUN_UNTIL(loop, n_lost == 2);
    assert_ptr_equal(lost_order[0], &srv.conns[2]);
    assert_ptr_equal(lost_order[1], &srv.conns[1]);
    assert_true(closed_by_peer(fds[1]) && closed_by_peer(fds[2]));
    assert_int_equal(srv.conns[0].lost, 0);
    size_t got = 0;
    bool eof = false;
    RUN_UNTIL(loop, (got += drain_socket(fds[0], NULL, 0, &eof), eof));
    assert_int_equal(got, sizeof big);
    RUN_UNTIL(loop, n_lost == 3);
    assert_ptr_equal(lost_order[2], &srv.conns[0]);
    for (int i = 0; i < 3; i++)
        assert_int_equal(srv.conns[i].lost_error, 0);

    assert_int_equal(pg_server_close_clients(srv.server), 0); /* none left */
    assert_int_equal(pg_server_close(srv.server), 0);
    assert_int_equal(pg_server_close_clients(NULL), -EINVAL);
    assert_int_equal(pg_server_abort_clients(NULL), -EINVAL);
    for (int i = 0; i < 3; i++)
        close(fds[i]);
    server_ctx_free(&srv);
    assert_int_equal(pg_loop_close(loop), 0);
}

/* From connection_lost: the connection being lost is still the server's. */
static void abort_clients_in_lost(recorder *r, int error)
{
    note_lost(r, error);
    assert_int_equal(pg_server_abort_clients(r->user), 0);
}

static void test_abort_clients_after_server_close(void **state)
{
    (void)state;
    pg_loop *loop;
    assert_int_equal(pg_loop_new(&loop), 0);
    server_ctx srv = { 0 };
    int fds[3];
    accept_clients(loop, &srv, fds, 3);
    static uint8_t big[256 * 1024];
    assert_int_equal(pg_transport_write(srv.conns[0].transport, big, sizeof big), 0);
    assert_int_equal(pg_server_close(srv.server), 0); /* the clients stay the server's */

    /* The last one's end aborts the others from its connection_lost. */
    srv.conns[2].user = srv.server;
    srv.conns[2].hooks.lost = abort_clients_in_lost;
    pg_transport_abort(srv.conns[2].transport);
    RUN_UNTIL(loop, n_lost == 3);
    assert_ptr_equal(lost_order[0], &srv.conns[2]);
    assert_ptr_equal(lost_order[1], &srv.conns[1]);
    assert_ptr_equal(lost_order[2], &srv.conns[0]);
    size_t got = 0;
    bool eof = false;
    RUN_UNTIL(loop, (got += drain_socket(fds[0], NULL, 0, &eof), eof));
    assert_true(got < sizeof big); /* aborted: the buffer was dropped */
    for (int i = 0; i < 3; i++)
        assert_true(closed_by_peer(fds[i]));
    assert_int_equal(pg_server_abort_clients(srv.server), 0); /* none left */
    for (int i = 0; i < 3; i++)
        close(fds[i]);
    server_ctx_free(&srv);
    assert_int_equal(pg_loop_close(loop), 0);
}

static int refuse(void *arg, pg_protocol *out)
{
    int *calls = arg;
    (void)out;
    (*calls)++;
    return -EPERM;
}

/* More than the kernel completes in one pass (io_uring runs 20 of a ring's
 * deferred completions per io_uring_enter). */
#define MANY_CONNS 48

typedef struct many_ctx {
    recorder conns[MANY_CONNS];
    int n, lost;
    pg_loop *stop_loop; /* set: the last connection_lost stops this loop */
} many_ctx;

static void many_lost(recorder *r, int error)
{
    (void)error;
    many_ctx *m = r->user;
    if (++m->lost == m->n && m->stop_loop != NULL)
        pg_loop_stop(m->stop_loop);
}

static int many_factory(void *arg, pg_protocol *out)
{
    many_ctx *m = arg;
    assert_true(m->n < MANY_CONNS);
    recorder *r = &m->conns[m->n++];
    recorder_init(r);
    r->user = m;
    r->hooks.lost = many_lost;
    return recorder_factory(r, out);
}

/* Connections closed in the last iteration a run makes are closed to their
 * peers when the run returns, not when the loop next runs or is closed: a
 * program may block in between (joining threads, as echo_server --threads
 * does). On io_uring the kernel held a socket until the cancel of its poll
 * had completed, which takes an io_uring_enter per 20 polls. */
static void test_closed_connections_are_closed_when_the_run_returns(void **state)
{
    (void)state;
    for (int use_run = 0; use_run < 2; use_run++) {
        pg_loop *loop;
        assert_int_equal(pg_loop_new(&loop), 0);
        many_ctx m = { 0 };
        pg_server *server;
        assert_int_equal(pg_tcp_listen(loop, "127.0.0.1", 0, NULL, many_factory, &m, &server), 0);
        int fds[MANY_CONNS];
        for (int i = 0; i < MANY_CONNS; i++)
            fds[i] = connect_raw(server_port(server));
        RUN_UNTIL(loop, m.n == MANY_CONNS && m.conns[MANY_CONNS - 1].made == 1);
        assert_int_equal(pg_server_abort_clients(server), 0);
        if (use_run) { /* pg_loop_run, stopped by the last connection_lost */
            m.stop_loop = loop;
            assert_int_equal(pg_loop_run(loop), 0);
        } else { /* pg_loop_run_once */
            RUN_UNTIL(loop, m.lost == MANY_CONNS);
        }
        assert_int_equal(m.lost, MANY_CONNS);
        for (int i = 0; i < MANY_CONNS; i++) {
            struct pollfd pfd = { .fd = fds[i], .events = POLLIN };
            assert_int_equal(poll(&pfd, 1, 5000), 1); /* the loop does not run meanwhile */
            assert_true(closed_by_peer(fds[i]));
            close(fds[i]);
        }
        for (int i = 0; i < MANY_CONNS; i++)
            recorder_free(&m.conns[i]);
        assert_int_equal(pg_server_close(server), 0);
        assert_int_equal(pg_loop_close(loop), 0);
    }
}

static void test_factory_refuses(void **state)
{
    (void)state;
    pg_loop *loop;
    assert_int_equal(pg_loop_new(&loop), 0);
    int calls = 0;
    pg_server *server;
    assert_int_equal(pg_tcp_listen(loop, "127.0.0.1", 0, NULL, refuse, &calls, &server), 0);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                               .sin_port = htons(server_port(server)) };
    assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    RUN_UNTIL(loop, calls == 1);
    /* The refused socket was closed: the client sees EOF. */
    char c;
    assert_int_equal(recv(fd, &c, 1, 0), 0);
    close(fd);

    /* A connect whose factory refuses reports the error, with no transport. */
    client_ctx cli = { 0 };
    int ccalls = 0;
    (void)cli;
    assert_int_equal(pg_tcp_connect(loop, "127.0.0.1", ntohs(sin.sin_port), 0, refuse, &ccalls,
                                    on_connected, &cli), 0);
    RUN_UNTIL(loop, cli.done_calls == 1);
    assert_int_equal(cli.error, -EPERM);
    assert_int_equal(ccalls, 1);
    RUN_UNTIL(loop, calls == 2);
    pg_server_close(server);
    pg_loop_close(loop);
}

/* ---- addresses ---------------------------------------------------------- */

static void test_format_address(void **state)
{
    (void)state;
    char buf[64];
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(8080) };
    inet_pton(AF_INET, "10.1.2.3", &sin.sin_addr);
    assert_int_equal(pg_format_address((struct sockaddr *)&sin, buf, sizeof buf), 13);
    assert_string_equal(buf, "10.1.2.3:8080");
    struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6, .sin6_port = htons(443), .sin6_addr = IN6ADDR_LOOPBACK_INIT };
    assert_int_equal(pg_format_address((struct sockaddr *)&sin6, buf, sizeof buf), 9);
    assert_string_equal(buf, "[::1]:443");
    assert_int_equal(pg_format_address((struct sockaddr *)&sin, buf, 13), -ENOSPC);
    struct sockaddr sa = { .sa_family = AF_APPLETALK };
    assert_int_equal(pg_format_address(&sa, buf, sizeof buf), -EAFNOSUPPORT);
    assert_int_equal(pg_format_address(NULL, buf, sizeof buf), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_ipv4),
        cmocka_unit_test(test_round_trip_ipv6),
        cmocka_unit_test(test_round_trip_localhost),
        cmocka_unit_test(test_resolve_racing_timeout),
        cmocka_unit_test(test_connect_refused),
        cmocka_unit_test(test_connect_timeout),
        cmocka_unit_test(test_bad_addresses),
        cmocka_unit_test(test_peer_reset),
        cmocka_unit_test(test_listen_options_and_socket_setup),
        cmocka_unit_test(test_reuse_port_two_listeners_both_accept),
        cmocka_unit_test(test_server_close_keeps_connections),
        cmocka_unit_test(test_server_close_in_factory),
        cmocka_unit_test(test_factory_refuses),
        cmocka_unit_test(test_accept_out_of_fds_backs_off),
        cmocka_unit_test(test_clients_beyond_the_fd_limit_are_closed_at_once),
        cmocka_unit_test(test_close_clients),
        cmocka_unit_test(test_abort_clients_after_server_close),
        cmocka_unit_test(test_closed_connections_are_closed_when_the_run_returns),
        cmocka_unit_test(test_format_address),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
