"""Conformance with asyncio: the same scripted UDP peers talk to protogen's
udp_echo_server and to the same server written with asyncio
(asyncio_udp.py), and the two servers' traces must be the same, callback for
callback, as must what the peers got back. Then protogen's udp_echo_client
and the asyncio client face the same situations (a server, and a port where
nothing listens) and their traces are compared too.

    udp_conformance.py UDP_ECHO_SERVER UDP_ECHO_CLIENT

Addresses in the traces are replaced with the names of the peers (ports differ
between runs). The asyncio side runs on PROTOGEN_ASYNCIO_PYTHON if set, else
on this interpreter. asyncio before 3.13 does not send empty datagrams
(sendto(b"") returned without sending); with such a Python, the empty
datagram is left out of the comparison, and said so.
"""

import os
import re
import socket
import subprocess
import sys

from udp_common import Deadline, Server

DEADLINE_S = 120
HERE = os.path.dirname(os.path.abspath(__file__))
ASYNCIO_PYTHON = os.environ.get("PROTOGEN_ASYNCIO_PYTHON", sys.executable)


def asyncio_version():
    out = subprocess.run([ASYNCIO_PYTHON, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True,
                         text=True, timeout=30, check=True).stdout
    return tuple(int(x) for x in re.findall(r"\d+", out))


def address(addr):
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Peers:
    """Plain UDP sockets, each with a name that replaces its address in traces."""

    def __init__(self, host, port, deadline):
        self.host, self.port, self.deadline = host, port, deadline
        self.family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socks, self.names = {}, {}

    def __getitem__(self, name):
        if name not in self.socks:
            s = socket.socket(self.family, socket.SOCK_DGRAM)
            s.bind((self.host, 0))
            self.socks[name] = s
            self.names[address(s.getsockname())] = name
        return self.socks[name]

    def send(self, name, data):
        self[name].sendto(data, (self.host, self.port))

    def recv(self, name):
        s = self[name]
        s.settimeout(self.deadline.left())
        data, _ = s.recvfrom(65536)
        return data

    def close(self, name):
        self.socks.pop(name).close()

    def close_all(self):
        for s in self.socks.values():
            s.close()


# ---- what the peers do: each returns what it saw, to compare too ---------------

def sizes(peers, empty_datagrams):
    seen = []
    for n in ([0] if empty_datagrams else []) + [1, 100, 1472, 9000, 65507]:
        data = bytes((i * 7) % 256 for i in range(n))
        peers.send("a", data)
        seen.append(("a", n, peers.recv("a") == data))
    return seen


def several_peers(peers, _):
    seen = []
    for round_ in range(3):
        for name in "abc":
            data = f"{name}{round_}".encode()
            peers.send(name, data)
            seen.append((name, peers.recv(name) == data))
    return seen


def burst(peers, _):
    # 50 small datagrams at once: 50 x ~1 KiB of kernel accounting, well below
    # either socket's receive buffer, so none is dropped on loopback.
    for i in range(50):
        peers.send("a", bytes([i]) * 100)
    return [peers.recv("a")[0] for _ in range(50)]


def gone_peer(peers, _):
    # a leaves before its echo comes: the echo goes to a closed port. On Linux a
    # bound (unconnected) socket hears nothing of the ICMP error that follows.
    peers.send("a", b"are you there?")
    peers.close("a")
    peers.send("b", b"still serving?")
    return [peers.recv("b")]


SERVER_SCENARIOS = [
    ("sizes over IPv4", "127.0.0.1", sizes),
    ("sizes over IPv6", "::1", sizes),
    ("three peers in turn", "127.0.0.1", several_peers),
    ("a burst of 50", "127.0.0.1", burst),
    ("a peer gone before its echo", "127.0.0.1", gone_peer),
]


def normalise(trace, names):
    out = []
    for line in trace:
        words = line.split()
        if words[1] == "datagram_received":
            words[3] = names.get(words[3], "?" + words[3])
        out.append(" ".join(words))
    return out


def run_server(argv, host, scenario, empty_datagrams, deadline):
    server = Server(argv, host, deadline)
    peers = Peers(host, server.port, deadline)
    try:
        seen = scenario(peers, empty_datagrams)
        trace = server.stop()
    finally:
        peers.close_all()
        server.kill()
    return normalise(trace, peers.names), seen


def run_client(argv, host, port, deadline, trace_path):
    env = dict(os.environ, PROTOGEN_TRACE=trace_path)
    open(trace_path, "w").close()
    r = subprocess.run(argv + ["--host", host, "--port", str(port), "--count", "20", "--size", "100"],
                       capture_output=True, text=True, env=env, timeout=deadline.left())
    with open(trace_path) as f:
        trace = f.read().splitlines()
    server_address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return normalise(trace, {server_address: "server"}), r.returncode


def closed_port(host):
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main(server_bin, client_bin):
    deadline = Deadline(DEADLINE_S)
    version = asyncio_version()
    empty_datagrams = version >= (3, 13)
    if not empty_datagrams:
        print(f"note: asyncio {version[0]}.{version[1]} does not send empty datagrams: left out of the comparison")
    asyncio_server = [ASYNCIO_PYTHON, os.path.join(HERE, "asyncio_udp.py"), "server"]
    asyncio_client = [ASYNCIO_PYTHON, os.path.join(HERE, "asyncio_udp.py"), "client"]

    failures = []
    for name, host, scenario in SERVER_SCENARIOS:
        ours = run_server([server_bin], host, scenario, empty_datagrams, deadline)
        theirs = run_server(asyncio_server, host, scenario, empty_datagrams, deadline)
        same = ours == theirs
        print(f"server, {name}: {'same' if same else 'DIFFERENT'} ({len(ours[0])} trace lines)")
        if not same:
            failures.append((f"server, {name}", ours, theirs))

    trace_path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"protogen-udp-client-{os.getpid()}")
    try:
        server = Server([server_bin], "127.0.0.1", deadline)
        try:
            for label, port in (("an echo server", server.port), ("a closed port", closed_port("127.0.0.1"))):
                ours = run_client([client_bin], "127.0.0.1", port, deadline, trace_path)
                theirs = run_client(asyncio_client, "127.0.0.1", port, deadline, trace_path)
                same = ours == theirs
                print(f"client, {label}: {'same' if same else 'DIFFERENT'} ({len(ours[0])} trace lines, "
                      f"exit {ours[1]})")
                if not same:
                    failures.append((f"client, {label}", ours, theirs))
                if port != server.port:
                    assert ours[0] == ["1 connection_made", "1 error_received ECONNREFUSED", "1 connection_lost ok"], \
                        ours
                    assert ours[1] == 1
        finally:
            server.stop()
            server.kill()
    finally:
        if os.path.exists(trace_path):
            os.unlink(trace_path)

    for what, ours, theirs in failures:
        print(f"--- {what}\nprotogen: {ours}\nasyncio:  {theirs}")
    assert not failures, f"{len(failures)} scenario(s) differ from asyncio"


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
