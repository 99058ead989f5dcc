"""End to end: the generated UDP echo server answers a client no one here
wrote, socat, over IPv4 and IPv6 loopback; its trace has one line per
datagram, with the sender's address.

    udp_echo_socat.py UDP_ECHO_SERVER
"""

import select
import shutil
import subprocess
import sys

from udp_common import Deadline, Server, read_line

DEADLINE_S = 60


def read_exactly(stream, n, deadline):
    data = b""
    while len(data) < n:
        ready, _, _ = select.select([stream], [], [], deadline.left())
        if ready:
            chunk = stream.read1(n - len(data))
            assert chunk, f"socat ended after {len(data)} of {n} bytes"
            data += chunk
    return data


def talk(target, messages, deadline):
    """Each message through `socat - TARGET`, waiting for its echo before the next:
    one write, one datagram."""
    # -t: after stdin ends, how long socat waits for more from the server; every
    # echo has come back by then.
    socat = subprocess.Popen(["socat", "-t", "0.1", "-", target], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        for message in messages:
            socat.stdin.write(message)
            socat.stdin.flush()
            echo = read_exactly(socat.stdout, len(message), deadline)
            assert echo == message, f"sent {message[:40]!r}, got {echo[:40]!r}"
        socat.stdin.close()
        assert socat.wait(timeout=deadline.left()) == 0
    finally:
        if socat.poll() is None:
            socat.kill()
            socat.wait()


def main(server_bin):
    if shutil.which("socat") is None:
        sys.exit("socat is missing: scripts/setup.sh installs it (apt-get install socat)")
    deadline = Deadline(DEADLINE_S)
    messages = [b"hello protogen\n", bytes(range(256)) * 4, b"\n", b"bye\n"]
    for host, target in (("127.0.0.1", "UDP4:127.0.0.1:{}"), ("::1", "UDP6:[::1]:{}")):
        server = Server([server_bin], host, deadline)
        try:
            talk(target.format(server.port), messages, deadline)
            trace = server.stop()
        finally:
            server.kill()
        assert trace[0] == "1 connection_made", trace
        assert trace[-1] == "1 connection_lost ok", trace
        received = [line.split() for line in trace[1:-1]]
        assert [r[:3] for r in received] == [["1", "datagram_received", str(len(m))] for m in messages], trace
        senders = {r[3] for r in received}
        assert len(senders) == 1, f"one socat socket sent them all: {senders}"
        sender = senders.pop()
        assert sender.startswith("127.0.0.1:" if host == "127.0.0.1" else "[::1]:"), sender
        print(f"{server.address}: socat got {len(messages)} echoes back; trace: {len(trace)} lines, sender {sender}")


if __name__ == "__main__":
    main(sys.argv[1])
