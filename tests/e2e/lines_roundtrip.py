"""End to end: the generated line server (examples/lines) over loopback.

    lines_roundtrip.py LINES_SERVER

Lines cut anywhere arrive whole; RAW n switches the framing to one counted
body and back; a line over the max is a protocol error that is answered, then
the connection closes; and a client that pipelines thousands of lines without
reading gets every reply, in order, while the server's trace shows no message
delivered between a pause_writing and its resume_writing (the framer holds the
input back by itself). The trace goes to a FIFO read line by line, so the test
waits on events, never on sleeps.
"""

import fcntl
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

DEADLINE_S = 60
LINES = 4000
LINE = 1000


F_SETPIPE_SZ = 1031


class Trace:
    """The server's trace lines, read by a thread as they come (a trace line
    that finds the FIFO full is dropped, so the FIFO is enlarged and kept empty)."""

    def __init__(self, fifo):
        self.fd = os.open(fifo, os.O_RDWR)   # a writer of our own: no EOF between server writes
        try:
            fcntl.fcntl(self.fd, F_SETPIPE_SZ, 1 << 20)
        except OSError:
            pass
        self.lines = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        pending = b""
        while True:
            try:
                chunk = os.read(self.fd, 1 << 16)
            except OSError:
                return
            pending += chunk
            *done, pending = pending.split(b"\n")
            with self.cond:
                self.lines += [l.decode() for l in done]
                self.cond.notify_all()

    def until(self, predicate, deadline):
        with self.cond:
            seen = 0
            while True:
                for line in self.lines[seen:]:
                    if predicate(line):
                        return line
                seen = len(self.lines)
                left = deadline - time.monotonic()
                assert left > 0, f"timed out waiting for the trace; so far: {self.lines[-5:]}"
                self.cond.wait(left)


def recv_to_eof(sock):
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def main(server_bin):
    deadline = time.monotonic() + DEADLINE_S
    tmp = tempfile.mkdtemp(prefix="protogen-e2e-")
    fifo = os.path.join(tmp, "trace")
    os.mkfifo(fifo)
    trace = Trace(fifo)
    env = dict(os.environ, PROTOGEN_TRACE=fifo)
    server = subprocess.Popen([server_bin, "--port", "0", "--sndbuf", "16384"],
                              stdout=subprocess.PIPE, text=True, env=env)
    try:
        line = server.stdout.readline().strip()
        assert line.startswith("listening on 127.0.0.1:"), f"server said {line!r}"
        port = int(line.rsplit(":", 1)[1])

        def connect():
            s = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return s

        # 1: lines cut anywhere, upper-cased back; QUIT says BYE and closes.
        with connect() as s:
            for piece in (b"hel", b"lo\r", b"\nwor", b"ld\r\n\r\n", b"QU", b"IT\r\n"):
                s.sendall(piece)
            assert recv_to_eof(s) == b"HELLO\r\nWORLD\r\n\r\nBYE\r\n"

        # 2: a counted body in the middle of lines, delivered whole, then lines again.
        with connect() as s:
            s.sendall(b"RAW 5\r\nab\r\ncok\r\nQUIT\r\n")
            assert recv_to_eof(s) == b"ab\r\nc\r\nOK\r\nBYE\r\n"

        # 3: a line over the max: answered by the protocol_error handler, then closed.
        with connect() as s:
            s.sendall(b"fine\r\n" + b"x" * 2000)
            got = recv_to_eof(s)
            assert got == b"FINE\r\n-ERR line longer than the framing's max at byte 1030\r\n", got

        # 4: pipelining without reading: the replies come back whole and in order.
        with connect() as s:
            request = b"".join(b"%05d" % i + b"a" * (LINE - 5) + b"\r\n" for i in range(LINES))
            sender = threading.Thread(target=s.sendall, args=(request + b"QUIT\r\n",))
            sender.start()
            trace.until(lambda l: l.startswith("4 pause_writing "), deadline)
            expected = request.upper() + b"BYE\r\n"
            got = recv_to_eof(s)
            sender.join()
            assert got == expected, f"{len(got)} bytes of {len(expected)}"
        trace.until(lambda l: l.startswith("4 connection_lost"), deadline)

        assert not any(l.startswith("0 trace_dropped") for l in trace.lines), "trace lines were dropped"
        four = [l.split()[1] for l in trace.lines if l.startswith("4 ")]
        assert four.count("message_received") == LINES + 1, four.count("message_received")
        held = False
        pauses = 0
        for event in four:
            if event == "pause_writing":
                held, pauses = True, pauses + 1
            elif event == "resume_writing":
                held = False
            elif event == "message_received":
                assert not held, "a message was delivered while writing was paused"
        assert pauses > 0
        three = [l for l in trace.lines if l.startswith("3 ")]
        assert "3 protocol_error EMSGSIZE 1030" in three, three

        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=max(1, deadline - time.monotonic())) == 0, "server did not stop cleanly"
        print(f"lines round trip: {LINES} pipelined lines, {pauses} pause_writing with input held back")
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        os.close(trace.fd)
        os.unlink(fifo)
        os.rmdir(tmp)


if __name__ == "__main__":
    main(sys.argv[1])
