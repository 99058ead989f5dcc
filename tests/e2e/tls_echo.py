"""End to end: examples/tls-echo (the generated echo protocol over the TLS layer,
on the built-in loop) served to openssl s_client and to Python's ssl module and
asyncio, verifying against the test CA.

    tls_echo.py TLS_ECHO_SERVER CERTDIR

  - openssl s_client -verify_return_error -CAfile ca.pem: the echo comes back and
    the certificate verifies; with another CA the handshake is refused (and the
    server says why on stderr);
  - ssl: TLS 1.3, ALPN, the hostname checked (a wrong one refused), and
    unwrap(): our close_notify answers the client's;
  - asyncio: 1 MiB round trip while the client holds off reading, so that the
    server's TLS transport pauses its protocol (its trace says pause_writing);
    the client reads once that happened, and every byte comes back.
  - SIGTERM stops the server, exit 0, closing an idle client's connection
    with close_notify (a clean TLS EOF, not a ragged one).
Waits on events (lines, the trace FIFO), never on sleeps.
"""

import asyncio
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from echo_roundtrip import Trace  # noqa: E402  the trace FIFO reader

DEADLINE_S = 60
PAYLOAD = 1 << 20


def s_client(port, ca, deadline, expect_ok):
    cmd = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-verify_return_error", "-CAfile", ca,
           "-servername", "localhost", "-verify_hostname", "localhost", "-brief"]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        if not expect_ok:
            out, _ = proc.communicate(timeout=max(1, deadline - time.monotonic()))
            out = out.decode(errors="replace")
            assert proc.returncode != 0, f"s_client accepted an untrusted server: {out}"
            assert "verify error" in out or "certificate verify failed" in out, out
            return
        # Keep stdin open until the echo came back: s_client ends at its EOF.
        proc.stdin.write(b"hello over tls\n")
        proc.stdin.flush()
        seen = []
        while True:
            line = proc.stdout.readline()
            assert line, f"s_client ended before the echo: {b''.join(seen).decode(errors='replace')}"
            seen.append(line)
            if line == b"hello over tls\n":
                break
        proc.stdin.close()
        out = proc.stdout.read()
        proc.wait(timeout=max(1, deadline - time.monotonic()))
        text = b"".join(seen).decode(errors="replace") + out.decode(errors="replace")
        assert proc.returncode == 0, f"s_client failed ({proc.returncode}): {text}"
        assert "Verification: OK" in text, text
        assert "Protocol version: TLSv1.3" in text, text
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def python_ssl(port, ca):
    ctx = ssl.create_default_context(cafile=ca)
    ctx.set_alpn_protocols(["echo", "http/1.1"])
    with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S) as raw:
        tls = ctx.wrap_socket(raw, server_hostname="localhost")
        assert tls.version() == "TLSv1.3", tls.version()
        assert tls.selected_alpn_protocol() == "echo", tls.selected_alpn_protocol()
        msg = bytes(range(256)) * 64
        tls.sendall(msg)
        got = b""
        while len(got) < len(msg):
            chunk = tls.recv(65536)
            assert chunk, "the server closed early"
            got += chunk
        assert got == msg
        plain = tls.unwrap()  # our close_notify, then the server's answer
        assert plain.recv(1) == b"", "the server left the connection open after close_notify"
    # A name the certificate does not carry is refused.
    with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S) as raw:
        try:
            ctx.wrap_socket(raw, server_hostname="not-localhost.example")
        except ssl.SSLCertVerificationError as e:
            assert "Hostname mismatch" in str(e) or "hostname" in str(e).lower(), e
        else:
            raise AssertionError("a wrong hostname was accepted")


async def asyncio_back_pressure(port, ca, trace, deadline):
    ctx = ssl.create_default_context(cafile=ca)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock, ssl=ctx, server_hostname="localhost")
    data = bytes((i * 7 + i // 251) & 0xFF for i in range(PAYLOAD))
    writer.write(data)
    # The server's TLS transport (trace instance 2: the TCP transport below is
    # 1) pauses its echo protocol: the plaintext waits above 512 KiB.
    await loop.run_in_executor(None, trace.until, lambda l: l.startswith("2 pause_writing "), deadline)
    got = await asyncio.wait_for(reader.readexactly(PAYLOAD), deadline - time.monotonic())
    assert got == data, "the echo differs"
    writer.close()
    await asyncio.wait_for(writer.wait_closed(), deadline - time.monotonic())
    await loop.run_in_executor(None, trace.until, lambda l: l == "2 connection_lost ok", deadline)
    assert "2 resume_writing " in " ".join(trace.lines) or any(l.startswith("2 resume_writing") for l in trace.lines)


def main(server_bin, certdir):
    deadline = time.monotonic() + DEADLINE_S
    ca = os.path.join(certdir, "ca.pem")
    tmp = tempfile.mkdtemp(prefix="protogen-tls-")
    fifo = os.path.join(tmp, "trace")
    os.mkfifo(fifo)
    trace = Trace(fifo)
    env = dict(os.environ, PROTOGEN_TRACE=fifo)
    server = subprocess.Popen([server_bin, "--port", "0", "--cert", os.path.join(certdir, "server.pem"),
                               "--key", os.path.join(certdir, "server.key"), "--alpn", "echo", "--sndbuf", "16384"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = server.stdout.readline().strip()
        assert line.startswith("listening on 127.0.0.1:"), f"server said {line!r}"
        port = int(line.rsplit(":", 1)[1])

        asyncio.run(asyncio_back_pressure(port, ca, trace, deadline))
        s_client(port, ca, deadline, expect_ok=True)
        s_client(port, os.path.join(certdir, "untrusted.pem"), deadline, expect_ok=False)
        python_ssl(port, ca)

        # An idle client when SIGTERM comes: the server's close_clients sends
        # close_notify (ssl with suppress_ragged_eofs=False raises on an EOF
        # without it).
        ctx = ssl.create_default_context(cafile=ca)
        raw = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S)
        idle = ctx.wrap_socket(raw, server_hostname="localhost", suppress_ragged_eofs=False)
        idle.sendall(b"ping")
        assert idle.recv(4) == b"ping"
        server.send_signal(signal.SIGTERM)
        assert idle.recv(1) == b"", "data after SIGTERM"  # close_notify: a clean EOF
        idle.close()
        out, err = server.communicate(timeout=max(1, deadline - time.monotonic()))
        assert server.returncode == 0, f"server exited {server.returncode}: {err}"
        # The refused s_client and the wrong hostname: the server heard the alerts.
        failures = [l for l in err.splitlines() if l.startswith("handshake failed: ")]
        assert len(failures) == 2, err
        assert all("alert" in l for l in failures), failures
        print("tls echo: asyncio 1 MiB with back-pressure, s_client, ssl, close_notify on SIGTERM: ok")
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
