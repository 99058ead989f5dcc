"""asyncio_echo: the semantics reference, an asyncio Protocol echo server (stdlib only).

    asyncio_echo.py [--host A.B.C.D] [--port PORT]

Prints "listening on HOST:PORT" (PORT 0 picks a free port); SIGINT or SIGTERM ends it.
The same callbacks as examples/echo/echo_handlers.c: write back what arrives, stop
reading while the transport's buffer is above its high watermark, close on EOF.
"""

import argparse
import asyncio
import resource
import signal


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)

    def pause_writing(self):
        self.transport.pause_reading()

    def resume_writing(self):
        self.transport.resume_reading()

    # eof_received: the default (None) closes once the buffer drains.


async def serve(host, port):
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for signo in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signo, lambda: stop.done() or stop.set_result(None))
    server = await loop.create_server(Echo, host, port, backlog=128)
    where = server.sockets[0].getsockname()
    print(f"listening on {where[0]}:{where[1]}", flush=True)
    await stop
    server.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=7777)
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
