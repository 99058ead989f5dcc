/* Framing: a stream's bytes in, whole messages out (sans-I/O, in the core).
 *
 * A framer sits between a stream transport's data_received and the
 * protocol's messages. The spec's `framing` declaration (docs/spec-language.md)
 * becomes a pg_framing descriptor; generated code embeds one pg_framer per
 * connection and feeds it every read. The framer:
 *
 *   - delivers a message lying whole in the read without copying it; only a
 *     message that straddles reads is kept, in a carry-over buffer allocated
 *     on first need and bounded by the framing's max;
 *   - stops between messages while it is held (writing paused, reading paused
 *     by the protocol): the rest of the read is kept, the transport stops
 *     reading, and the kept input is delivered when the last hold is
 *     released — memory stays bounded by the watermarks plus one read;
 *   - reports oversize or malformed input once (errors are sticky) with a
 *     code, the byte position in the stream and a reason; unless the protocol
 *     keeps the connection open, the transport is closed once what is already
 *     written has been flushed;
 *   - can change framing between messages: "the next n bytes are one raw
 *     message" (a counted body), or another descriptor, and back.
 *
 * Each framing kind is a scanner that finds the end of the next message in
 * contiguous bytes starting at the message's first byte, resuming where it
 * stopped; the `rules` kind's scanner is generated (re2c with storable
 * state) and keeps its own state, in the protocol's connection.
 *
 * Integer results are 0 or a negative errno value. */
#ifndef PROTOGEN_FRAMING_H
#define PROTOGEN_FRAMING_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protogen/protocol.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum pg_framing_kind {
    PG_FRAMING_LINE = 1, /* payload, then a delimiter */
    PG_FRAMING_LENGTH,   /* a header holding the payload's length, then the payload */
    PG_FRAMING_RULES,    /* named messages, found by a generated scanner */
} pg_framing_kind;

/* What a rules scanner found (PG_FRAMING_RULES). */
typedef struct pg_rules_scan {
    size_t size;        /* found: the whole message's bytes */
    unsigned rule;      /* found: which message (1..): pg_message.rule */
    size_t need;        /* more: bytes at least still missing (0: unknown) */
    size_t err_off;     /* error: the offending byte, from the message's first */
    const char *reason; /* error: static text */
} pg_rules_scan;

/* A rules scanner: the message's bytes so far at p[0..n) (more of the same
 * message at each call, possibly moved: keep offsets, not pointers). Returns
 * 1 (found), 0 (more needed) or a protocol error code (PG_FRAMING_E*). self
 * is the framer's (pg_framer_init). After 1 or an error the next call starts
 * a new message. */
typedef int (*pg_rules_scanner)(void *self, const uint8_t *p, size_t n, pg_rules_scan *out);

/* The width of a varint (LEB128, 7 bits a byte, low group first) length. */
#define PG_FRAMING_VARINT 0
/* The largest max a framing may declare. */
#define PG_FRAMING_MAX ((size_t)1 << 30)

typedef struct pg_framing {
    pg_framing_kind kind;
    size_t max; /* the largest payload accepted (1..PG_FRAMING_MAX) */
    /* PG_FRAMING_LINE: the delimiter (1..255 bytes), not part of the payload. */
    const uint8_t *delimiter;
    size_t delimiter_len;
    /* PG_FRAMING_LENGTH: the length field is `width` bytes (1, 2, 4, 8 or
     * PG_FRAMING_VARINT) at `offset` in a header of `header` bytes (fixed
     * widths; a varint's header ends with the varint). includes_header: the
     * length counts the header too. */
    uint8_t width;
    bool big_endian;
    uint8_t offset;
    uint8_t header;
    bool includes_header;
    /* PG_FRAMING_RULES: the generated scanner; max bounds the whole message. */
    pg_rules_scanner scan;
} pg_framing;

/* For generated scanners: reports a protocol error at byte off of the message. */
static inline int pg_rules_error(pg_rules_scan *out, size_t off, int code, const char *reason)
{
    out->err_off = off;
    out->reason = reason;
    return code;
}

/* For generated scanners: the decimal digits d[0..n) as *v; false when the
 * number is above UINT64_MAX. */
static inline bool pg_parse_uint(const uint8_t *d, size_t n, uint64_t *v)
{
    uint64_t x = 0;
    if (n <= 19) { /* cannot overflow: the common case, without a check per digit */
        for (size_t i = 0; i < n; i++)
            x = x * 10 + (uint64_t)(d[i] - '0');
    } else {
        for (size_t i = 0; i < n; i++) {
            uint64_t digit = (uint64_t)(d[i] - '0');
            if (x > (UINT64_MAX - digit) / 10)
                return false;
            x = x * 10 + digit;
        }
    }
    *v = x;
    return true;
}

/* Checks a descriptor: 0 or -EINVAL. */
int pg_framing_check(const pg_framing *framing);

/* A byte string captured from a message (`rules` framing), valid during
 * the message callback only. */
typedef struct pg_slice {
    const uint8_t *data;
    size_t len;
} pg_slice;

/* The captures of a repeated field (rules framing): generated scanners push
 * them while they scan (as offsets: the message may move between reads) and
 * turn them into slices or numbers at delivery. Grown on need; the memory
 * stays for the next message until pg_capture_free. */
typedef struct pg_capture_list {
    uint64_t *word;  /* per capture: its offset from the message's first byte, or its number */
    pg_slice *slice; /* byte-string lists: the slices, their data set at delivery */
    size_t count;
    size_t cap;
} pg_capture_list;

/* Lists up to this many captures keep their memory for the next message. */
#define PG_CAPTURES_KEEP 1024

/* Grows the list for one more capture: 0 or -ENOMEM (pg_capture_push). */
int pg_capture_grow(pg_capture_list *l, bool slices);
void pg_capture_free(pg_capture_list *l);

/* Appends a capture: a byte string at offset word of len bytes (slices
 * true), or the number word. 0 or -ENOMEM. Inline: scanners push every
 * field of every message; the list grows only on its first messages. */
static inline int pg_capture_push(pg_capture_list *l, uint64_t word, size_t len, bool slices)
{
    if (l->count == l->cap && pg_capture_grow(l, slices) < 0)
        return -ENOMEM;
    l->word[l->count] = word;
    if (slices)
        l->slice[l->count].len = len;
    l->count++;
    return 0;
}

/* The slices of a byte-string list, pointing into the message at base. */
static inline const pg_slice *pg_capture_slices(pg_capture_list *l, const uint8_t *base)
{
    for (size_t i = 0; i < l->count; i++)
        l->slice[i].data = base + l->word[i];
    return l->slice;
}

/* Empties the list for the next message (large lists give their memory back). */
static inline void pg_capture_reset(pg_capture_list *l)
{
    if (l->cap > PG_CAPTURES_KEEP)
        pg_capture_free(l);
    l->count = 0;
}

/* One message, valid during the callback only. */
typedef struct pg_message {
    const uint8_t *data; /* the payload: a line without its delimiter, a body without its header */
    size_t len;
    const uint8_t *header; /* PG_FRAMING_LENGTH: the header; else NULL */
    size_t header_len;
    uint64_t pos; /* the stream offset of the message's first byte */
    unsigned rule; /* PG_FRAMING_RULES: which message (1..), the whole of it in data; else 0 */
    bool raw;      /* the bytes pg_framer_expect_raw asked for (rule 0) */
} pg_message;

/* Protocol error codes (negative errno values). */
#define PG_FRAMING_ETOOBIG (-EMSGSIZE) /* a message above the framing's max */
#define PG_FRAMING_EMALFORMED (-EPROTO) /* a header that cannot be (bad varint, length below the header) */
#define PG_FRAMING_ETRUNCATED (-ENODATA) /* the stream ended inside a message (asyncio: IncompleteReadError) */

typedef struct pg_protocol_error {
    int code;           /* PG_FRAMING_E* */
    uint64_t pos;       /* the stream offset of the offending byte */
    const char *reason; /* static text */
    /* The input from the broken message's first byte on, as far as the framer
     * has it (what was read of the message, and what followed it in the same
     * read), and the offending byte's index in it (== input_len when the error
     * is at the end of what was read). NULL and 0 for an error a handler raised
     * (pg_framer_fail). Valid during the error callback only. */
    const uint8_t *input;
    size_t input_len;
    size_t offset;
} pg_protocol_error;

typedef struct pg_framer_ops {
    void (*message)(void *self, const pg_message *msg);
    /* The first protocol error (no message follows it). Return true to keep
     * the connection open (you close it); false, or a NULL error callback,
     * closes it once what is already written has been flushed. */
    bool (*error)(void *self, const pg_protocol_error *err);
} pg_framer_ops;

/* Why a framer holds its input (pg_framer_hold). */
#define PG_FRAMER_HOLD_WRITING 1u /* the transport paused writing */
#define PG_FRAMER_HOLD_READING 2u /* the protocol paused reading */

/* A framer, embedded in the protocol's connection. Its fields are the
 * runtime's: use the functions below. */
typedef struct pg_framer {
    const pg_framing *declared;
    const pg_framing *framing; /* in force */
    const pg_framer_ops *ops;
    void *self;
    pg_transport *transport;
    uint8_t *carry; /* kept input: [carry_head, carry_len) */
    size_t carry_head;
    size_t carry_len;
    size_t carry_cap;
    size_t scanned;           /* bytes of the next message its scanner has examined */
    size_t raw;               /* > 0: the next `raw` bytes are one message */
    uint64_t pos;             /* stream offset of the next message */
    const pg_message *current; /* during the message callback */
    const pg_slice *rest;      /* during the message callback: the input after it (2 slices) */
    const pg_protocol_error *failing; /* during the error callback */
    int error;                /* sticky protocol error code, or 0 */
    uint32_t trace_id;
    uint8_t hold;   /* PG_FRAMER_HOLD_* */
    bool paused_reading; /* the framer paused the transport's reading */
    bool busy;           /* delivering: a release only clears the hold */
    bool detached;       /* the protocol gave the transport away: input is dropped */
    bool eof;            /* the stream ended (pg_framer_eof) */
} pg_framer;

/* Starts a framer with a checked descriptor (pg_framing_check), which must
 * outlive it. ops->message is required. */
void pg_framer_init(pg_framer *f, const pg_framing *framing, const pg_framer_ops *ops, void *self);
/* The transport whose reading the framer pauses and resumes (at connection_made). */
void pg_framer_attach(pg_framer *f, pg_transport *transport);
/* The protocol gave the transport away (switch_protocol): nothing more is delivered. */
void pg_framer_detach(pg_framer *f);
/* Frees the carry-over buffer; the framer delivers nothing afterwards. */
void pg_framer_cleanup(pg_framer *f);

/* A read: delivers the messages it completes, keeps the rest. */
void pg_framer_feed(pg_framer *f, const uint8_t *data, size_t len);

/* The stream ended (at eof_received): a message begun and not completed —
 * part of one kept, or raw bytes expected — is a protocol error,
 * PG_FRAMING_ETRUNCATED at the end of the stream, reported as any other
 * (the default closes). Held-back input is delivered first, when its holds
 * are released; whole messages are never an error. */
void pg_framer_eof(pg_framer *f);

/* Stops delivery between messages and pauses the transport's reading, for
 * reason why (PG_FRAMER_HOLD_*). */
void pg_framer_hold(pg_framer *f, unsigned why);
/* Clears reason why; once no reason is left, delivers the input kept
 * meanwhile and resumes reading. */
void pg_framer_release(pg_framer *f, unsigned why);

/* The next n bytes (1..PG_FRAMING_MAX) are one message, whatever they hold;
 * then the framing in force before. A body that straddles reads is kept
 * whole. Between messages only (from a message callback, or before any
 * input): -EINVAL for n 0, -EMSGSIZE above PG_FRAMING_MAX, -EBUSY when a
 * raw message is already expected. */
int pg_framer_expect_raw(pg_framer *f, size_t n);
/* Another framing from the next message on (NULL: the declared one again).
 * -EINVAL for a descriptor that pg_framing_check refuses. */
int pg_framer_set_framing(pg_framer *f, const pg_framing *framing);

/* Reports a protocol error found above the framer (a state machine's: a
 * handler chose a state its transition does not declare), as the framer's
 * own: sticky, to the error callback at the current message's position, the
 * connection closed unless the protocol keeps it open. A no-op once an error
 * is set. */
void pg_framer_fail(pg_framer *f, int code, const char *reason);

/* The message being delivered (NULL outside the message callback). */
const pg_message *pg_framer_current(const pg_framer *f);
/* The protocol error being reported (NULL outside the error callback): a
 * handler that answers it reads the offending input there. */
const pg_protocol_error *pg_framer_failing(const pg_framer *f);
/* During the message callback: the input after the message that the framer
 * has not delivered yet (kept, then the rest of the read), in order, as up to
 * two slices in out; returns how many. What a protocol switch hands on. */
size_t pg_framer_rest(const pg_framer *f, pg_slice out[2]);
/* Bytes of input kept (a straddling message, input held back). */
size_t pg_framer_buffered(const pg_framer *f);
/* The carry-over buffer's capacity: the framer's memory. */
size_t pg_framer_capacity(const pg_framer *f);
/* The stream offset of the next message's first byte. */
uint64_t pg_framer_position(const pg_framer *f);
/* The sticky protocol error code, or 0. */
int pg_framer_error(const pg_framer *f);

#ifdef __cplusplus
}
#endif
#endif
