/* The split harness (split.h): fixture files in, one cmocka group per file,
 * one test per output capacity and way of cutting the input. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core_internal.h" /* pg__trace_reset: restart the trace's numbering per run */
#include "protogen/manual.h"
#include "split.h"

/* ---- text ----------------------------------------------------------------- */

void split_text_add(split_text *t, const void *data, size_t len)
{
    if (t->len + len + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 256;
        while (cap < t->len + len + 1)
            cap *= 2;
        char *p = realloc(t->data, cap);
        assert_non_null(p);
        t->data = p;
        t->cap = cap;
    }
    if (len > 0)
        memcpy(t->data + t->len, data, len);
    t->len += len;
    t->data[t->len] = '\0';
}

void split_text_printf(split_text *t, const char *fmt, ...)
{
    va_list ap, again;
    va_start(ap, fmt);
    va_copy(again, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    assert_true(n >= 0);
    char *buf = malloc((size_t)n + 1); /* a whole result, however long */
    assert_non_null(buf);
    (void)vsnprintf(buf, (size_t)n + 1, fmt, again);
    va_end(again);
    split_text_add(t, buf, (size_t)n);
    free(buf);
}

void split_text_escaped(split_text *t, const uint8_t *data, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        uint8_t c = data[i];
        if (c == '\n')
            split_text_add(t, "\\n", 2);
        else if (c == '\r')
            split_text_add(t, "\\r", 2);
        else if (c == '\t')
            split_text_add(t, "\\t", 2);
        else if (c == '\\')
            split_text_add(t, "\\\\", 2);
        else if (c < 0x20 || c >= 0x7f || (c == '#' && i == 0) || (c == '@' && i == 0))
            split_text_printf(t, "\\x%02x", c);
        else
            split_text_add(t, &c, 1);
    }
}

void split_text_free(split_text *t)
{
    free(t->data);
    *t = (split_text){ 0 };
}

static const char *text_str(const split_text *t)
{
    return t->data != NULL ? t->data : "";
}

static bool text_equal(const split_text *a, const split_text *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

/* ---- fixtures --------------------------------------------------------------- */

enum split_mode { MODE_WHOLE, MODE_BYTES, MODE_EVERY, MODE_RANDOM, N_MODES };
static const char *const mode_names[N_MODES] = { "whole", "bytes", "every", "random" };

#define MAX_CAPACITIES 8
#define MAX_TRACES (MAX_CAPACITIES + 1)

typedef struct fixture {
    char *path;
    const split_protocol *proto;
    char *arg;
    bool eof;
    bool limits;
    size_t high, low;
    size_t capacities[MAX_CAPACITIES];
    size_t n_capacities;
    bool modes[N_MODES];
    unsigned n_random;
    split_text input, output, end, report;
    bool has_output, has_end, has_report;
    struct {
        size_t capacity; /* 0: every capacity without a section of its own */
        split_text text;
    } traces[MAX_TRACES];
    size_t n_traces;
} fixture;

static char *dup_str(const char *s)
{
    char *p = strdup(s);
    assert_non_null(p);
    return p;
}

static int hex(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* One data line: C escapes; the line break itself is no byte. */
static bool unescape(split_text *out, const char *s)
{
    for (; *s; s++) {
        if (*s != '\\') {
            split_text_add(out, s, 1);
            continue;
        }
        char c = *++s, b;
        switch (c) {
        case 'n': b = '\n'; break;
        case 'r': b = '\r'; break;
        case 't': b = '\t'; break;
        case '0': b = '\0'; break;
        case '\\': b = '\\'; break;
        case 'x':
            if (hex(s[1]) < 0 || hex(s[2]) < 0)
                return false;
            b = (char)(hex(s[1]) * 16 + hex(s[2]));
            s += 2;
            break;
        default:
            return false;
        }
        split_text_add(out, &b, 1);
    }
    return true;
}

static bool data_line(fixture *f, split_text *out, const char *line)
{
    unsigned long n, a, b;
    int used = 0;
    if (sscanf(line, "@repeat %lu %n", &n, &used) == 1 && used > 0) {
        split_text once = { 0 };
        bool ok = unescape(&once, line + used);
        for (unsigned long i = 0; ok && i < n; i++)
            split_text_add(out, once.data, once.len);
        split_text_free(&once);
        return ok;
    }
    if (sscanf(line, "@range %lu %lu", &a, &b) == 2 && a <= b && b <= 255) {
        for (unsigned long i = a; i <= b; i++) {
            uint8_t c = (uint8_t)i;
            split_text_add(out, &c, 1);
        }
        return true;
    }
    if (strcmp(line, "@input") == 0 && out != &f->input) {
        split_text_add(out, f->input.data, f->input.len);
        return true;
    }
    return line[0] != '@' && unescape(out, line);
}

static bool header_line(fixture *f, const char *line, const split_protocol *protocols, size_t n_protocols)
{
    char word[64];
    int used = 0;
    if (sscanf(line, "%63s %n", word, &used) != 1)
        return false;
    const char *rest = line + used;
    if (strcmp(word, "protocol") == 0) {
        for (size_t i = 0; i < n_protocols; i++)
            if (strcmp(protocols[i].name, rest) == 0)
                f->proto = &protocols[i];
        return f->proto != NULL;
    }
    if (strcmp(word, "arg") == 0) {
        free(f->arg);
        f->arg = dup_str(rest);
        return true;
    }
    if (strcmp(word, "eof") == 0)
        return (f->eof = true);
    if (strcmp(word, "limits") == 0)
        return (f->limits = sscanf(rest, "%zu %zu", &f->high, &f->low) == 2);
    if (strcmp(word, "random") == 0)
        return sscanf(rest, "%u", &f->n_random) == 1;
    if (strcmp(word, "capacity") == 0) {
        f->n_capacities = 0;
        for (int k = 0; f->n_capacities < MAX_CAPACITIES && sscanf(rest, "%zu %n", &f->capacities[f->n_capacities], &k) == 1;
             rest += k)
            f->n_capacities++;
        return f->n_capacities > 0 && *rest == '\0';
    }
    if (strcmp(word, "splits") == 0) {
        memset(f->modes, 0, sizeof f->modes);
        for (int k = 0; sscanf(rest, "%63s %n", word, &k) == 1; rest += k) {
            size_t m = 0;
            while (m < N_MODES && strcmp(mode_names[m], word) != 0)
                m++;
            if (m == N_MODES)
                return false;
            f->modes[m] = true;
        }
        return true;
    }
    return false;
}

static void fixture_free(fixture *f)
{
    free(f->path);
    free(f->arg);
    split_text_free(&f->input);
    split_text_free(&f->output);
    split_text_free(&f->end);
    split_text_free(&f->report);
    for (size_t i = 0; i < f->n_traces; i++)
        split_text_free(&f->traces[i].text);
    free(f);
}

/* NULL, with a message on stderr, when the file is not a valid fixture. */
static fixture *fixture_load(const char *path, const split_protocol *protocols, size_t n_protocols)
{
    FILE *in = fopen(path, "r");
    if (in == NULL) {
        fprintf(stderr, "%s: cannot open\n", path);
        return NULL;
    }
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->path = dup_str(path);
    f->n_capacities = 3;
    f->capacities[0] = 256 * 1024; /* the manual stream's default: room for everything */
    f->capacities[1] = 4096;
    f->capacities[2] = 1; /* the peer takes a byte at a time: the write buffer fills */
    for (size_t m = 0; m < N_MODES; m++)
        f->modes[m] = true;
    f->n_random = 16;

    enum { HEADER, DATA, TEXT } kind = HEADER;
    split_text *section = NULL;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    unsigned lineno = 0;
    bool ok = true;
    while (ok && (len = getline(&line, &cap, in)) >= 0) {
        lineno++;
        if (len > 0 && line[len - 1] == '\n')
            line[--len] = '\0';
        if (len == 0 || line[0] == '#')
            continue;
        size_t trace_cap;
        if (strcmp(line, "[input]") == 0 || strcmp(line, "[output]") == 0) {
            kind = DATA;
            section = line[1] == 'i' ? &f->input : &f->output;
            f->has_output |= section == &f->output;
        } else if (strcmp(line, "[end]") == 0 || strcmp(line, "[report]") == 0) {
            kind = TEXT;
            section = line[1] == 'e' ? &f->end : &f->report;
            f->has_end |= section == &f->end;
            f->has_report |= section == &f->report;
        } else if (strcmp(line, "[trace]") == 0 || sscanf(line, "[trace %zu]", &trace_cap) == 1) {
            ok = f->n_traces < MAX_TRACES;
            if (ok) {
                kind = TEXT;
                f->traces[f->n_traces].capacity = line[6] == ']' ? 0 : trace_cap;
                section = &f->traces[f->n_traces++].text;
            }
        } else if (kind == HEADER) {
            ok = header_line(f, line, protocols, n_protocols);
        } else if (kind == DATA) {
            ok = data_line(f, section, line);
        } else {
            split_text_add(section, line, (size_t)len);
            split_text_add(section, "\n", 1);
        }
    }
    free(line);
    fclose(in);
    if (ok && f->proto == NULL) {
        fprintf(stderr, "%s: no protocol line (or no such protocol in this program)\n", path);
        fixture_free(f);
        return NULL;
    }
    if (!ok) {
        fprintf(stderr, "%s:%u: not understood\n", path, lineno);
        fixture_free(f);
        return NULL;
    }
    return f;
}

static const split_text *expected_trace(const fixture *f, size_t capacity)
{
    const split_text *any = NULL;
    for (size_t i = 0; i < f->n_traces; i++) {
        if (f->traces[i].capacity == capacity)
            return &f->traces[i].text;
        if (f->traces[i].capacity == 0)
            any = &f->traces[i].text;
    }
    return any;
}

/* ---- the trace ---------------------------------------------------------------- */

static char trace_path[] = "/tmp/protogen-split-XXXXXX";

/* Each run's trace starts empty, numbered from 1. */
static void trace_restart(void)
{
    assert_int_equal(truncate(trace_path, 0), 0);
    pg__trace_reset();
    assert_true(pg__trace_fd >= 0);
}

static void trace_read(split_text *raw)
{
    int fd = open(trace_path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    char buf[65536];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        split_text_add(raw, buf, (size_t)n);
    assert_true(n == 0);
    close(fd);
}

/* What legitimately differs between two cuts of the same input, and so is
 * normalised away before traces are compared:
 *  - how many reads there are and how big: data_received, get_buffer and
 *    buffer_updated lose their detail and a run of them becomes one line
 *    (get_buffer and buffer_updated count as one kind). Sizes are not summed:
 *    a read that carries a protocol switch hands part of its bytes on, so the
 *    old protocol's count depends on the cut. The bytes themselves are
 *    checked by the output and the protocol's report.
 *  - how often the write buffer crosses the watermarks, and how full it is
 *    then: pause_writing and resume_writing lose their detail, a read run
 *    interrupted by a pause/resume pair closes over it (X P R X is X P R),
 *    and repeated pairs are one (P R P R is P R). A whole input makes the
 *    protocol write it in one go; byte by byte the buffer fills and drains
 *    many times. Whether the protocol's writes went above the high
 *    watermark at all does not depend on the cut, since the peer reads only
 *    while the protocol does not, and all of it before its EOF
 *    (run_fixture() below).
 *  - where reads fall between the messages of a framed protocol: a
 *    data_received right after a message_received goes, and after a
 *    pause/resume pair that follows one (M X is M, M P R X is M P R); the
 *    messages, their order and sizes stay (a buffered protocol that the
 *    connection was switched to keeps its reads). */
typedef struct norm {
    char lines[64][128]; /* the tail that may still reduce; the rest is in out */
    size_t n;
} norm;

static bool is_read(const char *line)
{
    const char *cb = strchr(line, ' ');
    return cb != NULL && (strcmp(cb, " data_received") == 0 || strcmp(cb, " get_buffer/buffer_updated") == 0);
}

static bool is_cb(const char *line, const char *cb)
{
    const char *sp = strchr(line, ' ');
    return sp != NULL && strcmp(sp + 1, cb) == 0;
}

static bool same_conn(const char *a, const char *b)
{
    size_t la = strcspn(a, " "), lb = strcspn(b, " ");
    return la == lb && memcmp(a, b, la) == 0;
}

static bool is_message(const char *line)
{
    const char *sp = strchr(line, ' ');
    return sp != NULL && strncmp(sp + 1, "message_received ", 17) == 0;
}

/* A state change of the protocol's own machine ("<conn> state <from> <to>"). */
static bool is_state(const char *line)
{
    const char *sp = strchr(line, ' ');
    return sp != NULL && strncmp(sp + 1, "state ", 6) == 0;
}

/* Whether the lines before line i are a message, then one or more state changes, all of i's connection. */
static bool after_state_changes(char (*l)[128], size_t i)
{
    size_t j = i;
    while (j > 0 && is_state(l[j - 1]) && same_conn(l[j - 1], l[i]))
        j--;
    return j < i && j > 0 && is_message(l[j - 1]) && same_conn(l[j - 1], l[i]);
}

static void norm_reduce(norm *nm)
{
    for (;;) {
        char(*l)[128] = nm->lines;
        size_t n = nm->n;
        if (n >= 2 && is_read(l[n - 1]) && strcmp(l[n - 1], l[n - 2]) == 0) {
            nm->n -= 1; /* X X */
        } else if (n >= 2 && is_cb(l[n - 1], "data_received") && is_message(l[n - 2]) && same_conn(l[n - 1], l[n - 2])) {
            nm->n -= 1; /* M X */
        } else if (n >= 3 && is_cb(l[n - 1], "data_received") && after_state_changes(l, n - 1)) {
            nm->n -= 1; /* M S... X: a message that changed the state (once or more), then a read */
        } else if (n >= 4 && is_cb(l[n - 1], "data_received") && is_message(l[n - 4]) && is_cb(l[n - 3], "pause_writing") &&
                   is_cb(l[n - 2], "resume_writing") && same_conn(l[n - 1], l[n - 4])) {
            nm->n -= 1; /* M P R X */
        } else if (n >= 4 && is_read(l[n - 1]) && strcmp(l[n - 1], l[n - 4]) == 0 &&
                   is_cb(l[n - 3], "pause_writing") && is_cb(l[n - 2], "resume_writing") &&
                   same_conn(l[n - 1], l[n - 3]) && same_conn(l[n - 1], l[n - 2])) {
            nm->n -= 1; /* X P R X */
        } else if (n >= 4 && strcmp(l[n - 1], l[n - 3]) == 0 && strcmp(l[n - 2], l[n - 4]) == 0 &&
                   is_cb(l[n - 2], "pause_writing") && is_cb(l[n - 1], "resume_writing")) {
            nm->n -= 2; /* P R P R */
        } else {
            return;
        }
    }
}

static void trace_normalise(const split_text *raw, split_text *out)
{
    norm nm = { .n = 0 };
    const char *p = text_str(raw);
    while (*p) {
        size_t len = strcspn(p, "\n");
        char line[128];
        snprintf(line, sizeof line, "%.*s", (int)(len < 127 ? len : 127), p);
        p += len + (p[len] == '\n');
        unsigned long conn;
        char cb[64];
        if (sscanf(line, "%lu %63s", &conn, cb) != 2) {
            snprintf(cb, sizeof cb, "?"); /* kept as it is: a malformed line fails the comparison */
        } else if (strcmp(cb, "data_received") == 0 || strcmp(cb, "pause_writing") == 0 ||
                   strcmp(cb, "resume_writing") == 0) {
            snprintf(line, sizeof line, "%lu %s", conn, cb);
        } else if (strcmp(cb, "get_buffer") == 0 || strcmp(cb, "buffer_updated") == 0) {
            snprintf(line, sizeof line, "%lu get_buffer/buffer_updated", conn);
        }
        if (nm.n == sizeof nm.lines / sizeof nm.lines[0]) {
            /* The oldest line can no longer reduce with anything (a rule spans 4). */
            split_text_printf(out, "%s\n", nm.lines[0]);
            memmove(nm.lines[0], nm.lines[1], (nm.n - 1) * sizeof nm.lines[0]);
            nm.n--;
        }
        snprintf(nm.lines[nm.n++], sizeof nm.lines[0], "%s", line);
        norm_reduce(&nm);
    }
    for (size_t i = 0; i < nm.n; i++)
        split_text_printf(out, "%s\n", nm.lines[i]);
}

/* ---- one run --------------------------------------------------------------- */

typedef struct run_result {
    split_text output, end, report, trace;
} run_result;

static void run_result_free(run_result *r)
{
    split_text_free(&r->output);
    split_text_free(&r->end);
    split_text_free(&r->report);
    split_text_free(&r->trace);
}

typedef struct run {
    pg_manual_host *mh;
    pg_manual_stream *ms;
    run_result *result;
} run;

/* Runs the deferred calls until none wait. */
static void settle(run *r)
{
    for (int i = 0; pg_manual_host_pending(r->mh); i++) {
        assert_true(i < 1000000);
        pg_manual_host_run(r->mh);
    }
}

/* The peer reads what the output holds (at most the capacity); false when
 * it holds nothing. */
static bool drain_step(run *r)
{
    size_t len;
    const uint8_t *out = pg_manual_stream_output(r->ms, &len);
    if (len == 0)
        return false;
    split_text_add(&r->result->output, out, len);
    pg_manual_stream_consume(r->ms, len);
    settle(r);
    return true;
}

static bool closing(run *r)
{
    pg_transport *t = pg_manual_stream_transport(r->ms);
    return t == NULL || pg_transport_is_closing(t);
}

/* The peer sends the input in the given chunks and reads the output only
 * while the protocol does not read; then it reads everything, shuts its
 * write side down (if the fixture says eof) and reads what follows. A
 * closing transport reads nothing more, as a socket's reader stops: what is
 * left of the input is dropped. */
static void run_fixture(const fixture *f, size_t capacity, const size_t *chunks, size_t n_chunks,
                        run_result *result)
{
    *result = (run_result){ 0 };
    run r = { .result = result };
    trace_restart();
    void *context = f->proto->context_new != NULL ? f->proto->context_new(f->arg) : NULL;
    assert_int_equal(pg_manual_host_new(&r.mh), 0);
    assert_int_equal(pg_manual_stream_new(pg_manual_host_host(r.mh), f->proto->flags, f->proto->factory, context, &r.ms),
                     0);
    pg_manual_stream_set_capacity(r.ms, capacity);
    settle(&r);
    if (f->limits && !closing(&r))
        assert_int_equal(pg_transport_set_write_buffer_limits(pg_manual_stream_transport(r.ms), f->high, f->low), 0);

    size_t off = 0;
    bool stalled = false;
    for (size_t i = 0; i < n_chunks && !stalled && !closing(&r); i++) {
        size_t left = chunks[i];
        while (left > 0 && !closing(&r)) {
            if (!pg_manual_stream_wants_read(r.ms)) {
                stalled = !drain_step(&r);
                if (stalled)
                    break;
                continue;
            }
            size_t taken = pg_manual_stream_feed(r.ms, f->input.data + off, left);
            off += taken;
            left -= taken;
            settle(&r);
        }
    }
    if (f->eof && !stalled) {
        /* Everything read first: what the protocol buffered when the EOF
         * comes would otherwise depend on how the last bytes were cut. */
        while (!closing(&r) && drain_step(&r))
            ;
        if (!closing(&r) && pg_manual_stream_wants_read(r.ms)) {
            pg_manual_stream_feed_eof(r.ms);
            settle(&r);
        } else if (!closing(&r)) {
            stalled = true;
        }
    }
    while (drain_step(&r))
        ;
    settle(&r);

    bool closed = pg_manual_stream_closed(r.ms);
    split_text_printf(&result->end, "%s%s", closed ? "closed" : "open",
                      pg_manual_stream_output_shut(r.ms) ? " write-shut" : "");
    if (stalled)
        split_text_printf(&result->end, " stalled with %zu bytes unread", f->input.len - off);
    split_text_add(&result->end, "\n", 1);
    pg_manual_stream_free(r.ms); /* still open: aborted, connection_lost at the next run */
    settle(&r);
    if (f->proto->report != NULL)
        f->proto->report(context, &result->report);
    if (f->proto->context_free != NULL)
        f->proto->context_free(context);
    pg_manual_host_free(r.mh);

    split_text raw = { 0 };
    trace_read(&raw);
    trace_normalise(&raw, &result->trace);
    split_text_free(&raw);
}

/* ---- cuts ----------------------------------------------------------------- */

typedef struct cut {
    size_t *chunks;
    size_t n;
    char what[64];
} cut;

/* splitmix64: the same seed gives the same cut everywhere. */
static uint64_t next_random(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* The i-th cut of a mode (i from 0); false past the last. */
static bool make_cut(enum split_mode mode, size_t i, size_t len, unsigned n_random, cut *c)
{
    c->n = 0;
    switch (mode) {
    case MODE_WHOLE:
        if (i > 0)
            return false;
        if (len > 0)
            c->chunks[c->n++] = len;
        snprintf(c->what, sizeof c->what, "whole");
        return true;
    case MODE_BYTES:
        if (i > 0)
            return false;
        while (c->n < len)
            c->chunks[c->n++] = 1;
        snprintf(c->what, sizeof c->what, "byte by byte");
        return true;
    case MODE_EVERY:
        if (i + 1 >= len)
            return false;
        c->chunks[0] = i + 1;
        c->chunks[1] = len - i - 1;
        c->n = 2;
        snprintf(c->what, sizeof c->what, "split at %zu", i + 1);
        return true;
    case MODE_RANDOM: {
        if (i >= n_random || len == 0)
            return false;
        uint64_t state = i + 1;
        size_t most = 1 + (size_t)(next_random(&state) % len);
        for (size_t sum = 0; sum < len;) {
            size_t k = 1 + (size_t)(next_random(&state) % most);
            if (k > len - sum)
                k = len - sum;
            c->chunks[c->n++] = k;
            sum += k;
        }
        snprintf(c->what, sizeof c->what, "random seed %zu (%zu chunks)", i + 1, c->n);
        return true;
    }
    default:
        return false;
    }
}

/* ---- the tests ------------------------------------------------------------ */

typedef struct split_test {
    const fixture *f;
    size_t capacity;
    enum split_mode mode;
    char name[128];
} split_test;

/* Prints the whole-feed result in the fixture's notation: what to paste
 * into a new case once it is checked by hand. */
static void print_as_fixture(const fixture *f, const run_result *r)
{
    split_text t = { 0 };
    split_text_printf(&t, "[output]\n");
    for (size_t i = 0; i < r->output.len;) {
        size_t k = strcspn(r->output.data + i, "\n");
        k = k < r->output.len - i ? k + 1 : r->output.len - i;
        split_text_escaped(&t, (const uint8_t *)r->output.data + i, k);
        split_text_add(&t, "\n", 1);
        i += k;
    }
    split_text_printf(&t, "[end]\n%s", text_str(&r->end));
    if (f->proto->report != NULL)
        split_text_printf(&t, "[report]\n%s", text_str(&r->report));
    split_text_printf(&t, "[trace]\n%s", text_str(&r->trace));
    /* stderr: cmocka's print_message cuts at 1 KiB. */
    fprintf(stderr, "%s: the whole input gives:\n%s", f->path, text_str(&t));
    split_text_free(&t);
}

static void check_text(const fixture *f, const split_test *st, const cut *c, const char *what,
                       const split_text *expected, const split_text *actual, bool binary)
{
    if (text_equal(expected, actual))
        return;
    split_text e = { 0 }, a = { 0 };
    if (binary) {
        split_text_escaped(&e, (const uint8_t *)text_str(expected), expected->len);
        split_text_escaped(&a, (const uint8_t *)text_str(actual), actual->len);
    }
    fprintf(stderr, "%s, capacity %zu, %s: the %s differs\n--- expected\n%s\n--- got\n%s\n", f->path, st->capacity,
                c->what, what, binary ? text_str(&e) : text_str(expected), binary ? text_str(&a) : text_str(actual));
    split_text_free(&e);
    split_text_free(&a);
    fail();
}

static void test_cuts(void **state)
{
    const split_test *st = *state;
    const fixture *f = st->f;
    const split_text *trace = expected_trace(f, st->capacity);
    if (!f->has_output || !f->has_end || trace == NULL || (f->proto->report != NULL && !f->has_report)) {
        size_t whole = f->input.len;
        run_result r;
        run_fixture(f, st->capacity, &whole, f->input.len > 0, &r);
        print_as_fixture(f, &r);
        run_result_free(&r);
        fail_msg("%s: [output], [end], [trace]%s are all needed", f->path,
                 f->proto->report != NULL ? " and [report]" : "");
    }
    cut c = { .chunks = calloc(f->input.len + 1, sizeof(size_t)) };
    assert_non_null(c.chunks);
    for (size_t i = 0; make_cut(st->mode, i, f->input.len, f->n_random, &c); i++) {
        run_result r;
        run_fixture(f, st->capacity, c.chunks, c.n, &r);
        check_text(f, st, &c, "output", &f->output, &r.output, true);
        check_text(f, st, &c, "end", &f->end, &r.end, false);
        if (f->proto->report != NULL)
            check_text(f, st, &c, "report", &f->report, &r.report, false);
        check_text(f, st, &c, "normalised trace", trace, &r.trace, false);
        run_result_free(&r);
    }
    free(c.chunks);
}

int split_main(int argc, char **argv, const split_protocol *protocols, size_t n_protocols)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FIXTURE...\n", argv[0]);
        return 2;
    }
    int fd = mkstemp(trace_path);
    if (fd < 0 || setenv("PROTOGEN_TRACE", trace_path, 1) != 0) {
        perror("split: trace file");
        return 2;
    }
    close(fd);
    int failed = 0;
    for (int a = 1; a < argc; a++) {
        fixture *f = fixture_load(argv[a], protocols, n_protocols);
        if (f == NULL) {
            failed++;
            continue;
        }
        split_test tests[MAX_CAPACITIES * N_MODES];
        struct CMUnitTest units[MAX_CAPACITIES * N_MODES];
        size_t n = 0;
        for (size_t ci = 0; ci < f->n_capacities; ci++) {
            for (size_t m = 0; m < N_MODES; m++) {
                if (!f->modes[m])
                    continue;
                tests[n] = (split_test){ .f = f, .capacity = f->capacities[ci], .mode = (enum split_mode)m };
                snprintf(tests[n].name, sizeof tests[n].name, "capacity %zu, %s", f->capacities[ci], mode_names[m]);
                units[n] = (struct CMUnitTest){ tests[n].name, test_cuts, NULL, NULL, &tests[n] };
                n++;
            }
        }
        const char *base = strrchr(f->path, '/');
        failed += _cmocka_run_group_tests(base != NULL ? base + 1 : f->path, units, n, NULL, NULL);
        fixture_free(f);
    }
    unlink(trace_path);
    unsetenv("PROTOGEN_TRACE");
    pg__trace_reset();
    return failed;
}
