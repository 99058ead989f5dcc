#!/usr/bin/env python3
"""RESP reply conformance: a fixed list of command sequences sent to a server,
its raw reply bytes recorded, and compared byte for byte with a real
redis-server's (Debian 12's 7.0) answering the same list.

    conformance.py --server HOST:PORT [--record FILE]   record a server's replies
    conformance.py --compare HOST:PORT                  that server against a fresh redis-server
    conformance.py --compare-cmd CMD [ARG...]           start CMD (it prints "listening on HOST:PORT"),
                                                        compare, stop it with SIGTERM
    conformance.py --self-test                          redis-server against redis-server
    conformance.py --replay RESP_REPLAY                 examples/resp's command logic alone (no server,
                                                        tests/resp/replay.c) against redis-server, on
                                                        the cases that need no framer (multibulk, plain inline)
    conformance.py --list                               the cases, by group
  with --skip GROUP,... or --only GROUP,... (before --compare-cmd) to choose groups.

Each case is a session on a connection of its own, in order, on a server
started fresh (the cases' keys do not overlap, but the list is run in order so
the keyspace is the same on both sides anyway). A case is steps; each step is
bytes sent at once (or one byte at a time), then every reply up to a marker
(ECHO of a fixed token, sent after the step) or, for a step that ends the
connection (QUIT, a protocol error), up to EOF. Exit status 1 on a difference.
Standard library only."""

import argparse
import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import resp_harness  # noqa: E402

MARK = b"@@conformance-mark@@"
STEP_TIMEOUT = 10.0


def mb(*args):
    """A multibulk command."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


MARKER = mb("ECHO", MARK)
MARKER_REPLY = b"$%d\r\n%s\r\n" % (len(MARK), MARK)


class Step:
    def __init__(self, data, bytewise=False, closes=False, half_close=False):
        # half_close: the client shuts its side down after the data (then reads to EOF)
        self.data, self.bytewise, self.half_close = data, bytewise, half_close
        self.closes = closes or half_close


def S(*cmds, **kw):
    """A step: multibulk commands (tuples) and raw bytes, sent in one write."""
    return Step(b"".join(c if isinstance(c, bytes) else mb(*c) for c in cmds), **kw)


def cases():
    """[(group, name, [Step])]"""
    c = []

    def add(group, name, *steps):
        c.append((group, name, list(steps)))

    add("ping", "ping", S(("PING",)), S(("ping",)), S(("pInG",)))
    add("ping", "ping with an argument", S(("PING", "hi")), S(("PING", "")), S(("PING", "a b\r\nc")))
    add("ping", "ping arity", S(("PING", "a", "b")), S(("ping", "a", "b", "c")))
    add("echo", "echo", S(("ECHO", "x")), S(("echo", "")), S(("ECHO", b"\x00\r\n\xff")))
    add("echo", "echo arity", S(("ECHO",)), S(("echo", "a", "b")))

    add("set-get", "set and get", S(("GET", "sg:k")), S(("SET", "sg:k", "v")), S(("get", "sg:k")),
        S(("GET", "SG:K")), S(("SET", "sg:k", "a longer value than before")), S(("GET", "sg:k")),
        S(("SET", "sg:k", "")), S(("GET", "sg:k")), S(("SET", "", "empty key")), S(("GET", "",)))
    add("set-get", "set and get arity", S(("SET", "sg:k")), S(("set",)), S(("GET",)), S(("GET", "a", "b")))
    add("binary", "binary keys and values",
        S(("SET", b"bin:\x00\r\n\xff", b"\x00$\r\n*\x80")), S(("GET", b"bin:\x00\r\n\xff")), S(("GET", b"bin:")),
        S(("SET", "bin:big", b"\xa5" * 300000)), S(("GET", "bin:big")), S(("EXISTS", "bin:big")))

    add("del-exists", "del and exists", S(("SET", "de:a", "1"), ("SET", "de:b", "2")),
        S(("EXISTS", "de:a", "de:a", "de:zz")), S(("exists", "de:a", "de:b")), S(("EXISTS", "de:zz")),
        S(("DEL", "de:a", "de:a", "de:zz")), S(("EXISTS", "de:a")), S(("del", "de:b")), S(("DEL", "de:b")))
    add("del-exists", "del and exists arity", S(("DEL",)), S(("EXISTS",)), S(("eXiStS",)))

    incr = [S(("INCR", "in:n")), S(("incr", "in:n")), S(("GET", "in:n"))]
    for v in ["0", "-1", "99999", "-9223372036854775808", "9223372036854775806"]:
        incr += [S(("SET", "in:n", v)), S(("INCR", "in:n")), S(("GET", "in:n"))]
    incr += [S(("INCR", "in:n"))]  # 9223372036854775807 + 1
    for v in ["v", "", " 1", "1 ", "01", "-0", "+1", "-", "1a", "0x10", "1.5", "9223372036854775808",
              "-9223372036854775809", "18446744073709551616", "000000000000000000001"]:
        incr += [S(("SET", "in:n", v), ("INCR", "in:n"))]
    add("incr", "incr", *incr)
    add("incr", "incr arity", S(("INCR",)), S(("INCR", "a", "b")))

    opts = [S(("SET", "so:k", "v", "NX")), S(("SET", "so:k", "v2", "nx")), S(("GET", "so:k")),
            S(("SET", "so:k", "v3", "XX")), S(("SET", "so:z", "v3", "xx")), S(("EXISTS", "so:z")),
            S(("SET", "so:k", "v", "GET")), S(("SET", "so:k", "w", "GET", "NX")), S(("GET", "so:k")),
            S(("SET", "so:q", "w", "get", "nx")), S(("GET", "so:q")), S(("SET", "so:k", "w", "GET", "XX")),
            S(("SET", "so:k", "v", "GET", "GET")), S(("SET", "so:k", "v", "nx", "nx")),
            S(("SET", "so:k", "v", "KEEPTTL")), S(("SET", "so:k", "v", "EX", "10", "EX", "20")),
            S(("SET", "so:k", "v", "PX", "100000")), S(("EXISTS", "so:k")),
            S(("SET", "so:k", "v", "EXAT", "1")), S(("GET", "so:k")), S(("SET", "so:k", "v", "PXAT", "1")),
            S(("EXISTS", "so:k")), S(("SET", "so:k", "v", "PXAT", "9223372036854775807")), S(("GET", "so:k")),
            S(("SET", "so:n", "5", "EX", "100")), S(("INCR", "so:n")), S(("SET", "so:n", "6", "KEEPTTL")),
            S(("SET", "so:k", "v", "PX", "1000", "GET"))]
    for o in [("NX", "XX"), ("XX", "NX"), ("FOO",), ("EX",), ("EX", "10", "EX"), ("EX", "10", "PX"),
              ("PX", "10", "EX"), ("EX", "10", "KEEPTTL"), ("KEEPTTL", "EX", "10"), ("EXAT", "10", "PXAT"),
              ("NXX",), ("",), ("EX", "10", "EXAT", "10"), ("EX", "abc"), ("PX", " 1"), ("EX", "0"), ("EX", "-1"),
              ("PX", "0"), ("PXAT", "-5"), ("EXAT", "0"), ("EX", "9223372036854775807"),
              ("PX", "9223372036854775807"), ("EX", "9223372036854775"), ("EXAT", "9223372036854775807")]:
        opts.append(S(("SET", "so:e", "v") + o))
    add("set-options", "set options", *opts)

    add("config", "config get", S(("CONFIG", "GET", "save")), S(("CONFIG", "GET", "appendonly")),
        S(("config", "get", "SAVE")), S(("CONFIG", "GET", "nosuch")), S(("CONFIG", "GET", "save", "SAVE")),
        S(("CONFIG", "GET", "Appendonly", "nosuch")))
    add("config", "config errors", S(("CONFIG",)), S(("config", "GET")), S(("CONFIG", "FOO")),
        S(("config", "foo", "x")), S(("CONFIG", "a\r\nb")))

    a60, b200 = "a" * 60, "b" * 200
    add("unknown", "unknown commands", S(("FOO",)), S(("FOO", "a", "b")), S(("", "a")), S(("GETS",)),
        S(("gett", "a")), S(("g\x05t",)), S(("F\r\nOO", "x\ny")), S((b"f\x00oo", b"x\x00y", "z")),
        S(("n" * 200, b200, "c")), S(("X", a60, a60, a60, a60)), S(("X",) + ("",) * 44))

    add("inline", "inline commands", S(b"PING\r\n"), S(b"ping hello\r\n"), S(b"ECHO  two  blanks\r\n"),
        S(b"SET il:a b\r\n"), S(b"GET il:a\r\n"), S(b"DEL il:a il:b\r\n"), S(b"INCR il:n\r\n"),
        S(b"FOO x\r\n"), S(b"ECHO\r\n"), S(b"CONFIG GET save\r\n"), S(b"PING\r\nPING x\r\nGET il:n\r\n"))
    add("inline-blanks", "inline commands with leading and trailing blanks", S(b"  PING  \r\n"), S(b" ECHO x\r\n"),
        S(b"\tPING\t\r\n"))
    add("inline-quotes", "inline quoted arguments", S(b"SET iq:a 'b c'\r\n"), S(b"GET iq:a\r\n"),
        S(b"ECHO \"x\\ty\\x41\"\r\n"), S(b"ECHO \"\"\r\n"))
    add("inline-lf", "inline lines ended by LF alone", S(b"PING\n"), S(b"ECHO lf\n"))
    add("empty", "empty commands get no reply", S(b"\r\n"), S(b"*0\r\n"), S(b"\r\n\r\nPING\r\n"), S(b"*0\r\n*0\r\n"))

    pipe = []
    for i in range(100):
        pipe += [("SET", f"pp:{i}", str(i)), ("INCR", f"pp:{i}"), ("GET", f"pp:{i}"), ("PING",)]
    pipe += [("DEL",) + tuple(f"pp:{i}" for i in range(0, 100, 3)), ("EXISTS",) + tuple(f"pp:{i}" for i in range(100))]
    add("pipeline", "400 commands in one write", S(*pipe))
    add("pipeline", "multibulk and inline mixed in one write",
        S(("SET", "pm:k", "v"), b"GET pm:k\r\n", ("GET", "pm:k"), b"PING\r\n", ("ECHO", "e")))
    add("bytewise", "commands one byte at a time",
        S(("SET", "bw:k", "value"), ("GET", "bw:k"), ("INCR", "bw:n"), ("PING",), b"PING\r\n", bytewise=True))

    add("quit", "quit", S(("SET", "qu:k", "v")), S(("QUIT",), closes=True))
    add("quit", "quit with arguments", S(("quit", "x", "y"), closes=True))
    add("quit", "nothing after quit is answered", S(("PING",), ("QUIT",), ("PING",), ("GET", "qu:k"), closes=True))
    add("quit", "inline quit", S(b"QUIT\r\n", closes=True))

    add("protocol-errors", "bad bulk length", S(b"*1\r\n$x\r\n", closes=True))
    add("protocol-errors", "bad multibulk length", S(b"*x\r\n", closes=True))
    add("protocol-errors", "no $ before a bulk", S(b"*1\r\nfoo\r\n", closes=True))
    add("protocol-errors", "unbalanced quotes", S(b"SET pe:a \"b\r\n", closes=True))
    add("protocol-errors", "replies before the error are sent", S(("PING",), b"*1\r\n$-5\r\n", closes=True))
    # redis-server's texts, each case one of its checks (networking.c, processMultibulkBuffer and
    # processInlineBuffer): the count's line, a bulk's "$", a bulk's length, inline quoting.
    for name, data in [("empty count", b"*\r\n"), ("count then junk", b"*1x\r\n"), ("count with a sign", b"*+1\r\n"),
                       ("count with a blank", b"* 1\r\n"), ("count with a leading zero", b"*01\r\n$4\r\nPING\r\n"),
                       ("count of zeros", b"*00\r\n"), ("count minus zero", b"*-0\r\n"),
                       ("count below the smallest 64-bit number", b"*-9223372036854775809\r\n"),
                       ("count of too many digits", b"*-00000000000000000001\r\n"),
                       ("count above INT_MAX", b"*2147483648\r\n"), ("count above 2^64", b"*99999999999999999999999\r\n"),
                       ("count ended by LF alone", b"*1\nPING\r\n")]:
        add("protocol-errors", f"multibulk: {name}", S(data, closes=True))
    add("protocol-errors", "negative counts are no command", S(b"*-1\r\n"), S(b"*-1\r\n*1\r\n$4\r\nPING\r\n"),
        S(b"*-9223372036854775808\r\n"), S(b"*-2147483649\r\n"))
    add("protocol-errors", "the byte after a count's CR is not checked", S(b"*1\rX$4\r\nPING\r\n"),
        S(b"*2\r\n$4\rxECHO\r\n$1\r\nz\r\n"))
    add("protocol-errors", "the two bytes after a bulk are not checked", S(b"*1\r\n$4\r\nPINGxy"),
        S(b"*2\r\n$4\r\nECHO\n\n$1\r\nz$$"))
    for name, data in [("second bulk", b"*2\r\n$4\r\nECHO\r\nx\r\n"), ("a colon", b"*1\r\n:1\r\n"),
                       ("a CR", b"*1\r\n\r\n"), ("an LF", b"*1\r\n\nx\r\n"), ("a quote", b"*1\r\n'\r\n"),
                       ("a byte above 127", b"*1\r\n\xff1\r\n"), ("a star", b"*2\r\n*1\r\n")]:
        add("protocol-errors", f"no $ before a bulk: {name}", S(data, closes=True))
    for name, data in [("empty", b"*1\r\n$\r\n"), ("junk after it", b"*1\r\n$4x\r\nPING\r\n"),
                       ("a sign", b"*1\r\n$+4\r\nPING\r\n"), ("a leading zero", b"*1\r\n$04\r\nPING\r\n"),
                       ("zeros", b"*1\r\n$00\r\n\r\n"), ("minus zero", b"*1\r\n$-0\r\n"),
                       ("above 512MiB", b"*1\r\n$536870913\r\n"), ("above 2^64", b"*1\r\n$99999999999999999999999\r\n"),
                       ("in the second bulk", b"*2\r\n$4\r\nECHO\r\n$x\r\n"),
                       ("a leading zero in the second bulk", b"*2\r\n$4\r\nECHO\r\n$01\r\nx\r\n")]:
        add("protocol-errors", f"bulk length: {name}", S(data, closes=True))
    add("protocol-errors", "unbalanced single quote", S(b"ECHO 'a\r\n", closes=True))
    add("protocol-errors", "closing quote not followed by a blank", S(b"ECHO \"a\"b\r\n", closes=True))
    # redis-server's limits on a line it has not seen the end of (64 KiB: PROTO_INLINE_MAX_SIZE),
    # which it checks on what it has read, whatever that holds: sent whole, one byte above.
    big = 64 * 1024 + 1
    add("protocol-errors", "too big inline request", S(b"a" * big, closes=True))
    add("protocol-errors", "too big mbulk count string", S(b"*" + b"1" * (big - 1), closes=True))
    add("protocol-errors", "too big bulk count string", S(b"*1\r\n$" + b"1" * (big - 1), closes=True))
    # The client ends its side: whole commands are answered, one cut short is not (no error reply).
    add("end-of-stream", "whole commands, then the end", S(("SET", "es:k", "v"), ("GET", "es:k"), half_close=True))
    add("end-of-stream", "the end inside a multibulk", S(("PING",), b"*2\r\n$4\r\nECHO\r\n$3\r\nab", half_close=True))
    add("end-of-stream", "the end inside a count line", S(("PING",), b"*2", half_close=True))
    add("end-of-stream", "the end inside an inline command", S(("PING",), b"PING", half_close=True))
    return c


def run_case(host, port, steps):
    """[(reply bytes, closed)] per step."""
    out = []
    sock = socket.create_connection((host, port), timeout=STEP_TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        for step in steps:
            data = step.data if step.closes else step.data + MARKER
            if step.bytewise:
                for i in range(len(data)):
                    sock.sendall(data[i:i + 1])
            else:
                sock.sendall(data)
            if step.half_close:
                sock.shutdown(socket.SHUT_WR)
            buf, closed = b"", False
            deadline = time.monotonic() + STEP_TIMEOUT
            while step.closes or not buf.endswith(MARKER_REPLY):
                sock.settimeout(max(deadline - time.monotonic(), 0.001))
                try:
                    chunk = sock.recv(1 << 16)
                except socket.timeout:
                    buf += b"<timeout>"
                    break
                except ConnectionResetError:
                    buf += b"<reset>"
                    closed = True
                    break
                if not chunk:
                    closed = True
                    break
                buf += chunk
            if not step.closes and buf.endswith(MARKER_REPLY):
                buf = buf[:-len(MARKER_REPLY)]
            out.append((buf, closed))
            if closed:
                break
    finally:
        sock.close()
    return out


def run_all(host, port, selected):
    return {name: run_case(host, port, steps) for _, name, steps in selected}


def show(b, limit=300):
    r = repr(b)
    return r if len(r) <= limit else r[:limit] + f"... ({len(b)} bytes)"


def compare(selected, got, want, who):
    bad = 0
    for group, name, steps in selected:
        g, w = got[name], want[name]
        for i, step in enumerate(steps):
            gi = g[i] if i < len(g) else (b"<not run: connection closed>", True)
            wi = w[i] if i < len(w) else (b"<not run: connection closed>", True)
            if gi != wi:
                bad += 1
                print(f"DIFF [{group}] {name}, step {i + 1}: sent {show(step.data)}\n"
                      f"  {who}: {show(gi[0])}{' <closed>' if gi[1] else ''}\n"
                      f"  redis-server: {show(wi[0])}{' <closed>' if wi[1] else ''}")
    steps = sum(len(s) for _, _, s in selected)
    print(f"conformance: {steps - bad}/{steps} steps of {len(selected)} cases byte-identical to redis-server"
          + ("" if not bad else f"; {bad} differ"))
    return bad == 0


def parse_commands(data):
    """The commands (lists of bytes) in data, as a server would split them, or
    None for what only a server's framer can answer (quoted inline arguments,
    protocol errors). An empty inline line and `*0` are no command."""
    cmds, i = [], 0
    try:
        while i < len(data):
            if data[i:i + 1] != b"*":  # inline: words separated by blanks, up to LF
                j = data.index(b"\n", i)
                line, i = data[i:j].rstrip(b"\r"), j + 1
                if b"'" in line or b'"' in line:
                    return None
                if line.split():
                    cmds.append(line.split())
                continue
            j = data.index(b"\r\n", i)
            n, i = int(data[i + 1:j]), j + 2
            if n < 0:
                return None
            args = []
            for _ in range(n):
                if data[i:i + 1] != b"$":
                    return None
                j = data.index(b"\r\n", i)
                size, i = int(data[i + 1:j]), j + 2
                if size < 0 or data[i + size:i + size + 2] != b"\r\n":
                    return None
                args.append(data[i:i + size])
                i += size + 2
            if args:
                cmds.append(args)
    except ValueError:
        return None
    return cmds


def replay(binary, selected):
    """The command logic's replies, through resp_replay: {name: [(reply, closed)]} for
    the cases it can run, and the cases it cannot."""
    import struct
    import subprocess
    feed, runnable, skipped = [], [], []
    for case in selected:
        parsed = [parse_commands(step.data) for step in case[2]]
        if case[0] in ("protocol-errors", "end-of-stream") or any(p is None for p in parsed):  # the framer's
            skipped.append(case)
            continue
        runnable.append(case)
        feed.append(b"C")
        for cmds in parsed:
            for args in cmds:
                feed.append(b"X" + struct.pack("<I", len(args)))
                feed += [struct.pack("<I", len(a)) + a for a in args]
            feed.append(b"F")
    r = subprocess.run([binary], input=b"".join(feed), capture_output=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError(f"{binary}: exit {r.returncode}: {r.stderr.decode(errors='replace')}")
    got, i = {}, 0
    for _, name, steps in runnable:
        got[name] = []
        for _ in steps:
            (n,) = struct.unpack_from("<I", r.stdout, i)
            reply, closed = r.stdout[i + 4:i + 4 + n], r.stdout[i + 4 + n] == 1
            i += 5 + n
            if not (got[name] and got[name][-1][1]):  # a closed connection runs no more steps
                got[name].append((reply, closed))
    return got, runnable, skipped


def against_redis(host, port, selected, who, got=None):
    got = got or run_all(host, port, selected)
    proc, rport = resp_harness.start_redis()
    try:
        want = run_all("127.0.0.1", rport, selected)
    finally:
        resp_harness.stop(proc)
    return compare(selected, got, want, who)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--server", metavar="HOST:PORT", help="record this server's replies")
    mode.add_argument("--compare", metavar="HOST:PORT", help="compare this (fresh) server with redis-server")
    mode.add_argument("--compare-cmd", nargs=argparse.REMAINDER, metavar="CMD",
                      help="start CMD (--host 127.0.0.1 --port 0 appended), compare it with redis-server")
    mode.add_argument("--self-test", action="store_true", help="redis-server against redis-server")
    mode.add_argument("--replay", metavar="RESP_REPLAY", help="the command logic alone against redis-server")
    mode.add_argument("--list", action="store_true")
    ap.add_argument("--record", metavar="FILE", help="with --server: write the replies here (JSON)")
    ap.add_argument("--skip", default="", help="groups to leave out, comma-separated")
    ap.add_argument("--only", default="", help="only these groups, comma-separated")
    args = ap.parse_args()

    all_cases = cases()
    groups = {g for g, _, _ in all_cases}
    skip, only = set(filter(None, args.skip.split(","))), set(filter(None, args.only.split(",")))
    if (skip | only) - groups:
        sys.exit(f"unknown groups: {', '.join(sorted((skip | only) - groups))}; groups: {', '.join(sorted(groups))}")
    selected = [c for c in all_cases if c[0] not in skip and (not only or c[0] in only)]

    if args.list:
        for g, name, steps in selected:
            print(f"{g:16} {name} ({len(steps)} steps)")
        return 0
    if args.server:
        host, port = resp_harness.parse_hostport(args.server)
        got = run_all(host, port, selected)
        record = {name: [{"reply": r.decode("latin-1"), "closed": closed} for r, closed in got[name]]
                  for _, name, _ in selected}
        text = json.dumps(record, indent=1)
        if args.record:
            with open(args.record, "w") as f:
                f.write(text + "\n")
        else:
            print(text)
        return 0
    if args.compare:
        host, port = resp_harness.parse_hostport(args.compare)
        return 0 if against_redis(host, port, selected, args.compare) else 1
    if args.replay:
        got, runnable, skipped = replay(args.replay, selected)
        print(f"conformance: replay runs {len(runnable)} cases; not the {len(skipped)} that only a server's "
              f"framer can answer: {', '.join(sorted({g for g, _, _ in skipped}))}")
        return 0 if against_redis(None, None, runnable, "commands.c", got) else 1
    if args.compare_cmd:
        proc, host, port = resp_harness.start_server(args.compare_cmd + ["--host", "127.0.0.1", "--port", "0"])
        try:
            ok = against_redis(host, port, selected, os.path.basename(args.compare_cmd[0]))
        finally:
            rc = resp_harness.stop(proc)
        if rc != 0:
            print(f"conformance: {args.compare_cmd[0]} exited with {rc} on SIGTERM")
            ok = False
        return 0 if ok else 1
    # --self-test: two fresh redis-servers, so the list, the marker and the
    # EOF handling are proven on the reference itself.
    proc, port = resp_harness.start_redis()
    try:
        return 0 if against_redis("127.0.0.1", port, selected, "redis-server (first)") else 1
    finally:
        resp_harness.stop(proc)


if __name__ == "__main__":
    sys.exit(main())
