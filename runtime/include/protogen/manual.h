/* The manual host and stream: the core run by a loop the user owns.
 *
 * For programs that own their sockets (a poll() or select() loop, a game
 * loop, a test): the user reads bytes and hands them in, takes out what the
 * protocol wrote and sends it, and runs the deferred calls. Nothing here
 * makes a system call; the same pair is the in-memory driver protogen's own
 * tests run protocols on, with no kernel at all. docs/embedding.md has a
 * complete poll() server.
 *
 *   pg_manual_host *mh;  pg_manual_host_new(&mh);
 *   pg_manual_stream *ms;
 *   pg_manual_stream_new(pg_manual_host_host(mh), PG_STREAM_CAN_WRITE_EOF, factory, arg, &ms);
 *   for (;;) {
 *       pg_manual_host_run(mh);                        // connection_made, connection_lost, timers...
 *       poll, at most pg_manual_host_timeout(mh) ms: POLLIN if pg_manual_stream_wants_read(ms), POLLOUT if output is waiting
 *       readable: n = recv(...); taken = pg_manual_stream_feed(ms, buf, n) (0 bytes: feed_eof)
 *       output:   p = pg_manual_stream_output(ms, &len); sent = send(p, len); pg_manual_stream_consume(ms, sent)
 *       pg_manual_stream_output_shut(ms): shutdown(SHUT_WR)
 *       pg_manual_stream_closed(ms): send the output left, close, pg_manual_stream_free(ms)
 *   }
 *
 * Integer results are 0 or a negative errno value. */
#ifndef PROTOGEN_MANUAL_H
#define PROTOGEN_MANUAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protogen/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- the host ----------------------------------------------------------- */

typedef struct pg_manual_host pg_manual_host;

int pg_manual_host_new(pg_manual_host **out);
/* Every transport made on it must have ended (pg_manual_stream_closed);
 * timers still active are left inactive. */
void pg_manual_host_free(pg_manual_host *mh);
/* The host to make transports on. */
pg_host *pg_manual_host_host(pg_manual_host *mh);
/* Runs the deferred calls queued before this call, in order, then the
 * callbacks of the timers due now (those they queue, and timers that fall
 * due meanwhile, wait for the next run); returns how many deferred calls ran
 * (the timers due take one). Call it after every batch of events, until
 * pg_manual_host_pending() is false, and when pg_manual_host_timeout() has
 * passed. */
size_t pg_manual_host_run(pg_manual_host *mh);
/* True when deferred calls wait: poll without blocking. */
bool pg_manual_host_pending(const pg_manual_host *mh);
/* Timers (pg_host_timer_start, core.h) run from pg_manual_host_run() once
 * the clock reaches their deadline. The earliest deadline on the host's clock
 * (false: no timer waits), as nghttp2's and quicly's "next deadline"... */
bool pg_manual_host_next_deadline(const pg_manual_host *mh, uint64_t *due_ms);
/* ...or as poll()'s timeout: 0 when deferred calls wait or a timer is due,
 * the milliseconds to the next timer, -1 when there is neither. */
int pg_manual_host_timeout(pg_manual_host *mh);
/* The clock the core reads (monotonic milliseconds); NULL restores the
 * default, CLOCK_MONOTONIC. Tests set their own and advance it; timers fall
 * due at the next pg_manual_host_run(). */
void pg_manual_host_set_clock(pg_manual_host *mh, uint64_t (*now_ms)(void *arg), void *arg);

/* ---- a stream --------------------------------------------------------------- */

typedef struct pg_manual_stream pg_manual_stream;

/* Makes a stream transport whose bytes the user moves. flags: PG_STREAM_*
 * (core.h). factory(arg) makes the protocol; connection_made follows at the
 * next pg_manual_host_run(). */
int pg_manual_stream_new(pg_host *host, unsigned flags, pg_protocol_factory factory, void *arg,
                         pg_manual_stream **out);
/* Frees the stream once pg_manual_stream_closed(). Before, it aborts the
 * transport and frees the stream once connection_lost has run (at a later
 * pg_manual_host_run()); its output is dropped. */
void pg_manual_stream_free(pg_manual_stream *ms);
/* The transport (NULL once closed). */
pg_transport *pg_manual_stream_transport(pg_manual_stream *ms);

/* Bytes from the peer. Returns how many the protocol took: fewer than len
 * when it paused reading (keep the rest; feed it again once
 * pg_manual_stream_wants_read() is true again). Once the transport is closing
 * every byte is taken and dropped, as a socket's reader would stop. */
size_t pg_manual_stream_feed(pg_manual_stream *ms, const void *data, size_t len);
/* The peer shut its write side down. */
void pg_manual_stream_feed_eof(pg_manual_stream *ms);
/* The connection broke (a negative errno) or the user ends it (0, as abort). */
void pg_manual_stream_fail(pg_manual_stream *ms, int error);
/* True while the protocol reads (watch for readability). */
bool pg_manual_stream_wants_read(const pg_manual_stream *ms);

/* What the protocol wrote, in order, not yet consumed (*len 0: nothing). */
const uint8_t *pg_manual_stream_output(const pg_manual_stream *ms, size_t *len);
/* The first n bytes of the output were sent. May call protocol callbacks
 * (resume_writing) and end the transport (a close() that drained). */
void pg_manual_stream_consume(pg_manual_stream *ms, size_t n);
/* How many bytes the output holds before the transport's own write buffer
 * (and its watermarks) take over, as a socket's send buffer; default 256 KiB.
 * May call protocol callbacks when it grows. */
void pg_manual_stream_set_capacity(pg_manual_stream *ms, size_t capacity);
/* Instead of the output: the protocol's writes go straight to sender (e.g.
 * a non-blocking send() on the user's socket), so that errors reach the
 * protocol at once as with protogen's own sockets. sender returns the bytes it
 * took, 0 when none can go now (then watch for writability while
 * pg_manual_stream_wants_write() and call pg_manual_stream_writable()), or a
 * negative errno (the connection is broken). Set it before the first
 * pg_manual_host_run(). */
typedef ssize_t (*pg_manual_sender)(void *arg, const struct iovec *iov, int iovcnt);
void pg_manual_stream_set_sender(pg_manual_stream *ms, pg_manual_sender sender, void *arg);
/* True while the transport waits to send what it buffered. */
bool pg_manual_stream_wants_write(const pg_manual_stream *ms);
/* The connection can take more bytes: the transport sends what it buffered.
 * May call protocol callbacks and end the transport (a close() that drained). */
void pg_manual_stream_writable(pg_manual_stream *ms);

/* True once the protocol's write_eof() took effect and the output is empty:
 * shut the write side down now. */
bool pg_manual_stream_output_shut(const pg_manual_stream *ms);
/* True once the transport is gone (after connection_lost): send what output
 * is left (like a socket's send buffer, it outlives the transport, even after
 * an abort, which drops only the transport's own buffer), then close the
 * connection and free the stream. */
bool pg_manual_stream_closed(const pg_manual_stream *ms);

#ifdef __cplusplus
}
#endif
#endif
