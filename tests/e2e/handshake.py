"""End to end: the handshake example over Unix sockets, and over a socket
accepted elsewhere and handed over (hello_server --inetd, asyncio's
connect_accepted_socket).

    handshake.py HELLO_SERVER HELLO_CLIENT

1. hello_server listens on a path socket and an abstract one in turn;
   hello_client says HELLO, sends 1 MiB, gets the count and checksum back.
   The server's trace shows the switch: data_received of the handshake line,
   then get_buffer/buffer_updated of the buffered protocol, on one connection.
   A second connection, past its handshake, is still open when the server is
   stopped (SIGTERM): the server aborts it and exits 0.
2. This script accepts a TCP connection itself and hands the accepted socket
   to hello_server --inetd as its stdin; it then talks the protocol directly.
"""

import os
import socket
import subprocess
import sys
import tempfile

TIMEOUT_S = 30


def normalised(trace_text):
    """Details other than connection_lost's are dropped, and a run of
    data_received, or of get_buffer and buffer_updated, becomes one line."""
    out = []
    for line in trace_text.splitlines():
        conn, callback, *detail = line.split()
        if callback in ("get_buffer", "buffer_updated"):
            callback = "get_buffer/buffer_updated"
        word = f"{conn} {callback}" + (f" {detail[0]}" if callback == "connection_lost" else "")
        if not out or out[-1] != word:
            out.append(word)
    return out


def serve_path(server_bin, client_bin, path, tmp):
    trace = os.path.join(tmp, "trace")
    env = dict(os.environ, PROTOGEN_TRACE=trace)
    server = subprocess.Popen([server_bin, "--path", path], stdout=subprocess.PIPE, text=True, env=env)
    try:
        line = server.stdout.readline()
        assert line == f"listening on {path}\n", line
        client = subprocess.run([client_bin, "--path", path, "--bytes", str(1 << 20)],
                                capture_output=True, text=True, timeout=TIMEOUT_S)
        assert client.returncode == 0, client.stderr
        assert client.stdout == f"ok {1 << 20} bytes\n", client.stdout
        # A connection still open (switched to the sink already) when the server stops: aborted.
        idle = socket.socket(socket.AF_UNIX)
        idle.settimeout(TIMEOUT_S)
        idle.connect("\0" + path[1:] if path.startswith("@") else path)
        idle.sendall(b"HELLO idle\n")
        assert idle.recv(64) == b"WELCOME idle\n"
    finally:
        server.terminate()
        assert server.wait(timeout=TIMEOUT_S) == 0
    assert idle.recv(1) == b"", "an open connection outlived the server"
    idle.close()
    if not path.startswith("@"):
        assert not os.path.exists(path), "the socket file outlived the server"
    with open(trace) as f:
        lines = normalised(f.read())
    os.unlink(trace)
    assert lines == ["1 connection_made", "1 data_received", "1 get_buffer/buffer_updated",
                     "1 eof_received", "1 connection_lost ok",
                     "2 connection_made", "2 data_received", "2 connection_lost ok"], lines


def serve_adopted(server_bin):
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname(), timeout=TIMEOUT_S)
    accepted, _ = listener.accept()
    listener.close()
    server = subprocess.Popen([server_bin, "--inetd"], stdin=accepted)
    accepted.close()
    try:
        client.sendall(b"HELLO adopted\n")
        payload = bytes(range(256)) * 1000
        client.sendall(payload)
        client.shutdown(socket.SHUT_WR)
        reply = b""
        while True:
            chunk = client.recv(4096)
            if not chunk:
                break
            reply += chunk
        expected = b"WELCOME adopted\nRECEIVED %d %d\n" % (len(payload), sum(payload) % (1 << 32))
        assert reply == expected, reply
        assert server.wait(timeout=TIMEOUT_S) == 0, "hello_server --inetd did not exit after its connection"
    finally:
        if server.poll() is None:
            server.kill()
        client.close()


def main(server_bin, client_bin):
    tmp = tempfile.mkdtemp(prefix="protogen-handshake-")
    serve_path(server_bin, client_bin, os.path.join(tmp, "hello.sock"), tmp)
    serve_path(server_bin, client_bin, f"@protogen-handshake-{os.getpid()}", tmp)
    # A stale socket file (a server that died) is replaced.
    stale = os.path.join(tmp, "stale.sock")
    s = socket.socket(socket.AF_UNIX)
    s.bind(stale)
    s.close()
    serve_path(server_bin, client_bin, stale, tmp)
    serve_adopted(server_bin)
    os.rmdir(tmp)
    print("handshake: path, abstract, stale and adopted sockets OK")


if __name__ == "__main__":
    main(*sys.argv[1:])
