/* Framers: a stream's reads in, whole messages out (protogen/framing.h).
 *
 * Two paths, both resumable:
 *   - run: messages found in the read itself are delivered from it, with no
 *     copy; what is left at the end (a partial message, or input held back)
 *     is copied once into the carry-over buffer.
 *   - fill: when the carry holds a partial message, just enough of the next
 *     read is appended to complete it (what the scanner says it needs, never
 *     more than the largest message); the bytes appended past its end are
 *     given back to the read, which goes on on the run path.
 * The carry is compacted at most once per read (after its held messages are
 * delivered), never once per message.
 *
 * A scanner sees the message's first byte at p[0] and the bytes available;
 * it returns 1 (found: sizes in pg__scan), 0 (more needed; it may store in
 * f->scanned how far it looked, to resume there) or a protocol error code. */
#include <stdlib.h>
#include <string.h>

#include "core_internal.h"
#include "protogen/framing.h"

/* Carry buffers up to this size are kept when they empty (no allocation per
 * message in the steady state); larger ones, for a rare big message, go. */
#define PG__CARRY_KEEP ((size_t)16 * 1024)
/* The least a partial message of unknown size is grown by from the next read. */
#define PG__FILL_STEP ((size_t)256)
/* A varint length is at most this long (64 bits, 7 a byte). */
#define PG__VARINT_MAX 10

typedef struct pg__scan {
    size_t size;        /* found: the whole message (header, payload, delimiter) */
    size_t hdr;         /* found: header bytes before the payload */
    size_t len;         /* found: the payload */
    size_t need;        /* more: bytes at least still missing (0: unknown) */
    size_t err_off;     /* error: the offending byte, from the message start */
    const char *reason; /* error */
    unsigned rule;      /* found by a rules scanner: which message */
} pg__scan;

/* ---- descriptors -------------------------------------------------------- */

int pg_framing_check(const pg_framing *fr)
{
    if (fr == NULL || fr->max == 0 || fr->max > PG_FRAMING_MAX)
        return -EINVAL;
    switch (fr->kind) {
    case PG_FRAMING_LINE:
        return fr->delimiter != NULL && fr->delimiter_len >= 1 && fr->delimiter_len <= 255 ? 0 : -EINVAL;
    case PG_FRAMING_LENGTH:
        if (fr->width == PG_FRAMING_VARINT)
            return 0;
        if (fr->width != 1 && fr->width != 2 && fr->width != 4 && fr->width != 8)
            return -EINVAL;
        return (size_t)fr->offset + fr->width <= fr->header ? 0 : -EINVAL;
    case PG_FRAMING_RULES:
        return fr->scan != NULL ? 0 : -EINVAL;
    }
    return -EINVAL;
}

/* The largest whole message (header and delimiter included) the framer in
 * its current mode accepts: what a partial message may grow to. */
static size_t pg__framer_limit(const pg_framer *f)
{
    const pg_framing *fr = f->framing;
    if (f->raw > 0)
        return f->raw;
    if (fr->kind == PG_FRAMING_LINE)
        return fr->max + fr->delimiter_len;
    if (fr->kind == PG_FRAMING_RULES)
        return fr->max;
    return (fr->width == PG_FRAMING_VARINT ? (size_t)fr->offset + PG__VARINT_MAX : fr->header) + fr->max;
}

/* ---- scanners ----------------------------------------------------------- */

/* The first delimiter within max payload bytes; memchr for its last byte,
 * resuming where the last call stopped (*scanned), so no byte is searched
 * twice. */
static inline int pg__scan_line(const pg_framing *fr, size_t *scanned, const uint8_t *p, size_t n, pg__scan *out)
{
    const size_t k = fr->delimiter_len;
    const uint8_t *const d = fr->delimiter;
    const size_t most = fr->max + k;
    const size_t lim = n < most ? n : most;
    size_t i = *scanned < k - 1 ? k - 1 : *scanned;
    while (i < lim) {
        const uint8_t *hit = memchr(p + i, d[k - 1], lim - i);
        if (hit == NULL)
            break;
        i = (size_t)(hit - p);
        /* delimiters are short: no call to memcmp; "\r\n" and "\n" first */
        bool whole = k == 1 || p[i - 1] == d[k - 2];
        for (size_t j = 0; whole && j + 2 < k; j++)
            whole = p[i + 1 - k + j] == d[j];
        if (whole) {
            out->size = i + 1;
            out->hdr = 0;
            out->len = i + 1 - k;
            return 1;
        }
        i++;
    }
    if (lim == most) {
        out->err_off = fr->max; /* the first payload byte beyond max */
        out->reason = "line longer than the framing's max";
        return PG_FRAMING_ETOOBIG;
    }
    *scanned = lim;
    out->need = 0;
    return 0;
}

static int pg__scan_length(const pg_framing *fr, const uint8_t *p, size_t n, pg__scan *out)
{
    const size_t off = fr->offset;
    uint64_t v = 0;
    size_t hdr;
    if (fr->width == PG_FRAMING_VARINT) {
        size_t i = off;
        for (unsigned shift = 0;; shift += 7) {
            if (i >= n) {
                out->need = i + 1 - n;
                return 0;
            }
            if (i - off == PG__VARINT_MAX || (shift == 63 && p[i] > 1)) {
                out->err_off = i;
                out->reason = "varint length longer than 64 bits";
                return PG_FRAMING_EMALFORMED;
            }
            v |= (uint64_t)(p[i] & 0x7f) << shift;
            if (!(p[i++] & 0x80))
                break;
        }
        hdr = i;
    } else {
        hdr = fr->header;
        if (n < hdr) {
            out->need = hdr - n;
            return 0;
        }
        for (unsigned b = 0; b < fr->width; b++) {
            unsigned at = fr->big_endian ? b : fr->width - 1u - b;
            v = v << 8 | p[off + at];
        }
    }
    if (fr->includes_header) {
        if (v < hdr) {
            out->err_off = off;
            out->reason = "length smaller than the header it includes";
            return PG_FRAMING_EMALFORMED;
        }
        v -= hdr;
    }
    if (v > fr->max) {
        out->err_off = off;
        out->reason = "length above the framing's max";
        return PG_FRAMING_ETOOBIG;
    }
    size_t size = hdr + (size_t)v;
    if (n < size) {
        out->need = size - n;
        return 0;
    }
    out->size = size;
    out->hdr = hdr;
    out->len = (size_t)v;
    return 1;
}

/* A generated scanner, shown no more than max bytes: a message not found
 * within them is too big (errors are sticky: it is not called again). */
static int pg__scan_rules(pg_framer *f, const uint8_t *p, size_t n, pg__scan *out)
{
    const size_t max = f->framing->max;
    pg_rules_scan rs = { 0 };
    int r = f->framing->scan(f->self, p, n < max ? n : max, &rs);
    if (r > 0) {
        out->size = out->len = rs.size;
        out->hdr = 0;
        out->rule = rs.rule;
    } else if (r < 0) {
        out->err_off = rs.err_off;
        out->reason = rs.reason;
    } else if (n >= max) {
        out->err_off = max;
        out->reason = "message longer than the framing's max";
        return PG_FRAMING_ETOOBIG;
    } else {
        out->need = rs.need;
    }
    return r;
}

static int pg__scan_next(pg_framer *f, const uint8_t *p, size_t n, pg__scan *out)
{
    out->rule = 0;
    if (f->raw > 0) {
        if (n < f->raw) {
            out->need = f->raw - n;
            return 0;
        }
        out->size = out->len = f->raw;
        out->hdr = 0;
        return 1;
    }
    if (f->framing->kind == PG_FRAMING_LINE)
        return pg__scan_line(f->framing, &f->scanned, p, n, out);
    if (f->framing->kind == PG_FRAMING_RULES)
        return pg__scan_rules(f, p, n, out);
    return pg__scan_length(f->framing, p, n, out);
}

/* ---- the carry-over buffer ---------------------------------------------- */

static void pg__carry_free(pg_framer *f)
{
    free(f->carry);
    f->carry = NULL;
    f->carry_head = f->carry_len = f->carry_cap = 0;
}

/* Empty: small buffers stay for the next straddling message. */
static void pg__carry_clear(pg_framer *f)
{
    if (f->carry_cap > PG__CARRY_KEEP)
        pg__carry_free(f);
    f->carry_head = f->carry_len = 0;
}

/* Appends n bytes; false when memory ran out. The buffer doubles, but not
 * beyond the largest message (held-back input may need more: then exactly
 * that). */
static bool pg__carry_append(pg_framer *f, const uint8_t *p, size_t n)
{
    size_t want = f->carry_len + n;
    if (want > f->carry_cap) {
        size_t cap = f->carry_cap ? f->carry_cap : 256;
        while (cap < want)
            cap *= 2;
        size_t limit = pg__framer_limit(f);
        if (cap > limit)
            cap = want > limit ? want : limit;
        uint8_t *c = realloc(f->carry, cap);
        if (c == NULL)
            return false;
        f->carry = c;
        f->carry_cap = cap;
    }
    memcpy(f->carry + f->carry_len, p, n);
    f->carry_len += n;
    return true;
}

/* ---- delivery ----------------------------------------------------------- */

enum { PG__GO, PG__HOLD, PG__DROP };

/* Asked between messages: deliver the next one, keep the input, or drop it
 * (an error, a switch, a transport closing: nothing more is read). */
static int pg__framer_next(const pg_framer *f)
{
    if (f->error != 0 || f->detached || f->ops == NULL)
        return PG__DROP;
    /* One call per message in the common case: a reading transport is open. */
    if (f->transport == NULL || pg_transport_is_reading(f->transport))
        return f->hold != 0 ? PG__HOLD : PG__GO;
    if (pg_transport_is_closing(f->transport))
        return PG__DROP;
    /* Reading paused by the protocol through the transport holds too; the
     * framer's own pause does not outlive its holds. */
    return f->hold != 0 || !f->paused_reading ? PG__HOLD : PG__GO;
}

/* The error callback, with the error readable through pg_framer_failing. */
static bool pg__framer_report(pg_framer *f, const pg_protocol_error *e)
{
    if (f->ops->error == NULL)
        return false;
    const pg_protocol_error *outer = f->failing;
    f->failing = e;
    bool keep_open = f->ops->error(f->self, e);
    f->failing = outer;
    return keep_open;
}

/* p[0..n): the input from the broken message's first byte, for the handler
 * (pg_framer_failing); the carry that may hold it is freed after the callback. */
static void pg__framer_fail(pg_framer *f, int code, const uint8_t *p, size_t n, size_t off, const char *reason)
{
    f->error = code;
    pg_protocol_error e = {
        .code = code, .pos = f->pos + off, .reason = reason, .input = p, .input_len = n, .offset = off,
    };
    if (f->trace_id != 0 && pg__trace_fd >= 0)
        pg__trace_write_protocol_error(f->trace_id, code, e.pos);
    bool keep_open = pg__framer_report(f, &e);
    pg__carry_free(f);
    if (!keep_open && f->transport != NULL)
        pg_transport_close(f->transport); /* flushes what is written, then connection_lost */
}

void pg_framer_fail(pg_framer *f, int code, const char *reason)
{
    if (f->error != 0 || f->detached || f->ops == NULL)
        return;
    if (!f->busy) {
        pg__framer_fail(f, code, NULL, 0, 0, reason);
        return;
    }
    /* From a message callback: the message may lie in the carry, which stays
     * until cleanup; nothing more is delivered (pg__framer_next). */
    f->error = code;
    const pg_message *m = f->current;
    pg_protocol_error e = { .code = code, .pos = m != NULL ? m->pos : f->pos, .reason = reason };
    if (f->trace_id != 0 && pg__trace_fd >= 0)
        pg__trace_write_protocol_error(f->trace_id, code, e.pos);
    bool keep_open = pg__framer_report(f, &e);
    if (!keep_open && f->transport != NULL)
        pg_transport_close(f->transport);
}

/* Delivers the message at p; rest and its length: the input after it, not
 * delivered yet (held in the carry, then the rest of the read), for
 * pg_framer_rest. */
static void pg__deliver(pg_framer *f, const uint8_t *p, const pg__scan *sc, const pg_slice rest[2])
{
    pg_message m = {
        .data = p + sc->hdr,
        .len = sc->len,
        .header = sc->hdr > 0 ? p : NULL,
        .header_len = sc->hdr,
        .pos = f->pos,
        .rule = sc->rule,
        .raw = f->raw > 0,
    };
    f->pos += sc->size;
    f->scanned = 0;
    f->raw = 0; /* a raw message is one message: the framing in force comes back */
    PG__TRACE_SIZE(f->trace_id, "message_received", m.len);
    const pg_message *outer = f->current;
    const pg_slice *outer_rest = f->rest;
    f->current = &m;
    f->rest = rest;
    f->ops->message(f->self, &m);
    f->current = outer;
    f->rest = outer_rest;
}

/* Delivers what the carry holds whole (read: the read behind it, if any, for
 * pg_framer_rest). True when it then holds at most a partial message, at
 * its start (compacted); false when delivery stopped. */
static bool pg__framer_drain(pg_framer *f, pg_slice read)
{
    while (f->carry_head < f->carry_len) {
        int next = pg__framer_next(f);
        if (next == PG__DROP)
            pg__carry_free(f);
        if (next != PG__GO)
            return false;
        pg__scan sc;
        const uint8_t *p = f->carry + f->carry_head;
        int r = pg__scan_next(f, p, f->carry_len - f->carry_head, &sc);
        if (r < 0) {
            pg__framer_fail(f, r, p, f->carry_len - f->carry_head, sc.err_off, sc.reason);
            return false;
        }
        if (r == 0)
            break;
        f->carry_head += sc.size;
        const pg_slice rest[2] = { { f->carry + f->carry_head, f->carry_len - f->carry_head }, read };
        pg__deliver(f, p, &sc, rest);
    }
    size_t rest = f->carry_len - f->carry_head;
    if (rest == 0) {
        pg__carry_clear(f);
    } else if (f->carry_head > 0) {
        memmove(f->carry, f->carry + f->carry_head, rest); /* the one compaction */
        f->carry_head = 0;
        f->carry_len = rest;
    }
    return true;
}

/* Out of memory for the input: the connection is broken. */
static void pg__framer_nomem(pg_framer *f)
{
    f->error = -ENOMEM;
    pg__carry_free(f);
    if (f->transport != NULL)
        pg_transport_abort(f->transport);
}

/* Keeps input for later. */
static void pg__framer_keep(pg_framer *f, const uint8_t *p, size_t n)
{
    if (!pg__carry_append(f, p, n))
        pg__framer_nomem(f);
}

/* Completes the carry's partial message from data; returns the bytes of data used. */
static size_t pg__framer_fill(pg_framer *f, const uint8_t *data, size_t len)
{
    if (!pg__framer_drain(f, (pg_slice){ data, len })) {
        if (pg__framer_next(f) == PG__HOLD)
            pg__framer_keep(f, data, len);
        return len;
    }
    size_t pos = 0, need = 0;
    while (f->carry_len > 0 && pos < len) {
        int next = pg__framer_next(f);
        if (next != PG__GO) {
            if (next == PG__HOLD)
                pg__framer_keep(f, data + pos, len - pos);
            return len;
        }
        /* The carry was scanned under the framing in force and found short of
         * a message, so it is below the largest one: room is at least 1. */
        assert(f->carry_len < pg__framer_limit(f));
        size_t chunk = len - pos;
        size_t room = pg__framer_limit(f) - f->carry_len;
        if (chunk > room)
            chunk = room;
        if (need > 0 && chunk > need)
            chunk = need;
        /* Not knowing how much is missing: a step that doubles what the carry
         * holds, not the whole read (copied, then given back) — the scanners
         * resume where they stopped, so the steps cost no rescan. */
        size_t step = f->carry_len > PG__FILL_STEP ? f->carry_len : PG__FILL_STEP;
        if (need == 0 && chunk > step)
            chunk = step;
        if (!pg__carry_append(f, data + pos, chunk)) {
            pg__framer_nomem(f);
            return len;
        }
        pos += chunk;
        pg__scan sc;
        int r = pg__scan_next(f, f->carry, f->carry_len, &sc);
        if (r < 0) {
            pg__framer_fail(f, r, f->carry, f->carry_len, sc.err_off, sc.reason);
            return len;
        }
        if (r == 0) {
            need = sc.need;
            continue;
        }
        pos -= f->carry_len - sc.size; /* copied past the message's end: still in data */
        const pg_slice rest[2] = { { NULL, 0 }, { data + pos, len - pos } };
        pg__deliver(f, f->carry, &sc, rest);
        pg__carry_clear(f);
    }
    return pos;
}

enum { PG__RUN_DONE, PG__RUN_NEXT };

/* Nothing that decides delivery changed during the last message callback:
 * the same framing in force, no raw message expected, no hold, no error,
 * the transport reading. When false, pg__framer_next decides. */
static inline bool pg__framer_steady(const pg_framer *f, const pg_framing *fr)
{
    return f->framing == fr && f->raw == 0 && f->hold == 0 && f->error == 0 && !f->detached && f->ops != NULL &&
           (f->transport == NULL || pg_transport_is_reading(f->transport));
}

/* Delivers one message of a steady run from m (its data, len, header and
 * rule set by the caller); done: the bytes of the run up to its end. */
static inline void pg__steady_deliver(pg_framer *f, pg_message *m, pg_slice *rest, const uint8_t *p, size_t n,
                                      size_t size, size_t done)
{
    m->pos = f->pos;
    f->pos += size;
    rest[1] = (pg_slice){ p + done, n - done };
    PG__TRACE_SIZE(f->trace_id, "message_received", m->len);
    f->ops->message(f->self, m);
}

/* The per-message path: delivers the messages lying whole in p[0..n), one
 * after another while the framer stays steady, from one pg_message whose
 * fields are set per message; *used: the bytes delivered. PG__RUN_NEXT: a
 * callback changed something (pg__framer_next decides on the rest);
 * PG__RUN_DONE: everything is delivered, kept or failed. Lines have a loop
 * of their own: the delimiter's bytes and the bound stay in registers. */
static int pg__framer_steady_run(pg_framer *f, const uint8_t *p, size_t n, size_t *used)
{
    const pg_framing *const fr = f->framing;
    const pg_message *const outer = f->current;
    const pg_slice *const outer_rest = f->rest;
    pg_message m = { .header = NULL, .header_len = 0, .rule = 0 };
    pg_slice rest[2] = { { NULL, 0 }, { NULL, 0 } };
    size_t done = 0;
    int status = PG__RUN_DONE, r = 1;
    pg__scan sc;
    f->current = &m;
    f->rest = rest;
    if (f->raw == 0 && fr->kind == PG_FRAMING_LINE && f->scanned == 0) {
        /* raw and scanned stay 0 while the run is steady: only stores of 0
         * (pg_framer_set_framing) or a raw message (which ends the run) change them */
        const size_t k = fr->delimiter_len, most = fr->max + k;
        const uint8_t last = fr->delimiter[k - 1], prev = k >= 2 ? fr->delimiter[k - 2] : 0;
        for (;;) {
            const uint8_t *q = p + done;
            const size_t left = n - done, lim = left < most ? left : most;
            size_t i = k - 1;
            const uint8_t *hit;
            for (;;) { /* the next delimiter: its last byte, then the ones before it */
                hit = i < lim ? memchr(q + i, last, lim - i) : NULL;
                if (hit == NULL)
                    break;
                i = (size_t)(hit - q);
                if (k == 1 || (q[i - 1] == prev && (k == 2 || memcmp(q + i + 1 - k, fr->delimiter, k - 2) == 0)))
                    break;
                i++;
            }
            if (hit == NULL) { /* not whole: the general scan decides (keep or too big), from lim on */
                f->scanned = lim;
                r = pg__scan_line(fr, &f->scanned, q, left, &sc);
                break;
            }
            m.data = q;
            m.len = i + 1 - k;
            done += i + 1;
            pg__steady_deliver(f, &m, rest, p, n, i + 1, done);
            if (done == n)
                break;
            if (!pg__framer_steady(f, fr)) {
                status = PG__RUN_NEXT;
                break;
            }
        }
    } else if (f->raw == 0 && fr->kind == PG_FRAMING_RULES) {
        /* The generated scanner called directly, shown no more than max bytes
         * (as pg__scan_rules does); it sets in rs what it returns. */
        const size_t max = fr->max;
        const pg_rules_scanner scan = fr->scan;
        pg_rules_scan rs = { 0 };
        for (;;) {
            const uint8_t *q = p + done;
            const size_t left = n - done;
            rs.rule = 0;
            r = scan(f->self, q, left < max ? left : max, &rs);
            if (r <= 0) {
                if (r < 0) {
                    sc.err_off = rs.err_off;
                    sc.reason = rs.reason;
                } else if (left >= max) {
                    r = PG_FRAMING_ETOOBIG;
                    sc.err_off = max;
                    sc.reason = "message longer than the framing's max";
                }
                break;
            }
            m.data = q;
            m.len = rs.size;
            m.rule = rs.rule;
            done += rs.size;
            pg__steady_deliver(f, &m, rest, p, n, rs.size, done);
            if (done == n)
                break;
            if (!pg__framer_steady(f, fr)) {
                status = PG__RUN_NEXT;
                break;
            }
        }
    } else {
        for (;;) {
            const uint8_t *q = p + done;
            r = pg__scan_next(f, q, n - done, &sc);
            if (r <= 0)
                break;
            m.data = q + sc.hdr;
            m.len = sc.len;
            m.header = sc.hdr > 0 ? q : NULL;
            m.header_len = sc.hdr;
            m.rule = sc.rule;
            m.raw = f->raw > 0;
            f->scanned = 0;
            f->raw = 0; /* a raw message is one message: the framing in force comes back */
            done += sc.size;
            pg__steady_deliver(f, &m, rest, p, n, sc.size, done);
            if (done == n)
                break;
            if (!pg__framer_steady(f, fr)) {
                status = PG__RUN_NEXT;
                break;
            }
        }
    }
    f->current = outer;
    f->rest = outer_rest;
    *used = done;
    if (r == 0)
        pg__framer_keep(f, p + done, n - done);
    else if (r < 0)
        pg__framer_fail(f, r, p + done, n - done, sc.err_off, sc.reason);
    return status;
}

/* Delivers the messages lying whole in data, keeps the rest. */
static void pg__framer_run(pg_framer *f, const uint8_t *p, size_t n)
{
    while (n > 0) {
        int next = pg__framer_next(f);
        if (next != PG__GO) {
            if (next == PG__HOLD)
                pg__framer_keep(f, p, n);
            return;
        }
        size_t used;
        if (pg__framer_steady_run(f, p, n, &used) == PG__RUN_DONE)
            return;
        p += used;
        n -= used;
    }
}

/* After the stream ended, with nothing held: what is kept is a message cut
 * short. */
static void pg__framer_check_eof(pg_framer *f)
{
    size_t kept = f->carry_len - f->carry_head;
    if (!f->eof || f->hold != 0 || f->busy || (kept == 0 && f->raw == 0) || pg__framer_next(f) == PG__DROP)
        return;
    const uint8_t *in = kept > 0 ? f->carry + f->carry_head : (const uint8_t *)""; /* raw, none came */
    pg__framer_fail(f, PG_FRAMING_ETRUNCATED, in, kept, kept, "the stream ended inside a message");
}

/* After delivery: reading resumes once nothing holds the input any more. */
static void pg__framer_settle(pg_framer *f)
{
    if (f->paused_reading && f->hold == 0 && pg__framer_next(f) != PG__DROP) {
        f->paused_reading = false;
        pg_transport_resume_reading(f->transport);
    }
    pg__framer_check_eof(f);
}

/* ---- the API ------------------------------------------------------------ */

void pg_framer_init(pg_framer *f, const pg_framing *framing, const pg_framer_ops *ops, void *self)
{
    assert(pg_framing_check(framing) == 0 && ops != NULL && ops->message != NULL);
    memset(f, 0, sizeof *f);
    f->declared = f->framing = framing;
    f->ops = ops;
    f->self = self;
}

void pg_framer_attach(pg_framer *f, pg_transport *transport)
{
    f->transport = transport;
    f->trace_id = pg__transport_trace_id(transport);
}

/* The carry stays until cleanup: the message being delivered may lie in it. */
void pg_framer_detach(pg_framer *f)
{
    f->detached = true;
    f->transport = NULL;
}

void pg_framer_cleanup(pg_framer *f)
{
    pg__carry_free(f);
    f->transport = NULL;
    f->ops = NULL;
}

/* The replies to the messages of one read leave in one write: the transport
 * is corked while they are delivered (pg__stream_cork). */
void pg_framer_feed(pg_framer *f, const uint8_t *data, size_t len)
{
    if (len == 0 || pg__framer_next(f) == PG__DROP)
        return;
    bool outer = f->busy;
    f->busy = true;
    pg_transport *t = f->transport; /* the framer may be detached meanwhile: uncork the same */
    if (t != NULL)
        pg__stream_cork(t);
    size_t used = f->carry_len > f->carry_head ? pg__framer_fill(f, data, len) : 0;
    if (used < len)
        pg__framer_run(f, data + used, len - used);
    if (t != NULL)
        pg__stream_uncork(t);
    f->busy = outer;
    if (!outer)
        pg__framer_settle(f);
}

void pg_framer_eof(pg_framer *f)
{
    f->eof = true;
    pg__framer_check_eof(f);
}

void pg_framer_hold(pg_framer *f, unsigned why)
{
    f->hold |= (uint8_t)why;
    if (f->transport != NULL && !f->paused_reading && pg_transport_is_reading(f->transport)) {
        f->paused_reading = true;
        pg_transport_pause_reading(f->transport);
    }
}

void pg_framer_release(pg_framer *f, unsigned why)
{
    f->hold &= (uint8_t)~why;
    if (f->hold != 0 || f->busy)
        return; /* a running delivery goes on by itself */
    f->busy = true;
    pg_transport *t = f->transport;
    if (t != NULL)
        pg__stream_cork(t);
    (void)pg__framer_drain(f, (pg_slice){ NULL, 0 });
    if (t != NULL)
        pg__stream_uncork(t);
    f->busy = false;
    pg__framer_settle(f);
}

int pg_framer_expect_raw(pg_framer *f, size_t n)
{
    if (n == 0)
        return -EINVAL;
    if (n > PG_FRAMING_MAX)
        return -EMSGSIZE;
    if (f->raw > 0)
        return -EBUSY;
    f->raw = n;
    f->scanned = 0;
    return 0;
}

int pg_framer_set_framing(pg_framer *f, const pg_framing *framing)
{
    if (framing == NULL)
        framing = f->declared;
    if (pg_framing_check(framing) < 0)
        return -EINVAL;
    f->framing = framing;
    f->scanned = 0;
    return 0;
}

const pg_message *pg_framer_current(const pg_framer *f)
{
    return f->current;
}

const pg_protocol_error *pg_framer_failing(const pg_framer *f)
{
    return f->failing;
}

size_t pg_framer_rest(const pg_framer *f, pg_slice out[2])
{
    size_t n = 0;
    for (int i = 0; f->rest != NULL && i < 2; i++)
        if (f->rest[i].len > 0)
            out[n++] = f->rest[i];
    return n;
}

size_t pg_framer_buffered(const pg_framer *f)
{
    return f->carry_len - f->carry_head;
}

size_t pg_framer_capacity(const pg_framer *f)
{
    return f->carry_cap;
}

uint64_t pg_framer_position(const pg_framer *f)
{
    return f->pos;
}

int pg_framer_error(const pg_framer *f)
{
    return f->error;
}

/* ---- captures of repeated fields (rules framing) ------------------------- */

int pg_capture_grow(pg_capture_list *l, bool slices)
{
    size_t cap = l->cap ? l->cap * 2 : 16;
    uint64_t *w = realloc(l->word, cap * sizeof *w);
    if (w == NULL)
        return -ENOMEM;
    l->word = w;
    if (slices) {
        pg_slice *s = realloc(l->slice, cap * sizeof *s);
        if (s == NULL)
            return -ENOMEM;
        l->slice = s;
    }
    l->cap = cap;
    return 0;
}

void pg_capture_free(pg_capture_list *l)
{
    free(l->word);
    free(l->slice);
    l->word = NULL;
    l->slice = NULL;
    l->count = l->cap = 0;
}
