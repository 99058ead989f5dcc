"""End to end: the generated echo server and client round-trip 1 MiB over loopback
while the client holds off reading, and the server's trace shows flow control.

    echo_roundtrip.py ECHO_SERVER ECHO_CLIENT [SERVER_ARG...]

The server's PROTOGEN_TRACE goes to a FIFO that this script reads line by line:
it lets the client read again (SIGUSR1) only once the server has reported
pause_writing, so the test waits on events, never on sleeps. Then two idle
connections are left open and the server is stopped with SIGTERM: it aborts
them (each one's connection_lost runs) and exits 0.
"""

import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time

DEADLINE_S = 60
PAYLOAD = 1 << 20


class Trace:
    def __init__(self, fifo):
        self.fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        self.pending = b""
        self.lines = []

    def next_line(self, deadline):
        while b"\n" not in self.pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out waiting for the trace; so far: {self.lines[-5:]}")
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                chunk = os.read(self.fd, 65536)
                if not chunk:   # no writer (yet, or any more): wait for one
                    select.select([], [], [], 0.01)
                self.pending += chunk
        line, self.pending = self.pending.split(b"\n", 1)
        self.lines.append(line.decode())
        return self.lines[-1]

    def until(self, predicate, deadline):
        while True:
            line = self.next_line(deadline)
            if predicate(line):
                return line


def main(server_bin, client_bin, server_args=()):
    deadline = time.monotonic() + DEADLINE_S
    tmp = tempfile.mkdtemp(prefix="protogen-e2e-")
    fifo = os.path.join(tmp, "trace")
    os.mkfifo(fifo)
    trace = Trace(fifo)
    env = dict(os.environ, PROTOGEN_TRACE=fifo)
    server = subprocess.Popen([server_bin, "--port", "0", "--sndbuf", "16384", *server_args],
                              stdout=subprocess.PIPE, text=True, env=env)
    client = None
    try:
        line = server.stdout.readline().strip()
        assert line.startswith("listening on 127.0.0.1:"), f"server said {line!r}"
        port = line.rsplit(":", 1)[1]

        client_env = {k: v for k, v in os.environ.items() if k != "PROTOGEN_TRACE"}
        client = subprocess.Popen([client_bin, "--port", port, "--bytes", str(PAYLOAD), "--hold-until-signal"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=client_env)

        assert trace.next_line(deadline) == "1 connection_made", trace.lines
        trace.until(lambda l: l.startswith("1 pause_writing "), deadline)
        client.send_signal(signal.SIGUSR1)   # the client reads again: the server's buffer drains
        trace.until(lambda l: l.startswith("1 connection_lost"), deadline)

        out, err = client.communicate(timeout=max(1, deadline - time.monotonic()))
        assert client.returncode == 0, f"client failed ({client.returncode}): {err}"
        assert out.strip() == f"echoed {PAYLOAD} bytes: all came back intact", out

        events = [l.split()[1] for l in trace.lines]
        received = sum(int(l.split()[2]) for l in trace.lines if l.split()[1] == "data_received")
        assert received == PAYLOAD, f"the server received {received} bytes"
        assert all(l.startswith("1 ") for l in trace.lines), "one connection, numbered 1"
        flow = [e for e in events if e in ("pause_writing", "resume_writing")]
        assert flow and flow[0] == "pause_writing" and "resume_writing" in flow, flow
        assert all(a != b for a, b in zip(flow, flow[1:])), f"pause/resume must alternate: {flow}"
        assert events[-2:] == ["eof_received", "connection_lost"], events[-3:]
        assert trace.lines[-1] == "1 connection_lost ok", trace.lines[-1]

        # Shutting down with connections open: the server aborts them (connection_lost ok) and exits.
        idle = [socket.create_connection(("127.0.0.1", int(port))) for _ in range(2)]
        trace.until(lambda l: l == "2 connection_made", deadline)
        trace.until(lambda l: l == "3 connection_made", deadline)
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=max(1, deadline - time.monotonic())) == 0, "server did not stop cleanly"
        ends = {trace.until(lambda l: l.split()[1] == "connection_lost", deadline) for _ in idle}
        assert ends == {"2 connection_lost ok", "3 connection_lost ok"}, ends
        for sock in idle:
            sock.settimeout(max(1, deadline - time.monotonic()))
            assert sock.recv(1) == b"", "an open connection outlived the server"
            sock.close()
        print(f"round trip of {PAYLOAD} bytes; server trace: {len(trace.lines)} lines, "
              f"{flow.count('pause_writing')} pause_writing, {flow.count('resume_writing')} resume_writing")
    finally:
        for proc in (client, server):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        os.close(trace.fd)
        os.unlink(fifo)
        os.rmdir(tmp)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
