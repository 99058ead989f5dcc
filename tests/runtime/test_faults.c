/* Allocation failures at the worst moments: the runtime's calloc, malloc and
 * realloc are wrapped (-Wl,--wrap) so that a test can make them fail. The
 * rule under test: a protocol instance, once made by its factory, always gets
 * its callbacks through to connection_lost; when the transport cannot be made,
 * the factory is never called at all (the generated code's connection would
 * leak otherwise). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "testutil.h"

void *__real_calloc(size_t n, size_t size);
void *__real_malloc(size_t size);
void *__real_realloc(void *p, size_t size);

static bool fail_allocations;
static size_t allocations; /* made, counted */

void *__wrap_calloc(size_t n, size_t size)
{
    allocations++;
    return fail_allocations ? NULL : __real_calloc(n, size);
}

void *__wrap_malloc(size_t size)
{
    allocations++;
    return fail_allocations ? NULL : __real_malloc(size);
}

void *__wrap_realloc(void *p, size_t size)
{
    allocations++;
    return fail_allocations ? NULL : __real_realloc(p, size);
}

/* A factory that counts the instances it makes, and the instances lost. */
typedef struct counted {
    recorder rec;
    int made_by_factory;
} counted;

static int counting_factory(void *arg, pg_protocol *out)
{
    counted *c = arg;
    c->made_by_factory++;
    return recorder_factory(&c->rec, out);
}

/* Fills the ready queue to its capacity, so that the next reservation has to
 * grow it (and so allocate). */
static void noop(void *arg)
{
    (void)arg;
}

static void fill_ready_queue(pg_loop *loop)
{
    /* The queue's capacity is a power of two; queue until it must grow. */
    fail_allocations = true;
    while (pg_loop_call_soon(loop, noop, NULL) == 0)
        ;
    fail_allocations = false;
}

static void test_adopt_no_memory_makes_no_protocol(void **state)
{
    (void)state;
    pg_loop *loop;
    assert_int_equal(pg_loop_new(&loop), 0);
    counted c = { 0 };
    recorder_init(&c.rec);
    int sv[2];
    make_socketpair(sv, 0);

    fail_allocations = true; /* the transport's own allocation fails */
    assert_int_equal(pg_stream_adopt_fd(loop, sv[0], counting_factory, &c, NULL), -ENOMEM);
    fail_allocations = false;
    assert_int_equal(c.made_by_factory, 0);

    fill_ready_queue(loop); /* now the reservation of its queue slots fails */
    fail_allocations = true;
    assert_int_equal(pg_stream_adopt_fd(loop, sv[0], counting_factory, &c, NULL), -ENOMEM);
    fail_allocations = false;
    assert_int_equal(c.made_by_factory, 0);
    run_idle(loop, 2);
    assert_int_equal(c.rec.made, 0);

    /* With memory, the same fd works: it is still the caller's. */
    assert_int_equal(pg_stream_adopt_fd(loop, sv[0], counting_factory, &c, NULL), 0);
    RUN_UNTIL(loop, c.rec.made == 1);
    pg_transport_close(c.rec.transport);
    RUN_UNTIL(loop, c.rec.lost == 1);
    assert_int_equal(c.made_by_factory, 1);
    close(sv[1]);
    recorder_free(&c.rec);
    pg_loop_close(loop);
}

static void test_accept_no_memory_makes_no_protocol(void **state)
{
    (void)state;
    pg_loop *loop;
    assert_int_equal(pg_loop_new(&loop), 0);
    counted c = { 0 };
    recorder_init(&c.rec);
    pg_server *server;
    assert_int_equal(pg_tcp_listen(loop, "127.0.0.1", 0, NULL, counting_factory, &c, &server), 0);
    struct sockaddr_storage ss;
    socklen_t len;
    assert_int_equal(pg_server_sockname(server, &ss, &len), 0);

    int client = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(client >= 0);
    assert_int_equal(connect(client, (struct sockaddr *)&ss, len), 0);
    fail_allocations = true;
    /* The accept happens and the transport cannot be made: the connection is
     * closed, and no protocol was made for it. */
    uint8_t byte;
    for (int i = 0; i < 50; i++) {
        assert_int_equal(pg_loop_run_once(loop, 20), 0);
        ssize_t n = recv(client, &byte, 1, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN))
            break;
    }
    fail_allocations = false;
    assert_int_equal(recv(client, &byte, 1, MSG_DONTWAIT), 0); /* closed by the server */
    assert_int_equal(c.made_by_factory, 0);
    close(client);
    pg_server_close(server);
    run_idle(loop, 1);
    recorder_free(&c.rec);
    pg_loop_close(loop);
}

typedef struct connect_result {
    int calls;
    int error;
} connect_result;

static void on_connected(void *arg, pg_transport *t, int error)
{
    connect_result *res = arg;
    res->calls++;
    res->error = error;
    assert_null(t);
}

static void test_connect_no_memory_makes_no_protocol(void **state)
{
    (void)state;
    pg_loop *loop;
    assert_int_equal(pg_loop_new(&loop), 0);
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    assert_int_equal(bind(lfd, (struct sockaddr *)&sin, sizeof sin), 0);
    assert_int_equal(listen(lfd, 4), 0);
    socklen_t len = sizeof sin;
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&sin, &len), 0);

    counted c = { 0 };
    recorder_init(&c.rec);
    connect_result res = { 0 };
    assert_int_equal(pg_tcp_connect(loop, "127.0.0.1", ntohs(sin.sin_port), 5000, counting_factory, &c,
                                    on_connected, &res),
                     0);
    fail_allocations = true; /* connected, and then the transport cannot be made */
    for (int i = 0; i < 50 && res.calls == 0; i++)
        assert_int_equal(pg_loop_run_once(loop, 20), 0);
    fail_allocations = false;
    assert_int_equal(res.calls, 1);
    assert_int_equal(res.error, -ENOMEM);
    assert_int_equal(c.made_by_factory, 0);
    close(lfd);
    recorder_free(&c.rec);
    pg_loop_close(loop);
}

static void test_unix_accept_no_memory_makes_no_protocol(void **state)
{
    (void)state;
    pg_loop *loop;
    assert_int_equal(pg_loop_new(&loop), 0);
    counted c = { 0 };
    recorder_init(&c.rec);
    pg_server *server;
    /* Unique per process: test suites of several builds may run at once. */
    char name[64];
    int n = snprintf(name, sizeof name, "@protogen-test-faults-%d", (int)getpid());
    assert_int_equal(pg_unix_listen(loop, name, NULL, counting_factory, &c, &server), 0);
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    memcpy(sun.sun_path + 1, name + 1, (size_t)n - 1);
    int client = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_int_equal(connect(client, (struct sockaddr *)&sun, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)n)), 0);
    fail_allocations = true;
    uint8_t byte;
    for (int i = 0; i < 50; i++) {
        assert_int_equal(pg_loop_run_once(loop, 20), 0);
        ssize_t n = recv(client, &byte, 1, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN))
            break;
    }
    fail_allocations = false;
    assert_int_equal(recv(client, &byte, 1, MSG_DONTWAIT), 0);
    assert_int_equal(c.made_by_factory, 0);
    close(client);
    pg_server_close(server);
    run_idle(loop, 1);
    recorder_free(&c.rec);
    pg_loop_close(loop);
}

/* A connection at the edge of back-pressure: its write buffer fills and
 * drains again and again. The loop keeps a drained buffer for the next fill,
 * so the cycles do not allocate (no allocation per write in the steady state). */
static void test_backpressure_cycles_do_not_allocate(void **state)
{
    (void)state;
    pg_loop *loop;
    assert_int_equal(pg_loop_new(&loop), 0);
    recorder r;
    recorder_init(&r);
    int sv[2];
    make_socketpair(sv, 4096);
    set_nonblocking(sv[1]);
    pg_transport *t;
    assert_int_equal(pg_stream_adopt_fd(loop, sv[0], recorder_factory, &r, &t), 0);
    RUN_UNTIL(loop, r.made == 1);
    uint8_t chunk[2048] = { 0 };
    size_t before = 0;
    for (int cycle = 0; cycle < 20; cycle++) {
        if (cycle == 1)
            before = allocations; /* the first cycle may allocate the buffer */
        while (pg_transport_get_write_buffer_size(t) == 0)
            assert_int_equal(pg_transport_write(t, chunk, sizeof chunk), 0);
        for (int i = 0; i < 1000 && pg_transport_get_write_buffer_size(t) > 0; i++) {
            drain_socket(sv[1], NULL, 0, NULL);
            assert_int_equal(pg_loop_run_once(loop, 10), 0);
        }
        assert_int_equal(pg_transport_get_write_buffer_size(t), 0);
    }
    assert_int_equal(allocations - before, 0);
    assert_int_equal(r.pauses, 0);
    pg_transport_abort(t);
    RUN_UNTIL(loop, r.lost == 1);
    close(sv[1]);
    recorder_free(&r);
    pg_loop_close(loop);
}

/* Connection churn: a closed connection's block is reused by the next (the
 * loop's pool), so after the first, connections cost the runtime no
 * allocation. */
static void test_churn_reuses_transports(void **state)
{
    (void)state;
    pg_loop *loop;
    assert_int_equal(pg_loop_new(&loop), 0);
    size_t before = 0;
    for (int i = 0; i < 20; i++) {
        if (i == 1)
            before = allocations;
        recorder r;
        recorder_init(&r);
        int sv[2];
        make_socketpair(sv, 0);
        pg_transport *t;
        assert_int_equal(pg_stream_adopt_fd(loop, sv[0], recorder_factory, &r, &t), 0);
        RUN_UNTIL(loop, r.made == 1);
        pg_transport_close(t);
        RUN_UNTIL(loop, r.lost == 1);
        close(sv[1]);
        recorder_free(&r);
    }
    assert_int_equal(allocations - before, 0);
    pg_loop_close(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adopt_no_memory_makes_no_protocol),
        cmocka_unit_test(test_backpressure_cycles_do_not_allocate),
        cmocka_unit_test(test_churn_reuses_transports),
        cmocka_unit_test(test_accept_no_memory_makes_no_protocol),
        cmocka_unit_test(test_connect_no_memory_makes_no_protocol),
        cmocka_unit_test(test_unix_accept_no_memory_makes_no_protocol),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
