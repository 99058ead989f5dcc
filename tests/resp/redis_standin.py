#!/usr/bin/env python3
"""A stand-in for resp_server made of a real redis-server, to prove the RESP
drivers (cli_e2e.py, benchmark_e2e.py, bench/resp_bench.py) before the
generated server exists: takes --host H --port P (0: a free port), runs
`redis-server --save '' --appendonly no` there, prints "listening on H:P",
and on SIGTERM or SIGINT stops it and exits 0.

    redis_standin.py [--host 127.0.0.1] [--port 0]"""

import argparse
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import resp_harness  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    proc, port = resp_harness.start_redis(host=args.host, port=args.port)
    stopping = []

    def stop(*_):
        stopping.append(True)
        proc.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"listening on {args.host}:{port}", flush=True)
    rc = proc.wait()
    return 0 if stopping else (rc or 1)


if __name__ == "__main__":
    sys.exit(main())
