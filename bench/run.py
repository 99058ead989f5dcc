"""protogen's benchmark (issue 7): the echo example against hand-written epoll, libuv and asyncio.

    run.py [--build DIR] [--runs N] [--duration SEC] [--idle N] [--count N] [--smoke] [--out FILE]
           [--only timed,idle,counted,embedded,threads,resp,http,framing,generator] [--resp-runs N]
           [--resp-requests N] [--resp-server CMD] [--http-runs N] [--http-duration S] [--http-requests N]
           [--framing-mib N]

DIR (default build-bench) holds the Release build of bench/CMakeLists.txt. Every
server prints "listening on HOST:PORT" and takes --port 0; each one is started
afresh for every measurement, on 127.0.0.1 only, and stopped with SIGTERM (SIGKILL
after a while); whatever is still running when this script ends is killed.

Measured, and printed as Markdown tables (also written to --out):
  - per timed workload and server: rate, p50/p99 latency (from bench/loadgen) and the
    server's own CPU time (utime+stime from /proc/PID/stat) per request or MB; the
    median of --runs runs, the servers taking turns in a rotating order;
  - idle connections: the server's RSS growth (VmRSS) per connection;
  - per echoed message, on fixed counts with a run of no messages subtracted: user-space
    instructions under valgrind --tool=callgrind (C servers) and system calls under
    strace -f -c (every server);
  - embedded (issue 10): ping-pong latency of the same echo protocol in a poll() loop
    that owns its sockets (examples/embed-poll, the manual host) and of the built-in
    loop nested in a poll() loop (echo_server --nest) against the built-in loop
    (examples/echo), in the same run, taking turns;
  - threads (issue 13): echo_server --threads 2 against --threads 1 (one loop per thread,
    a listener each on the port) on the concurrent workloads, rate and CPU as ratios;
  - http (issue 15, bench/http_bench.py): examples/http's http_server against
    nginx-light (1 worker, `return 200`) under wrk -t1 -c50 and ab -k -c 50:
    requests/s and server CPU per request, ratios to nginx in the same run; then
    http_server --threads 2 against nginx with 2 workers (nothing pinned).
  - resp (issue 11, bench/resp_bench.py): examples/resp's resp_server against
    redis-server under redis-benchmark, plain and -P 16: requests/s and server CPU per
    request, as ratios to redis-server's of the same run (skipped, with a note, while
    resp_server does not exist; --resp-server CMD measures another server instead);
  - framing (issue 11, bench/framing_bench.c): framer throughput from memory, no socket: line
    framing (16 B and 1 KiB lines) against memchr over the same bytes, length framing against a
    header walk, and resp.spec's generated RESP framer (on the manual host) against Debian's
    hiredis reader on the same pipelined commands: GB/s, messages/s and callgrind's instructions
    per message (--toggle-collect of the feed_* functions: the framing alone), as ratios to the
    reference of the same run;
  - bench/generator_bench.py;
and every other figure as a ratio to the hand-written epoll server of the same run.
--smoke: one short run of everything (CI: it builds and each workload completes).
"""

import argparse
import atexit
import datetime
import os
import platform
import re
import resource
import select
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time

import http_bench
import resp_bench

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
FLOOR = "epoll"

# ---- processes: started here, always stopped ------------------------------------------

LIVE = set()


def kill_live():
    for proc in list(LIVE):
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    LIVE.clear()


atexit.register(kill_live)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def split_env(cmd):
    """Leading NAME=VALUE words of a server's command (its environment, e.g. the loop's backend) and the rest."""
    env = {}
    while cmd and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", cmd[0]):
        k, v = cmd[0].split("=", 1)
        env[k] = v
        cmd = cmd[1:]
    return env, cmd


class Proc:
    """A child with line-at-a-time stdout read under a timeout."""

    def __init__(self, cmd, stdin=False, cpu=None, env=None):
        self.cmd = cmd
        self.p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, preexec_fn=pin(cpu),
                                  env=dict(os.environ, **env) if env else None)
        LIVE.add(self.p)
        self.buf = b""
        self.pid = self.p.pid

    def line(self, timeout):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.p.stdout], [], [], left)[0]:
                raise RuntimeError(f"{self.cmd[0]}: no output within {timeout} s")
            chunk = os.read(self.p.stdout.fileno(), 4096)
            if not chunk:
                raise RuntimeError(f"{' '.join(self.cmd)}: exited: {self.p.stderr.read().decode()[-500:]}")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def send(self, text):
        self.p.stdin.write(text.encode())
        self.p.stdin.flush()

    def stop(self, pid=None, timeout=30):
        """SIGTERM (to pid, the server under a tracer, or to the child), then SIGKILL."""
        if self.p.poll() is None:
            if pid:
                os.kill(pid, signal.SIGTERM)  # alive while its tracer, our child, is
            else:
                self.p.terminate()
        try:
            self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            if pid and self.p.poll() is None:
                os.kill(pid, signal.SIGKILL)
            self.p.kill()
            self.p.wait()
        LIVE.discard(self.p)
        return self.p.returncode


# The server runs on one core, the load generator on the other: no migrations, no
# sharing a core by chance, which otherwise spreads single-connection CPU figures by ±25%.
SERVER_CPU, LOADGEN_CPU = (1, 0) if len(os.sched_getaffinity(0)) >= 2 and {0, 1} <= os.sched_getaffinity(0) else (None, None)


def pin(cpu):
    return None if cpu is None else lambda: os.sched_setaffinity(0, cpu if isinstance(cpu, set) else {cpu})


# A threaded server gets every CPU but the load generator's when that leaves it two or more;
# on a 2-core machine it is not pinned (its second loop then shares the load generator's core).
_OTHERS = os.sched_getaffinity(0) - {LOADGEN_CPU}
THREADS_SERVER_CPUS = _OTHERS if LOADGEN_CPU is not None and len(_OTHERS) >= 2 else None


def start_server(cmd, wrap=(), cpu=SERVER_CPU):
    env, cmd = split_env(cmd)
    proc = Proc(list(wrap) + cmd + ["--port", "0"], cpu=cpu, env=env)
    m = re.fullmatch(r"listening on (\S+):(\d+)", proc.line(60 if wrap else 10))
    if not m:
        raise RuntimeError(f"{cmd[0]}: unexpected first line")
    proc.port = int(m.group(2))
    proc.server_pid = proc.pid
    if wrap and wrap[0] == "strace":  # the server is strace's child
        with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as f:
            proc.server_pid = int(f.read().split()[0])
    return proc


def loadgen(args, port, workload, pid=None, timeout=None):
    timeout = timeout or args.duration + 60
    cmd = [os.path.join(args.build, "loadgen"), "--port", str(port), "--timeout", str(timeout)] + workload
    if pid:
        cmd += ["--pid", str(pid)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 30, preexec_fn=pin(LOADGEN_CPU))
    fields = dict(kv.split("=", 1) for kv in r.stdout.split())
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {r.stderr.strip()} {r.stdout.strip()}")
    return {k: float(v) for k, v in fields.items()}


# ---- what is measured ------------------------------------------------------------------

# protogen's echo server once per loop backend: "protogen" on epoll, "protogen io_uring" where the
# build has that backend and the kernel allows it (a forced backend that is not there exits at once).
URING = "protogen io_uring"


def has_backend(echo, backend):
    try:
        proc = start_server([f"PROTOGEN_BACKEND={backend}", echo])
    except RuntimeError:
        return False
    proc.stop()
    return True


def servers(args):
    b = args.build
    echo = os.path.join(b, "protogen", "examples", "echo", "echo_server")
    srv = {
        "epoll": [os.path.join(b, "epoll_echo")],
        "protogen": ["PROTOGEN_BACKEND=epoll", echo],
        URING: ["PROTOGEN_BACKEND=io_uring", echo],
        "libuv": [os.path.join(b, "uv_echo")],
        "asyncio": [sys.executable, os.path.join(HERE, "asyncio_echo.py")],
    }
    if not has_backend(echo, "io_uring"):
        del srv[URING]
    if args.servers:
        srv = {k: v for k, v in srv.items() if k in args.servers.split(",") or k == FLOOR}
    return srv


C_SERVERS = ("epoll", "protogen", URING, "libuv")

# name, load generator arguments, what one message is, rate unit, CPU unit, bytes per unit
WORKLOADS = [
    ("ping-pong 1×64 B", ["--workload", "pingpong", "--conns", "1", "--size", "64"], "req", "req/s", "µs/req"),
    ("ping-pong 100×1 KiB", ["--workload", "pingpong", "--conns", "100", "--size", "1024"], "req", "req/s",
     "µs/req"),
    ("streaming 10×64 KiB", ["--workload", "stream", "--conns", "10", "--size", "65536", "--window", "4"], "64 KiB",
     "MB/s", "µs/MB"),
    ("churn (connect, 64 B echo, close)", ["--workload", "churn", "--conns", "1", "--size", "64"], "conn",
     "conn/s", "µs/conn"),
]


def timed(args, srv):
    """{(workload, server): [per-run dicts]}, servers taking turns in a rotating order."""
    results = {}
    names = list(srv)
    for run in range(args.runs):
        for wname, wargs, _, rate_unit, _ in WORKLOADS:
            for name in names[run % len(names):] + names[:run % len(names)]:
                proc = start_server(srv[name])
                try:
                    r = loadgen(args, proc.port, wargs + ["--duration", str(args.duration)], proc.pid)
                finally:
                    proc.stop()
                per_mb = rate_unit == "MB/s"
                units = r["bytes"] / 1e6 if per_mb else r["messages"]
                results.setdefault((wname, name), []).append({
                    "rate": units / r["seconds"],
                    "p50": r["p50_us"], "p99": r["p99_us"],
                    "cpu": r["server_cpu_s"] * 1e6 / units,
                    "sleeps": r["server_sleeps"] / r["messages"] if r["server_sleeps"] >= 0 else float("nan"),
                    "client": r["client_cpu_s"] / r["seconds"],
                })
        print(f"  timed run {run + 1}/{args.runs} done", file=sys.stderr)
    med = {k: {f: statistics.median(d[f] for d in v) for f in v[0]} for k, v in results.items()}
    for k, v in results.items():  # how far apart the runs were
        cpus = [d["cpu"] for d in v]
        med[k]["spread"] = (max(cpus) - min(cpus)) / med[k]["cpu"]
    return med


# The same protocol and handlers on two hosts: what embedding costs in latency.
EMBED_FLOOR = "built-in loop"


def embedded_servers(args):
    ex = os.path.join(args.build, "protogen", "examples")
    return {
        EMBED_FLOOR: [os.path.join(ex, "echo", "echo_server")],
        "poll host": [os.path.join(ex, "embed-poll", "echo_poll_server")],
        "built-in loop nested in poll()": [os.path.join(ex, "echo", "echo_server"), "--nest"],
    }


def embedded(args):
    """{server: median rate, p50, p99} of ping-pong 1×64 B, the servers taking turns."""
    srv = embedded_servers(args)
    wargs = WORKLOADS[0][1]
    runs = {}
    names = list(srv)
    for run in range(args.runs):
        for name in names[run % len(names):] + names[:run % len(names)]:
            proc = start_server(srv[name])
            try:
                r = loadgen(args, proc.port, wargs + ["--duration", str(args.duration)], proc.pid)
            finally:
                proc.stop()
            runs.setdefault(name, []).append({"rate": r["messages"] / r["seconds"], "p50": r["p50_us"],
                                              "p99": r["p99_us"]})
    return {k: {f: statistics.median(d[f] for d in v) for f in v[0]} for k, v in runs.items()}


# One loop per thread (issue 13): the same server with --threads 2 and --threads 1.
THREADS_FLOOR = "--threads 1"
THREADS_WORKLOADS = (WORKLOADS[1], WORKLOADS[2])  # concurrent: connections to spread over the loops


def threads(args):
    """{(workload, variant): median rate, cpu per unit, load gen}, the variants taking turns."""
    echo = os.path.join(args.build, "protogen", "examples", "echo", "echo_server")
    srv = {THREADS_FLOOR: [echo, "--threads", "1"], "--threads 2": [echo, "--threads", "2"]}
    runs = {}
    names = list(srv)
    for run in range(args.runs):
        for wname, wargs, _, rate_unit, _ in THREADS_WORKLOADS:
            for name in names[run % len(names):] + names[:run % len(names)]:
                proc = start_server(srv[name], cpu=THREADS_SERVER_CPUS)
                try:
                    r = loadgen(args, proc.port, wargs + ["--duration", str(args.duration)], proc.pid)
                finally:
                    proc.stop()
                units = r["bytes"] / 1e6 if rate_unit == "MB/s" else r["messages"]
                runs.setdefault((wname, name), []).append({"rate": units / r["seconds"],
                                                           "cpu": r["server_cpu_s"] * 1e6 / units,
                                                           "client": r["client_cpu_s"] / r["seconds"]})
    return {k: {f: statistics.median(d[f] for d in v) for f in v[0]} for k, v in runs.items()}


def vm_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M).group(1))


def idle(args, srv):
    """{server: median RSS bytes per idle connection}."""
    per = {}
    names = list(srv)
    for run in range(args.runs):
        for name in names[run % len(names):] + names[:run % len(names)]:
            proc = start_server(srv[name])
            lg = Proc([os.path.join(args.build, "loadgen"), "--port", str(proc.port), "--workload", "idle",
                       "--conns", str(args.idle), "--timeout", "120"], stdin=True, cpu=LOADGEN_CPU)
            try:
                if lg.line(30) != "warm":
                    raise RuntimeError("loadgen idle: no warm-up")
                before = vm_rss_kib(proc.pid)
                lg.send("go\n")
                if lg.line(120) != f"ready {args.idle}":
                    raise RuntimeError("loadgen idle: not all connections opened")
                time.sleep(0.2)  # let the last accepts settle
                after = vm_rss_kib(proc.pid)
                lg.send("done\n")
                lg.line(30)
                if lg.p.wait(30) != 0:
                    raise RuntimeError("loadgen idle failed")
                LIVE.discard(lg.p)
            finally:
                proc.stop()
                lg.stop()
            per.setdefault(name, []).append((after - before) * 1024 / args.idle)
    return {k: statistics.median(v) for k, v in per.items()}


# Counted runs: a fixed number of messages (connections for churn) against a run of none.
def counted_workloads(args):
    n = args.count
    return [(WORKLOADS[0][0], WORKLOADS[0][1], n),
            (WORKLOADS[1][0], WORKLOADS[1][1], n),
            (WORKLOADS[2][0], WORKLOADS[2][1], max(n // 20, 10)),
            (WORKLOADS[3][0], WORKLOADS[3][1], max(n // 10, 10))]


def callgrind_total(path):
    with open(path) as f:
        for line in f:
            if line.startswith(("totals:", "summary:")):
                return int(line.split()[1])
    raise RuntimeError(f"no totals in {path}")


def self_costs(path):
    """{function: instructions}, callgrind's self cost per function."""
    out = subprocess.run(["callgrind_annotate", "--auto=no", "--threshold=100", path], capture_output=True,
                         text=True, timeout=120).stdout
    costs = {}
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+)\s+\([^)]*\)\s+(\S.*)$", line)
        if m and "PROGRAM TOTALS" not in line:
            name = re.sub(r"\s*\[.*\]$", "", m.group(2)).rsplit("/", 1)[-1]
            costs[name] = costs.get(name, 0) + int(m.group(1).replace(",", ""))
    return costs


def strace_counts(path):
    counts = {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit() and parts[0] != "total":
                counts[parts[0]] = int(parts[1])
    return counts


def one_counted(args, cmd, tool, wargs, n, tag):
    out = os.path.join(args.outdir, tag)
    if tool == "callgrind":
        wrap = ["valgrind", "--tool=callgrind", "-q", f"--callgrind-out-file={out}"]
    else:
        wrap = ["strace", "-f", "-c", "-U", "name,calls", "-o", out]
    proc = start_server(cmd, wrap)
    try:
        loadgen(args, proc.port, wargs + ["--requests", str(n), "--duration", "300"], timeout=300)
        time.sleep(0.2)  # the server sees the last EOF
    finally:
        proc.stop(proc.server_pid, timeout=60)
    return (callgrind_total(out), out) if tool == "callgrind" else strace_counts(out)


def counted(args, srv):
    """{(workload, server): {"instr": per message, "sys": per message, "calls": {name: per message}}}."""
    res = {}
    for wname, wargs, n in counted_workloads(args):
        for name, cmd in srv.items():
            key = (wname, name)
            safe = re.sub(r"\W+", "_", wname)
            if name in C_SERVERS:
                base, base_file = one_counted(args, cmd, "callgrind", wargs, 0, f"callgrind.{name}.{safe}.0")
                full, full_file = one_counted(args, cmd, "callgrind", wargs, n, f"callgrind.{name}.{safe}.{n}")
                res.setdefault(key, {})["instr"] = (full - base) / n
                if wname == WORKLOADS[0][0]:  # where the instructions go, function by function
                    a, b = self_costs(full_file), self_costs(base_file)
                    res[key]["funcs"] = {f: (a.get(f, 0) - b.get(f, 0)) / n for f in set(a) | set(b)}
            base = one_counted(args, cmd, "strace", wargs, 0, f"strace.{name}.{safe}.0")
            full = one_counted(args, cmd, "strace", wargs, n, f"strace.{name}.{safe}.{n}")
            calls = {k: (full.get(k, 0) - base.get(k, 0)) / n for k in set(full) | set(base)}
            calls = {k: v for k, v in calls.items() if abs(v) >= 0.005}
            res.setdefault(key, {})["sys"] = sum(calls.values())
            res[key]["calls"] = calls
        print(f"  counted: {wname} done", file=sys.stderr)
    return res


# ---- the report --------------------------------------------------------------------------

def cmd_output(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def source_state():
    head = cmd_output(["git", "-C", TOP, "log", "-1", "--format=%h %ad", "--date=format:%Y-%m-%d %H:%M"])
    dirty = cmd_output(["git", "-C", TOP, "status", "--porcelain", "--", "runtime", "templates", "generator",
                        "examples/echo", "examples/embed-poll", "examples/resp", "cmake"])
    return f"protogen at {head}" + (" plus uncommitted changes to runtime/templates/generator" if dirty else "")


def machine():
    with open("/proc/cpuinfo") as f:
        model = re.search(r"^model name\s*:\s*(.*)$", f.read(), re.M)
    with open("/proc/meminfo") as f:
        mem = int(re.search(r"^MemTotal:\s+(\d+)", f.read(), re.M).group(1))
    return [
        f"date: {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}; {source_state()}",
        f"CPU: {model.group(1) if model else '?'}, {os.cpu_count()} cores; memory {mem // 1024 ** 2} GiB",
        f"kernel: {platform.release()}",
        f"gcc: {cmd_output(['gcc', '-dumpfullversion'])} (-O2 -g -DNDEBUG); "
        f"libuv {cmd_output(['pkg-config', '--modversion', 'libuv'])}; "
        f"Python {platform.python_version()} ({sys.executable})",
        f"{cmd_output(['valgrind', '--version'])}; {cmd_output(['strace', '-V']).splitlines()[0]}",
        f"load average at the end (other work on the machine disturbs the timed figures, not the counted "
        f"ones): {open('/proc/loadavg').read().split()[:3]}; server pinned to CPU {SERVER_CPU}, "
        f"load generator to CPU {LOADGEN_CPU}",
    ]


def ratio(v, floor):
    return f"{v / floor:.2f}" if floor else "–"


def fmt(v):
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def threads_section(args, thr):
    where = (f"the server on CPUs {sorted(THREADS_SERVER_CPUS)}" if THREADS_SERVER_CPUS else
             "the server not pinned (its second loop shares a core with the load generator: with 2 cores "
             "this shows what the threads cost, not how they scale)")
    out = ["", f"Threads: examples/echo's echo_server --threads 2 (two loops, a reuse_port listener each) against "
            f"--threads 1, median of {args.runs} runs of {args.duration:g} s, taking turns; {where}; load generator "
            f"on CPU {LOADGEN_CPU}; × = ratio to {THREADS_FLOOR}.", "",
            "| workload | server | rate | × | server CPU | × | load gen |", "|---|---|---:|---:|---:|---:|---:|"]
    for wname, _, _, rate_unit, cpu_unit in THREADS_WORKLOADS:
        floor = thr[(wname, THREADS_FLOOR)]
        for name in (THREADS_FLOOR, "--threads 2"):
            r = thr[(wname, name)]
            out.append(f"| {wname} | echo_server {name} | {fmt(r['rate'])} {rate_unit} | "
                       f"{ratio(r['rate'], floor['rate'])} | {fmt(r['cpu'])} {cpu_unit} | "
                       f"{ratio(r['cpu'], floor['cpu'])} | {r['client']:.2f} |")
    return out


HTTP_SERVERS = {}   # the http part's servers, by name (http_bench.section's table order)
HTTP_THREADS = (1, 2)  # http_server --threads N against nginx with N workers


def report(args, srv, t, mem, c, emb, resp, gen, notes, thr=None, http=None, fr=None):
    out = ["# protogen benchmark (issue 7)", "", *[f"- {m}" for m in machine()], ""]
    if t:
        out += timed_section(args, srv, t)
    if mem:
        out += idle_section(args, srv, mem)
    if c:
        out += counted_section(args, srv, c)
    if emb:
        out += embedded_section(args, emb)
    if thr:
        out += threads_section(args, thr)
    if resp:
        out += [""] + resp_bench.section(resp, resp_servers(args), args.resp_runs, args.resp_requests)
    for n, med in (http or {}).items():
        out += [""] + http_bench.section(med, HTTP_SERVERS, args.http_runs, args.http_duration, args.http_requests, n)
    out += ["", "Issue 7's targets, for protogen:", "", "| target | measured | met |", "|---|---|---|"]
    for row in targets(t, mem, c, emb, args):
        out.append(f"| {row[0]} | {row[1]} | {'yes' if row[2] else '**no**'} |")
    if fr:
        out += framing_section(args, fr)
    if resp:
        out += ["", "Issue 11's targets, for the RESP server:", "", "| target | measured | met |", "|---|---|---|"]
        for row in resp_bench.targets(resp, args.resp_name):
            out.append(f"| {row[0]} | {row[1]} | {'yes' if row[2] else '**no**'} |")
    if http:
        out += ["", "Issue 15's targets, for the HTTP server:", "", "| target | measured | met |", "|---|---|---|"]
        for row in [r for n, med in http.items() for r in http_bench.targets(med, "http_server", n)]:
            out.append(f"| {row[0]} | {row[1]} | {'yes' if row[2] else '**no**'} |")
    if gen:
        out += ["", "Generator (bench/generator_bench.py):", "", "```", gen.strip(), "```"]
    if notes:
        out += ["", "Notes:", ""] + [f"- {n}" for n in notes]
    return "\n".join(out) + "\n"


def timed_section(args, srv, t):
    out = [f"Timed: median of {args.runs} runs of {args.duration:g} s per workload and server, servers taking "
            "turns; × = ratio to the hand-written epoll server of the same run. CPU = the server's time on a CPU "
            "(/proc/PID/task/*/schedstat) over the run, per unit, ± half the range of the runs. Sleeps = the server's "
            "waits that blocked (voluntary context switches) per message: each is a wake-up, which costs more than "
            "a system call. Load gen = the load generator's own CPU "
            "(1.00: it is the bottleneck). MB = 10⁶ bytes echoed.", "",
            "| workload | server | rate | × | p50 µs | p99 µs | server CPU | × | sleeps/msg | load gen |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for wname, _, _, rate_unit, cpu_unit in WORKLOADS:
        floor = t[(wname, FLOOR)]
        for name in srv:
            r = t[(wname, name)]
            out.append(f"| {wname} | {name} | {fmt(r['rate'])} {rate_unit} | {ratio(r['rate'], floor['rate'])} | "
                       f"{r['p50']:.1f} | {r['p99']:.1f} | {fmt(r['cpu'])} {cpu_unit} ±{r['spread'] * 50:.0f}% | "
                       f"{ratio(r['cpu'], floor['cpu'])} | {r['sleeps']:.2f} | {r['client']:.2f} |")
    return out


def idle_section(args, srv, mem):
    out = ["", f"Idle: {args.idle} connections, each confirmed by a 1-byte echo; the server's VmRSS growth "
            f"(after a warm-up connection) per connection; median of {args.runs} runs.", "",
            "| server | RSS per idle connection | × |", "|---|---:|---:|"]
    for name in srv:
        out.append(f"| {name} | {mem[name]:.0f} B | {ratio(mem[name], mem[FLOOR])} |")
    return out


def counted_section(args, srv, c):
    out = ["", "Per echoed message (per 64 KiB message for streaming, per connection for churn), on a fixed "
            "count with a run of none subtracted: user-space instructions (valgrind --tool=callgrind, C servers) "
            "and system calls (strace -f -c). Exact for one connection; under concurrency both depend on how "
            "events batch (bytes per read), which callgrind's and strace's slowness changes: streaming's "
            "figures move by 2-5× between runs, the others by a few percent.", "",
            "| workload (count) | server | instructions | × | syscalls | × | syscalls by name |",
            "|---|---|---:|---:|---:|---:|---|"]
    for wname, _, n in counted_workloads(args):
        floor = c[(wname, FLOOR)]
        for name in srv:
            r = c[(wname, name)]
            instr = f"{r['instr']:,.0f} | {ratio(r['instr'], floor['instr'])}" if "instr" in r else "– | –"
            calls = " ".join(f"{k} {v:.2f}" for k, v in sorted(r["calls"].items(), key=lambda kv: -kv[1]))
            out.append(f"| {wname} ({n}) | {name} | {instr} | {r['sys']:.2f} | {ratio(r['sys'], floor['sys'])} | "
                       f"{calls} |")
    pp1 = WORKLOADS[0][0]
    out += ["", f"Where the instructions of one {pp1} message go: callgrind's self cost per function, the "
            "counted run minus the run of none, per message (libuv's library has no symbols here).", "",
            "| server | instructions per function |", "|---|---|"]
    for name in srv:
        funcs = c[(pp1, name)].get("funcs")
        if funcs:
            top = [f"{f} {v:.0f}" for f, v in sorted(funcs.items(), key=lambda kv: -kv[1]) if v >= 0.5]
            out.append(f"| {name} | {', '.join(top)} |")
    return out


def embedded_section(args, emb):
    out = ["", f"Embedded: {WORKLOADS[0][0]} against examples/echo's protocol and handlers, hosted three ways, "
            f"median of {args.runs} runs of {args.duration:g} s, the servers taking turns: the built-in loop "
            "(echo_server), a poll() loop that owns its sockets on the manual host (echo_poll_server), and "
            "the built-in loop nested in a poll() loop (echo_server --nest: pg_loop_backend_fd/_timeout); "
            f"× = ratio to the {EMBED_FLOOR}.", "",
            "| server | rate | p50 µs | × | p99 µs | × |", "|---|---:|---:|---:|---:|---:|"]
    floor = emb[EMBED_FLOOR]
    for name, r in emb.items():
        out.append(f"| {name} | {fmt(r['rate'])} req/s | {r['p50']:.1f} | {ratio(r['p50'], floor['p50'])} | "
                   f"{r['p99']:.1f} | {ratio(r['p99'], floor['p99'])} |")
    return out


def extra_calls(p, e):
    """System calls protogen makes per message beyond the hand-written server's."""
    same = {"epoll_pwait": "epoll_wait"}
    floor = {}
    for k, v in e.items():
        floor[same.get(k, k)] = floor.get(same.get(k, k), 0) + v
    extra = {k: v - floor.get(k, 0) for k, v in p.items() if v - floor.get(k, 0) >= 0.05}
    return ", ".join(f"{k} +{v:.2f}" for k, v in sorted(extra.items(), key=lambda kv: -kv[1]))


def targets(t, mem, c, emb, args):
    rows = []
    # Issue 13's goals for the io_uring backend: system calls per message (per connection for churn).
    uring_sys = (1.0, 0.5, None, "floor")
    for (wname, wargs, _), conns, goal in zip(counted_workloads(args) if c else [], (1, 100, 10, 1), uring_sys):
        if (wname, URING) in c:
            p, e = c[(wname, URING)], c[(wname, FLOOR)]
            if goal is not None:
                limit = e["sys"] - 0.01 if goal == "floor" else goal
                rows.append((f"io_uring: syscalls/message {'< hand-written' if goal == 'floor' else f'≤ {goal}'}: "
                             f"{wname}", f"{p['sys']:.2f} vs {e['sys']:.2f}", p["sys"] <= limit))
            rows.append((f"io_uring: instructions/message ≤ 2× hand-written: {wname}",
                         f"{p['instr']:,.0f} vs {e['instr']:,.0f} ({p['instr'] / e['instr']:.2f}×)",
                         p["instr"] <= 2 * e["instr"]))
        if (wname, "protogen") not in c:
            continue
        p, e = c[(wname, "protogen")], c[(wname, FLOOR)]
        extra = extra_calls(p["calls"], e["calls"])
        if conns == 1:
            met, how = p["sys"] <= e["sys"] + 0.01, ""
        else:  # how events batch under strace varies from run to run
            met, how = p["sys"] <= e["sys"] * 1.05, " (concurrent: varies with batching)"
        rows.append((f"syscalls/message = hand-written{how.replace(')', '; within 5%)')}: {wname}",
                     f"{p['sys']:.2f} vs {e['sys']:.2f}" + (f"; extra: {extra}" if extra else ""), met))
        rows.append((f"instructions/message ≤ 3× hand-written{how}: {wname}",
                     f"{p['instr']:,.0f} vs {e['instr']:,.0f} ({p['instr'] / e['instr']:.2f}×)",
                     p["instr"] <= 3 * e["instr"]))
    for wname, *_ in WORKLOADS if t else []:
        if (wname, URING) in t and wname.startswith("ping-pong"):
            p, e = t[(wname, URING)], t[(wname, FLOOR)]
            rows.append((f"io_uring: server CPU ≤ 0.8× hand-written: {wname}", f"{p['cpu'] / e['cpu']:.2f}×",
                         p["cpu"] <= 0.8 * e["cpu"]))
        if (wname, "protogen") not in t or (wname, "libuv") not in t:
            continue
        p, e, u = t[(wname, "protogen")], t[(wname, FLOOR)], t[(wname, "libuv")]
        rows.append((f"server CPU ≤ 1.10× hand-written and < libuv: {wname}",
                     f"{p['cpu'] / e['cpu']:.2f}× hand-written, {p['cpu'] / u['cpu']:.2f}× libuv",
                     p["cpu"] <= 1.10 * e["cpu"] and p["cpu"] < u["cpu"]))
    if mem and "protogen" in mem and "asyncio" in mem:
        rows.append(("idle RSS ≤ 512 B per connection, several (≥ 3) times less than asyncio's",
                     f"{mem['protogen']:.0f} B; asyncio {mem['asyncio'] / max(mem['protogen'], 1):.1f}× that",
                     mem["protogen"] <= 512 and mem["asyncio"] >= 3 * mem["protogen"]))
    if emb:
        p, b = emb["poll host"], emb[EMBED_FLOOR]
        rows.append((f"poll-hosted echo's p50 ≤ 1.3× the built-in loop's (issue 10): {WORKLOADS[0][0]}",
                     f"{p['p50']:.1f} vs {b['p50']:.1f} µs ({p['p50'] / b['p50']:.2f}×)", p["p50"] <= 1.3 * b["p50"]))
    if t and (WORKLOADS[3][0], "protogen") in t:
        churn = WORKLOADS[3][0]
        p, e = t[(churn, "protogen")], t[(churn, FLOOR)]
        rows.append(("churn ≥ hand-written's connections/s", f"{p['rate']:,.0f} vs {e['rate']:,.0f}",
                     p["rate"] >= e["rate"]))
    return rows


# ---- framing (issue 11): framer throughput from memory -------------------------------------

# (what, framing_bench case, reads of bytes, reference cases): each case's ratios are to the
# first reference; RESP has two, hiredis parsing only (the no-op handler's peer) and building
# its reply objects (hiredis' default). 16 KiB is hiredis' (and redis-server's) own read size,
# 256 KiB the built-in loop's.
FRAMING_CASES = [
    ("line, 16 B lines", "line:16", 262144, ("memchr:16",)),
    ("line, 1 KiB lines", "line:1024", 262144, ("memchr:1024",)),
    ("length, 64 B messages (4-byte header)", "length:64", 262144, ("lenwalk:64",)),
    ("RESP (resp.spec), SET/GET commands", "resp", 16384, ("hiredis", "hiredis-objects")),
    ("RESP (resp.spec), SET/GET commands", "resp", 262144, ("hiredis", "hiredis-objects")),
]
# Passes per timed run, the best kept: a pass takes milliseconds, and on a shared machine the
# best of many is the one no other process interrupted.
FRAMING_PASSES = 20
FRAMING_REFS = {
    "memchr:16": "memchr for each '\\n'", "memchr:1024": "memchr for each '\\n'",
    "lenwalk:64": "a loop reading each header", "hiredis": "hiredis redisReader, parsing only",
    "hiredis-objects": "hiredis redisReader, reply objects",
}


def framing_run(args, case, read, passes, mib, wrap=()):
    exe = os.path.join(args.build, "framing_bench")
    r = subprocess.run(list(wrap) + [exe, "--case", case, "--read", str(read), "--passes", str(passes), "--mib",
                                     str(mib)], capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError(f"framing_bench --case {case}: {r.stderr.strip()}")
    fields = dict(kv.split("=", 1) for kv in r.stdout.split())
    return {k: (v if k == "case" else float(v)) for k, v in fields.items()}


def framing(args):
    """{(case, read): {"gbps", "mmsgs", "instr"}}: medians over --runs runs (each the best of
    FRAMING_PASSES passes, the cases taking turns), instructions per message from one callgrind run."""
    keys = []
    for _, case, read, refs in FRAMING_CASES:
        keys += [(k, read) for k in (case,) + refs if (k, read) not in keys]
    runs = {}
    for run in range(args.runs):
        for case, read in keys[run % len(keys):] + keys[:run % len(keys)]:
            runs.setdefault((case, read), []).append(framing_run(args, case, read, FRAMING_PASSES, args.framing_mib))
    res = {k: {f: statistics.median(d[f] for d in v) for f in ("gbps", "mmsgs")} for k, v in runs.items()}
    for case, read in keys:
        out = os.path.join(args.outdir, f"callgrind.framing.{case.replace(':', '_')}.{read}")
        r = framing_run(args, case, read, 1, 1, ["valgrind", "--tool=callgrind", "-q", "--toggle-collect=feed_*",
                                                 f"--callgrind-out-file={out}"])
        res[(case, read)]["instr"] = callgrind_total(out) / r["messages"]
    return res


def framing_section(args, fr):
    out = ["", f"Framing from memory (bench/framing_bench.c): {args.framing_mib} MiB of pipelined input per case, "
            "fed in reads of the size shown to a handler that only counts; GB/s and M messages/s: the median of "
            f"{args.runs} runs, each the best of {FRAMING_PASSES} passes, the cases taking turns; instructions per message: "
            "callgrind (--toggle-collect=feed_*: the framing alone, 1 MiB). × = the case against its reference, "
            "same run: for rates > 1 is faster, for instructions < 1 is fewer.", "",
            "| framing | reads | GB/s | M msg/s | instr/msg | × GB/s | × instr |", "|---|---:|---:|---:|---:|---:|---:|"]
    for what, case, read, refs in FRAMING_CASES:
        p = fr[(case, read)]
        for ref in refs:
            r = fr[(ref, read)]
            out.append(f"| {what} vs {FRAMING_REFS[ref]} | {read // 1024} KiB | {p['gbps']:.2f} vs {r['gbps']:.2f} | "
                       f"{p['mmsgs']:.1f} vs {r['mmsgs']:.1f} | {p['instr']:,.0f} vs {r['instr']:,.0f} | "
                       f"{p['gbps'] / r['gbps']:.2f} | {p['instr'] / r['instr']:.2f} |")
    out += ["", "Issue 11's framing targets:", "", "| target | measured | met |", "|---|---|---|"]
    for row in framing_targets(fr):
        out.append(f"| {row[0]} | {row[1]} | {'yes' if row[2] else '**no**'} |")
    return out


def framing_targets(fr):
    rows = []
    for what, case, read, refs in FRAMING_CASES:
        p = fr[(case, read)]
        if case.startswith("line:"):
            rows.append((f"line framing ≥ 2 GB/s: {what}", f"{p['gbps']:.2f} GB/s", p["gbps"] >= 2.0))
        if case == "resp":
            for ref in refs:
                r = fr[(ref, read)]
                rows.append((f"RESP framer ≥ 1.5× {FRAMING_REFS[ref]}, reads of {read // 1024} KiB",
                             f"{p['gbps']:.2f} vs {r['gbps']:.2f} GB/s ({p['gbps'] / r['gbps']:.2f}×)",
                             p["gbps"] >= 1.5 * r["gbps"]))
    return rows


def resp_servers(args):
    cmd = shlex.split(args.resp_server) if args.resp_server else [resp_bench.default_server(args.build)]
    return {resp_bench.REFERENCE: None, args.resp_name: cmd}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(TOP, "build-bench"))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--duration", type=float, default=3.0)
    ap.add_argument("--idle", type=int, default=10000)
    ap.add_argument("--count", type=int, default=5000, help="messages per counted run")
    ap.add_argument("--gen-runs", type=int, default=15)
    ap.add_argument("--smoke", action="store_true", help="one short run of everything")
    ap.add_argument("--resp-runs", type=int, default=3, help="runs of the resp part")
    ap.add_argument("--resp-requests", type=int, default=200000, help="redis-benchmark -n of the resp part")
    ap.add_argument("--resp-server", help="the resp part's server command (default: resp_server of the build)")
    ap.add_argument("--resp-name", default="resp_server", help="its name in the tables")
    ap.add_argument("--servers", default="",
                    help="comma-separated servers of the timed, idle and counted parts (default: all; "
                         "the hand-written epoll one always runs, every ratio is to it)")
    ap.add_argument("--http-runs", type=int, default=3, help="runs of the http part")
    ap.add_argument("--http-duration", type=float, default=5.0, help="wrk -d of the http part, seconds")
    ap.add_argument("--http-requests", type=int, default=200000, help="ab -n of the http part")
    ap.add_argument("--framing-mib", type=int, default=8, help="MiB of input per framing case")
    ap.add_argument("--only", default="timed,idle,counted,embedded,threads,resp,http,framing,generator",
                    help="comma-separated parts to run (default: all); counted alone is the quick, exact check")
    ap.add_argument("--out", help="also write the report here (default: BUILD/bench-results.md)")
    args = ap.parse_args()
    if args.smoke:
        args.runs, args.duration, args.idle, args.count, args.gen_runs = 1, 1.0, 1000, 200, 3
        args.resp_runs, args.resp_requests = 1, 2000
        args.http_runs, args.http_duration, args.http_requests = 1, 1.0, 2000
        args.framing_mib = 1
    args.build = os.path.abspath(args.build)
    args.outdir = os.path.join(args.build, "bench-out")
    os.makedirs(args.outdir, exist_ok=True)
    for tool in ("valgrind", "strace"):
        if shutil.which(tool) is None:
            sys.exit(f"bench: {tool} is missing (make bench installs it)")

    notes = []
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = args.idle + 100
    if soft < need:  # the servers inherit it
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))
    if hard < need:
        args.idle = max(hard - 100, 10)
        notes.append(f"the descriptor limit ({hard}) allowed only {args.idle} idle connections")

    srv = servers(args)
    parts = set(args.only.split(","))
    t = mem = c = emb = resp = gen = thr = http = fr = None
    if "timed" in parts:
        print(f"bench: timed workloads ({args.runs} × {len(WORKLOADS)} × {len(srv)} runs)", file=sys.stderr)
        t = timed(args, srv)
    if "idle" in parts:
        print(f"bench: {args.idle} idle connections", file=sys.stderr)
        mem = idle(args, srv)
    if "counted" in parts:
        print("bench: instructions and system calls per message", file=sys.stderr)
        c = counted(args, srv)
    if "embedded" in parts:
        print(f"bench: embedded, the poll host and the nested loop against the built-in loop ({args.runs} × 3 runs)",
              file=sys.stderr)
        emb = embedded(args)
    if "threads" in parts:
        print(f"bench: threads, echo_server --threads 2 against --threads 1 ({args.runs} × "
              f"{len(THREADS_WORKLOADS)} × 2 runs)", file=sys.stderr)
        thr = threads(args)
    if "resp" in parts:
        rsrv = resp_servers(args)
        why = resp_bench.missing(rsrv[args.resp_name])
        if why:
            notes.append(f"resp (issue 11) skipped: {why}")
            print(f"bench: resp skipped: {why}", file=sys.stderr)
        else:
            print(f"bench: resp, {args.resp_name} against redis-server under redis-benchmark "
                  f"({args.resp_runs} × {len(resp_bench.PIPELINES)} × {len(rsrv)} runs of "
                  f"{len(resp_bench.TESTS)} tests)", file=sys.stderr)
            resp = resp_bench.measure(rsrv, args.resp_runs, args.resp_requests, lambda m: print(m, file=sys.stderr))
    if "http" in parts:
        hsrv = {http_bench.REFERENCE: None, "http_server": [http_bench.default_server(args.build)]}
        HTTP_SERVERS.update(hsrv)
        why = http_bench.missing(hsrv["http_server"])
        if why:
            notes.append(f"http (issue 15) skipped: {why}")
            print(f"bench: http skipped: {why}", file=sys.stderr)
        else:
            http = {}
            for n in HTTP_THREADS:  # not "threads": main calls threads() above
                print(f"bench: http, http_server against nginx under wrk and ab -k ({args.http_runs} × 2 runs, "
                      f"{n} thread(s) against {n} worker(s))", file=sys.stderr)
                http[n] = http_bench.measure(hsrv, args.http_runs, args.http_duration, args.http_requests,
                                             lambda m: print(m, file=sys.stderr), n)
    if "framing" in parts:
        print(f"bench: framing from memory ({args.runs} runs of {len(FRAMING_CASES)} cases, then callgrind)",
              file=sys.stderr)
        fr = framing(args)
    if "generator" in parts:
        print("bench: generator", file=sys.stderr)
        r = subprocess.run([sys.executable, os.path.join(HERE, "generator_bench.py"), "--runs", str(args.gen_runs)],
                           capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            raise RuntimeError(f"generator_bench.py: {r.stderr}")
        gen = r.stdout
    text = report(args, srv, t, mem, c, emb, resp, gen, notes, thr, http, fr)
    print(text)
    with open(args.out or os.path.join(args.build, "bench-results.md"), "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
