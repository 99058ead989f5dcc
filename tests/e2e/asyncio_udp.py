"""The UDP echo server and client of examples/udp-echo, written with Python's
asyncio (standard library only), tracing in protogen's format: the reference
the conformance test compares protogen with.

    asyncio_udp.py server [--host HOST] [--port PORT]
    asyncio_udp.py client [--host HOST] --port PORT [--count N] [--size BYTES]

Same behaviour as udp_echo_server and udp_echo_client (the client sends its
numbered datagrams one at a time and gives up at the first error_received).
The trace goes to PROTOGEN_TRACE ("-": stderr), one line per callback.
"""

import argparse
import asyncio
import errno
import os
import signal
import sys


class Trace:
    def __init__(self):
        path = os.environ.get("PROTOGEN_TRACE")
        self.out = None if not path else sys.stderr if path == "-" else open(path, "a", buffering=1)

    def __call__(self, line):
        if self.out is not None:
            self.out.write(f"1 {line}\n")
            self.out.flush()


def address(addr):
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def error_name(exc):
    return "ok" if exc is None else errno.errorcode.get(getattr(exc, "errno", None), "EIO")


class Traced(asyncio.DatagramProtocol):
    def __init__(self, trace):
        self.trace = trace
        self.transport = None
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport):
        self.transport = transport
        self.trace("connection_made")

    def datagram_received(self, data, addr):
        self.trace(f"datagram_received {len(data)} {address(addr)}")

    def error_received(self, exc):
        self.trace(f"error_received {error_name(exc)}")

    def connection_lost(self, exc):
        self.trace(f"connection_lost {error_name(exc)}")
        self.lost.set_result(exc)

    def pause_writing(self):
        self.trace(f"pause_writing {self.transport.get_write_buffer_size()}")

    def resume_writing(self):
        self.trace(f"resume_writing {self.transport.get_write_buffer_size()}")


class EchoServer(Traced):
    """udp_echo_handlers.c: echo to the sender; stop reading while writing is paused."""

    def datagram_received(self, data, addr):
        super().datagram_received(data, addr)
        self.transport.sendto(data, addr)

    def pause_writing(self):
        super().pause_writing()
        self.transport.pause_reading()

    def resume_writing(self):
        super().resume_writing()
        self.transport.resume_reading()


class EchoClient(Traced):
    """udp_echo_client_handlers.c, one datagram at a time."""

    def __init__(self, trace, count, size):
        super().__init__(trace)
        self.count, self.size, self.next, self.error = count, size, 0, None

    def payload(self, seq):
        return seq.to_bytes(8, "little") + bytes((seq + i) % 251 for i in range(8, self.size))

    def send_next(self):
        if self.next == self.count:
            self.transport.close()
            return
        self.transport.sendto(self.payload(self.next))
        self.next += 1

    def connection_made(self, transport):
        super().connection_made(transport)
        self.send_next()

    def datagram_received(self, data, addr):
        super().datagram_received(data, addr)
        if data != self.payload(self.next - 1):
            self.error = self.error or "a datagram came back wrong"
        self.send_next()

    def error_received(self, exc):
        super().error_received(exc)
        self.error = self.error or os.strerror(exc.errno)
        self.transport.close()


async def serve(args, trace):
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(lambda: EchoServer(trace),
                                                              local_addr=(args.host, args.port))
    print(f"listening on {address(transport.get_extra_info('sockname'))}", flush=True)
    for signo in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signo, transport.close)
    await protocol.lost
    return 0


async def talk(args, trace):
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(lambda: EchoClient(trace, args.count, args.size),
                                                              remote_addr=(args.host, args.port))
    await protocol.lost
    if protocol.error:
        print(f"asyncio_udp client: {args.host}:{args.port}: {protocol.error}", file=sys.stderr)
        return 1
    print(f"echoed {args.count} datagrams of {args.size} bytes")
    return 0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=("server", "client"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7777)
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()
    trace = Trace()
    return asyncio.run(serve(args, trace) if args.role == "server" else talk(args, trace))


if __name__ == "__main__":
    sys.exit(main())
