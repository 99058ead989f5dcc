/* Pipe transports over fds the caller already has (asyncio's
 * connect_read_pipe / connect_write_pipe): one end of a pipe(2), a FIFO, a
 * character device, or a stream socket used one way.
 *
 * A read pipe transport reads and never writes: at end of input it calls
 * eof_received (its answer is ignored) and then connection_lost(0).
 *
 * A write pipe transport writes and never reads. write_eof() and close() both
 * close the pipe once the buffer has drained, then connection_lost(0). When
 * the reader goes away, the transport notices even while idle:
 * connection_lost(-EPIPE) if bytes were still buffered, connection_lost(0)
 * otherwise. Writing to a pipe whose reader is gone never raises SIGPIPE in
 * the process: the signal is blocked in the writing thread for the duration
 * of the write and a SIGPIPE it caused is consumed; the process's signal
 * dispositions are left alone. */
#ifndef PROTOGEN_PIPE_H
#define PROTOGEN_PIPE_H

#include "protogen/loop.h"
#include "protogen/protocol.h"
#include "protogen/transport.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Wraps fd (made non-blocking) in a read pipe transport; factory(arg) makes
 * the protocol. On success the transport owns fd (closed after
 * connection_lost) and connection_made follows on the next iteration. On error
 * (-EINVAL: not a pipe, socket or character device; -ENOMEM; the factory's
 * error) fd stays the caller's and no protocol callback is called. */
int pg_pipe_connect_read(pg_loop *loop, int fd, pg_protocol_factory factory, void *arg, pg_transport **out);

/* The same for the write end of a pipe. */
int pg_pipe_connect_write(pg_loop *loop, int fd, pg_protocol_factory factory, void *arg, pg_transport **out);

#ifdef __cplusplus
}
#endif
#endif
