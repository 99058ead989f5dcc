/* commands.c — the RESP example's keyspace and commands (commands.h).
 *
 * The keyspace is an open-addressing hash table (linear probing, deletion by
 * backward shift, so no tombstones) of entries holding one allocation each:
 * the key's bytes followed by the value's. Replies are appended to the
 * caller's buffer; every reply text below is redis-server 7.0's, checked
 * byte for byte against it by tests/resp/conformance.py. */
#define _POSIX_C_SOURCE 200809L
#include "commands.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- replies ---------------------------------------------------------------- */

void resp_reply_init(resp_reply *r)
{
    r->data = NULL;
    r->len = r->cap = 0;
}

void resp_reply_clear(resp_reply *r)
{
    r->len = 0;
    if (r->cap > RESP_REPLY_KEEP)
        resp_reply_free(r);
}

void resp_reply_free(resp_reply *r)
{
    free(r->data);
    resp_reply_init(r);
}

/* Room for n more bytes. */
static bool reserve(resp_reply *r, size_t n)
{
    if (r->cap - r->len >= n)
        return true;
    if (n > SIZE_MAX / 2 - r->len)
        return false;
    size_t cap = r->cap ? r->cap : 4096;
    while (cap - r->len < n)
        cap *= 2;
    uint8_t *p = realloc(r->data, cap);
    if (p == NULL)
        return false;
    r->data = p;
    r->cap = cap;
    return true;
}

/* The add_* functions write into room already reserved. */
static void add(resp_reply *r, const void *p, size_t n)
{
    memcpy(r->data + r->len, p, n);
    r->len += n;
}

#define ADD_LIT(r, s) add((r), (s), sizeof(s) - 1)

/* Decimal digits of v, without printf. */
static void add_u64(resp_reply *r, uint64_t v)
{
    char buf[20];
    char *p = buf + sizeof buf;
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    add(r, p, (size_t)(buf + sizeof buf - p));
}

static void add_i64(resp_reply *r, int64_t v)
{
    if (v < 0) {
        r->data[r->len++] = '-';
        add_u64(r, (uint64_t)0 - (uint64_t)v);
    } else {
        add_u64(r, (uint64_t)v);
    }
}

/* ":v\r\n" */
static void add_integer(resp_reply *r, int64_t v)
{
    r->data[r->len++] = ':';
    add_i64(r, v);
    ADD_LIT(r, "\r\n");
}

/* The most a bulk string's header and trailer take: "$" 20 digits "\r\n" ... "\r\n". */
#define BULK_OVERHEAD 25

/* "$n\r\n<n bytes>\r\n", room for it reserved by the caller (n + BULK_OVERHEAD). */
static void add_bulk(resp_reply *r, const uint8_t *p, size_t n)
{
    r->data[r->len++] = '$';
    add_u64(r, n);
    ADD_LIT(r, "\r\n");
    add(r, p, n);
    ADD_LIT(r, "\r\n");
}

/* Up to max bytes of p as redis formats user text into an error line: as a
 * C string (it ends at a NUL byte) with CR and LF made spaces. Returns the
 * bytes written. */
static size_t add_error_text(resp_reply *r, const uint8_t *p, size_t n, size_t max)
{
    size_t i;
    for (i = 0; i < n && i < max && p[i] != 0; i++)
        r->data[r->len++] = p[i] == '\r' || p[i] == '\n' ? ' ' : p[i];
    return i;
}

/* ---- the keyspace --------------------------------------------------------------- */

#define NO_EXPIRE INT64_MIN

typedef struct entry {
    uint8_t *kv; /* key then value, one allocation; NULL: the slot is free */
    uint64_t hash;
    size_t klen, vlen, vcap;
    int64_t expire; /* ms since the epoch, or NO_EXPIRE */
} entry;

struct resp_store {
    entry *slots;
    size_t mask; /* slots - 1, a power of two minus one */
    size_t count;
    uint64_t seed;
    int64_t (*now_ms)(void *ctx);
    void *clock_ctx;
};

#define MIN_SLOTS 64

static int64_t realtime_ms(void *ctx)
{
    (void)ctx;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

resp_store *resp_store_new(void)
{
    resp_store *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->slots = calloc(MIN_SLOTS, sizeof *s->slots);
    if (s->slots == NULL) {
        free(s);
        return NULL;
    }
    s->mask = MIN_SLOTS - 1;
    s->now_ms = realtime_ms;
    /* A per-process seed, so that which keys collide is not known in advance. */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    s->seed = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)s;
    return s;
}

void resp_store_free(resp_store *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i <= s->mask; i++)
        free(s->slots[i].kv);
    free(s->slots);
    free(s);
}

size_t resp_store_count(const resp_store *s)
{
    return s->count;
}

void resp_store_set_clock(resp_store *s, int64_t (*now_ms)(void *ctx), void *ctx)
{
    s->now_ms = now_ms ? now_ms : realtime_ms;
    s->clock_ctx = ctx;
}

static uint64_t mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9u;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebu;
    return x ^ (x >> 31);
}

/* Eight bytes at a time, each word folded in with a multiply. */
static uint64_t hash_key(uint64_t seed, const uint8_t *p, size_t n)
{
    uint64_t h = seed ^ (n * 0x9e3779b97f4a7c15u);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ mix(w)) * 0x9e3779b97f4a7c15u;
        p += 8;
        n -= 8;
    }
    uint64_t w = 0;
    for (size_t i = 0; i < n; i++)
        w |= (uint64_t)p[i] << (8 * i);
    return mix(h ^ w);
}

#define NOT_FOUND SIZE_MAX

static size_t find(const resp_store *s, const pg_slice *key, uint64_t h)
{
    for (size_t i = h & s->mask;; i = (i + 1) & s->mask) {
        const entry *e = &s->slots[i];
        if (e->kv == NULL)
            return NOT_FOUND;
        if (e->hash == h && e->klen == key->len && memcmp(e->kv, key->data, key->len) == 0)
            return i;
    }
}

static void remove_at(resp_store *s, size_t i)
{
    free(s->slots[i].kv);
    /* Shift back each following entry of the run that may sit closer to its home. */
    for (size_t j = (i + 1) & s->mask; s->slots[j].kv != NULL; j = (j + 1) & s->mask) {
        size_t home = s->slots[j].hash & s->mask;
        if (((j - home) & s->mask) >= ((j - i) & s->mask)) {
            s->slots[i] = s->slots[j];
            i = j;
        }
    }
    s->slots[i].kv = NULL;
    s->count--;
}

static bool expired(const resp_store *s, const entry *e)
{
    return e->expire != NO_EXPIRE && s->now_ms(s->clock_ctx) > e->expire;
}

/* The live entry for key (an expired one is removed), or NULL. */
static entry *lookup(resp_store *s, const pg_slice *key, uint64_t h)
{
    size_t i = find(s, key, h);
    if (i == NOT_FOUND)
        return NULL;
    if (expired(s, &s->slots[i])) {
        remove_at(s, i);
        return NULL;
    }
    return &s->slots[i];
}

/* Room for one more key: the table stays at most 3/4 full. */
static bool make_room(resp_store *s)
{
    size_t slots = s->mask + 1;
    if ((s->count + 1) * 4 <= slots * 3)
        return true;
    if (slots > SIZE_MAX / 2 / sizeof(entry))
        return false;
    entry *grown = calloc(slots * 2, sizeof *grown);
    if (grown == NULL)
        return false;
    size_t mask = slots * 2 - 1;
    for (size_t i = 0; i < slots; i++) {
        if (s->slots[i].kv == NULL)
            continue;
        size_t j = s->slots[i].hash & mask;
        while (grown[j].kv != NULL)
            j = (j + 1) & mask;
        grown[j] = s->slots[i];
    }
    free(s->slots);
    s->slots = grown;
    s->mask = mask;
    return true;
}

/* A new key (not present, room made) with its value; NULL when out of memory. */
static entry *insert(resp_store *s, const pg_slice *key, uint64_t h, const uint8_t *val, size_t vlen)
{
    if (vlen > SIZE_MAX - key->len)
        return NULL;
    uint8_t *kv = malloc(key->len + vlen + (key->len + vlen == 0));
    if (kv == NULL)
        return NULL;
    memcpy(kv, key->data, key->len);
    if (vlen)
        memcpy(kv + key->len, val, vlen);
    size_t i = h & s->mask;
    while (s->slots[i].kv != NULL)
        i = (i + 1) & s->mask;
    s->slots[i] = (entry){ kv, h, key->len, vlen, vlen, NO_EXPIRE };
    s->count++;
    return &s->slots[i];
}

/* A new value for an existing key; false when out of memory (the old one stays). */
static bool replace_value(entry *e, const uint8_t *val, size_t vlen)
{
    /* Reuse the allocation unless it is too small or far too large. */
    if (vlen > e->vcap || e->vcap > 2 * vlen + 64) {
        if (vlen > SIZE_MAX - e->klen)
            return false;
        uint8_t *kv = realloc(e->kv, e->klen + vlen + (e->klen + vlen == 0));
        if (kv == NULL)
            return false;
        e->kv = kv;
        e->vcap = vlen;
    }
    if (vlen)
        memmove(e->kv + e->klen, val, vlen);
    e->vlen = vlen;
    return true;
}

/* ---- helpers for the commands ---------------------------------------------------- */

/* a equals the lowercase letters `lower`, in any case. Setting bit 0x20 maps
 * only 'A'..'Z' and 'a'..'z' onto lowercase letters, so this is exact for names
 * made of letters. */
static bool is_word(const pg_slice *a, const char *lower, size_t n)
{
    if (a->len != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((a->data[i] | 0x20) != (uint8_t)lower[i])
            return false;
    return true;
}

#define IS(a, lit) is_word((a), (lit), sizeof(lit) - 1)

/* A decimal integer as redis reads one (string2ll): an optional '-', no
 * leading zeros, no sign '+', no spaces, at most 20 characters, in range. */
static bool parse_i64(const uint8_t *p, size_t n, int64_t *out)
{
    if (n == 0 || n > 20)
        return false;
    if (n == 1 && p[0] == '0') {
        *out = 0;
        return true;
    }
    bool neg = p[0] == '-';
    size_t i = neg;
    if (i == n || p[i] < '1' || p[i] > '9')
        return false;
    uint64_t v = 0;
    for (; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        unsigned d = (unsigned)(p[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    if (neg) {
        if (v > (uint64_t)INT64_MAX + 1)
            return false;
        *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    } else {
        if (v > (uint64_t)INT64_MAX)
            return false;
        *out = (int64_t)v;
    }
    return true;
}

/* Every fixed-size reply below fits in this much room, reserved up front so
 * that a command that changes the keyspace cannot then fail to reply: the
 * longest, the unknown command error, is under 350 bytes. */
#define SMALL_REPLY 512

static void wrong_arity(resp_reply *out, const char *name, size_t n)
{
    ADD_LIT(out, "-ERR wrong number of arguments for '");
    add(out, name, n);
    ADD_LIT(out, "' command\r\n");
}

#define WRONG_ARITY(out, lit) wrong_arity((out), (lit), sizeof(lit) - 1)

static void not_integer(resp_reply *out)
{
    ADD_LIT(out, "-ERR value is not an integer or out of range\r\n");
}

/* redis: "unknown command '%.128s', with args beginning with: " then
 * "'%.*s' " per argument while the list is under 128 bytes, each argument cut
 * to what keeps it at 128. */
static void unknown_command(resp_reply *out, size_t argc, const pg_slice *argv)
{
    ADD_LIT(out, "-ERR unknown command '");
    add_error_text(out, argv[0].data, argv[0].len, 128);
    ADD_LIT(out, "', with args beginning with: ");
    size_t listed = 0;
    for (size_t i = 1; i < argc && listed < 128; i++) {
        out->data[out->len++] = '\'';
        listed += add_error_text(out, argv[i].data, argv[i].len, 128 - listed) + 3;
        ADD_LIT(out, "' ");
    }
    ADD_LIT(out, "\r\n");
}

/* ---- the commands ------------------------------------------------------------------- */

static int cmd_get(resp_store *s, const pg_slice *key, resp_reply *out)
{
    entry *e = lookup(s, key, hash_key(s->seed, key->data, key->len));
    if (e == NULL) {
        ADD_LIT(out, "$-1\r\n");
        return RESP_OK;
    }
    if (!reserve(out, e->vlen + BULK_OVERHEAD))
        return -ENOMEM;
    add_bulk(out, e->kv + e->klen, e->vlen);
    return RESP_OK;
}

#define SET_NX 1u
#define SET_XX 2u
#define SET_GET 4u
#define SET_KEEPTTL 8u
#define SET_EX 16u
#define SET_PX 32u
#define SET_EXAT 64u
#define SET_PXAT 128u
#define SET_EXPIRY (SET_EX | SET_PX | SET_EXAT | SET_PXAT)

/* SET key value [NX | XX] [GET] [EX s | PX ms | EXAT s | PXAT ms | KEEPTTL],
 * options in any order and case, repeated ones allowed where redis allows them. */
static int cmd_set(resp_store *s, size_t argc, const pg_slice *argv, resp_reply *out)
{
    unsigned flags = 0;
    const pg_slice *when = NULL;
    for (size_t j = 3; j < argc; j++) {
        const pg_slice *o = &argv[j];
        bool next = j + 1 < argc;
        unsigned unit = IS(o, "ex") ? SET_EX : IS(o, "px") ? SET_PX : IS(o, "exat") ? SET_EXAT
                      : IS(o, "pxat") ? SET_PXAT : 0;
        if (IS(o, "nx") && !(flags & SET_XX)) {
            flags |= SET_NX;
        } else if (IS(o, "xx") && !(flags & SET_NX)) {
            flags |= SET_XX;
        } else if (IS(o, "get")) {
            flags |= SET_GET;
        } else if (IS(o, "keepttl") && !(flags & SET_EXPIRY)) {
            flags |= SET_KEEPTTL;
        } else if (unit && next && !(flags & SET_KEEPTTL) && !(flags & SET_EXPIRY & ~unit)) {
            flags |= unit;
            when = &argv[++j];
        } else {
            ADD_LIT(out, "-ERR syntax error\r\n");
            return RESP_OK;
        }
    }
    int64_t expire = NO_EXPIRE;
    if (when) {
        int64_t v;
        if (!parse_i64(when->data, when->len, &v)) {
            not_integer(out);
            return RESP_OK;
        }
        bool seconds = flags & (SET_EX | SET_EXAT);
        bool ok = v > 0 && !(seconds && v > INT64_MAX / 1000);
        if (ok && seconds)
            v *= 1000;
        if (ok && (flags & (SET_EX | SET_PX))) {
            int64_t now = s->now_ms(s->clock_ctx);
            ok = v <= INT64_MAX - now; /* redis' sum would wrap negative: the same error */
            v += ok ? now : 0;
        }
        if (!ok) {
            ADD_LIT(out, "-ERR invalid expire time in 'set' command\r\n");
            return RESP_OK;
        }
        expire = v;
    }

    const pg_slice *key = &argv[1], *val = &argv[2];
    uint64_t h = hash_key(s->seed, key->data, key->len);
    entry *e = lookup(s, key, h);
    if (flags & SET_GET) {
        if (e == NULL)
            ADD_LIT(out, "$-1\r\n");
        else if (!reserve(out, e->vlen + BULK_OVERHEAD))
            return -ENOMEM;
        else
            add_bulk(out, e->kv + e->klen, e->vlen);
    }
    if (((flags & SET_NX) && e != NULL) || ((flags & SET_XX) && e == NULL)) {
        if (!(flags & SET_GET))
            ADD_LIT(out, "$-1\r\n");
        return RESP_OK;
    }
    if (e != NULL) {
        if (!replace_value(e, val->data, val->len))
            return -ENOMEM;
        if (!(flags & SET_KEEPTTL))
            e->expire = expire;
    } else {
        if (!make_room(s) || (e = insert(s, key, h, val->data, val->len)) == NULL)
            return -ENOMEM;
        e->expire = expire;
    }
    if (!(flags & SET_GET))
        ADD_LIT(out, "+OK\r\n");
    return RESP_OK;
}

/* INCR: a missing key counts as 0; the key keeps its expiry time. */
static int cmd_incr(resp_store *s, const pg_slice *key, resp_reply *out)
{
    uint64_t h = hash_key(s->seed, key->data, key->len);
    entry *e = lookup(s, key, h);
    int64_t v = 0;
    if (e != NULL && !parse_i64(e->kv + e->klen, e->vlen, &v)) {
        not_integer(out);
        return RESP_OK;
    }
    if (v == INT64_MAX) {
        ADD_LIT(out, "-ERR increment or decrement would overflow\r\n");
        return RESP_OK;
    }
    v++;
    /* The new value's digits, in the room reserved for the reply. */
    size_t mark = out->len;
    add_i64(out, v);
    size_t n = out->len - mark;
    out->len = mark;
    uint8_t digits[21];
    memcpy(digits, out->data + mark, n);
    if (e != NULL) {
        if (!replace_value(e, digits, n))
            return -ENOMEM;
    } else if (!make_room(s) || insert(s, key, h, digits, n) == NULL) {
        return -ENOMEM;
    }
    add_integer(out, v);
    return RESP_OK;
}

/* DEL and EXISTS: how many of the keys are (were) there; EXISTS counts a key
 * named twice twice, DEL deletes it once. */
static int cmd_keys(resp_store *s, size_t argc, const pg_slice *argv, bool del, resp_reply *out)
{
    int64_t n = 0;
    for (size_t i = 1; i < argc; i++) {
        uint64_t h = hash_key(s->seed, argv[i].data, argv[i].len);
        size_t at = find(s, &argv[i], h);
        if (at == NOT_FOUND)
            continue;
        if (expired(s, &s->slots[at])) {
            remove_at(s, at);
            continue;
        }
        n++;
        if (del)
            remove_at(s, at);
    }
    add_integer(out, n);
    return RESP_OK;
}

/* CONFIG GET name...: the configuration as `redis-server --save ''
 * --appendonly no` has it, for the names redis-benchmark asks. A name is
 * echoed as asked; asked twice (in any case), it is listed once. */
static int cmd_config_get(size_t argc, const pg_slice *argv, resp_reply *out)
{
    static const struct { const char *name; size_t len; const char *value; size_t vlen; } known[] = {
        { "save", 4, "", 0 },
        { "appendonly", 10, "no", 2 },
    };
    size_t found_at[sizeof known / sizeof known[0]]; /* the argument that asked, or 0 */
    size_t matches = 0, room = 16;
    memset(found_at, 0, sizeof found_at);
    for (size_t i = 2; i < argc; i++)
        for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
            if (found_at[k] == 0 && is_word(&argv[i], known[k].name, known[k].len)) {
                found_at[k] = i;
                matches++;
                room += 2 * BULK_OVERHEAD + argv[i].len + known[k].vlen;
            }
    if (!reserve(out, room))
        return -ENOMEM;
    out->data[out->len++] = '*';
    add_u64(out, 2 * matches);
    ADD_LIT(out, "\r\n");
    for (size_t i = 2; i < argc; i++) /* in the order asked */
        for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
            if (found_at[k] == i) {
                add_bulk(out, argv[i].data, argv[i].len);
                add_bulk(out, (const uint8_t *)known[k].value, known[k].vlen);
            }
    return RESP_OK;
}

static int cmd_config(size_t argc, const pg_slice *argv, resp_reply *out)
{
    if (argc < 2) {
        WRONG_ARITY(out, "config");
        return RESP_OK;
    }
    if (IS(&argv[1], "get")) {
        if (argc < 3) {
            WRONG_ARITY(out, "config|get");
            return RESP_OK;
        }
        return cmd_config_get(argc, argv, out);
    }
    ADD_LIT(out, "-ERR unknown subcommand '");
    add_error_text(out, argv[1].data, argv[1].len, 128);
    ADD_LIT(out, "'. Try CONFIG HELP.\r\n");
    return RESP_OK;
}

/* ---- dispatch ------------------------------------------------------------------------- */

static int dispatch(resp_store *s, size_t argc, const pg_slice *argv, resp_reply *out)
{
    const pg_slice *name = &argv[0];
    /* By length first, then the letters in any case: no copy, no table. */
    switch (name->len) {
    case 3:
        if (IS(name, "get")) {
            if (argc != 2)
                break;
            return cmd_get(s, &argv[1], out);
        }
        if (IS(name, "set")) {
            if (argc < 3)
                break;
            return cmd_set(s, argc, argv, out);
        }
        if (IS(name, "del")) {
            if (argc < 2)
                break;
            return cmd_keys(s, argc, argv, true, out);
        }
        goto unknown;
    case 4:
        if (IS(name, "ping")) {
            if (argc > 2)
                break;
            if (argc == 1) {
                ADD_LIT(out, "+PONG\r\n");
                return RESP_OK;
            }
            if (!reserve(out, argv[1].len + BULK_OVERHEAD))
                return -ENOMEM;
            add_bulk(out, argv[1].data, argv[1].len);
            return RESP_OK;
        }
        if (IS(name, "echo")) {
            if (argc != 2)
                break;
            if (!reserve(out, argv[1].len + BULK_OVERHEAD))
                return -ENOMEM;
            add_bulk(out, argv[1].data, argv[1].len);
            return RESP_OK;
        }
        if (IS(name, "incr")) {
            if (argc != 2)
                break;
            return cmd_incr(s, &argv[1], out);
        }
        if (IS(name, "quit")) { /* any arguments */
            ADD_LIT(out, "+OK\r\n");
            return RESP_CLOSE;
        }
        goto unknown;
    case 6:
        if (IS(name, "exists")) {
            if (argc < 2)
                break;
            return cmd_keys(s, argc, argv, false, out);
        }
        if (IS(name, "config"))
            return cmd_config(argc, argv, out);
        goto unknown;
    default:
        goto unknown;
    }
    /* A known command with the wrong number of arguments: its name in lowercase. */
    char lower[8];
    for (size_t i = 0; i < name->len; i++)
        lower[i] = (char)(name->data[i] | 0x20);
    wrong_arity(out, lower, name->len);
    return RESP_OK;
unknown:
    unknown_command(out, argc, argv);
    return RESP_OK;
}

int resp_execute(resp_store *s, size_t argc, const pg_slice *argv, resp_reply *out)
{
    if (argc == 0)
        return RESP_OK;
    if (!reserve(out, SMALL_REPLY))
        return -ENOMEM;
    size_t mark = out->len;
    int rc = dispatch(s, argc, argv, out);
    if (rc < 0)
        out->len = mark;
    return rc;
}
