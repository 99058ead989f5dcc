#!/usr/bin/env python3
"""protogen's RESP server (examples/resp, issue 11) against redis-server under redis-benchmark.

    resp_bench.py [--server CMD] [--runs N] [--requests N] [--smoke]

For the pipeline depths 1 and 16 (-P), each redis-benchmark test of
`redis-benchmark -q -t ping,set,get -n N -c 50` (PING_INLINE, PING_MBULK, SET,
GET: one redis-benchmark run per test, so that each test's CPU is its own) is
run against `redis-server --save '' --appendonly no` and against the server
CMD (default build-bench/protogen/examples/resp/resp_server; it gets
`--host 127.0.0.1 --port 0` and prints "listening on HOST:PORT"), the servers
taking turns, each started afresh per depth and run, pinned to CPU 1 with
redis-benchmark on CPU 0. Measured: requests/s (redis-benchmark's) and the
server's CPU per request, its time on a CPU (cpu_seconds: the server and any
children it runs, every thread) before and after each test. Reported: the
medians of --runs runs and the ratios to redis-server's of the same run.
run.py calls this as its `resp` part."""

import argparse
import os
import shlex
import shutil
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
# The RESP tests' process helpers: redis-server on a free port, a server
# printing its listening line, SIGTERM then SIGKILL, nothing left behind.
sys.path.insert(0, os.path.join(TOP, "tests", "resp"))
import resp_harness  # noqa: E402

REFERENCE = "redis-server"
TESTS = ["PING_INLINE", "PING_MBULK", "SET", "GET"]
PIPELINES = [1, 16]
CLIENTS = 50
TICK = os.sysconf("SC_CLK_TCK")

SERVER_CPU, CLIENT_CPU = (1, 0) if {0, 1} <= os.sched_getaffinity(0) else (None, None)


def pin(cpu):
    return None if cpu is None else lambda: os.sched_setaffinity(0, {cpu})


def default_server(build):
    return os.path.join(build, "protogen", "examples", "resp", "resp_server")


def tree(pid):
    """pid and its descendants (a stand-in server runs the real one as its child)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except FileNotFoundError:
            pass
    return out


def task_files(pid, name):
    """{process: [the text of /proc/P/task/T/name for each thread T]} of pid and its
    descendants; a process without the file (gone, or no schedstat) maps to None."""
    out = {}
    for p in tree(pid):
        try:
            texts = []
            for t in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{t}/{name}") as f:
                    texts.append(f.read())
            out[p] = texts
        except FileNotFoundError:
            out[p] = None
    return out


def cpu_seconds(pid):
    """Time on a CPU of pid and its descendants, every thread, in seconds: from
    /proc/P/task/T/schedstat (nanoseconds), or utime+stime (/proc/P/stat, 10 ms
    ticks) where the kernel keeps no schedstat."""
    total = 0
    for p, texts in task_files(pid, "schedstat").items():
        if texts is not None:
            total += sum(int(t.split()[0]) for t in texts) / 1e9
            continue
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / TICK  # utime, stime (fields 14 and 15)
    return total


def sleeps(pid):
    """The waits that blocked so far (voluntary context switches) of pid and its
    descendants, every thread: each is a sleep and a wake-up."""
    return sum(int(t.split("\nvoluntary_ctxt_switches:", 1)[1].split()[0])
               for texts in task_files(pid, "status").values() if texts is not None for t in texts)


def start(name, cmd):
    if name == REFERENCE:
        proc, port = resp_harness.start_redis(preexec_fn=pin(SERVER_CPU))
        return proc, "127.0.0.1", port
    return resp_harness.start_server(cmd + ["--host", "127.0.0.1", "--port", "0"], preexec_fn=pin(SERVER_CPU))


def one_test(proc, host, port, test, n, pipeline):
    """{"rps", "cpu", "sleeps"}: redis-benchmark's rate, the server's CPU µs and sleeps per request."""
    cmd = ["redis-benchmark", "-h", host, "-p", str(port), "-t", test.lower(), "-n", str(n), "-c", str(CLIENTS),
           "-P", str(pipeline), "--csv"]
    before, slept = cpu_seconds(proc.pid), sleeps(proc.pid)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, preexec_fn=pin(CLIENT_CPU))
    after, slept = cpu_seconds(proc.pid), sleeps(proc.pid) - slept
    if r.returncode != 0 or proc.poll() is not None:
        raise RuntimeError(f"{' '.join(cmd)}: exit {r.returncode}, server {proc.poll()}: {r.stderr[-500:]}")
    rows = [line.split(",") for line in r.stdout.splitlines() if line.startswith(f'"{test}"')]
    if len(rows) != 1 or "WARNING" in r.stderr:
        raise RuntimeError(f"{' '.join(cmd)}: unexpected output: {r.stdout[-500:]} {r.stderr[-500:]}")
    return {"rps": float(rows[0][1].strip('"')), "cpu": (after - before) * 1e6 / n, "sleeps": slept / n}


def measure(servers, runs, n, log=lambda *_: None):
    """{(pipeline, test, server): {"rps", "cpu", "spread"}}, medians over runs; the
    servers take turns in a rotating order, each started afresh per depth and run."""
    res = {}
    names = list(servers)
    for run in range(runs):
        for pipeline in PIPELINES:
            for name in names[run % len(names):] + names[:run % len(names)]:
                proc, host, port = start(name, servers[name])
                try:
                    for test in TESTS:
                        res.setdefault((pipeline, test, name), []).append(one_test(proc, host, port, test, n, pipeline))
                finally:
                    rc = resp_harness.stop(proc)
                if rc != 0 and name != REFERENCE:
                    raise RuntimeError(f"{name}: exit {rc} on SIGTERM")
        log(f"  resp run {run + 1}/{runs} done")
    med = medians(res)
    # All four tests together: total CPU over total requests (each test runs n).
    for pipeline in PIPELINES:
        for name in names:
            parts = [med[(pipeline, t, name)] for t in TESTS]
            med[(pipeline, "all", name)] = {
                "rps": len(TESTS) / sum(1 / p["rps"] for p in parts),
                "cpu": statistics.mean(p["cpu"] for p in parts), "spread": max(p["spread"] for p in parts),
                "sleeps": statistics.mean(p["sleeps"] for p in parts)}
    return med


def medians(res):
    """{key: {"rps", "cpu", "spread"[, "sleeps"]}} of {key: [{"rps", "cpu"[, "sleeps"]}, ...]}: the medians
    of the runs, and the CPU figures' range as a share of their median."""
    med = {}
    for k, v in res.items():
        cpus = [d["cpu"] for d in v]
        c = statistics.median(cpus)
        med[k] = {"rps": statistics.median(d["rps"] for d in v), "cpu": c,
                  "spread": (max(cpus) - min(cpus)) / c if c else 0.0}
        if "sleeps" in v[0]:
            med[k]["sleeps"] = statistics.median(d["sleeps"] for d in v)
    return med


def ratio(a, b):
    return f"{a / b:.2f}" if b else "–"


def section(med, servers, runs, n):
    out = [f"RESP (issue 11): redis-benchmark -t <test> -n {n:,} -c {CLIENTS} [-P 16], one run per test, "
           f"median of {runs} runs, the servers taking turns (each started afresh per depth and run), pinned to "
           f"CPU {SERVER_CPU} with redis-benchmark on CPU {CLIENT_CPU}; × = ratio to {REFERENCE} "
           "(--save '' --appendonly no) of the same run. Server CPU = time on a CPU (/proc/PID/task/*/schedstat, with its children) "
           "per request, ± half the range of the runs. Sleeps = the server's waits that blocked (voluntary context "
           "switches) per request: each a wake-up. \"all\": the four tests together (rate: their harmonic "
           "mean). redis-benchmark itself is often the limit on 2 cores: CPU per request is the figure that "
           "shows the server.", "",
           "| -P | test | server | req/s | × | server CPU | × | sleeps/req |", "|---:|---|---|---:|---:|---:|---:|---:|"]
    for pipeline in PIPELINES:
        for test in TESTS + ["all"]:
            ref = med[(pipeline, test, REFERENCE)]
            for name in servers:
                r = med[(pipeline, test, name)]
                out.append(f"| {pipeline} | {test} | {name} | {r['rps']:,.0f} | {ratio(r['rps'], ref['rps'])} | "
                           f"{r['cpu']:.2f} µs/req ±{r['spread'] * 50:.0f}% | {ratio(r['cpu'], ref['cpu'])} | "
                           f"{r['sleeps']:.4f} |")
    return out


def targets(med, name):
    """Issue 11's goals for the server `name`: (target, measured, met)."""
    rows = []
    for pipeline in PIPELINES:
        s, r = med[(pipeline, "all", name)], med[(pipeline, "all", REFERENCE)]
        low = min(med[(pipeline, t, name)]["rps"] / med[(pipeline, t, REFERENCE)]["rps"] for t in TESTS)
        rows.append((f"RESP -P {pipeline}: req/s never below redis-server's (each test)",
                     f"lowest {low:.2f}× (all: {s['rps']:,.0f} vs {r['rps']:,.0f})", low >= 1.0))
        rows.append((f"RESP -P {pipeline}: server CPU per request ≤ 0.6× redis-server's",
                     f"{s['cpu']:.2f} vs {r['cpu']:.2f} µs/req ({ratio(s['cpu'], r['cpu'])}×)",
                     r["cpu"] > 0 and s["cpu"] <= 0.6 * r["cpu"]))
    return rows


def missing(cmd):
    """Why the RESP part cannot run, or None."""
    for tool in ("redis-server", "redis-benchmark"):
        if not (shutil.which(tool) or os.path.exists(f"/usr/bin/{tool}")):
            return f"{tool} is missing (scripts/setup.sh redis-server redis-tools)"
    if not (os.path.exists(cmd[0]) or shutil.which(cmd[0])):
        return f"{cmd[0]} does not exist yet (examples/resp's server, issue 11)"
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(TOP, "build-bench"))
    ap.add_argument("--server", help="the server command (default: BUILD/protogen/examples/resp/resp_server)")
    ap.add_argument("--name", default="resp_server", help="its name in the table")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--requests", type=int, default=200000)
    ap.add_argument("--smoke", action="store_true", help="one short run (2,000 requests per test)")
    args = ap.parse_args()
    if args.smoke:
        args.runs, args.requests = 1, 2000
    cmd = shlex.split(args.server) if args.server else [default_server(os.path.abspath(args.build))]
    why = missing(cmd)
    if why:
        print(f"resp: skipped: {why}")
        return 0
    servers = {REFERENCE: None, args.name: cmd}
    med = measure(servers, args.runs, args.requests, lambda m: print(m, file=sys.stderr))
    print("\n".join(section(med, servers, args.runs, args.requests)))
    print()
    for t, m, ok in targets(med, args.name):
        print(f"- {t}: {m}: {'yes' if ok else 'no'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
