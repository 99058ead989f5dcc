"""End to end: echo_server --threads 2, one loop per thread, each with a listener of
its own on the same port (reuse_port).

    echo_threads.py ECHO_SERVER

64 clients connect and each gets its bytes back; then, with every connection still
open, SIGTERM (and in a second run SIGINT) stops the server: each thread aborts its
connections, closes its loop, and the server exits 0, reporting how many connections
each thread served. Both threads must have served some (the kernel spreads
connections by their addresses: all 64 on one thread has probability 2^-63) and
together all of them. Every client sees its connection closed by the server. The
trace, written by both threads, numbers the 64 connections 1..64, each once, with
each line whole.
"""

import signal
import socket
import os
import subprocess
import sys
import tempfile
import time

DEADLINE_S = 60
CLIENTS = 64
THREADS = 2


def run(server_bin, signo):
    deadline = time.monotonic() + DEADLINE_S
    trace = os.path.join(tempfile.mkdtemp(prefix="protogen-e2e-"), "trace")
    server = subprocess.Popen([server_bin, "--port", "0", "--threads", str(THREADS)],
                              stdout=subprocess.PIPE, text=True, env=dict(os.environ, PROTOGEN_TRACE=trace))
    clients = []
    try:
        line = server.stdout.readline().strip()
        assert line.startswith("listening on 127.0.0.1:"), f"server said {line!r}"
        port = int(line.rsplit(":", 1)[1])

        for i in range(CLIENTS):
            c = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S)
            clients.append(c)
            msg = f"client {i}\n".encode()
            c.sendall(msg)
            got = b""
            while len(got) < len(msg):
                chunk = c.recv(len(msg) - len(got))
                assert chunk, f"client {i}: closed before its echo"
                got += chunk
            assert got == msg, (i, got)

        server.send_signal(signo)
        out, _ = server.communicate(timeout=max(1, deadline - time.monotonic()))
        assert server.returncode == 0, f"server exited {server.returncode}: {out!r}"
        served = {}
        for l in out.splitlines():
            words = l.split()   # "thread I served N connections"
            assert len(words) == 5 and words[0] == "thread" and words[2] == "served", out
            served[int(words[1])] = int(words[3])
        assert sorted(served) == list(range(THREADS)), out
        assert sum(served.values()) == CLIENTS, out
        assert all(n > 0 for n in served.values()), f"a thread served nothing: {out}"

        with open(trace) as f:
            lines = f.read().splitlines()
        made = sorted(int(l.split()[0]) for l in lines if l.endswith(" connection_made"))
        assert made == list(range(1, CLIENTS + 1)), made
        lost = sorted(int(l.split()[0]) for l in lines if " connection_lost " in l)
        assert lost == made, lost

        for i, c in enumerate(clients):
            try:
                assert c.recv(1) == b"", f"client {i}: data after the stop"
            except ConnectionResetError:
                pass   # aborted: a reset is as good as an EOF
        print(f"{signal.Signals(signo).name}: served {served}, clean exit")
    finally:
        for c in clients:
            c.close()
        if server.poll() is None:
            server.kill()
            server.wait()


def main(server_bin):
    run(server_bin, signal.SIGTERM)
    run(server_bin, signal.SIGINT)


if __name__ == "__main__":
    main(sys.argv[1])
