#!/usr/bin/env python3
"""redis-cli (Debian's redis-tools, a client no one here wrote) against a RESP
server: the same redis-cli runs against the server under test and against a
fresh redis-server must print the same output and exit with the same status,
and a few outputs are checked outright.

    cli_e2e.py SERVER_CMD [ARG...]

SERVER_CMD gets `--host 127.0.0.1 --port 0` appended, must print
"listening on HOST:PORT" first, and must exit 0 on SIGTERM. Validated with
tests/resp/redis_standin.py as SERVER_CMD."""

import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import resp_harness  # noqa: E402

BIG = bytes(range(32, 127)) * 1100  # ~100 KB from stdin (-x)


def pipe_input():
    """Raw protocol for redis-cli --pipe: 5000 SETs and INCRs."""
    out = []
    for i in range(2500):
        k = f"pipe:{i}".encode()
        out.append(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$1\r\n%d\r\n" % (len(k), k, i % 10))
        out.append(b"*2\r\n$4\r\nINCR\r\n$%d\r\n%s\r\n" % (len(k), k))
    return b"".join(out)


# (redis-cli arguments, stdin, output that must appear in redis-server's run too, or None)
RUNS = [
    (["PING"], None, b"PONG\n"),
    (["PING", "hello world"], None, b"hello world\n"),
    (["ECHO", "café"], None, None),
    (["SET", "cli:k", "v"], None, b"OK\n"),
    (["GET", "cli:k"], None, b"v\n"),
    (["GET", "cli:missing"], None, b"\n"),
    (["EXISTS", "cli:k", "cli:k", "cli:missing"], None, b"2\n"),
    (["INCR", "cli:n"], None, b"1\n"),
    (["INCR", "cli:n"], None, b"2\n"),
    (["INCR", "cli:k"], None, b"ERR value is not an integer or out of range\n"),
    (["SET", "cli:t", "v", "NX", "GET"], None, None),
    (["DEL", "cli:k", "cli:n", "cli:missing"], None, b"2\n"),
    (["CONFIG", "GET", "save"], None, b"save\n\n"),
    (["CONFIG", "GET", "appendonly"], None, b"appendonly\nno\n"),
    (["NOSUCH", "a", "b"], None, b"ERR unknown command 'NOSUCH', with args beginning with: 'a' 'b' \n"),
    (["GET"], None, b"ERR wrong number of arguments for 'get' command\n"),
    (["-x", "SET", "cli:big"], BIG, b"OK\n"),
    (["GET", "cli:big"], None, BIG + b"\n"),
    (["--no-raw", "GET", "cli:missing"], None, b"(nil)\n"),
    (["--no-raw", "EXISTS", "cli:big"], None, b"(integer) 1\n"),
    (["--no-raw", "CONFIG", "GET", "appendonly"], None, b'1) "appendonly"\n2) "no"\n'),
    # Commands read from stdin, one per line, answered in order on one connection.
    ([], b"SET cli:s 1\nINCR cli:s\nGET cli:s\nPING\nQUIT\n", b"OK\n2\n2\nPONG\n"),
    (["--pipe"], pipe_input(), b"errors: 0, replies: 5000"),
    (["GET", "pipe:2499"], None, b"10\n"),
]


def cli(host, port, args, stdin):
    r = subprocess.run(["redis-cli", "-h", host, "-p", str(port), *args], input=stdin or b"",
                       capture_output=True, timeout=60)
    return r.returncode, r.stdout, r.stderr


def all_runs(host, port):
    return [cli(host, port, a, i) for a, i, _ in RUNS]


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    if shutil.which("redis-cli") is None:
        sys.exit("redis-cli is missing (Debian: apt-get install redis-tools; scripts/setup.sh installs it)")
    proc, host, port = resp_harness.start_server(sys.argv[1:] + ["--host", "127.0.0.1", "--port", "0"])
    try:
        got = all_runs(host, port)
    finally:
        rc = resp_harness.stop(proc)
    ref, rport = resp_harness.start_redis()
    try:
        want = all_runs("127.0.0.1", rport)
    finally:
        resp_harness.stop(ref)

    bad = 0
    for (args, _, must), g, w in zip(RUNS, got, want):
        what = "redis-cli " + " ".join(args)
        if must is not None and must not in w[1]:
            bad += 1  # this script's own expectation is wrong for redis-server
            print(f"BAD CHECK {what}: redis-server printed {w[1][:200]!r}, not {must[:200]!r}")
        if g != w:
            bad += 1
            print(f"DIFF {what}:\n  server:       exit {g[0]} {g[1][:300]!r} {g[2][:200]!r}\n"
                  f"  redis-server: exit {w[0]} {w[1][:300]!r} {w[2][:200]!r}")
    if rc != 0:
        bad += 1
        print(f"the server exited with {rc} on SIGTERM")
    print(f"cli_e2e: {len(RUNS) - bad if bad <= len(RUNS) else 0}/{len(RUNS)} redis-cli runs as redis-server's")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
