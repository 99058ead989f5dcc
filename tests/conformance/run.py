"""Conformance against asyncio: the same scripted peers run against a small
asyncio server (asyncio_server.py) and against the protogen server built from
conform.spec (conform_server), and their traces must match once normalised.

    run.py CONFORM_SERVER [PYTHON [SERVER_ARGS...]]

SERVER_ARGS go to conform_server first: --host loop (the default), libuv or
poll is the host it runs the protocol on; every host must give asyncio's traces.
With --tls CERTDIR among them, both servers serve over TLS (asyncio's SSL
transport, protogen's TLS layer) and the TLS scenarios run instead: the peers
drive TLS themselves (ssl.SSLObject over memory BIOs), so that they can read
the server's answer after their own close_notify. Over TLS the peer's
close_notify is the server's eof_received; the TCP connection below a protogen
TLS layer is an instance of its own in the trace (with a tls_handshake line),
left out of the comparison.

Normalising keeps what asyncio guarantees and drops what the kernel decides:
  - a run of data_received lines becomes one, with the bytes added up (how a
    byte stream is cut into reads is the kernel's business; the total is not);
  - pause_writing/resume_writing are summed up per connection as "none",
    "paused" or "paused,resumed" (how often the buffer crosses the watermarks
    depends on scheduling; that pause comes first and that they alternate
    does not: anything else is "INVALID");
  - connections are compared as a multiset of per-connection sequences (their
    numbering follows accept order, which concurrent peers do not fix).
  - for buffered protocols (asyncio's BufferedProtocol, conform_buffered.spec)
    get_buffer lines are dropped and buffer_updated counts as data_received.
The peers also check what they receive (the echo, then "total N"). Every
scenario runs with a Protocol and with a BufferedProtocol on each side.
"""

import os
import select
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time

TIMEOUT_S = 30
HERE = os.path.dirname(os.path.abspath(__file__))


# ---- servers ---------------------------------------------------------------

class Server:
    def __init__(self, argv, family, tmp, name, buffered=False):
        self.trace = os.path.join(tmp, f"{name}.trace")
        self.family = family
        self.path = os.path.join(tmp, f"{name}.sock")
        args = argv + (["--buffered"] if buffered else []) + (["unix", self.path] if family == "unix" else ["tcp"])
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True,
                                     env=dict(os.environ, PROTOGEN_TRACE=self.trace))
        line = self.proc.stdout.readline()
        assert line.startswith("listening on "), f"{argv}: {line!r}"
        where = line[len("listening on "):].strip()
        if family == "tcp":
            host, port = where.rsplit(":", 1)
            self.address = (host, int(port))
        else:
            self.address = self.path

    def connect(self, rcvbuf=0):
        s = socket.socket(socket.AF_INET if self.family == "tcp" else socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(TIMEOUT_S)
        if rcvbuf:   # before connect: it sets the TCP window
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.connect(self.address)
        return s

    def trace_lines(self):
        try:
            with open(self.trace) as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def wait_trace(self, predicate):
        """Waits for the server's trace to satisfy predicate (event-driven: the
        trace is written before each callback returns)."""
        deadline = time.monotonic() + TIMEOUT_S
        while not predicate(self.trace_lines()):
            assert time.monotonic() < deadline, f"timed out; trace so far: {self.trace_lines()[-5:]}"
            time.sleep(0.005)

    def stop(self):
        self.proc.terminate()
        assert self.proc.wait(timeout=TIMEOUT_S) == 0
        lines = self.trace_lines()
        for p in (self.trace, self.path):
            if os.path.exists(p):
                os.unlink(p)
        return lines


def lost_count(lines):
    return sum(1 for line in lines if line.split()[1] == "connection_lost")


# ---- peers -----------------------------------------------------------------

def read_to_eof(s):
    chunks = []
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def peer_connect_close(server):
    s = server.connect()
    s.close()
    server.wait_trace(lambda t: lost_count(t) == 1)


def peer_chunks(server):
    s = server.connect()
    for i in range(10):
        chunk = bytes([65 + i]) * 1000
        s.sendall(chunk)
        got = b""
        while len(got) < len(chunk):
            got += s.recv(len(chunk) - len(got))
        assert got == chunk
    s.shutdown(socket.SHUT_WR)
    assert read_to_eof(s) == b"total 10000\n"
    s.close()
    server.wait_trace(lambda t: lost_count(t) == 1)


def peer_half_close(server):
    s = server.connect()
    s.sendall(b"hello")
    s.shutdown(socket.SHUT_WR)
    assert read_to_eof(s) == b"hellototal 5\n"
    s.close()
    server.wait_trace(lambda t: lost_count(t) == 1)


def peer_reset(server):
    s = server.connect()
    s.sendall(b"x")
    assert s.recv(1) == b"x"
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()   # RST
    server.wait_trace(lambda t: lost_count(t) == 1)


def peer_slow_reader(server):
    """Sends 16 MiB without reading until the server has paused writing (more
    than the kernel's socket buffers can hold on either side)."""
    s = server.connect(rcvbuf=4096)
    payload = os.urandom(1 << 16) * 256
    errors = []

    def send():
        try:
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
        except OSError as e:   # pragma: no cover - reported below
            errors.append(e)

    sender = threading.Thread(target=send)
    sender.start()
    server.wait_trace(lambda t: any(line.split()[1] == "pause_writing" for line in t))
    got = read_to_eof(s)
    sender.join(TIMEOUT_S)
    assert not errors, errors
    assert got == payload + b"total %d\n" % len(payload)
    s.close()
    server.wait_trace(lambda t: lost_count(t) == 1)


def peer_many(server):
    n = 20
    socks = [server.connect() for _ in range(n)]
    for i, s in enumerate(socks):
        s.sendall(b"%03d" % i * 10)
    for i, s in enumerate(socks):
        s.shutdown(socket.SHUT_WR)
        assert read_to_eof(s) == b"%03d" % i * 10 + b"total 30\n"
        s.close()
    server.wait_trace(lambda t: lost_count(t) == n)


# ---- TLS peers (--tls) -------------------------------------------------------

class TlsPeer:
    """A TLS client over a memory BIO pair, on a blocking socket."""

    certdir = None

    def __init__(self, server, rcvbuf=0):
        self.sock = server.connect(rcvbuf)
        ctx = ssl.create_default_context(cafile=os.path.join(self.certdir, "ca.pem"))
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out, server_hostname="localhost")
        self.run(self.obj.do_handshake)

    def flush(self):
        data = self.out.read()
        if data:
            self.sock.sendall(data)

    def feed(self):
        chunk = self.sock.recv(65536)
        if chunk:
            self.inc.write(chunk)
        else:
            self.inc.write_eof()
        return chunk

    def run(self, op):
        while True:
            try:
                result = op()
                self.flush()
                return result
            except ssl.SSLWantReadError:
                self.flush()
                if not self.feed():
                    raise EOFError("the server closed the connection")

    def send(self, data):
        self.run(lambda: self.obj.write(data))

    def recv_exact(self, n):
        got = b""
        while len(got) < n:
            got += self.run(lambda: self.obj.read(n - len(got)))
        return got

    def close_notify_then_read(self):
        """Sends our close_notify, then reads what the server sends until its own."""
        try:
            self.obj.unwrap()
        except ssl.SSLWantReadError:
            pass
        self.flush()
        got = b""
        while True:
            try:
                chunk = self.run(lambda: self.obj.read(65536))
            except ssl.SSLZeroReturnError:
                break
            if not chunk:
                break
            got += chunk
        self.sock.close()
        return got


def tls_connect_close(server):
    assert TlsPeer(server).close_notify_then_read() == b"total 0\n"
    server.wait_trace(lambda t: app_lost(t) == 1)


def tls_chunks(server):
    p = TlsPeer(server)
    for i in range(10):
        chunk = bytes([65 + i]) * 1000
        p.send(chunk)
        assert p.recv_exact(len(chunk)) == chunk
    assert p.close_notify_then_read() == b"total 10000\n"
    server.wait_trace(lambda t: app_lost(t) == 1)


def tls_slow_reader(server):
    """4 MiB sent without reading until the server's protocol paused writing,
    then the echo read back while the rest goes."""
    p = TlsPeer(server, rcvbuf=4096)
    payload = os.urandom(1 << 16) * 64
    p.sock.setblocking(False)
    state = {"sent": 0, "pending": b""}

    def push():
        """Encrypts the next piece when the last one went; sends what the socket takes."""
        if not state["pending"] and state["sent"] < len(payload):
            p.obj.write(payload[state["sent"]:state["sent"] + 16384])
            state["sent"] += 16384
            state["pending"] = p.out.read()
        if state["pending"]:
            try:
                n = p.sock.send(state["pending"])
            except BlockingIOError:
                return False
            state["pending"] = state["pending"][n:]
            return True
        return False

    def app_paused():
        """The protocol's own pause (the TCP connection below TLS may pause first)."""
        lines = server.trace_lines()
        below = below_tls(lines)
        return any(line.split()[1] == "pause_writing" and line.split()[0] not in below for line in lines)

    deadline = time.monotonic() + TIMEOUT_S
    while not app_paused():
        assert time.monotonic() < deadline, "the server never paused writing"
        if not push():
            time.sleep(0.005)   # the trace is polled, as wait_trace does
    got = b""
    while len(got) < len(payload):
        want_write = bool(state["pending"]) or state["sent"] < len(payload)
        r, w, _ = select.select([p.sock], [p.sock] if want_write else [], [], TIMEOUT_S)
        assert r or w, "stuck"
        if w:
            push()
        if r:
            chunk = p.sock.recv(65536)
            assert chunk, "the server closed early"
            p.inc.write(chunk)
            while True:
                try:
                    got += p.obj.read(65536)
                except ssl.SSLWantReadError:
                    break
            state["pending"] += p.out.read()
    p.sock.setblocking(True)
    while state["pending"] or state["sent"] < len(payload):
        push()
    assert got == payload, f"{len(got)} bytes came back of {len(payload)}; first difference at " \
        f"{next((i for i, (a, b) in enumerate(zip(got, payload)) if a != b), min(len(got), len(payload)))}"
    assert p.close_notify_then_read() == b"total %d\n" % len(payload)
    server.wait_trace(lambda t: app_lost(t) == 1)


def tls_reset(server):
    p = TlsPeer(server)
    p.send(b"x")
    assert p.recv_exact(1) == b"x"
    p.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    p.sock.close()   # RST
    server.wait_trace(lambda t: app_lost(t) == 1)


def tls_many(server):
    n = 20
    peers = [TlsPeer(server) for _ in range(n)]
    for i, p in enumerate(peers):
        p.send(b"%03d" % i * 10)
    for i, p in enumerate(peers):
        assert p.recv_exact(30) == b"%03d" % i * 10
        assert p.close_notify_then_read() == b"total 30\n"
    server.wait_trace(lambda t: app_lost(t) == n)


TLS_SCENARIOS = [
    ("tls_connect_close", tls_connect_close, ("tcp",)),
    ("tls_chunks", tls_chunks, ("tcp",)),
    ("tls_slow_reader", tls_slow_reader, ("tcp",)),
    ("tls_reset", tls_reset, ("tcp",)),
    ("tls_many", tls_many, ("tcp",)),
]


def below_tls(lines):
    """The trace instances that are the TCP connections below protogen's TLS layers."""
    return {line.split()[0] for line in lines if line.split()[1] == "tls_handshake"}


def app_lost(lines):
    below = below_tls(lines)
    return sum(1 for line in lines if line.split()[1] == "connection_lost" and line.split()[0] not in below)


SCENARIOS = [
    ("connect_close", peer_connect_close, ("tcp", "unix")),
    ("chunks", peer_chunks, ("tcp", "unix")),
    ("half_close", peer_half_close, ("tcp", "unix")),
    ("reset", peer_reset, ("tcp",)),            # SO_LINGER 0 resets TCP only
    ("slow_reader", peer_slow_reader, ("tcp", "unix")),
    ("many", peer_many, ("tcp", "unix")),
]


# ---- normalising -----------------------------------------------------------

def normalise(lines):
    per_conn = {}
    below = below_tls(lines)
    for line in lines:
        conn, callback, *detail = line.split()
        if conn in below:
            continue   # TCP below TLS: asyncio traces no such instance
        if callback == "get_buffer":
            continue   # asks where to read; how often is the kernel's (as data_received's count)
        if callback == "buffer_updated":
            callback = "data_received"   # the bytes, counted alike
        per_conn.setdefault(conn, []).append((callback, detail[0] if detail else None))
    result = []
    for seq in per_conn.values():
        out, flow = [], []
        for callback, detail in seq:
            if callback in ("pause_writing", "resume_writing"):
                flow.append(callback)
            elif callback == "data_received" and out and out[-1][0] == "data_received":
                out[-1] = ("data_received", out[-1][1] + int(detail))
            else:
                out.append((callback, int(detail) if callback == "data_received" else detail))
        # Flow control: pause first, then alternating; how many cycles is the scheduler's.
        alternates = all(cb == ("pause_writing", "resume_writing")[i % 2] for i, cb in enumerate(flow))
        summary = ("none" if not flow else "INVALID" if not alternates
                   else "paused" if flow[-1] == "pause_writing" else "paused,resumed")
        result.append(tuple(out) + (("flow", summary),))
    return sorted(result)


def describe(normalised):
    return "\n".join("  " + " ".join(cb if d is None else f"{cb}:{d}" for cb, d in seq) for seq in normalised)


# ---- main ------------------------------------------------------------------

def main(conform_server, python=sys.executable, *server_args):
    """server_args go to conform_server first (e.g. --host poll: the same
    protocol on another host of protogen's core)."""
    tmp = tempfile.mkdtemp(prefix="protogen-conformance-")
    asyncio_args, scenarios = [], SCENARIOS
    if "--tls" in server_args:
        TlsPeer.certdir = server_args[server_args.index("--tls") + 1]
        asyncio_args, scenarios = ["--tls", TlsPeer.certdir], TLS_SCENARIOS
    impls = [("asyncio", [python, os.path.join(HERE, "asyncio_server.py"), *asyncio_args]),
             ("protogen", [conform_server, *server_args])]
    failures = 0
    ran = 0
    for buffered in (False, True):
        kind = "BufferedProtocol" if buffered else "Protocol"
        for name, peer, families in scenarios:
            for family in families:
                results = {}
                for impl, argv in impls:
                    server = Server(argv, family, tmp, impl, buffered)
                    try:
                        print(f"     {impl} ...", flush=True) if os.environ.get("CONFORM_VERBOSE") else None
                        peer(server)
                    finally:
                        lines = server.stop()
                    results[impl] = normalise(lines)
                ran += 1
                if results["asyncio"] == results["protogen"]:
                    print(f"ok   {kind} {name} ({family}): {len(results['asyncio'])} connection(s)")
                else:
                    failures += 1
                    print(f"FAIL {kind} {name} ({family})\n asyncio:\n{describe(results['asyncio'])}\n"
                          f" protogen:\n{describe(results['protogen'])}")
    os.rmdir(tmp)
    print(f"{ran - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
