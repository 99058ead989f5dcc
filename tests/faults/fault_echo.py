"""Fault injection: the generated echo servers, their allocations and socket calls
failing at a seeded rate (fault_shim.c), serve clients that check every byte.

    fault_echo.py ECHO_SERVER_FAULTS UDP_ECHO_SERVER_FAULTS [--seeds 1,2,3,4,5] [--rate 50]
                  [--clients 400] [--under CMD ...]

TCP, per seed: a fresh server; clients, 32 at a time, each send a seeded random
payload (up to 64 KiB), half-close, and read until the end. Whatever comes back
must be a prefix of what was sent, and either all of it with a clean end, or
the connection ended early (reset or EOF): a fault's cost. Then the server's
fds must be back to what it had before the first client, and SIGTERM must
end it with status 0 (under ASan: no leak, no invalid access).

UDP, per seed: 2,000 datagrams, each carrying its number and a checksum; every
reply must be a datagram that was sent, unchanged. Losses are a fault's cost,
but most must come back. Same fd and exit checks.

--under runs the servers under a command (e.g. valgrind). Bounded: every wait
has a deadline; a stuck connection is a failure, with its state printed.
"""

import argparse
import hashlib
import os
import random
import selectors
import signal
import socket
import struct
import subprocess
import sys
import time

DEADLINE_S = 60
CONCURRENCY = 32


def fds_of(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def start(cmd, seed, rate, calls):
    env = dict(os.environ, PROTOGEN_FAULT_SEED=str(seed), PROTOGEN_FAULT_RATE=str(rate),
               PROTOGEN_FAULT_CALLS=calls)
    env.pop("PROTOGEN_TRACE", None)
    proc = subprocess.Popen(cmd + ["--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    line = proc.stdout.readline().strip()
    if not line.startswith("listening on "):
        proc.kill()
        raise AssertionError(f"server did not start: {line!r} {proc.stderr.read()}")
    host, port = line.rsplit(" ", 1)[1].rsplit(":", 1)
    # Its signal handlers (a signalfd) come right after the line: the fds
    # it serves with are complete once that is there.
    deadline = time.monotonic() + 10
    while not any(os.readlink(f"/proc/{proc.pid}/fd/{fd}") == "anon_inode:[signalfd]"
                  for fd in os.listdir(f"/proc/{proc.pid}/fd")):
        if time.monotonic() > deadline:
            raise AssertionError("server has no signalfd")
        time.sleep(0.01)
    return proc, (host, int(port))


def wait_fds(pid, want, deadline):
    while time.monotonic() < deadline:
        if fds_of(pid) <= want:
            return
        time.sleep(0.01)
    raise AssertionError(f"server fds did not return to {want}: {fds_of(pid)} "
                         f"({sorted(os.listdir(f'/proc/{pid}/fd'))})")


def stop(proc, deadline):
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=max(1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError("server did not stop on SIGTERM")
    if proc.returncode != 0:
        raise AssertionError(f"server exited with {proc.returncode}: {err[-4000:]}")
    return [l for l in err.splitlines() if l.startswith("fault_shim:")][-1]


class Client:
    def __init__(self, addr, rng):
        self.payload = rng.randbytes(rng.randint(1, 64 * 1024))
        self.sent = 0
        self.got = bytearray()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setblocking(False)
        self.sock.connect_ex(addr)
        self.ended = None  # "ok", "early: ..."

    def events(self):
        ev = selectors.EVENT_READ
        if self.sent < len(self.payload):
            ev |= selectors.EVENT_WRITE
        return ev

    def step(self, mask):
        try:
            if mask & selectors.EVENT_WRITE and self.sent < len(self.payload):
                self.sent += self.sock.send(self.payload[self.sent:self.sent + 65536])
                if self.sent == len(self.payload):
                    self.sock.shutdown(socket.SHUT_WR)
            if mask & selectors.EVENT_READ:
                chunk = self.sock.recv(262144)
                if not chunk:
                    self.ended = "ok" if bytes(self.got) == self.payload else "early: eof"
                self.got += chunk
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as e:  # reset, refused, broken pipe: the fault ended it
            self.ended = f"early: {e.strerror}"
        if self.got != self.payload[:len(self.got)]:
            raise AssertionError(f"corrupted echo: {len(self.got)} bytes back, differ from what was sent")


def run_tcp(cmd, seed, rate, clients, deadline):
    proc, addr = start(cmd, seed, rate, "malloc,accept4,epoll_ctl,send,recv")
    pid = proc.pid  # valgrind, with --under, runs it in its own process
    base = fds_of(pid)
    rng = random.Random(seed)
    sel = selectors.DefaultSelector()
    started = ok = early = 0
    verified = 0
    active = {}
    while started < clients or active:
        while started < clients and len(active) < CONCURRENCY:
            c = Client(addr, rng)
            active[c.sock.fileno()] = c
            sel.register(c.sock, c.events(), c)
            started += 1
        if time.monotonic() > deadline:
            states = [(c.sent, len(c.payload), len(c.got)) for c in active.values()]
            raise AssertionError(f"seed {seed}: stuck connections (sent, size, got): {states}")
        for key, mask in sel.select(timeout=1.0):
            c = key.data
            c.step(mask)
            if c.ended is None:
                sel.modify(c.sock, c.events(), c)
                continue
            sel.unregister(c.sock)
            del active[c.sock.fileno()]
            c.sock.close()
            verified += len(c.got)
            if c.ended == "ok":
                ok += 1
            else:
                early += 1
    wait_fds(pid, base, deadline)
    faults = stop(proc, deadline)
    print(f"tcp seed {seed}: {ok} echoed whole, {early} ended early, {verified} bytes checked; {faults}")
    if ok < clients // 2:
        raise AssertionError(f"seed {seed}: only {ok} of {clients} connections echoed whole")


def run_udp(cmd, seed, rate, deadline, count=2000):
    proc, addr = start(cmd, seed, rate, "malloc,datagram")
    pid = proc.pid  # valgrind, with --under, runs it in its own process
    base = fds_of(pid)
    rng = random.Random(seed)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(0.05)  # a quiet gap: the rest of the window is lost
    sent = {}
    replies = 0
    for first in range(0, count, 32):
        for i in range(first, min(count, first + 32)):
            body = rng.randbytes(rng.randint(0, 1400))
            dgram = struct.pack("!I", i) + hashlib.sha256(body).digest()[:8] + body
            sent[i] = dgram
            sock.sendto(dgram, addr)
        want = min(count, first + 32) - first
        for _ in range(want):
            try:
                data = sock.recv(65536)
            except socket.timeout:
                break  # lost: what is left of this window went missing
            (i,) = struct.unpack("!I", data[:4])
            if sent.get(i) != data:
                raise AssertionError(f"seed {seed}: reply {i} is not a datagram that was sent")
            replies += 1
        if time.monotonic() > deadline:
            raise AssertionError(f"seed {seed}: UDP run past its deadline")
    sock.close()
    wait_fds(pid, base, deadline)
    faults = stop(proc, deadline)
    print(f"udp seed {seed}: {replies} of {count} datagrams echoed unchanged; {faults}")
    if replies < count // 2:
        raise AssertionError(f"seed {seed}: only {replies} of {count} replies")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("tcp_server")
    ap.add_argument("udp_server")
    ap.add_argument("--seeds", default="1,2,3,4,5")
    ap.add_argument("--rate", type=int, default=50)
    ap.add_argument("--clients", type=int, default=400)
    ap.add_argument("--under", nargs=argparse.REMAINDER, default=[])
    args = ap.parse_args()
    start_t = time.monotonic()
    for seed in (int(s) for s in args.seeds.split(",")):
        deadline = time.monotonic() + DEADLINE_S
        run_tcp(args.under + [args.tcp_server], seed, args.rate, args.clients, deadline)
        run_udp(args.under + [args.udp_server], seed, args.rate, deadline)
    print(f"fault injection: passed in {time.monotonic() - start_t:.1f} s")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"FAIL: {e}", file=sys.stderr)
        sys.exit(1)
