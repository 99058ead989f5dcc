"""The asyncio server of the conformance suite: the same behaviour as
conform_handlers.c, written with asyncio's own Protocol, tracing its callbacks
in protogen's trace format (PROTOGEN_TRACE) so the two can be compared.

    asyncio_server.py [--tls CERTDIR] [--buffered] tcp | unix PATH

--tls serves over TLS with CERTDIR's server.pem and server.key.

Standard library only; any Python 3.8+.
"""

import asyncio
import errno
import os
import signal
import ssl
import sys


class Trace:
    def __init__(self, path):
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644) if path else -1
        self.next_conn = 1

    def new_conn(self):
        n = self.next_conn
        self.next_conn += 1
        return n

    def write(self, conn, callback, detail=None):
        if self.fd >= 0:
            line = f"{conn} {callback}" + (f" {detail}" if detail is not None else "") + "\n"
            os.write(self.fd, line.encode())


def error_name(exc):
    if exc is None:
        return "ok"
    code = getattr(exc, "errno", None)
    return errno.errorcode.get(code, "EIO") if code else "EIO"


class Conform(asyncio.Protocol):
    def __init__(self, trace):
        self.trace = trace
        self.conn = trace.new_conn()
        self.received = 0

    def connection_made(self, transport):
        self.transport = transport
        self.trace.write(self.conn, "connection_made")

    def data_received(self, data):
        self.trace.write(self.conn, "data_received", len(data))
        self.received += len(data)
        self.transport.write(data)

    def eof_received(self):
        self.trace.write(self.conn, "eof_received")
        self.transport.write(b"total %d\n" % self.received)
        return False

    def connection_lost(self, exc):
        self.trace.write(self.conn, "connection_lost", error_name(exc))

    def pause_writing(self):
        self.trace.write(self.conn, "pause_writing", self.transport.get_write_buffer_size())
        self.transport.pause_reading()

    def resume_writing(self):
        self.trace.write(self.conn, "resume_writing", self.transport.get_write_buffer_size())
        self.transport.resume_reading()


class ConformBuffered(asyncio.BufferedProtocol):
    """Conform's behaviour, reading into a 64 KiB buffer of its own."""

    def __init__(self, trace):
        self.trace = trace
        self.conn = trace.new_conn()
        self.received = 0
        self.buffer = bytearray(64 * 1024)

    def connection_made(self, transport):
        self.transport = transport
        self.trace.write(self.conn, "connection_made")

    def get_buffer(self, sizehint):
        self.trace.write(self.conn, "get_buffer", sizehint)
        # A memoryview, not the bytearray: asyncio's SSL transport (3.11) reads
        # a second record into buf[offset:], which of a bytearray is a copy,
        # and the bytes are lost.
        return memoryview(self.buffer)

    def buffer_updated(self, nbytes):
        self.trace.write(self.conn, "buffer_updated", nbytes)
        self.received += nbytes
        self.transport.write(bytes(self.buffer[:nbytes]))

    eof_received = Conform.eof_received
    connection_lost = Conform.connection_lost
    pause_writing = Conform.pause_writing
    resume_writing = Conform.resume_writing


async def serve(argv):
    trace = Trace(os.environ.get("PROTOGEN_TRACE"))
    loop = asyncio.get_running_loop()
    protocol = Conform
    tls = None
    if argv[0] == "--tls":
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(os.path.join(argv[1], "server.pem"), os.path.join(argv[1], "server.key"))
        argv = argv[2:]
    if argv[0] == "--buffered":
        protocol = ConformBuffered
        argv = argv[1:]
    if argv[0] == "unix":
        server = await loop.create_unix_server(lambda: protocol(trace), argv[1], ssl=tls)
        where = argv[1]
    else:
        server = await loop.create_server(lambda: protocol(trace), "127.0.0.1", 0, ssl=tls)
        host, port = server.sockets[0].getsockname()[:2]
        where = f"{host}:{port}"
    print(f"listening on {where}", flush=True)
    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
    await stop
    server.close()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1:]))
