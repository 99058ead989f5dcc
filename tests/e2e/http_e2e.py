"""End to end: examples/http's http_server, served to curl, Python's http.client,
raw sockets, ab and wrk.

    http_e2e.py HTTP_SERVER

curl: keep-alive reuse, a chunked upload, --http1.0, HEAD; http.client: one
connection for several requests, a POST; raw sockets: pipelined requests
answered in order, Expect: 100-continue, Connection: close, every refusal
(400, 408, 413, 414, 431, 505, no Host, Content-Length with chunked, a path
escaping the root); a slow client (a byte every 100 ms) gets 408 while
another is served; an idle keep-alive connection is closed; ab -k and wrk
for correctness only (every request answered, no error); --threads 2 serves
and stops cleanly with connections open. Every wait is on an
event (a reply, a close), bounded by a deadline.
"""

import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

DEADLINE_S = 30


class Server:
    def __init__(self, binary, *args):
        self.proc = subprocess.Popen([binary, "--port", "0", *args], stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert line.startswith("listening on "), f"server said {line!r}"
        self.port = int(line.rsplit(":", 1)[1])
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=DEADLINE_S)
        assert rc == 0, f"http_server exited with {rc}"


def exchange(port, chunks, pause=0.0, half_close=False):
    """Sends chunks (with pause seconds between them), ends the client's side when half_close,
    and returns every byte up to the close."""
    with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for c in chunks:
            try:
                s.sendall(c)
            except (BrokenPipeError, ConnectionResetError):
                break
            if pause:
                time.sleep(pause)   # the slow client's pace is the point of that test
        if half_close:
            s.shutdown(socket.SHUT_WR)
        out = b""
        while True:
            try:
                data = s.recv(65536)
            except ConnectionResetError:
                return out
            if not data:
                return out
            out += data


def responses(raw):
    """The responses in raw, in order, as (status, head, body): each must be well formed
    (a status line, fields, a Content-Length and exactly that many bytes)."""
    out = []
    while raw:
        head, sep, rest = raw.partition(b"\r\n\r\n")
        assert sep, f"a response head without its end: {raw[:80]!r}"
        m = re.match(rb"HTTP/1\.1 (\d{3}) [^\r\n]*", head)
        assert m, f"not a status line: {head[:80]!r}"
        status = int(m.group(1))
        if status == 100:
            out.append((status, head, b""))
            raw = rest
            continue
        length = re.search(rb"\r\nContent-Length: (\d+)", head)
        assert length, f"no Content-Length: {head!r}"
        n = int(length.group(1))
        assert len(rest) >= n, f"a body cut short: {len(rest)} of {n} bytes"
        out.append((status, head, rest[:n]))
        raw = rest[n:]
    return out


def statuses(raw):
    return [status for status, _, _ in responses(raw)]


def curl(*args):
    r = subprocess.run(["curl", "-sS", "--max-time", str(DEADLINE_S), *args], capture_output=True, timeout=DEADLINE_S)
    assert r.returncode == 0, r.stderr
    return r.stdout, r.stderr.decode()


def main():
    binary = sys.argv[1]
    for tool in ("curl", "ab", "wrk"):
        if shutil.which(tool) is None:
            print(f"{tool} is not installed (scripts/setup.sh installs it)", file=sys.stderr)
            return 1
    root = tempfile.mkdtemp(prefix="protogen-http-")
    os.mkdir(os.path.join(root, "www"))
    with open(os.path.join(root, "www", "data.bin"), "wb") as f:
        f.write(bytes(range(256)) * 1024)
    with open(os.path.join(root, "secret"), "w") as f:
        f.write("outside the root\n")
    upload = os.path.join(root, "upload.bin")
    with open(upload, "wb") as f:
        f.write(os.urandom(300 * 1024))

    server = Server(binary, "--root", os.path.join(root, "www"))
    try:
        url = server.url
        # curl: two requests on one connection; a file; HEAD; HTTP/1.0; a chunked upload.
        out, err = curl("-v", f"{url}/", f"{url}/files/data.bin")
        assert out == b"Hello from protogen\n" + bytes(range(256)) * 1024, out[:64]
        assert "Re-using existing connection" in err, err
        out, err = curl("-I", f"{url}/")
        assert out.startswith(b"HTTP/1.1 200 OK\r\n") and b"Content-Length: 20\r\n" in out, out
        out, err = curl("-v", "--http1.0", f"{url}/")
        assert out == b"Hello from protogen\n" and "Connection: close" in err, err
        out, _ = curl("-H", "Transfer-Encoding: chunked", "--data-binary", f"@{upload}", f"{url}/echo")
        with open(upload, "rb") as f:
            assert out == f.read(), len(out)
        out, _ = curl("--data-binary", f"@{upload}", f"{url}/echo")   # Content-Length, with Expect: 100-continue
        with open(upload, "rb") as f:
            assert out == f.read(), len(out)

        # http.client: one connection, several requests.
        c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=DEADLINE_S)
        for _ in range(3):
            c.request("GET", "/")
            r = c.getresponse()
            assert r.status == 200 and r.read() == b"Hello from protogen\n"
        c.request("POST", "/echo", body=b"x" * 5000)
        r = c.getresponse()
        assert r.status == 200 and r.read() == b"x" * 5000
        c.request("GET", "/nowhere")
        r = c.getresponse()
        assert r.status == 404 and r.read() == b"not found\n"
        c.close()

        # Pipelined: three requests in one write, answered in order; the last closes.
        raw = exchange(server.port, [b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
                                     b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
                                     b"GET /files/data.bin HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"])
        assert [body for _, _, body in responses(raw)] == [b"Hello from protogen\n", b"hello",
                                                           bytes(range(256)) * 1024], raw[:200]
        # Expect: 100-continue: the interim response, then the final one.
        raw = exchange(server.port, [b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\n"
                                     b"Connection: close\r\n\r\n", b"abc"])
        assert raw.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"), raw
        assert [(st, body) for st, _, body in responses(raw)] == [(100, b""), (200, b"abc")], raw
        # Refusals: each answered, then the close.
        for request, status in [
            (b"GARBAGE\r\n\r\n", 400),
            (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
            (b"GET / HTTP/1.1\r\n\r\n", 400),                                       # no Host
            (b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414),
            (b"GET / HTTP/1.1\r\nHost: a\r\n" + b"X-Big: " + b"b" * 40000 + b"\r\n\r\n", 431),
            (b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 2000000\r\n\r\n", 413),
            (b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
        ]:
            raw = exchange(server.port, [request])
            assert statuses(raw) == [status], (request[:60], raw[:120])
            assert b"Connection: close\r\n" in raw
        # The client's end cuts a request short: what came whole is answered, the cut one is
        # not (no 400), and the connection closes.
        for chunks, want in [
            ([b"GET / HTTP/1.1\r\nHost: a\r\n"], []),
            ([b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HT"], [200]),
            ([b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc"], []),
            ([b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab"], []),
        ]:
            raw = exchange(server.port, chunks, half_close=True)
            assert statuses(raw) == want, (chunks, raw[:120])
        # Paths that would leave the root, and a symbolic link out of it.
        os.symlink(os.path.join(root, "secret"), os.path.join(root, "www", "link"))
        for path in (b"/files/../secret", b"/files/%2e%2e/secret", b"/files/link"):
            raw = exchange(server.port, [b"GET " + path + b" HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"])
            assert statuses(raw) == [404] and b"outside" not in raw, (path, raw)

        # ab -k and wrk: correctness only.
        r = subprocess.run(["ab", "-k", "-q", "-c", "20", "-n", "3000", f"{url}/"], capture_output=True, text=True,
                           timeout=DEADLINE_S * 2)
        assert r.returncode == 0, r.stderr
        assert re.search(r"Complete requests:\s+3000", r.stdout) and re.search(r"Failed requests:\s+0", r.stdout), r.stdout
        assert re.search(r"Keep-Alive requests:\s+3000", r.stdout), r.stdout
        r = subprocess.run(["wrk", "-t1", "-c20", "-d2s", f"{url}/"], capture_output=True, text=True,
                           timeout=DEADLINE_S * 2)
        assert r.returncode == 0, r.stderr
        assert "Socket errors" not in r.stdout and "Non-2xx" not in r.stdout, r.stdout
        assert re.search(r"\d+ requests in", r.stdout), r.stdout
    finally:
        server.stop()

    # --threads 2: one loop per thread on one port. New connections (spread by the
    # kernel) and ab -k are all answered; SIGTERM stops both loops cleanly (exit 0)
    # with keep-alive connections still open on them.
    threaded = Server(binary, "--threads", "2")
    try:
        for _ in range(32):
            raw = exchange(threaded.port, [b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"])
            assert statuses(raw) == [200], raw[:120]
        r = subprocess.run(["ab", "-k", "-q", "-c", "20", "-n", "3000", f"{threaded.url}/"], capture_output=True,
                           text=True, timeout=DEADLINE_S * 2)
        assert r.returncode == 0, r.stderr
        assert re.search(r"Complete requests:\s+3000", r.stdout) and re.search(r"Failed requests:\s+0", r.stdout), r.stdout
        kept = []
        for _ in range(8):
            c = http.client.HTTPConnection("127.0.0.1", threaded.port, timeout=DEADLINE_S)
            c.request("GET", "/")
            assert c.getresponse().read() == b"Hello from protogen\n"
            kept.append(c)
    finally:
        threaded.stop()
    for c in kept:
        c.close()

    # Timeouts, in real time: a slow client gets 408 while another is served; an
    # idle keep-alive connection is closed without a word.
    slow = Server(binary, "--header-timeout", "1", "--idle-timeout", "1")
    try:
        result = {}
        request = b"GET / HTTP/1.1\r\nHost: a\r\nX-Pad: " + b"p" * 40 + b"\r\n\r\n"
        t = threading.Thread(target=lambda: result.update(raw=exchange(slow.port, [request[i:i + 1] for i in range(len(request))], 0.1)))
        start = time.monotonic()
        t.start()
        c = http.client.HTTPConnection("127.0.0.1", slow.port, timeout=DEADLINE_S)
        c.request("GET", "/")
        r = c.getresponse()
        assert r.status == 200 and r.read() == b"Hello from protogen\n"
        served = time.monotonic() - start
        c.close()
        t.join(DEADLINE_S)
        took = time.monotonic() - start
        assert statuses(result["raw"]) == [408], result["raw"]
        assert served < 0.9 < took < DEADLINE_S, (served, took)
        start = time.monotonic()
        raw = exchange(slow.port, [b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"])
        assert statuses(raw) == [200] and raw.endswith(b"Hello from protogen\n"), raw
        assert 0.9 < time.monotonic() - start < DEADLINE_S
    finally:
        slow.stop()
    shutil.rmtree(root)
    print("http end to end: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
