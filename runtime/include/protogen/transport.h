/* Transports: what a protocol uses to act on its connection (asyncio's
 * Transport). Each transport kind supplies a table of operations; these
 * functions dispatch through it.
 *
 * Integer results are 0 or a negative errno value. */
#ifndef PROTOGEN_TRANSPORT_H
#define PROTOGEN_TRANSPORT_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "protogen/protocol.h"

#ifdef __cplusplus
extern "C" {
#endif

/* asyncio's defaults: high 64 KiB, low = high / 4. */
#define PG_DEFAULT_HIGH_WATER ((size_t)64 * 1024)

/* Passed to pg_transport_set_write_buffer_limits() for "not given". */
#define PG_LIMIT_DEFAULT SIZE_MAX

/* get_extra_info keys. */
typedef enum pg_extra_key {
    PG_EXTRA_PEERNAME, /* struct sockaddr_storage in .addr */
    PG_EXTRA_SOCKNAME, /* struct sockaddr_storage in .addr */
    PG_EXTRA_SOCKET,   /* the socket's fd in .fd */
    PG_EXTRA_PIPE,     /* a pipe transport's fd in .fd */
    PG_EXTRA_SUBPROCESS, /* a subprocess transport's pidfd in .fd (-1 without one) */
} pg_extra_key;

typedef struct pg_extra_info {
    struct sockaddr_storage addr;
    socklen_t addrlen;
    int fd;
} pg_extra_info;

typedef struct pg_transport_ops {
    int (*write)(pg_transport *t, const void *data, size_t len);
    int (*writelines)(pg_transport *t, const struct iovec *iov, int iovcnt);
    int (*write_eof)(pg_transport *t);
    bool (*can_write_eof)(const pg_transport *t);
    void (*close)(pg_transport *t);
    void (*abort)(pg_transport *t);
    bool (*is_closing)(const pg_transport *t);
    void (*pause_reading)(pg_transport *t);
    void (*resume_reading)(pg_transport *t);
    bool (*is_reading)(const pg_transport *t);
    size_t (*get_write_buffer_size)(const pg_transport *t);
    void (*get_write_buffer_limits)(const pg_transport *t, size_t *high, size_t *low);
    int (*set_write_buffer_limits)(pg_transport *t, size_t high, size_t low);
    int (*get_extra_info)(const pg_transport *t, pg_extra_key key, pg_extra_info *out);
    /* Optional (NULL: -ENOTSUP). */
    int (*set_protocol)(pg_transport *t, const pg_protocol *protocol);
    int (*get_protocol)(const pg_transport *t, pg_protocol *out);
} pg_transport_ops;

/* Every transport starts with this header. */
struct pg_transport {
    const pg_transport_ops *ops;
};

/* A stream transport's handle is its block's address with the connection's
 * generation in the top 16 bits, which no user-space address uses on 64-bit
 * Linux: the runtime tells a handle kept past connection_lost from the
 * handle of a later connection in the same block, and drops the call. The
 * table is reached through the address alone. */
#define PG__HANDLE_ADDR_MASK ((uintptr_t)0xffffffffffffu)

static inline const pg_transport_ops *pg__transport_ops(const pg_transport *t)
{ return ((const pg_transport *)((uintptr_t)t & PG__HANDLE_ADDR_MASK))->ops; }

/* Sends at once what the kernel takes, buffers the rest. Zero bytes: no-op.
 * After write_eof(): -EPIPE. After the connection is lost: dropped, 0; also
 * through a stream handle kept past connection_lost (docs/runtime.md). */
static inline int pg_transport_write(pg_transport *t, const void *data, size_t len)
{ return pg__transport_ops(t)->write(t, data, len); }

/* Like write() for several buffers at once, gathered with one writev. */
static inline int pg_transport_writelines(pg_transport *t, const struct iovec *iov, int iovcnt)
{ return pg__transport_ops(t)->writelines(t, iov, iovcnt); }

/* Shuts down the write side once the buffer has drained. -ENOTSUP when the
 * transport cannot (see can_write_eof). No-op when closing or already done. */
static inline int pg_transport_write_eof(pg_transport *t) { return pg__transport_ops(t)->write_eof(t); }
static inline bool pg_transport_can_write_eof(const pg_transport *t) { return pg__transport_ops(t)->can_write_eof(t); }

/* Stops reading, flushes the buffer, then connection_lost(0). Idempotent. */
static inline void pg_transport_close(pg_transport *t) { pg__transport_ops(t)->close(t); }

/* Drops the buffer and closes now; connection_lost(0) on the next iteration. */
static inline void pg_transport_abort(pg_transport *t) { pg__transport_ops(t)->abort(t); }

static inline bool pg_transport_is_closing(const pg_transport *t) { return pg__transport_ops(t)->is_closing(t); }

/* Idempotent; no effect once closing. */
static inline void pg_transport_pause_reading(pg_transport *t) { pg__transport_ops(t)->pause_reading(t); }
static inline void pg_transport_resume_reading(pg_transport *t) { pg__transport_ops(t)->resume_reading(t); }
static inline bool pg_transport_is_reading(const pg_transport *t) { return pg__transport_ops(t)->is_reading(t); }

/* Bytes buffered in user space (not counting the kernel's socket buffer). */
static inline size_t pg_transport_get_write_buffer_size(const pg_transport *t)
{ return pg__transport_ops(t)->get_write_buffer_size(t); }

static inline void pg_transport_get_write_buffer_limits(const pg_transport *t, size_t *high, size_t *low)
{ pg__transport_ops(t)->get_write_buffer_limits(t, high, low); }

/* asyncio's rules: both PG_LIMIT_DEFAULT → high 64 KiB, low 16 KiB; only high
 * → low = high/4; only low → high = 4*low; high < low → -EINVAL. May call
 * pause_writing at once; never resume_writing. */
static inline int pg_transport_set_write_buffer_limits(pg_transport *t, size_t high, size_t low)
{ return pg__transport_ops(t)->set_write_buffer_limits(t, high, low); }

/* -ENOENT when the transport has no such information. */
static inline int pg_transport_get_extra_info(const pg_transport *t, pg_extra_key key, pg_extra_info *out)
{ return pg__transport_ops(t)->get_extra_info(t, key, out); }

/* asyncio's set_protocol: every later callback goes to protocol instead (a
 * stream protocol may be replaced by a buffered one and back). The runtime
 * calls no callback on either protocol for the switch itself: the old one is
 * simply never called again, and the new one is assumed connected (call its
 * connection_made yourself if it needs one). -ENOTSUP when the transport
 * cannot switch, -EINVAL for a protocol without ops. */
static inline int pg_transport_set_protocol(pg_transport *t, const pg_protocol *protocol)
{ return pg__transport_ops(t)->set_protocol != NULL ? pg__transport_ops(t)->set_protocol(t, protocol) : -ENOTSUP; }

/* asyncio's get_protocol: the protocol that gets the callbacks now. */
static inline int pg_transport_get_protocol(const pg_transport *t, pg_protocol *out)
{ return pg__transport_ops(t)->get_protocol != NULL ? pg__transport_ops(t)->get_protocol(t, out) : -ENOTSUP; }

#ifdef __cplusplus
}
#endif
#endif
