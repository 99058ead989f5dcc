"""protogen's TLS bench (issue 14): examples/tls-echo (the echo protocol over
protogen's TLS layer) against a hand-written OpenSSL epoll echo server
(bench/openssl_echo.c) and asyncio's TLS echo, in the same run.

    tls_bench.py [--build DIR] [--runs N] [--seconds S] [--mib M] [--idle N] [--smoke]

DIR (default build-bench) holds the Release build of bench/CMakeLists.txt
(target bench-tls). RSA 2048 certificates are made afresh (tests/tls/make_certs.sh
rsa), so that the server's signature is most of a handshake. The server runs on
one core, bench/tls_loadgen on the other; each figure is the median of --runs
runs, the servers taking turns:
  - handshakes/s: 16 connections at once, each a full handshake (the client
    verifies the server), one byte echoed, close_notify, close;
  - bulk MB/s: one connection sends M MiB and reads the echo while sending;
  - the server's CPU time per handshake and per MB (time on a CPU: resp_bench's cpu_seconds),
    the figure that least depends on how the load generator keeps up;
  - memory per idle TLS connection: the server's RSS growth with N handshaken,
    idle connections (Python ssl clients).
Printed as a Markdown table with each figure's ratio to the OpenSSL server's.
"""

import argparse
import os
import re
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import run  # noqa: E402  Proc, start_server, pinning, VmRSS
sys.path.insert(0, os.path.join(TOP, "tests", "resp"))
from resp_bench import cpu_seconds  # noqa: E402

ASYNCIO_SERVER = r'''
import asyncio, signal, ssl, sys
cert, key = sys.argv[1], sys.argv[2]
class Echo(asyncio.Protocol):
    def connection_made(self, t):
        self.t = t
    def data_received(self, data):
        self.t.write(data)
    def pause_writing(self):
        self.t.pause_reading()
    def resume_writing(self):
        self.t.resume_reading()
async def main():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    loop = asyncio.get_running_loop()
    srv = await loop.create_server(Echo, "127.0.0.1", int(sys.argv[4]), ssl=ctx)
    print("listening on 127.0.0.1:%d" % srv.sockets[0].getsockname()[1], flush=True)
    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
    await stop
asyncio.run(main())
'''


def servers(args, certs):
    cert, key = os.path.join(certs, "server.pem"), os.path.join(certs, "server.key")
    return {
        "protogen": [os.path.join(args.build, "protogen", "examples", "tls-echo", "tls_echo_server"),
                     "--cert", cert, "--key", key],
        "openssl": [os.path.join(args.build, "openssl_echo"), "--cert", cert, "--key", key],
        "asyncio": [sys.executable, "-c", ASYNCIO_SERVER, cert, key],
    }


def loadgen(args, certs, port, mode):
    cmd = [os.path.join(args.build, "tls_loadgen"), "--port", str(port), "--ca", os.path.join(certs, "ca.pem")] + mode
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, preexec_fn=run.pin(run.LOADGEN_CPU))
    if out.returncode != 0:
        raise RuntimeError(f"tls_loadgen failed: {out.stderr[-500:]}")
    return out.stdout.split()


def idle_bytes(proc, certs, n):
    ctx = ssl.create_default_context(cafile=os.path.join(certs, "ca.pem"))
    before = run.vm_rss_kib(proc.server_pid)
    conns = []
    try:
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", proc.port), timeout=30)
            conns.append(ctx.wrap_socket(s, server_hostname="localhost"))
        for c in conns:  # one round trip each: every server has finished its side
            c.sendall(b"x")
            assert c.recv(1) == b"x"
        after = run.vm_rss_kib(proc.server_pid)
    finally:
        for c in conns:
            c.close()
    return (after - before) * 1024 / n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(TOP, "build-bench"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--idle", type=int, default=500)
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args()
    if args.smoke:
        args.runs, args.seconds, args.mib, args.idle = 1, 0.5, 16, 50
    certs = tempfile.mkdtemp(prefix="protogen-tls-bench-")
    subprocess.run([os.path.join(TOP, "tests", "tls", "make_certs.sh"), certs, "rsa"], check=True,
                   stdout=subprocess.DEVNULL)
    cmds = servers(args, certs)
    names = list(cmds)
    results = {name: {"hs": [], "hs_cpu": [], "mb": [], "mb_cpu": [], "idle": []} for name in names}
    for r in range(args.runs):
        for name in names[r % len(names):] + names[:r % len(names)]:
            proc = run.start_server(cmds[name])
            try:
                # Idle first, on a fresh server: later phases leave freed memory that
                # idle connections would reuse unseen.
                results[name]["idle"].append(idle_bytes(proc, certs, args.idle))
                t0 = cpu_seconds(proc.server_pid)
                hs = loadgen(args, certs, proc.port, ["handshakes", "--conns", "16", "--seconds", str(args.seconds)])
                t1 = cpu_seconds(proc.server_pid)
                results[name]["hs"].append(float(hs[hs.index("per_s") + 1]))
                results[name]["hs_cpu"].append((t1 - t0) * 1e6 / int(hs[hs.index("handshakes") + 1]))
                mb = loadgen(args, certs, proc.port, ["bulk", "--mib", str(args.mib)])
                t2 = cpu_seconds(proc.server_pid)
                results[name]["mb"].append(float(mb[mb.index("mb_s") + 1]))
                results[name]["mb_cpu"].append((t2 - t1) * 1e6 / (args.mib * 1.048576))
            finally:
                proc.stop()
    med = {n: {k: statistics.median(v) for k, v in d.items()} for n, d in results.items()}
    base = med["openssl"]
    print(f"TLS echo, {args.runs} runs (median), RSA 2048, TLS 1.3, {args.seconds} s of handshakes "
          f"(16 at once), {args.mib} MiB bulk, {args.idle} idle connections")
    print()
    print("| server | handshakes/s | × | CPU µs/handshake | × | bulk MB/s | × | CPU µs/MB | × | idle bytes/conn | × |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")

    def x(a, b):
        return f"{a / b:.2f}" if b > 0 else "-"
    for n in names:
        m = med[n]
        print(f"| {n} | {m['hs']:.0f} | {x(m['hs'], base['hs'])} | {m['hs_cpu']:.0f} | {x(m['hs_cpu'], base['hs_cpu'])} "
              f"| {m['mb']:.0f} | {x(m['mb'], base['mb'])} | {m['mb_cpu']:.0f} | {x(m['mb_cpu'], base['mb_cpu'])} "
              f"| {m['idle']:.0f} | {x(m['idle'], base['idle'])} |")
    print()
    print("× = ratio to the hand-written OpenSSL server of the same run. CPU = the server's time on a CPU "
          "(schedstat) over the phase per unit; MB = 10^6 bytes echoed. Idle = the server's VmRSS growth per handshaken, idle "
          "connection, measured first on a fresh server.")


if __name__ == "__main__":
    main()
