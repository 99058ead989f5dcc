#!/usr/bin/env python3
"""protogen's HTTP/1.1 server (examples/http, issue 15) against nginx under wrk and ab.

    http_bench.py [--server CMD] [--runs N] [--duration S] [--requests N] [--threads N] [--smoke]

Both servers answer GET / with the same 20-byte text: nginx (Debian's
nginx-light) with one worker, `return 200` in its only location, the access
log off; http_server CMD (default build-bench/protogen/examples/http/http_server;
it gets `--host 127.0.0.1 --port 0` and prints "listening on HOST:PORT"). Load:
`wrk -t1 -c50 -dS` and `ab -k -c 50 -n N`. The servers take turns, each
started afresh per run, pinned to CPU 1 with the load generator on CPU 0.
Measured: requests/s (the load generator's) and the server's CPU per request,
time on a CPU (resp_bench.cpu_seconds; nginx: master and worker) before and after
each load. Reported: the medians of --runs runs and the ratios to nginx's of
the same run. With --threads N (issue 15's multi-core comparison) http_server
runs N loops (--threads N) and nginx N workers, and nothing is pinned: the
servers and the load generator share the machine's cores. run.py calls this
as its `http` part, with 1 and with 2 threads."""

import argparse
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(TOP, "tests", "resp"))
import resp_harness  # noqa: E402
from resp_bench import CLIENT_CPU, SERVER_CPU, cpu_seconds, medians, pin, ratio  # noqa: E402

REFERENCE = "nginx"
LOADS = ["wrk", "ab -k"]
CLIENTS = 50
BODY = "Hello from protogen\n"

NGINX_CONF = """worker_processes {workers};
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    default_type text/plain;
    keepalive_requests 1000000;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    server {{
        listen 127.0.0.1:{port} reuseport;
        location / {{ return 200 "{body}"; }}
    }}
}}
"""


def default_server(build):
    return os.path.join(build, "protogen", "examples", "http", "http_server")


def nginx_binary():
    return shutil.which("nginx") or "/usr/sbin/nginx"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, proc, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"nginx exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)   # nginx says nothing when it is ready: poll its port
    raise RuntimeError("nginx did not listen in time")


def cpus(threads):
    """(server CPU, load generator CPU): pinned apart with one thread, shared (None) with more."""
    return (SERVER_CPU, CLIENT_CPU) if threads == 1 else (None, None)


def start(name, cmd, tmp, threads=1):
    if name == REFERENCE:
        port = free_port()
        conf = os.path.join(tmp, "nginx.conf")
        with open(conf, "w") as f:
            f.write(NGINX_CONF.format(dir=tmp, port=port, body=BODY.replace("\n", "\\n"), workers=threads))
        proc = subprocess.Popen([nginx_binary(), "-c", conf, "-p", tmp], stdin=subprocess.DEVNULL,
                                preexec_fn=pin(cpus(threads)[0]))
        resp_harness.LIVE.append(proc)
        wait_listening(port, proc)
        return proc, "127.0.0.1", port
    return resp_harness.start_server(cmd + ["--host", "127.0.0.1", "--port", "0", "--idle-timeout", "60",
                                            "--threads", str(threads)], preexec_fn=pin(cpus(threads)[0]))


def one_load(proc, host, port, load, duration, requests, threads=1):
    """{"rps", "cpu"}: the load generator's rate and the server's CPU µs per request."""
    url = f"http://{host}:{port}/"
    if load == "wrk":
        cmd = ["wrk", "-t1", f"-c{CLIENTS}", f"-d{duration:g}s", url]
    else:
        cmd = ["ab", "-k", "-q", "-c", str(CLIENTS), "-n", str(requests), url]
    before = cpu_seconds(proc.pid)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, preexec_fn=pin(cpus(threads)[1]))
    after = cpu_seconds(proc.pid)
    if r.returncode != 0 or proc.poll() is not None:
        raise RuntimeError(f"{' '.join(cmd)}: exit {r.returncode}, server {proc.poll()}: {r.stderr[-500:]}")
    if load == "wrk":
        m = re.search(r"(\d+) requests in ([\d.]+)s", r.stdout)
        if not m or "Socket errors" in r.stdout or "Non-2xx" in r.stdout:
            raise RuntimeError(f"wrk: errors or unexpected output: {r.stdout[-800:]}")
        n = int(m.group(1))
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", r.stdout).group(1))
    else:
        if not re.search(r"Failed requests:\s+0\b", r.stdout) or "Non-2xx" in r.stdout:
            raise RuntimeError(f"ab: failed requests: {r.stdout[-800:]}")
        n = requests
        rps = float(re.search(r"Requests per second:\s+([\d.]+)", r.stdout).group(1))
    return {"rps": rps, "cpu": (after - before) * 1e6 / n if n else 0.0}


def measure(servers, runs, duration, requests, log=lambda *_: None, threads=1):
    """{(load, server): {"rps", "cpu", "spread"}}, medians over runs, the servers taking turns."""
    res = {}
    names = list(servers)
    for run in range(runs):
        for name in names[run % len(names):] + names[:run % len(names)]:
            with tempfile.TemporaryDirectory(prefix="protogen-http-bench-") as tmp:
                proc, host, port = start(name, servers[name], tmp, threads)
                try:
                    for load in LOADS:
                        res.setdefault((load, name), []).append(
                            one_load(proc, host, port, load, duration, requests, threads))
                finally:
                    rc = resp_harness.stop(proc)
            if rc != 0 and name != REFERENCE:
                raise RuntimeError(f"{name}: exit {rc} on SIGTERM")
        log(f"  http run {run + 1}/{runs} done")
    return medians(res)


def section(med, servers, runs, duration, requests, threads=1):
    where = (f"pinned to CPU {SERVER_CPU} with the load generator on CPU {CLIENT_CPU}" if threads == 1 else
             f"http_server --threads {threads} and nginx with {threads} workers, nothing pinned (server and load "
             "generator share the cores)")
    out = [f"HTTP (issue 15): GET / (a 20-byte body) under `wrk -t1 -c{CLIENTS} -d{duration:g}s` and "
           f"`ab -k -c {CLIENTS} -n {requests:,}`, median of {runs} runs, the servers taking turns (each started "
           f"afresh per run), {where}; × = ratio to "
           f"{REFERENCE} (nginx-light, `return 200`, access log off) of the same run. Server CPU = "
           "time on a CPU (/proc/PID/task/*/schedstat, with its children) per request, ± half the range of the runs.", "",
           "| load | server | req/s | × | server CPU | × |", "|---|---|---:|---:|---:|---:|"]
    for load in LOADS:
        ref = med[(load, REFERENCE)]
        for name in servers:
            r = med[(load, name)]
            out.append(f"| {load} | {name} | {r['rps']:,.0f} | {ratio(r['rps'], ref['rps'])} | "
                       f"{r['cpu']:.2f} µs/req ±{r['spread'] * 50:.0f}% | {ratio(r['cpu'], ref['cpu'])} |")
    return out


def targets(med, name, threads=1):
    """Issue 15's goals for the server `name`: (target, measured, met)."""
    rows = []
    tag = "" if threads == 1 else f" ({threads} threads vs {threads} workers)"
    for load in LOADS:
        s, r = med[(load, name)], med[(load, REFERENCE)]
        rows.append((f"HTTP {load}{tag}: req/s ≥ 1.3× nginx's", f"{s['rps']:,.0f} vs {r['rps']:,.0f} "
                     f"({ratio(s['rps'], r['rps'])}×)", r["rps"] > 0 and s["rps"] >= 1.3 * r["rps"]))
        rows.append((f"HTTP {load}{tag}: server CPU per request ≤ 0.7× nginx's",
                     f"{s['cpu']:.2f} vs {r['cpu']:.2f} µs/req ({ratio(s['cpu'], r['cpu'])}×)",
                     r["cpu"] > 0 and s["cpu"] <= 0.7 * r["cpu"]))
    return rows


def missing(cmd):
    """Why the HTTP part cannot run, or None."""
    for tool in ("wrk", "ab"):
        if shutil.which(tool) is None:
            return f"{tool} is missing (make bench installs wrk and apache2-utils)"
    if not os.path.exists(nginx_binary()):
        return "nginx is missing (make bench installs nginx-light)"
    if not (os.path.exists(cmd[0]) or shutil.which(cmd[0])):
        return f"{cmd[0]} does not exist (examples/http's server)"
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(TOP, "build-bench"))
    ap.add_argument("--server", help="the server command (default: BUILD/protogen/examples/http/http_server)")
    ap.add_argument("--name", default="http_server", help="its name in the table")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--duration", type=float, default=5.0, help="wrk -d, seconds")
    ap.add_argument("--requests", type=int, default=200000, help="ab -n")
    ap.add_argument("--threads", type=int, default=1, help="http_server --threads N against N nginx workers")
    ap.add_argument("--smoke", action="store_true", help="one short run")
    args = ap.parse_args()
    if args.smoke:
        args.runs, args.duration, args.requests = 1, 1.0, 2000
    cmd = shlex.split(args.server) if args.server else [default_server(os.path.abspath(args.build))]
    why = missing(cmd)
    if why:
        print(f"http: skipped: {why}")
        return 0
    servers = {REFERENCE: None, args.name: cmd}
    med = measure(servers, args.runs, args.duration, args.requests, lambda m: print(m, file=sys.stderr),
                  args.threads)
    print("\n".join(section(med, servers, args.runs, args.duration, args.requests, args.threads)))
    print()
    for t, m, ok in targets(med, args.name, args.threads):
        print(f"- {t}: {m}: {'yes' if ok else 'no'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
