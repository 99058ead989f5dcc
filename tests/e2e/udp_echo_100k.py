"""End to end: 100,000 datagrams through the generated UDP echo server and
client over loopback, every one counted.

    udp_echo_100k.py UDP_ECHO_SERVER UDP_ECHO_CLIENT

UDP may drop datagrams; this test makes loss on a quiet loopback impossible
rather than unlikely, and still counts it. The client keeps at most 32
datagrams of 256 bytes unanswered (its window): 32 such datagrams take about
32 x 1 KiB of the kernel's accounting, far below the default 208 KiB receive
buffer of either socket, so no buffer can overflow. A datagram that is
nevertheless lost (memory pressure, another program flooding the loopback)
is counted by the client after its loss timeout and fails the test, with the
count: the test never hangs and never guesses.
"""

import re
import subprocess
import sys

from udp_common import Deadline, Server

DEADLINE_S = 240
COUNT = 100_000
SIZE = 256


def main(server_bin, client_bin):
    deadline = Deadline(DEADLINE_S)
    server = Server([server_bin], "127.0.0.1", deadline)
    try:
        client = subprocess.run([client_bin, "--port", str(server.port), "--count", str(COUNT), "--size", str(SIZE),
                                 "--window", "32", "--loss-timeout-ms", "2000"],
                                capture_output=True, text=True, timeout=deadline.left())
        trace = server.stop()
    finally:
        server.kill()
    out = client.stdout.strip()
    m = re.fullmatch(r"echoed (\d+) datagrams of (\d+) bytes in ([\d.]+) s: (\d+) lost, (\d+) corrupt, (\d+) stray",
                     out)
    assert m, f"client said {out!r} {client.stderr!r}"
    echoed, _, seconds, lost, corrupt, stray = m.groups()
    print(f"{COUNT} datagrams of {SIZE} bytes: {echoed} echoed, {lost} lost, {corrupt} corrupt, {stray} stray, "
          f"{seconds} s ({COUNT / max(float(seconds), 1e-9):.0f} round trips/s)")
    assert (int(echoed), int(lost), int(corrupt), int(stray)) == (COUNT, 0, 0, 0), out
    assert client.returncode == 0, client.stderr

    # The server's side of the count: every datagram arrived, whole.
    received = [line for line in trace if line.split()[1] == "datagram_received"]
    assert len(received) == COUNT, f"the server received {len(received)} datagrams"
    assert all(line.split()[2] == str(SIZE) for line in received)
    assert trace[0] == "1 connection_made" and trace[-1] == "1 connection_lost ok", (trace[:2], trace[-2:])
    assert not [line for line in trace if "error_received" in line or "pause_writing" in line], "no error, no pause"


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
