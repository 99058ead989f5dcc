/* examples/resp's command logic (commands.c): the exact reply bytes of every
 * command and error case, as redis-server 7.0 (Debian 12) sends them
 * (tests/resp/conformance.py checks the same texts against a running
 * redis-server), expiry on a test clock, a growing keyspace against a model,
 * and out-of-memory at every allocation leaving the reply and the keyspace as
 * they were.
 *
 * commands.c is compiled into this file, its allocations routed through the
 * counting, failing allocator below. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

/* ---- a counting allocator that fails on request --------------------------------- */

static long live_blocks;   /* allocations not yet freed */
static long fail_countdown = -1; /* the allocation that fails: 0 = the next one; -1 = none */

static bool fail_now(void)
{
    if (fail_countdown < 0)
        return false;
    return fail_countdown-- == 0;
}

static void *t_malloc(size_t n)
{
    if (fail_now())
        return NULL;
    void *p = malloc(n);
    live_blocks += p != NULL;
    return p;
}

static void *t_calloc(size_t n, size_t size)
{
    if (fail_now())
        return NULL;
    void *p = calloc(n, size);
    live_blocks += p != NULL;
    return p;
}

static void *t_realloc(void *old, size_t n)
{
    if (fail_now())
        return NULL;
    void *p = realloc(old, n);
    live_blocks += p != NULL && old == NULL;
    return p;
}

static void t_free(void *p)
{
    live_blocks -= p != NULL;
    free(p);
}

#define malloc t_malloc
#define calloc t_calloc
#define realloc t_realloc
#define free t_free
#include "commands.c"
#undef malloc
#undef calloc
#undef realloc
#undef free

/* ---- running commands ---------------------------------------------------------------- */

typedef struct fixture {
    resp_store *s;
    resp_reply out;
    int64_t now; /* the test clock, ms */
} fixture;

static int64_t test_clock(void *ctx)
{
    return ((fixture *)ctx)->now;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->s = resp_store_new();
    assert_non_null(f->s);
    resp_reply_init(&f->out);
    f->now = 1700000000000;
    resp_store_set_clock(f->s, test_clock, f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    resp_store_free(f->s);
    resp_reply_free(&f->out);
    free(f);
    assert_int_equal(live_blocks, 0);
    return 0;
}

#define MAX_ARGS 64

/* Runs one command given as its arguments (C strings, NULL-terminated);
 * returns resp_execute's result, the reply in f->out (cleared first). */
static int run_v(fixture *f, const char *name, va_list ap)
{
    pg_slice argv[MAX_ARGS];
    size_t argc = 0;
    for (const char *a = name; a != NULL; a = va_arg(ap, const char *)) {
        assert_true(argc < MAX_ARGS);
        argv[argc++] = (pg_slice){ (const uint8_t *)a, strlen(a) };
    }
    resp_reply_clear(&f->out);
    return resp_execute(f->s, argc, argv, &f->out);
}

static int run(fixture *f, const char *name, ...)
{
    va_list ap;
    va_start(ap, name);
    int rc = run_v(f, name, ap);
    va_end(ap);
    return rc;
}

static void assert_reply_n(const fixture *f, const char *want, size_t n)
{
    if (f->out.len != n || memcmp(f->out.data, want, n) != 0) {
        print_error("reply %.*s\n   want %.*s\n", (int)f->out.len, (const char *)f->out.data, (int)n, want);
        fail();
    }
}

#define assert_reply(f, want) assert_reply_n((f), (want), strlen(want))

/* The command (arguments, then NULL) answers want and returns RESP_OK. */
#define EXPECT(f, want, ...)                          \
    do {                                              \
        assert_int_equal(run((f), __VA_ARGS__), RESP_OK); \
        assert_reply((f), (want));                    \
    } while (0)

/* ---- the commands ---------------------------------------------------------------------- */

static void test_ping_echo(void **state)
{
    fixture *f = *state;
    EXPECT(f, "+PONG\r\n", "PING", NULL);
    EXPECT(f, "+PONG\r\n", "pInG", NULL);
    EXPECT(f, "$2\r\nhi\r\n", "ping", "hi", NULL);
    EXPECT(f, "$0\r\n\r\n", "PING", "", NULL);
    EXPECT(f, "-ERR wrong number of arguments for 'ping' command\r\n", "PING", "a", "b", NULL);
    EXPECT(f, "-ERR wrong number of arguments for 'ping' command\r\n", "PiNg", "a", "b", NULL);
    EXPECT(f, "$1\r\nx\r\n", "ECHO", "x", NULL);
    EXPECT(f, "$0\r\n\r\n", "echo", "", NULL);
    EXPECT(f, "-ERR wrong number of arguments for 'echo' command\r\n", "ECHO", NULL);
    EXPECT(f, "-ERR wrong number of arguments for 'echo' command\r\n", "echo", "a", "b", NULL);
}

static void test_set_get(void **state)
{
    fixture *f = *state;
    EXPECT(f, "$-1\r\n", "GET", "k", NULL);
    EXPECT(f, "+OK\r\n", "SET", "k", "v", NULL);
    EXPECT(f, "$1\r\nv\r\n", "get", "k", NULL);
    EXPECT(f, "$-1\r\n", "GET", "K", NULL); /* keys are case-sensitive */
    EXPECT(f, "+OK\r\n", "SET", "k", "a longer value than before, reallocated", NULL);
    EXPECT(f, "$39\r\na longer value than before, reallocated\r\n", "GET", "k", NULL);
    EXPECT(f, "+OK\r\n", "SET", "k", "", NULL);
    EXPECT(f, "$0\r\n\r\n", "GET", "k", NULL);
    EXPECT(f, "+OK\r\n", "SET", "", "empty key", NULL);
    EXPECT(f, "$9\r\nempty key\r\n", "GET", "", NULL);
    assert_int_equal(resp_store_count(f->s), 2);
    EXPECT(f, "-ERR wrong number of arguments for 'set' command\r\n", "SET", "k", NULL);
    EXPECT(f, "-ERR wrong number of arguments for 'set' command\r\n", "sEt", NULL);
    EXPECT(f, "-ERR wrong number of arguments for 'get' command\r\n", "GET", NULL);
    EXPECT(f, "-ERR wrong number of arguments for 'get' command\r\n", "GET", "k", "x", NULL);
}

static void test_binary_safe(void **state)
{
    fixture *f = *state;
    static const uint8_t key[] = { 'a', 0, '\r', '\n', 0xff };
    static const uint8_t val[] = { 0, '$', '\r', '\n', '*', 0x80 };
    pg_slice set[] = { { (const uint8_t *)"SET", 3 }, { key, sizeof key }, { val, sizeof val } };
    assert_int_equal(resp_execute(f->s, 3, set, &f->out), RESP_OK);
    assert_reply(f, "+OK\r\n");
    resp_reply_clear(&f->out);
    pg_slice get[] = { { (const uint8_t *)"GET", 3 }, { key, sizeof key } };
    assert_int_equal(resp_execute(f->s, 2, get, &f->out), RESP_OK);
    assert_reply_n(f, "$6\r\n\0$\r\n*\x80\r\n", 12);
    resp_reply_clear(&f->out);
    pg_slice other[] = { { (const uint8_t *)"GET", 3 }, { key, 1 } }; /* "a": a prefix is another key */
    assert_int_equal(resp_execute(f->s, 2, other, &f->out), RESP_OK);
    assert_reply(f, "$-1\r\n");
}

static void test_del_exists(void **state)
{
    fixture *f = *state;
    EXPECT(f, "+OK\r\n", "SET", "a", "1", NULL);
    EXPECT(f, "+OK\r\n", "SET", "b", "2", NULL);
    EXPECT(f, ":2\r\n", "EXISTS", "a", "a", "zz", NULL);
    EXPECT(f, ":2\r\n", "exists", "a", "b", NULL);
    EXPECT(f, ":0\r\n", "EXISTS", "zz", NULL);
    EXPECT(f, ":1\r\n", "DEL", "a", "a", "zz", NULL);
    EXPECT(f, ":0\r\n", "EXISTS", "a", NULL);
    EXPECT(f, ":1\r\n", "del", "b", NULL);
    EXPECT(f, ":0\r\n", "DEL", "b", NULL);
    assert_int_equal(resp_store_count(f->s), 0);
    EXPECT(f, "-ERR wrong number of arguments for 'del' command\r\n", "DEL", NULL);
    EXPECT(f, "-ERR wrong number of arguments for 'exists' command\r\n", "EXISTS", NULL);
    EXPECT(f, "-ERR wrong number of arguments for 'exists' command\r\n", "eXiStS", NULL);
}

static void test_incr(void **state)
{
    fixture *f = *state;
    EXPECT(f, ":1\r\n", "INCR", "n", NULL);
    EXPECT(f, ":2\r\n", "incr", "n", NULL);
    EXPECT(f, "$1\r\n2\r\n", "GET", "n", NULL);
    EXPECT(f, "+OK\r\n", "SET", "n", "0", NULL);
    EXPECT(f, ":1\r\n", "INCR", "n", NULL);
    EXPECT(f, "+OK\r\n", "SET", "n", "-1", NULL);
    EXPECT(f, ":0\r\n", "INCR", "n", NULL);
    EXPECT(f, "+OK\r\n", "SET", "n", "99999", NULL);
    EXPECT(f, ":100000\r\n", "INCR", "n", NULL);
    EXPECT(f, "+OK\r\n", "SET", "n", "-9223372036854775808", NULL);
    EXPECT(f, ":-9223372036854775807\r\n", "INCR", "n", NULL);
    EXPECT(f, "$20\r\n-9223372036854775807\r\n", "GET", "n", NULL);
    EXPECT(f, "+OK\r\n", "SET", "n", "9223372036854775806", NULL);
    EXPECT(f, ":9223372036854775807\r\n", "INCR", "n", NULL);
    EXPECT(f, "-ERR increment or decrement would overflow\r\n", "INCR", "n", NULL);
    EXPECT(f, "$19\r\n9223372036854775807\r\n", "GET", "n", NULL);
    static const char *const not_integers[] = {
        "v", "", " 1", "1 ", "01", "-0", "+1", "-", "1a", "0x10", "1.5",
        "9223372036854775808", "-9223372036854775809", "18446744073709551616", "000000000000000000001",
    };
    for (size_t i = 0; i < sizeof not_integers / sizeof not_integers[0]; i++) {
        EXPECT(f, "+OK\r\n", "SET", "n", not_integers[i], NULL);
        EXPECT(f, "-ERR value is not an integer or out of range\r\n", "INCR", "n", NULL);
    }
    EXPECT(f, "-ERR wrong number of arguments for 'incr' command\r\n", "INCR", NULL);
    EXPECT(f, "-ERR wrong number of arguments for 'incr' command\r\n", "INCR", "a", "b", NULL);
}

static void test_quit(void **state)
{
    fixture *f = *state;
    assert_int_equal(run(f, "QUIT", NULL), RESP_CLOSE);
    assert_reply(f, "+OK\r\n");
    assert_int_equal(run(f, "quit", "any", "args", NULL), RESP_CLOSE);
    assert_reply(f, "+OK\r\n");
}

static void test_config(void **state)
{
    fixture *f = *state;
    EXPECT(f, "*2\r\n$4\r\nsave\r\n$0\r\n\r\n", "CONFIG", "GET", "save", NULL);
    EXPECT(f, "*2\r\n$10\r\nappendonly\r\n$2\r\nno\r\n", "CONFIG", "GET", "appendonly", NULL);
    EXPECT(f, "*2\r\n$4\r\nSAVE\r\n$0\r\n\r\n", "config", "get", "SAVE", NULL); /* echoed as asked */
    EXPECT(f, "*0\r\n", "CONFIG", "GET", "nosuch", NULL);
    EXPECT(f, "*2\r\n$4\r\nsave\r\n$0\r\n\r\n", "CONFIG", "GET", "save", "SAVE", NULL);
    EXPECT(f, "*4\r\n$4\r\nsave\r\n$0\r\n\r\n$10\r\nappendonly\r\n$2\r\nno\r\n",
           "CONFIG", "GET", "save", "x", "appendonly", NULL);
    EXPECT(f, "-ERR wrong number of arguments for 'config' command\r\n", "CONFIG", NULL);
    EXPECT(f, "-ERR wrong number of arguments for 'config|get' command\r\n", "config", "GET", NULL);
    EXPECT(f, "-ERR unknown subcommand 'FOO'. Try CONFIG HELP.\r\n", "CONFIG", "FOO", NULL);
    EXPECT(f, "-ERR unknown subcommand 'foo'. Try CONFIG HELP.\r\n", "config", "foo", "x", NULL);
    EXPECT(f, "-ERR unknown subcommand 'a  b'. Try CONFIG HELP.\r\n", "CONFIG", "a\r\nb", NULL);
}

static void test_unknown_command(void **state)
{
    fixture *f = *state;
    EXPECT(f, "-ERR unknown command 'FOO', with args beginning with: \r\n", "FOO", NULL);
    EXPECT(f, "-ERR unknown command 'FOO', with args beginning with: 'a' 'b' \r\n", "FOO", "a", "b", NULL);
    EXPECT(f, "-ERR unknown command '', with args beginning with: 'a' \r\n", "", "a", NULL);
    EXPECT(f, "-ERR unknown command 'F  OO', with args beginning with: 'x y' \r\n", "F\r\nOO", "x\ny", NULL);
    /* A command name of a known length and letters, but not one of ours. */
    EXPECT(f, "-ERR unknown command 'GETS', with args beginning with: \r\n", "GETS", NULL);
    EXPECT(f, "-ERR unknown command 'gett', with args beginning with: 'a' \r\n", "gett", "a", NULL);
    EXPECT(f, "-ERR unknown command 'g\x05t', with args beginning with: \r\n", "g\x05t", NULL);

    /* A NUL ends a name or an argument in the text (redis formats them as C strings). */
    pg_slice nul[] = { { (const uint8_t *)"f\0oo", 4 }, { (const uint8_t *)"x\0y", 3 }, { (const uint8_t *)"z", 1 } };
    resp_reply_clear(&f->out);
    assert_int_equal(resp_execute(f->s, 3, nul, &f->out), RESP_OK);
    assert_reply(f, "-ERR unknown command 'f', with args beginning with: 'x' 'z' \r\n");

    /* At most 128 bytes of the name; arguments while the list is under 128 bytes. */
    char name[201], a60[61], b200[201];
    memset(name, 'n', 200);
    name[200] = 0;
    memset(a60, 'a', 60);
    a60[60] = 0;
    memset(b200, 'b', 200);
    b200[200] = 0;
    char want[1024];
    snprintf(want, sizeof want, "-ERR unknown command '%.128s', with args beginning with: '%.128s' \r\n", name, b200);
    EXPECT(f, want, name, b200, "c", NULL);
    /* 'a60' (63 bytes), 'a60' (126), then 2 bytes of the third: 131, no fourth. */
    snprintf(want, sizeof want, "-ERR unknown command 'X', with args beginning with: '%s' '%s' 'aa' \r\n", a60, a60);
    EXPECT(f, want, "X", a60, a60, a60, a60, NULL);
    /* Empty arguments count their quotes: 43 of them reach 129. */
    const char *args[46];
    args[0] = "X";
    for (size_t i = 1; i < 45; i++)
        args[i] = "";
    args[45] = NULL;
    pg_slice argv[45];
    for (size_t i = 0; i < 45; i++)
        argv[i] = (pg_slice){ (const uint8_t *)args[i], strlen(args[i]) };
    resp_reply_clear(&f->out);
    assert_int_equal(resp_execute(f->s, 45, argv, &f->out), RESP_OK);
    size_t n = (size_t)snprintf(want, sizeof want, "-ERR unknown command 'X', with args beginning with: ");
    for (size_t i = 0; i < 43; i++)
        n += (size_t)snprintf(want + n, sizeof want - n, "'' ");
    snprintf(want + n, sizeof want - n, "\r\n");
    assert_reply(f, want);
}

static void test_empty_command(void **state)
{
    fixture *f = *state;
    assert_int_equal(resp_execute(f->s, 0, NULL, &f->out), RESP_OK);
    assert_int_equal(f->out.len, 0);
}

/* Replies accumulate until the caller clears the buffer (a pipelined batch, one write). */
static void test_replies_accumulate(void **state)
{
    fixture *f = *state;
    static const char *const cmds[][3] = { { "PING", NULL }, { "SET", "k", "v" }, { "GET", "k" }, { "NOPE", NULL } };
    static const size_t argcs[] = { 1, 3, 2, 1 };
    for (size_t i = 0; i < 4; i++) {
        pg_slice argv[3];
        for (size_t j = 0; j < argcs[i]; j++)
            argv[j] = (pg_slice){ (const uint8_t *)cmds[i][j], strlen(cmds[i][j]) };
        assert_int_equal(resp_execute(f->s, argcs[i], argv, &f->out), RESP_OK);
    }
    assert_reply(f, "+PONG\r\n+OK\r\n$1\r\nv\r\n-ERR unknown command 'NOPE', with args beginning with: \r\n");
}

static void test_set_options(void **state)
{
    fixture *f = *state;
    EXPECT(f, "+OK\r\n", "SET", "k", "v", "NX", NULL);
    EXPECT(f, "$-1\r\n", "SET", "k", "v2", "nx", NULL);
    EXPECT(f, "$1\r\nv\r\n", "GET", "k", NULL);
    EXPECT(f, "+OK\r\n", "SET", "k", "v3", "XX", NULL);
    EXPECT(f, "$-1\r\n", "SET", "z", "v3", "xx", NULL);
    EXPECT(f, ":0\r\n", "EXISTS", "z", NULL);
    EXPECT(f, "$2\r\nv3\r\n", "SET", "k", "v", "GET", NULL);
    EXPECT(f, "$1\r\nv\r\n", "SET", "k", "w", "GET", "NX", NULL); /* the old value; not set */
    EXPECT(f, "$1\r\nv\r\n", "GET", "k", NULL);
    EXPECT(f, "$-1\r\n", "SET", "q", "w", "get", "nx", NULL); /* no old value; set */
    EXPECT(f, "$1\r\nw\r\n", "GET", "q", NULL);
    EXPECT(f, "$1\r\nv\r\n", "SET", "k", "w", "GET", "XX", NULL);
    EXPECT(f, "$1\r\nw\r\n", "SET", "k", "v", "GET", "GET", NULL);
    EXPECT(f, "$-1\r\n", "SET", "k", "v", "nx", "nx", NULL);
    EXPECT(f, "+OK\r\n", "SET", "k", "v", "KEEPTTL", NULL);
    EXPECT(f, "+OK\r\n", "SET", "k", "v", "EX", "10", "EX", "20", NULL);
    static const char *const syntax[][3] = {
        { "NX", "XX", NULL }, { "XX", "NX", NULL }, { "FOO", NULL, NULL }, { "EX", NULL, NULL },
        { "EX", "10", "EX" }, { "EX", "10", "PX" }, { "PX", "10", "EX" }, { "EX", "10", "KEEPTTL" },
        { "KEEPTTL", "EX", "10" }, { "EXAT", "10", "PXAT" }, { "NXX", NULL, NULL }, { "", NULL, NULL },
    };
    for (size_t i = 0; i < sizeof syntax / sizeof syntax[0]; i++) {
        const char *a[7] = { "SET", "k", "v", syntax[i][0], syntax[i][1], syntax[i][2], NULL };
        assert_int_equal(run(f, a[0], a[1], a[2], a[3], a[4], a[5], NULL), RESP_OK);
        assert_reply(f, "-ERR syntax error\r\n");
    }
    EXPECT(f, "-ERR syntax error\r\n", "SET", "k", "v", "EX", "10", "EXAT", "10", NULL);
    EXPECT(f, "-ERR value is not an integer or out of range\r\n", "SET", "k", "v", "EX", "abc", NULL);
    EXPECT(f, "-ERR value is not an integer or out of range\r\n", "SET", "k", "v", "PX", " 1", NULL);
    static const char *const invalid[][2] = {
        { "EX", "0" }, { "EX", "-1" }, { "PX", "0" }, { "PXAT", "-5" }, { "EXAT", "0" },
        { "EX", "9223372036854775807" }, { "PX", "9223372036854775807" }, { "EX", "9223372036854775" },
        { "EXAT", "9223372036854775807" }, { "PX", "9223370336854775808" },
    };
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++)
        EXPECT(f, "-ERR invalid expire time in 'set' command\r\n", "SET", "k", "v", invalid[i][0], invalid[i][1],
               NULL);
    EXPECT(f, "+OK\r\n", "SET", "k", "v", "PXAT", "9223372036854775807", NULL);
    EXPECT(f, "+OK\r\n", "SET", "k", "v", "PX", "9223370336854775807", NULL); /* now + this = INT64_MAX */
    EXPECT(f, "$1\r\nv\r\n", "GET", "k", NULL);
}

static void test_expiry(void **state)
{
    fixture *f = *state;
    EXPECT(f, "+OK\r\n", "SET", "k", "v", "PX", "100", NULL);
    f->now += 100; /* expired only once the clock is past the time */
    EXPECT(f, "$1\r\nv\r\n", "GET", "k", NULL);
    f->now += 1;
    EXPECT(f, "$-1\r\n", "GET", "k", NULL);
    assert_int_equal(resp_store_count(f->s), 0);

    EXPECT(f, "+OK\r\n", "SET", "k", "v", "EX", "2", NULL);
    f->now += 1500;
    EXPECT(f, ":1\r\n", "EXISTS", "k", NULL);
    f->now += 501;
    EXPECT(f, ":0\r\n", "EXISTS", "k", NULL);

    EXPECT(f, "+OK\r\n", "SET", "k", "v", "EXAT", "1", NULL); /* in the past: gone at once */
    EXPECT(f, "$-1\r\n", "GET", "k", NULL);
    char at[32];
    snprintf(at, sizeof at, "%lld", (long long)f->now + 10);
    EXPECT(f, "+OK\r\n", "SET", "k", "v", "PXAT", at, NULL);
    f->now += 11;
    EXPECT(f, ":0\r\n", "DEL", "k", NULL);

    /* INCR keeps the time, and counts from 0 once it passed; plain SET clears it, KEEPTTL keeps it. */
    EXPECT(f, "+OK\r\n", "SET", "n", "5", "PX", "10", NULL);
    EXPECT(f, ":6\r\n", "INCR", "n", NULL);
    f->now += 11;
    EXPECT(f, ":1\r\n", "INCR", "n", NULL);
    f->now += 1000000;
    EXPECT(f, "$1\r\n1\r\n", "GET", "n", NULL);

    EXPECT(f, "+OK\r\n", "SET", "k", "v", "PX", "10", NULL);
    EXPECT(f, "+OK\r\n", "SET", "k", "w", "KEEPTTL", NULL);
    f->now += 11;
    EXPECT(f, "$-1\r\n", "GET", "k", NULL);
    EXPECT(f, "+OK\r\n", "SET", "k", "v", "PX", "10", NULL);
    EXPECT(f, "+OK\r\n", "SET", "k", "w", NULL);
    f->now += 11;
    EXPECT(f, "$1\r\nw\r\n", "GET", "k", NULL);

    /* NX and XX see an expired key as missing; GET does not return it. */
    EXPECT(f, "+OK\r\n", "SET", "k", "v", "PX", "10", NULL);
    f->now += 11;
    EXPECT(f, "$-1\r\n", "SET", "k", "x", "XX", NULL);
    EXPECT(f, "+OK\r\n", "SET", "k", "v", "PX", "10", NULL);
    f->now += 11;
    EXPECT(f, "$-1\r\n", "SET", "k", "y", "NX", "GET", NULL);
    EXPECT(f, "$1\r\ny\r\n", "GET", "k", NULL);
}

/* A large value: the reply buffer grows for it, and clearing gives the memory back. */
static void test_large_value(void **state)
{
    fixture *f = *state;
    size_t n = 1 << 20;
    uint8_t *big = malloc(n);
    for (size_t i = 0; i < n; i++)
        big[i] = (uint8_t)(i * 7);
    pg_slice set[] = { { (const uint8_t *)"SET", 3 }, { (const uint8_t *)"big", 3 }, { big, n } };
    assert_int_equal(resp_execute(f->s, 3, set, &f->out), RESP_OK);
    resp_reply_clear(&f->out);
    pg_slice get[] = { { (const uint8_t *)"GET", 3 }, { (const uint8_t *)"big", 3 } };
    assert_int_equal(resp_execute(f->s, 2, get, &f->out), RESP_OK);
    assert_int_equal(f->out.len, n + 12);
    assert_memory_equal(f->out.data, "$1048576\r\n", 10);
    assert_memory_equal(f->out.data + 10, big, n);
    assert_memory_equal(f->out.data + 10 + n, "\r\n", 2);
    assert_true(f->out.cap > RESP_REPLY_KEEP);
    resp_reply_clear(&f->out);
    assert_int_equal(f->out.cap, 0);
    free(big);
    EXPECT(f, "+PONG\r\n", "PING", NULL);
    assert_true(f->out.cap <= RESP_REPLY_KEEP);
    resp_reply_clear(&f->out);
    assert_true(f->out.cap > 0); /* a small buffer is kept */
}

/* Seeded random SET, DEL, GET and INCR over 3000 keys against a plain array:
 * the table grows and deletes shift runs back, and every key stays findable. */
#define MODEL_KEYS 3000

static void test_model(void **state)
{
    fixture *f = *state;
    static long long model[MODEL_KEYS]; /* -1: absent */
    for (size_t i = 0; i < MODEL_KEYS; i++)
        model[i] = -1;
    uint64_t rng = 12345;
    size_t present = 0;
    for (int op = 0; op < 60000; op++) {
        rng = rng * 6364136223846793005u + 1442695040888963407u;
        size_t k = (size_t)(rng >> 33) % MODEL_KEYS;
        unsigned what = (unsigned)(rng >> 20) % 4;
        char key[32], val[32], want[64];
        snprintf(key, sizeof key, "key:%zu", k);
        if (op >= 40000 && what == 0) /* the last third mostly deletes */
            what = 1;
        switch (what) {
        case 0:
            snprintf(val, sizeof val, "%llu", (unsigned long long)(rng >> 40));
            EXPECT(f, "+OK\r\n", "SET", key, val, NULL);
            present += model[k] < 0;
            model[k] = (long long)(rng >> 40);
            break;
        case 1:
            snprintf(want, sizeof want, ":%d\r\n", model[k] >= 0);
            EXPECT(f, want, "DEL", key, NULL);
            present -= model[k] >= 0;
            model[k] = -1;
            break;
        case 2:
            if (model[k] < 0) {
                EXPECT(f, "$-1\r\n", "GET", key, NULL);
            } else {
                snprintf(val, sizeof val, "%lld", model[k]);
                snprintf(want, sizeof want, "$%zu\r\n%s\r\n", strlen(val), val);
                EXPECT(f, want, "GET", key, NULL);
            }
            break;
        default:
            present += model[k] < 0;
            model[k] = model[k] < 0 ? 1 : model[k] + 1;
            snprintf(want, sizeof want, ":%lld\r\n", model[k]);
            EXPECT(f, want, "INCR", key, NULL);
            break;
        }
        assert_int_equal(resp_store_count(f->s), present);
    }
    for (size_t k = 0; k < MODEL_KEYS; k++) {
        char key[32], want[8];
        snprintf(key, sizeof key, "key:%zu", k);
        snprintf(want, sizeof want, ":%d\r\n", model[k] >= 0);
        EXPECT(f, want, "EXISTS", key, NULL);
    }
}

/* Out of memory at each allocation in turn: -ENOMEM, with the reply and the
 * keyspace as they were; then the command succeeds with the allocator back. */
static void enomem_each(fixture *f, const char *want, const char *const *argv_s, size_t argc)
{
    pg_slice argv[8];
    for (size_t i = 0; i < argc; i++)
        argv[i] = (pg_slice){ (const uint8_t *)argv_s[i], strlen(argv_s[i]) };
    for (long k = 0;; k++) {
        resp_reply_free(&f->out);
        /* Something already in the reply: a failure must not touch it. */
        pg_slice ping = { (const uint8_t *)"PING", 4 };
        assert_int_equal(resp_execute(f->s, 1, &ping, &f->out), RESP_OK);
        size_t count = resp_store_count(f->s);
        fail_countdown = k;
        int rc = resp_execute(f->s, argc, argv, &f->out);
        bool failed = fail_countdown < 0;
        fail_countdown = -1;
        if (!failed) {
            assert_int_equal(rc, RESP_OK);
            assert_int_equal(f->out.len, 7 + strlen(want));
            assert_memory_equal(f->out.data, "+PONG\r\n", 7);
            assert_memory_equal(f->out.data + 7, want, strlen(want));
            return;
        }
        assert_int_equal(rc, -ENOMEM);
        assert_int_equal(f->out.len, 7);
        assert_memory_equal(f->out.data, "+PONG\r\n", 7);
        assert_int_equal(resp_store_count(f->s), count);
    }
}

static void test_out_of_memory(void **state)
{
    fixture *f = *state;
    /* Enough keys that the next insert grows the table (48 of 64 slots). */
    for (int i = 0; i < 48; i++) {
        char key[16];
        snprintf(key, sizeof key, "fill:%d", i);
        EXPECT(f, "+OK\r\n", "SET", key, "x", NULL);
    }
    enomem_each(f, "+OK\r\n", (const char *const[]){ "SET", "k", "v" }, 3);
    EXPECT(f, "$1\r\nv\r\n", "GET", "k", NULL);
    enomem_each(f, "+OK\r\n", (const char *const[]){ "SET", "k", "a value longer than the one before it" }, 3);
    EXPECT(f, "$37\r\na value longer than the one before it\r\n", "GET", "k", NULL);
    char w100[101], want[128];
    memset(w100, 'w', 100);
    w100[100] = 0;
    enomem_each(f, "$37\r\na value longer than the one before it\r\n",
                (const char *const[]){ "SET", "k", w100, "GET" }, 4);
    snprintf(want, sizeof want, "$100\r\n%s\r\n", w100);
    EXPECT(f, want, "GET", "k", NULL);
    EXPECT(f, "+OK\r\n", "SET", "k", "w", NULL);
    enomem_each(f, ":1\r\n", (const char *const[]){ "INCR", "n" }, 2);
    EXPECT(f, "+OK\r\n", "SET", "n", "99", NULL);
    enomem_each(f, ":100\r\n", (const char *const[]){ "INCR", "n" }, 2);
    enomem_each(f, "$1\r\nw\r\n", (const char *const[]){ "GET", "k" }, 2);
    enomem_each(f, "$5\r\nhello\r\n", (const char *const[]){ "ECHO", "hello" }, 2);
    enomem_each(f, "*2\r\n$4\r\nsave\r\n$0\r\n\r\n", (const char *const[]){ "CONFIG", "GET", "save" }, 3);
    enomem_each(f, ":1\r\n", (const char *const[]){ "DEL", "k" }, 2);
    /* A new store and a first reply when nothing can be allocated. */
    fail_countdown = 0;
    assert_null(resp_store_new());
    fail_countdown = 1;
    assert_null(resp_store_new());
    fail_countdown = -1;
    resp_reply empty;
    resp_reply_init(&empty);
    pg_slice ping = { (const uint8_t *)"PING", 4 };
    fail_countdown = 0;
    assert_int_equal(resp_execute(f->s, 1, &ping, &empty), -ENOMEM);
    fail_countdown = -1;
    assert_int_equal(empty.len, 0);
}

/* The real clock: a key set with PX 1000000 is there now. */
static void test_default_clock(void **state)
{
    fixture *f = *state;
    resp_store_set_clock(f->s, NULL, NULL);
    EXPECT(f, "+OK\r\n", "SET", "k", "v", "PX", "1000000", NULL);
    EXPECT(f, ":1\r\n", "EXISTS", "k", NULL);
    EXPECT(f, "+OK\r\n", "SET", "k", "v", "EXAT", "1", NULL);
    EXPECT(f, ":0\r\n", "EXISTS", "k", NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ping_echo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_binary_safe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_del_exists, setup, teardown),
        cmocka_unit_test_setup_teardown(test_incr, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_command, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_command, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replies_accumulate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_options, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_value, setup, teardown),
        cmocka_unit_test_setup_teardown(test_model, setup, teardown),
        cmocka_unit_test_setup_teardown(test_out_of_memory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_default_clock, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
