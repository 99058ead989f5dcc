/* Protocols: the callbacks a transport calls (asyncio's Protocol).
 *
 * Order is guaranteed by the runtime:
 *   connection_made  data_received*  eof_received?  connection_lost
 * or, for a buffered protocol (asyncio's BufferedProtocol, get_buffer set):
 *   connection_made  (get_buffer  buffer_updated?)*  eof_received?  connection_lost
 * with pause_writing/resume_writing alternating (pause first) between
 * connection_made and connection_lost. connection_lost is called exactly once;
 * after it returns the transport is gone and must not be used. */
#ifndef PROTOGEN_PROTOCOL_H
#define PROTOGEN_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pg_transport pg_transport;

typedef struct pg_protocol_ops {
    /* The transport is ready. No data arrives before this returns. */
    void (*connection_made)(void *self, pg_transport *transport);
    /* Bytes from the peer. The memory belongs to the loop: copy what you keep. */
    void (*data_received)(void *self, const uint8_t *data, size_t len);
    /* The peer closed its write side. Return true to keep the connection open
     * for writing (half-close); false closes it once the write buffer drains. */
    bool (*eof_received)(void *self);
    /* The connection is closed. error is 0, or a negative errno (-ECONNRESET). */
    void (*connection_lost)(void *self, int error);
    /* The write buffer went above the high watermark. */
    void (*pause_writing)(void *self);
    /* The write buffer drained to the low watermark or below. */
    void (*resume_writing)(void *self);
    /* Set for a buffered protocol, whose reads go straight into its memory
     * (data_received is then never called): returns where the next read may
     * write and its size in *len. size_hint is the most one read takes; any
     * size of at least 1 byte will do. NULL or *len == 0 is a fatal error for
     * the connection: connection_lost(-ENOBUFS), as asyncio. */
    uint8_t *(*get_buffer)(void *self, size_t size_hint, size_t *len);
    /* nbytes (> 0) were written at the start of the buffer from get_buffer. */
    void (*buffer_updated)(void *self, size_t nbytes);
} pg_protocol_ops;

/* A protocol instance: its callback table and the pointer passed to them. */
typedef struct pg_protocol {
    const pg_protocol_ops *ops;
    void *self;
} pg_protocol;

/* Called once per new connection to make its protocol instance. Return 0 and
 * fill *out, or a negative errno to refuse the connection (it is closed). */
typedef int (*pg_protocol_factory)(void *arg, pg_protocol *out);

#ifdef __cplusplus
}
#endif
#endif
