/* Unix domain stream sockets: path and abstract round trips, stale socket
 * files, live addresses, permissions, removal on close, connect errors,
 * addresses (asyncio's create_unix_server / create_unix_connection, and the
 * relevant cases of CPython's test_unix_events.py SelectorEventLoopUnixSocketTests). */
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "testutil.h"

typedef struct unix_fixture {
    char dir[64];
    char path[96];
    pg_loop *loop;
} unix_fixture;

static void fx_init(unix_fixture *f)
{
    snprintf(f->dir, sizeof f->dir, "/tmp/pg_unix_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/sock", f->dir);
    assert_int_equal(pg_loop_new(&f->loop), 0);
}

static void fx_done(unix_fixture *f)
{
    run_idle(f->loop, 2);
    pg_loop_close(f->loop);
    unlink(f->path);
    rmdir(f->dir);
}

typedef struct peer {
    recorder rec;
    int factory_calls;
    int done_calls;
    int error;
} peer;

static int peer_factory(void *arg, pg_protocol *out)
{
    peer *p = arg;
    p->factory_calls++;
    return recorder_factory(&p->rec, out);
}

static void peer_connected(void *arg, pg_transport *t, int error)
{
    peer *p = arg;
    p->done_calls++;
    p->error = error;
    if (error == 0) {
        assert_non_null(t);
        assert_int_equal(p->rec.made, 1);
    } else {
        assert_null(t);
        assert_int_equal(p->factory_calls, 0);
    }
}

static void echo(recorder *r, const uint8_t *data, size_t len)
{
    assert_int_equal(pg_transport_write(r->transport, data, len), 0);
}

static void send_hello(recorder *r)
{
    assert_int_equal(pg_transport_write(r->transport, "hello", 5), 0);
}

static void close_after_hello(recorder *r, const uint8_t *data, size_t len)
{
    (void)data;
    (void)len;
    if (r->rx_len == 5)
        pg_transport_close(r->transport);
}

static void round_trip(unix_fixture *f, const char *path)
{
    peer srv = { 0 }, cli = { 0 };
    recorder_init(&srv.rec);
    recorder_init(&cli.rec);
    srv.rec.hooks.data = echo;
    cli.rec.hooks.made = send_hello;
    cli.rec.hooks.data = close_after_hello;
    pg_server *server;
    assert_int_equal(pg_unix_listen(f->loop, path, NULL, peer_factory, &srv, &server), 0);
    assert_int_equal(pg_unix_connect(f->loop, path, 5000, peer_factory, &cli, peer_connected, &cli), 0);
    assert_int_equal(cli.done_calls, 0);
    RUN_UNTIL(f->loop, cli.rec.lost == 1 && srv.rec.lost == 1);
    assert_int_equal(cli.done_calls, 1);
    assert_int_equal(cli.error, 0);
    assert_memory_equal(cli.rec.rx, "hello", 5);
    assert_string_equal(cli.rec.log, "made data lost:ok");
    assert_string_equal(srv.rec.log, "made data eof lost:ok");

    struct sockaddr_storage ss;
    socklen_t len;
    char buf[128];
    assert_int_equal(pg_server_sockname(server, &ss, &len), 0);
    assert_int_equal(ss.ss_family, AF_UNIX);
    assert_true(pg_format_address((struct sockaddr *)&ss, buf, sizeof buf) > 0);
    assert_string_equal(buf, path);
    pg_server_close(server);
    recorder_free(&srv.rec);
    recorder_free(&cli.rec);
}

static void test_path_round_trip(void **state)
{
    (void)state;
    unix_fixture f;
    fx_init(&f);
    round_trip(&f, f.path);
    struct stat st;
    assert_int_equal(stat(f.path, &st), -1); /* removed by pg_server_close */
    fx_done(&f);
}

static void test_abstract_round_trip(void **state)
{
    (void)state;
    unix_fixture f;
    fx_init(&f);
    char name[64];
    snprintf(name, sizeof name, "@protogen-test-%d", (int)getpid());
    round_trip(&f, name);
    fx_done(&f);
}

/* A socket file nobody listens on (a dead server's) is replaced. */
static void test_stale_socket_removed(void **state)
{
    (void)state;
    unix_fixture f;
    fx_init(&f);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", f.path);
    assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof sun), 0);
    close(fd); /* the file stays */
    peer srv = { 0 };
    recorder_init(&srv.rec);
    pg_server *server;
    assert_int_equal(pg_unix_listen(f.loop, f.path, NULL, peer_factory, &srv, &server), 0);
    pg_server_close(server);
    fx_done(&f);
}

/* A live server's address is not stolen; a file that is not a socket is
 * not removed. */
static void test_live_socket_and_file_kept(void **state)
{
    (void)state;
    unix_fixture f;
    fx_init(&f);
    peer srv = { 0 };
    recorder_init(&srv.rec);
    pg_server *a, *b = NULL;
    assert_int_equal(pg_unix_listen(f.loop, f.path, NULL, peer_factory, &srv, &a), 0);
    assert_int_equal(pg_unix_listen(f.loop, f.path, NULL, peer_factory, &srv, &b), -EADDRINUSE);
    assert_null(b);
    struct stat st;
    assert_int_equal(stat(f.path, &st), 0);
    pg_server_close(a);
    run_idle(f.loop, 1);
    assert_int_equal(srv.factory_calls, 0); /* the probe made no connection */

    FILE *file = fopen(f.path, "w");
    assert_non_null(file);
    fclose(file);
    assert_int_equal(pg_unix_listen(f.loop, f.path, NULL, peer_factory, &srv, &b), -EEXIST);
    assert_int_equal(stat(f.path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    fx_done(&f);
}

/* pg_server_close() removes the file only while it is still its own. */
static void test_close_keeps_replaced_file(void **state)
{
    (void)state;
    unix_fixture f;
    fx_init(&f);
    peer srv = { 0 };
    recorder_init(&srv.rec);
    pg_server *server;
    assert_int_equal(pg_unix_listen(f.loop, f.path, NULL, peer_factory, &srv, &server), 0);
    assert_int_equal(unlink(f.path), 0);
    FILE *file = fopen(f.path, "w");
    assert_non_null(file);
    fclose(file);
    pg_server_close(server);
    struct stat st;
    assert_int_equal(stat(f.path, &st), 0);
    fx_done(&f);
}

static void test_permissions(void **state)
{
    (void)state;
    unix_fixture f;
    fx_init(&f);
    peer srv = { 0 };
    recorder_init(&srv.rec);
    pg_server *server;
    pg_listen_options opts = { .unix_mode = 0600 };
    assert_int_equal(pg_unix_listen(f.loop, f.path, &opts, peer_factory, &srv, &server), 0);
    struct stat st;
    assert_int_equal(stat(f.path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0600);
    pg_server_close(server);
    opts.unix_mode = 0640;
    assert_int_equal(pg_unix_listen(f.loop, f.path, &opts, peer_factory, &srv, &server), 0);
    assert_int_equal(stat(f.path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0640);
    pg_server_close(server);
    /* An abstract socket has no file to set permissions on. */
    assert_int_equal(pg_unix_listen(f.loop, "@protogen-perm", &opts, peer_factory, &srv, &server), -EINVAL);
    opts.unix_mode = 010000;
    assert_int_equal(pg_unix_listen(f.loop, f.path, &opts, peer_factory, &srv, &server), -EINVAL);
    /* reuse_port is for TCP: a Unix socket's path has one listener. */
    pg_listen_options reuse = { .reuse_port = true };
    assert_int_equal(pg_unix_listen(f.loop, f.path, &reuse, peer_factory, &srv, &server), -EINVAL);
    fx_done(&f);
}

/* Connect errors reach done, never synchronously and with no protocol made. */
static void test_connect_errors(void **state)
{
    (void)state;
    unix_fixture f;
    fx_init(&f);
    peer cli = { 0 };
    recorder_init(&cli.rec);
    assert_int_equal(pg_unix_connect(f.loop, f.path, 0, peer_factory, &cli, peer_connected, &cli), 0);
    assert_int_equal(cli.done_calls, 0);
    RUN_UNTIL(f.loop, cli.done_calls == 1);
    assert_int_equal(cli.error, -ENOENT);

    int fd = socket(AF_UNIX, SOCK_STREAM, 0); /* bound, not listening */
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", f.path);
    assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof sun), 0);
    assert_int_equal(pg_unix_connect(f.loop, f.path, 0, peer_factory, &cli, peer_connected, &cli), 0);
    RUN_UNTIL(f.loop, cli.done_calls == 2);
    assert_int_equal(cli.error, -ECONNREFUSED);
    close(fd);

    assert_int_equal(pg_unix_connect(f.loop, "@protogen-nobody-here", 0, peer_factory, &cli, peer_connected, &cli), 0);
    RUN_UNTIL(f.loop, cli.done_calls == 3);
    assert_int_equal(cli.error, -ECONNREFUSED);
    assert_int_equal(cli.factory_calls, 0);
    fx_done(&f);
}

static void test_bad_paths(void **state)
{
    (void)state;
    unix_fixture f;
    fx_init(&f);
    peer p = { 0 };
    char longpath[200];
    memset(longpath, 'a', sizeof longpath - 1);
    longpath[0] = '/';
    longpath[sizeof longpath - 1] = '\0';
    pg_server *server = NULL;
    assert_int_equal(pg_unix_listen(f.loop, longpath, NULL, peer_factory, &p, &server), -ENAMETOOLONG);
    assert_int_equal(pg_unix_connect(f.loop, longpath, 0, peer_factory, &p, peer_connected, &p), -ENAMETOOLONG);
    assert_int_equal(pg_unix_listen(f.loop, "", NULL, peer_factory, &p, &server), -EINVAL);
    assert_int_equal(pg_unix_listen(f.loop, NULL, NULL, peer_factory, &p, &server), -EINVAL);
    assert_int_equal(pg_unix_connect(f.loop, NULL, 0, peer_factory, &p, peer_connected, &p), -EINVAL);
    /* 107 bytes is the most a path may have (sun_path has room for the NUL). */
    char path107[108];
    memset(path107, 'b', 107);
    path107[107] = '\0';
    assert_int_equal(pg_unix_connect(f.loop, path107, 0, peer_factory, &p, peer_connected, &p), 0);
    RUN_UNTIL(f.loop, p.done_calls == 1);
    assert_int_equal(p.error, -ENOENT);
    assert_null(server);
    fx_done(&f);
}

/* Unix transports behave as TCP ones: half-close with write_eof, extra info. */
static bool keep_open(recorder *r)
{
    assert_int_equal(pg_transport_write(r->transport, "late", 4), 0);
    pg_transport_close(r->transport);
    return true;
}

static void eof_after_hello(recorder *r)
{
    assert_true(pg_transport_can_write_eof(r->transport));
    assert_int_equal(pg_transport_write(r->transport, "hello", 5), 0);
    assert_int_equal(pg_transport_write_eof(r->transport), 0);
    pg_extra_info info;
    assert_int_equal(pg_transport_get_extra_info(r->transport, PG_EXTRA_PEERNAME, &info), 0);
    assert_int_equal(info.addr.ss_family, AF_UNIX);
    assert_int_equal(pg_transport_get_extra_info(r->transport, PG_EXTRA_PIPE, &info), -ENOENT);
}

static void test_half_close(void **state)
{
    (void)state;
    unix_fixture f;
    fx_init(&f);
    peer srv = { 0 }, cli = { 0 };
    recorder_init(&srv.rec);
    recorder_init(&cli.rec);
    srv.rec.hooks.eof = keep_open;
    cli.rec.hooks.made = eof_after_hello;
    cli.rec.eof_keep_open = false;
    pg_server *server;
    assert_int_equal(pg_unix_listen(f.loop, f.path, NULL, peer_factory, &srv, &server), 0);
    assert_int_equal(pg_unix_connect(f.loop, f.path, 0, peer_factory, &cli, peer_connected, &cli), 0);
    RUN_UNTIL(f.loop, cli.rec.lost == 1 && srv.rec.lost == 1);
    assert_string_equal(srv.rec.log, "made data eof lost:ok");
    assert_string_equal(cli.rec.log, "made data eof lost:ok");
    assert_memory_equal(cli.rec.rx, "late", 4);
    pg_server_close(server);
    recorder_free(&srv.rec);
    recorder_free(&cli.rec);
    fx_done(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path_round_trip),
        cmocka_unit_test(test_abstract_round_trip),
        cmocka_unit_test(test_stale_socket_removed),
        cmocka_unit_test(test_live_socket_and_file_kept),
        cmocka_unit_test(test_close_keeps_replaced_file),
        cmocka_unit_test(test_permissions),
        cmocka_unit_test(test_connect_errors),
        cmocka_unit_test(test_bad_paths),
        cmocka_unit_test(test_half_close),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
