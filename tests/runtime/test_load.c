/* Load over loopback, in counts: thousands of connections open at once, and a
 * churn of many short ones, both sides on one loop. After each run every fd
 * is closed again, the heap in use is back to what it was (glibc's mallinfo2,
 * tolerance 64 KiB: the loop's own buffers settle in the warm-up run) and the
 * RSS within 2 MiB + 5 % of where it was after the warm-up (freed memory
 * need not go back to the kernel, but a leak of a connection's worth per
 * connection would show); under ASan, the fds, and LeakSanitizer at exit. No
 * timings are asserted. (Every connection leaves
 * a TIME_WAIT socket behind for a minute: the counts stay well within the
 * ephemeral ports, which loopback connects may reuse anyway.)
 *
 * RLIMIT_NOFILE: the soft limit is raised up to the hard one; with a low hard
 * limit the concurrent run is smaller, and says so. */
#include <arpa/inet.h>
#include <dirent.h>
#include <malloc.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include "testutil.h"

/* Under ASan, mallinfo2 does not see its allocator and its quarantine holds
 * freed memory: LeakSanitizer checks at exit instead. */
#if defined(__SANITIZE_ADDRESS__)
#define LOAD_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LOAD_UNDER_ASAN 1
#endif
#endif

#define CONCURRENT 5000
#define CHURN 10000
#define CONNECTING_MAX 256 /* connects in flight at once: within the backlog */
#define MESSAGE "0123456789abcdef"
#define MESSAGE_LEN 16

typedef struct load {
    pg_loop *loop;
    pg_server *server;
    uint16_t port;
    int target;          /* connections to make in this run */
    bool hold;           /* concurrent: every one open before any writes */
    int started, connecting, connected, echoed, lost, server_lost, failed;
    struct peer *peers;  /* the clients, target of them */
} load;

/* A client: writes the message once told to, closes when it is back. */
typedef struct peer {
    load *l;
    pg_transport *t;
    uint8_t got[MESSAGE_LEN];
    size_t got_len;
} peer;

static void peer_write(peer *p)
{
    assert_int_equal(pg_transport_write(p->t, MESSAGE, MESSAGE_LEN), 0);
}

static void peer_made(void *self, pg_transport *t)
{
    peer *p = self;
    p->t = t;
    p->l->connected++;
    if (!p->l->hold)
        peer_write(p);
}

static void peer_data(void *self, const uint8_t *data, size_t len)
{
    peer *p = self;
    assert_true(p->got_len + len <= MESSAGE_LEN);
    memcpy(p->got + p->got_len, data, len);
    p->got_len += len;
    if (p->got_len == MESSAGE_LEN) {
        assert_memory_equal(p->got, MESSAGE, MESSAGE_LEN);
        p->l->echoed++;
        pg_transport_close(p->t);
    }
}

static void peer_lost(void *self, int error)
{
    peer *p = self;
    assert_int_equal(error, 0);
    p->t = NULL;
    p->l->lost++;
}

static const pg_protocol_ops peer_ops = {
    .connection_made = peer_made, .data_received = peer_data, .connection_lost = peer_lost,
};

static int peer_factory(void *arg, pg_protocol *out)
{
    *out = (pg_protocol){ &peer_ops, arg };
    return 0;
}

/* The server side: echoes, and closes at the client's EOF (the default). */
static void echo_made(void *self, pg_transport *t)
{
    *(pg_transport **)self = t;
}

static void echo_data(void *self, const uint8_t *data, size_t len)
{
    assert_int_equal(pg_transport_write(*(pg_transport **)self, data, len), 0);
}

static void echo_lost(void *self, int error)
{
    (void)error; /* a client's close may reach it as a reset */
    load *l = ((void **)self)[1];
    l->server_lost++;
    free(self);
}

static const pg_protocol_ops echo_ops = {
    .connection_made = echo_made, .data_received = echo_data, .connection_lost = echo_lost,
};

static int echo_factory(void *arg, pg_protocol *out)
{
    void **self = malloc(2 * sizeof(void *)); /* the transport, the load */
    if (self == NULL)
        return -ENOMEM;
    self[1] = arg;
    *out = (pg_protocol){ &echo_ops, self };
    return 0;
}

static void peer_connected(void *arg, pg_transport *t, int error)
{
    peer *p = arg;
    p->l->connecting--;
    if (error != 0) {
        print_message("connect %d: %s\n", (int)(p - p->l->peers), strerror(-error));
        p->l->failed++;
    }
    (void)t;
}

/* Keeps CONNECTING_MAX connects in flight until target have been started. */
static void start_connects(load *l)
{
    while (l->started < l->target && l->connecting < CONNECTING_MAX) {
        peer *p = &l->peers[l->started++];
        *p = (peer){ .l = l };
        assert_int_equal(pg_tcp_connect(l->loop, "127.0.0.1", l->port, 0, peer_factory, p, peer_connected, p), 0);
        l->connecting++;
    }
}

static int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int n = 0;
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n;
}

static size_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    assert_non_null(f);
    unsigned long size, resident;
    assert_int_equal(fscanf(f, "%lu %lu", &size, &resident), 2);
    fclose(f);
    return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

static size_t heap_in_use(void)
{
    return mallinfo2().uordblks;
}

/* One run: target connections, all open at once when hold, else each closes
 * as soon as its echo is back. Ends with every connection lost on both sides. */
static void run(load *l, int target, bool hold)
{
    l->target = target;
    l->hold = hold;
    l->started = l->connecting = l->connected = l->echoed = l->lost = l->server_lost = l->failed = 0;
    l->peers = calloc((size_t)target, sizeof *l->peers);
    assert_non_null(l->peers);
    for (int i = 0; l->started < target || l->connecting > 0; i++) {
        assert_true(i < 1000000);
        start_connects(l);
        assert_int_equal(pg_loop_run_once(l->loop, 1000), 0);
    }
    assert_int_equal(l->failed, 0);
    if (hold) {
        assert_int_equal(l->connected, target); /* all open at once */
        assert_int_equal(l->lost, 0);
        for (int i = 0; i < target; i++)
            peer_write(&l->peers[i]);
    }
    for (int i = 0; l->lost < target || l->server_lost < target; i++) {
        assert_true(i < 1000000);
        assert_int_equal(pg_loop_run_once(l->loop, 1000), 0);
    }
    assert_int_equal(l->echoed, target);
    free(l->peers);
    l->peers = NULL;
}

static int concurrent_target(void)
{
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    rl.rlim_cur = rl.rlim_max;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
    /* Two fds per connection (both ends here), and some to spare. */
    long room = rl.rlim_cur == RLIM_INFINITY ? 2L * CONCURRENT + 64 : (long)rl.rlim_cur;
    long n = (room - 64) / 2;
    if (n > CONCURRENT)
        n = CONCURRENT;
    if (n < CONCURRENT)
        print_message("RLIMIT_NOFILE %ld: %ld connections at once, not %d\n", room, n, CONCURRENT);
    assert_true(n >= 100);
    return (int)n;
}

static void check_back(const char *what, int fds, size_t heap, size_t rss)
{
    int fds_now = open_fds();
    size_t heap_now = heap_in_use(), rss_now = rss_bytes();
    print_message("%s: fds %d -> %d, heap in use %zu -> %zu, RSS %zu KiB -> %zu KiB\n", what, fds, fds_now, heap,
                  heap_now, rss / 1024, rss_now / 1024);
    assert_int_equal(fds_now, fds);
#ifndef LOAD_UNDER_ASAN
    assert_true(heap_now <= heap + 64 * 1024);
    assert_true(rss_now <= rss + 2 * 1024 * 1024 + rss / 20);
#endif
}

static void test_load(void **state)
{
    (void)state;
    int n = concurrent_target();
    load l = { 0 };
    assert_int_equal(pg_loop_new(&l.loop), 0);
    pg_listen_options opts = { .backlog = 4096 };
    assert_int_equal(pg_tcp_listen(l.loop, "127.0.0.1", 0, &opts, echo_factory, &l, &l.server), 0);
    struct sockaddr_storage ss;
    socklen_t len;
    assert_int_equal(pg_server_sockname(l.server, &ss, &len), 0);
    l.port = ntohs(((struct sockaddr_in *)&ss)->sin_port);

    /* Warm-up: the loop's buffers, the ready queue's and timer heap's sizes,
     * the transport cache, and the allocator's arenas settle here. */
    run(&l, n, true);
    run(&l, CHURN, false); /* as many: how many overlap depends on the backend's pace */
    int fds = open_fds();
    size_t heap = heap_in_use(), rss = rss_bytes();

    run(&l, n, true);
    check_back("concurrent", fds, heap, rss);
    run(&l, CHURN, false);
    check_back("churn", fds, heap, rss);

    assert_int_equal(pg_server_close(l.server), 0);
    assert_int_equal(pg_loop_close(l.loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
