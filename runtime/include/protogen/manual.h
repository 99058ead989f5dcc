/* The manual host, stream, datagram endpoint and process: the core run by a
 * loop the user owns.
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
#include <sys/socket.h>
#include <sys/types.h>

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

/* What the protocol wrote, in order, not yet consumed (NULL and *len 0: nothing). */
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

/* ---- a datagram endpoint ------------------------------------------------ */

typedef struct pg_manual_datagram pg_manual_datagram;

/* Makes a datagram transport whose datagrams the user moves: a connected
 * endpoint when peer is not NULL (sendto then takes NULL or that address),
 * else an unconnected one. factory(arg) makes the protocol; connection_made
 * follows at the next pg_manual_host_run(). */
int pg_manual_datagram_new(pg_host *host, const struct sockaddr *peer, socklen_t peerlen,
                           pg_datagram_protocol_factory factory, void *arg, pg_manual_datagram **out);
/* As pg_manual_stream_free: frees it once closed, else aborts the transport
 * and frees it after connection_lost. */
void pg_manual_datagram_free(pg_manual_datagram *md);
/* The transport (NULL once closed). */
pg_datagram_transport *pg_manual_datagram_transport(pg_manual_datagram *md);

/* A datagram from addr (NULL: unknown). Fed while the protocol does not read
 * (before connection_made, or paused), it is kept and delivered once it
 * reads again, as the rest of a batch a socket driver has read already;
 * check pg_manual_datagram_wants_read() before reading a socket. Dropped
 * once the transport is closing. */
void pg_manual_datagram_feed(pg_manual_datagram *md, const void *data, size_t len, const struct sockaddr *addr,
                             socklen_t addrlen);
/* A receive error (e.g. -ECONNREFUSED): error_received, in order with the
 * datagrams fed. */
void pg_manual_datagram_feed_error(pg_manual_datagram *md, int error);
/* The endpoint broke (a negative errno) or the user ends it (0, as abort). */
void pg_manual_datagram_fail(pg_manual_datagram *md, int error);
/* True while the protocol reads (watch for readability). */
bool pg_manual_datagram_wants_read(const pg_manual_datagram *md);

/* The first datagram the protocol sent and not yet consumed, its length and
 * its address (NULL on a connected endpoint); NULL when there is none. Valid
 * until the next consume. */
const uint8_t *pg_manual_datagram_output(const pg_manual_datagram *md, size_t *len, const struct sockaddr **addr,
                                         socklen_t *addrlen);
/* How many sent datagrams wait in the output. */
size_t pg_manual_datagram_output_count(const pg_manual_datagram *md);
/* The first datagram of the output was sent: drops it. May call protocol
 * callbacks (resume_writing) and end the transport (a close() that drained). */
void pg_manual_datagram_consume(pg_manual_datagram *md);
/* How many datagrams the output holds before the transport's own queue (and
 * its watermarks) take over, as a socket's send buffer; default 64. May call
 * protocol callbacks when it grows. */
void pg_manual_datagram_set_capacity(pg_manual_datagram *md, size_t datagrams);
/* The next datagram sent fails with error (a negative errno, e.g.
 * -ECONNREFUSED) instead of reaching the output: the protocol hears of it
 * through error_received. */
void pg_manual_datagram_fail_next_send(pg_manual_datagram *md, int error);
/* True while the transport waits to send datagrams it queued. */
bool pg_manual_datagram_wants_write(const pg_manual_datagram *md);
/* True once the transport is gone (after connection_lost): send what output
 * is left, then free the endpoint. */
bool pg_manual_datagram_closed(const pg_manual_datagram *md);

/* ---- a process ------------------------------------------------------------ */

/* A subprocess transport over a child the user runs and reaps (or a fake
 * one, in tests): its pipes are manual streams, its signals are recorded. */
typedef struct pg_manual_process pg_manual_process;

/* Which of the child's fds are pipes: bit fd (1: stdin, 2: stdout, 4: stderr). */
#define PG_MANUAL_PIPE(fd) (1u << (fd))

/* Makes the transport for child pid with the pipes asked for; protocol's
 * connection_made follows at the next pg_manual_host_run(). The transport is
 * held until pg_manual_process_free(). */
int pg_manual_process_new(pg_host *host, pid_t pid, unsigned pipes, const pg_subprocess_protocol *protocol,
                          pg_manual_process **out);
/* Once closed, frees it and its pipes (releasing the transport). */
void pg_manual_process_free(pg_manual_process *mp);
pg_subprocess *pg_manual_process_transport(pg_manual_process *mp);
/* fd's pipe as a manual stream (feed stdout/stderr, take stdin's output,
 * feed_eof when the child closes its end), NULL when fd is not a pipe. */
pg_manual_stream *pg_manual_process_pipe(pg_manual_process *mp, int fd);
/* The child was reaped with returncode. */
void pg_manual_process_exit(pg_manual_process *mp, int returncode);
/* The signals the transport sent the child, in order (up to 16 kept);
 * returns how many were sent. */
size_t pg_manual_process_signals(const pg_manual_process *mp, const int **signals);
/* True once the transport let the child go (after connection_lost). */
bool pg_manual_process_closed(const pg_manual_process *mp);

#ifdef __cplusplus
}
#endif
#endif
