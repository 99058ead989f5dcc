/* Shared by the runtime tests: a recording protocol that asserts asyncio's
 * callback order on every call, socket helpers, and a bounded loop runner. */
#ifndef PG_TESTUTIL_H
#define PG_TESTUTIL_H

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "protogen/protogen.h"

typedef struct recorder recorder;

/* Optional hooks, called after the event was recorded. */
typedef struct recorder_hooks {
    void (*made)(recorder *r);
    void (*data)(recorder *r, const uint8_t *data, size_t len);
    bool (*eof)(recorder *r); /* replaces eof_keep_open when set */
    void (*lost)(recorder *r, int error);
    void (*pause)(recorder *r);
    void (*resume)(recorder *r);
} recorder_hooks;

struct recorder {
    pg_transport *transport; /* from connection_made until connection_lost */
    recorder_hooks hooks;
    bool eof_keep_open;        /* eof_received's answer */
    bool pause_reading_in_made;
    void *user;

    /* Counters, as libuv's tests count callbacks. */
    int made, eofs, lost, pauses, resumes, data_calls;
    int lost_error;
    bool paused; /* the protocol's view of flow control */
    size_t size_at_pause, size_at_resume;

    uint8_t *rx; /* every byte received */
    size_t rx_len, rx_cap;

    /* The order of events, e.g. "made data eof lost:ok"; runs of data_received merge. */
    char log[512];
};

extern const pg_protocol_ops recorder_ops;

void recorder_init(recorder *r);
void recorder_free(recorder *r);
/* A pg_protocol_factory: arg is the recorder. */
int recorder_factory(void *arg, pg_protocol *out);

/* Runs the loop until cond holds; fails the test after too many iterations. */
#define RUN_UNTIL(loop, cond)                                    \
    do {                                                         \
        int run_i_ = 0;                                          \
        while (!(cond)) {                                        \
            assert_true(run_i_++ < 2000);                        \
            assert_int_equal(pg_loop_run_once((loop), 1000), 0); \
        }                                                        \
    } while (0)

/* Runs n iterations that do not wait (nothing must happen in them). */
void run_idle(pg_loop *loop, int n);

/* A Unix stream socketpair; sndbuf > 0 shrinks sv[0]'s send buffer. */
void make_socketpair(int sv[2], int sndbuf);
/* Writes to fd until the kernel takes no more; returns the bytes written. */
size_t fill_socket(int fd);
/* Reads what is available now (non-blocking). Sets *eof on end of stream.
 * Appends to buf when not NULL. Returns the bytes read. */
size_t drain_socket(int fd, uint8_t *buf, size_t cap, bool *eof);
void set_nonblocking(int fd);

/* True under valgrind: its fork-like clone keeps posix_spawn from telling a
 * failed exec (the child exits 127 instead), and it emulates RLIMIT_NOFILE
 * (the kernel never says EMFILE: valgrind closes what lands above the limit). */
bool under_valgrind(void);

/* A stream transport adopted over one end of a socketpair, the other end a
 * raw peer the test drives. */
typedef struct stream_fixture {
    pg_loop *loop;
    int sv[2];      /* sv[0]: the transport's; sv[1]: the raw peer */
    size_t prefill; /* bytes stuck in the kernel before the transport started */
    recorder r;
    pg_transport *t;
} stream_fixture;

/* Adopts sv[0] (with a full 4 KiB send buffer when prefill) and waits for
 * connection_made, which must come from the loop, not from the adoption. */
void stream_fixture_start(stream_fixture *f, bool prefill);
/* Aborts the transport if still open, waits for connection_lost, frees all. */
void stream_fixture_done(stream_fixture *f);

#endif
