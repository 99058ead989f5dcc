/* Datagram protocols and transports (asyncio's DatagramProtocol and
 * DatagramTransport).
 *
 * Order is guaranteed by the runtime:
 *   connection_made  (datagram_received | error_received)*  connection_lost
 * with pause_writing/resume_writing alternating (pause first) between
 * connection_made and connection_lost. connection_lost is called exactly once;
 * after it returns the transport is gone: a call through a handle kept past
 * it is dropped (counted; debug builds assert), whatever endpoint holds the
 * memory next.
 *
 * Integer results are 0 or a negative errno value. */
#ifndef PROTOGEN_DATAGRAM_H
#define PROTOGEN_DATAGRAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "protogen/loop.h"
#include "protogen/transport.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pg_datagram_transport pg_datagram_transport;

typedef struct pg_datagram_protocol_ops {
    /* The endpoint is ready. No datagram arrives before this returns. */
    void (*connection_made)(void *self, pg_datagram_transport *transport);
    /* One whole datagram (len may be 0) and its sender. The memory belongs to
     * the loop: copy what you keep. */
    void (*datagram_received)(void *self, const uint8_t *data, size_t len, const struct sockaddr *addr,
                              socklen_t addrlen);
    /* An OS error about a datagram sent or received: -ECONNREFUSED after an
     * ICMP port unreachable on a connected endpoint, -EMSGSIZE, ... The
     * transport stays open. */
    void (*error_received)(void *self, int error);
    /* The endpoint is closed. error is 0, or a negative errno. */
    void (*connection_lost)(void *self, int error);
    /* The send queue went above the high watermark. */
    void (*pause_writing)(void *self);
    /* The send queue drained to the low watermark or below. */
    void (*resume_writing)(void *self);
} pg_datagram_protocol_ops;

/* A datagram protocol instance: its callback table and the pointer passed to them. */
typedef struct pg_datagram_protocol {
    const pg_datagram_protocol_ops *ops;
    void *self;
} pg_datagram_protocol;

/* Called once per endpoint to make its protocol instance. Return 0 and fill
 * *out, or a negative errno to refuse (the endpoint is not made). */
typedef int (*pg_datagram_protocol_factory)(void *arg, pg_datagram_protocol *out);

/* What a queued datagram costs beyond its payload in the write buffer size,
 * as asyncio counts it (a UDP header): a queue of empty datagrams still
 * reaches the high watermark. */
#define PG_DATAGRAM_OVERHEAD ((size_t)8)

typedef struct pg_datagram_transport_ops {
    int (*sendto)(pg_datagram_transport *t, const void *data, size_t len, const struct sockaddr *addr,
                  socklen_t addrlen);
    void (*close)(pg_datagram_transport *t);
    void (*abort)(pg_datagram_transport *t);
    bool (*is_closing)(const pg_datagram_transport *t);
    void (*pause_reading)(pg_datagram_transport *t);
    void (*resume_reading)(pg_datagram_transport *t);
    bool (*is_reading)(const pg_datagram_transport *t);
    size_t (*get_write_buffer_size)(const pg_datagram_transport *t);
    void (*get_write_buffer_limits)(const pg_datagram_transport *t, size_t *high, size_t *low);
    int (*set_write_buffer_limits)(pg_datagram_transport *t, size_t high, size_t low);
    int (*get_extra_info)(const pg_datagram_transport *t, pg_extra_key key, pg_extra_info *out);
} pg_datagram_transport_ops;

/* Every datagram transport starts with this header. */
struct pg_datagram_transport {
    const pg_datagram_transport_ops *ops;
};

/* A datagram transport's handle carries the endpoint's generation in its top
 * 16 bits, as a stream's does (transport.h): a call through a handle kept
 * past connection_lost is told apart from the next endpoint's and dropped.
 * The table is reached through the address alone. */
static inline const pg_datagram_transport_ops *pg__datagram_ops(const pg_datagram_transport *t)
{ return ((const pg_datagram_transport *)((uintptr_t)t & PG__HANDLE_ADDR_MASK))->ops; }

/* Sends one datagram of len bytes (0 is allowed: an empty datagram).
 * On a connected endpoint addr must be NULL or the peer's address (else
 * -EINVAL); otherwise it is required (else -EDESTADDRREQ). With nothing queued
 * it is sent at once; if the kernel cannot take it now it is copied and
 * queued (-ENOMEM: not even that). Any other OS error goes to error_received
 * (after connection_made; before, it is returned) and the transport stays
 * open. After the endpoint is lost: dropped, 0; also through a handle kept
 * past connection_lost (docs/datagrams.md). */
static inline int pg_datagram_transport_sendto(pg_datagram_transport *t, const void *data, size_t len,
                                               const struct sockaddr *addr, socklen_t addrlen)
{ return pg__datagram_ops(t)->sendto(t, data, len, addr, addrlen); }

/* Stops reading, sends what is queued, then connection_lost(0). Idempotent. */
static inline void pg_datagram_transport_close(pg_datagram_transport *t) { pg__datagram_ops(t)->close(t); }

/* Drops the queue and closes now; connection_lost(0) on the next iteration. */
static inline void pg_datagram_transport_abort(pg_datagram_transport *t) { pg__datagram_ops(t)->abort(t); }

static inline bool pg_datagram_transport_is_closing(const pg_datagram_transport *t)
{ return pg__datagram_ops(t)->is_closing(t); }

/* Idempotent; no effect once closing. No datagram_received comes while paused. */
static inline void pg_datagram_transport_pause_reading(pg_datagram_transport *t) { pg__datagram_ops(t)->pause_reading(t); }
static inline void pg_datagram_transport_resume_reading(pg_datagram_transport *t) { pg__datagram_ops(t)->resume_reading(t); }
static inline bool pg_datagram_transport_is_reading(const pg_datagram_transport *t)
{ return pg__datagram_ops(t)->is_reading(t); }

/* The queued datagrams' bytes, each with PG_DATAGRAM_OVERHEAD. */
static inline size_t pg_datagram_transport_get_write_buffer_size(const pg_datagram_transport *t)
{ return pg__datagram_ops(t)->get_write_buffer_size(t); }

static inline void pg_datagram_transport_get_write_buffer_limits(const pg_datagram_transport *t, size_t *high,
                                                                 size_t *low)
{ pg__datagram_ops(t)->get_write_buffer_limits(t, high, low); }

/* The stream transports' rules (see transport.h): defaults 64 KiB / 16 KiB,
 * PG_LIMIT_DEFAULT for "not given", high < low → -EINVAL; may pause at once. */
static inline int pg_datagram_transport_set_write_buffer_limits(pg_datagram_transport *t, size_t high, size_t low)
{ return pg__datagram_ops(t)->set_write_buffer_limits(t, high, low); }

/* PG_EXTRA_SOCKNAME, PG_EXTRA_PEERNAME (connected endpoints; -ENOTCONN
 * otherwise), PG_EXTRA_SOCKET; -ENOENT for other keys. */
static inline int pg_datagram_transport_get_extra_info(const pg_datagram_transport *t, pg_extra_key key,
                                                       pg_extra_info *out)
{ return pg__datagram_ops(t)->get_extra_info(t, key, out); }

/* Wraps a datagram socket the caller already has (asyncio's
 * create_datagram_endpoint(sock=...)): UDP, or a Unix datagram socket. The fd
 * is made non-blocking; a connected socket gets a connected endpoint.
 * factory(arg) makes the protocol. On success the transport owns the fd
 * (closed after connection_lost), connection_made follows on the next
 * iteration, and *out (if not NULL) is the transport. On error (-ENOTSOCK,
 * -EINVAL for a socket that is not SOCK_DGRAM, the factory's error, -ENOMEM)
 * the fd stays the caller's and no protocol callback is called. */
int pg_datagram_adopt_fd(pg_loop *loop, int fd, pg_datagram_protocol_factory factory, void *arg,
                         pg_datagram_transport **out);

#ifdef __cplusplus
}
#endif
#endif
