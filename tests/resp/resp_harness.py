"""Processes for the RESP tests: a real redis-server on a free loopback port, a
server under test that prints "listening on HOST:PORT", both stopped with
SIGTERM (SIGKILL after a while) and killed if the test itself dies.

Standard library only. Readiness is an event (a line on the server's stdout),
never a sleep."""

import atexit
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

LIVE = []


def _kill_live():
    for p in LIVE:
        if p.poll() is None:
            p.kill()
            p.wait()


atexit.register(_kill_live)


def redis_server_binary():
    path = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not os.path.exists(path):
        sys.exit("redis-server is missing (Debian: apt-get install redis-server; scripts/setup.sh installs it)")
    return path


def free_port():
    """A loopback port free a moment ago (redis-server cannot take port 0; a
    lost race is retried by start_redis)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_line(proc, timeout, what):
    """The next line of proc's stdout (bytes are read unbuffered)."""
    deadline = time.monotonic() + timeout
    buf = getattr(proc, "_linebuf", b"")
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([proc.stdout], [], [], left)[0]:
            raise RuntimeError(f"{what}: no output within {timeout} s")
        chunk = os.read(proc.stdout.fileno(), 4096)
        if not chunk:
            raise RuntimeError(f"{what}: exited ({proc.wait()}) before it was ready")
        buf += chunk
    line, proc._linebuf = buf.split(b"\n", 1)
    return line.decode(errors="replace").rstrip("\r")


def drain(proc):
    """Keeps reading proc's stdout after its ready line (the last lines kept in
    proc.tail), so that its later output never blocks it."""
    proc.tail = []

    def run():
        rest = getattr(proc, "_linebuf", b"")
        while True:
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                break
            rest += chunk
            *lines, rest = rest.split(b"\n")
            proc.tail = (proc.tail + [l.decode(errors="replace") for l in lines])[-50:]

    threading.Thread(target=run, daemon=True).start()


def start_redis(extra=(), host="127.0.0.1", port=0, tries=5, preexec_fn=None):
    """redis-server --save '' --appendonly no on host:port (0: a free port): (proc, port).
    Ready once its log (on stdout) says it accepts connections. preexec_fn: as
    subprocess.Popen's (the benchmark pins the server to a CPU)."""
    binary = redis_server_binary()
    fixed = port
    for _ in range(1 if fixed else tries):
        port = fixed or free_port()
        cmd = [binary, "--port", str(port), "--bind", host, "--save", "", "--appendonly", "no",
               "--daemonize", "no", "--logfile", "", "--dir", "/tmp", "--dbfilename", f"protogen-test-{port}.rdb",
               *extra]
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                             preexec_fn=preexec_fn)
        LIVE.append(p)
        log = []
        try:
            while True:
                line = read_line(p, 30, "redis-server")
                log.append(line)
                if "Ready to accept connections" in line:
                    drain(p)
                    return p, port
        except RuntimeError:
            p.kill()
            p.wait()
            if not any("Address already in use" in l for l in log):
                raise RuntimeError("redis-server did not start:\n" + "\n".join(log[-20:]))
    raise RuntimeError(f"redis-server: no free port in {tries} tries")


def start_server(cmd, timeout=30, preexec_fn=None):
    """A server command that prints "listening on HOST:PORT" first: (proc, host, port).
    Its stderr goes to ours."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, preexec_fn=preexec_fn)
    LIVE.append(p)
    line = read_line(p, timeout, cmd[0])
    m = re.fullmatch(r"listening on (\S+):(\d+)", line)
    if not m:
        p.kill()
        raise RuntimeError(f"{cmd[0]}: first line {line!r}, not 'listening on HOST:PORT'")
    drain(p)
    return p, m.group(1), int(m.group(2))


def stop(p, timeout=30):
    """SIGTERM, then SIGKILL after timeout seconds; the exit status."""
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    if p in LIVE:
        LIVE.remove(p)
    return p.returncode


def parse_hostport(text):
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"{text!r}: not HOST:PORT")
    return host.strip("[]"), int(port)
