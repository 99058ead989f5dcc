#!/usr/bin/env python3
"""redis-benchmark (Debian's redis-tools) against a RESP server, for
correctness only: short runs, plain and pipelined (-P 16), must complete
within their time limit, start cleanly (the server answers redis-benchmark's
CONFIG GET save / appendonly), report every test, and leave the keyspace
holding what the SETs wrote. No rate is judged.

    benchmark_e2e.py [--requests N] SERVER_CMD [ARG...]

SERVER_CMD gets `--host 127.0.0.1 --port 0` appended, must print
"listening on HOST:PORT" first, and must exit 0 on SIGTERM. Validated with
tests/resp/redis_standin.py as SERVER_CMD."""

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import resp_harness  # noqa: E402

TESTS = ["PING_INLINE", "PING_MBULK", "SET", "GET"]


def benchmark(host, port, n, pipeline):
    cmd = ["redis-benchmark", "-h", host, "-p", str(port), "-q", "-t", "ping,set,get", "-n", str(n), "-c", "10"]
    if pipeline > 1:
        cmd += ["-P", str(pipeline)]
    r = subprocess.run(cmd, capture_output=True, timeout=120)
    # -q prints progress lines ending in \r and each result line after them.
    out = r.stdout.decode(errors="replace").replace("\r", "\n")
    problems = []
    if r.returncode != 0:
        problems.append(f"exit status {r.returncode}")
    text = out + r.stderr.decode(errors="replace")
    for bad in ("WARNING", "Error", "ERR", "error"):
        if bad in text:
            problems.append(f"{bad!r} in its output")
    for t in TESTS:
        if not re.search(rf"^{t}: [\d.]+ requests per second", out, re.M):
            problems.append(f"no result for {t}")
    return problems, " ".join(cmd[1:]), text


def get(host, port, key):
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(key), key))
        buf = b""
        while not buf.endswith(b"\r\n") or buf.count(b"\r\n") < (1 if buf.startswith(b"$-1") else 2):
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
        return buf


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("server", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    if not args.server:
        sys.exit(__doc__)
    if shutil.which("redis-benchmark") is None:
        sys.exit("redis-benchmark is missing (Debian: apt-get install redis-tools; scripts/setup.sh installs it)")
    proc, host, port = resp_harness.start_server(args.server + ["--host", "127.0.0.1", "--port", "0"])
    failed = False
    try:
        for pipeline in (1, 16):
            problems, what, text = benchmark(host, port, args.requests, pipeline)
            print(f"redis-benchmark {what}: {'ok' if not problems else 'FAILED: ' + '; '.join(problems)}")
            if problems:
                failed = True
                print(text[-2000:])
        # redis-benchmark's SET writes 3 random bytes (its default -d) to key:__rand_int__.
        value = get(host, port, b"key:__rand_int__")
        if not re.fullmatch(rb"\$3\r\n...\r\n", value, re.S):
            failed = True
            print(f"GET key:__rand_int__ after the runs: {value!r}, not a 3-byte value")
        if proc.poll() is not None:
            failed = True
            print(f"the server exited ({proc.returncode}) during the runs")
    finally:
        rc = resp_harness.stop(proc)
    if rc != 0:
        failed = True
        print(f"the server exited with {rc} on SIGTERM")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
