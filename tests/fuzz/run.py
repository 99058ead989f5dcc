#!/usr/bin/env python3
"""Runs every fuzzer of a PROTOGEN_FUZZ build for a bounded time (make fuzz).

Seeds come from the split cases (tests/split/cases/core/*.split): each case's
input becomes a few scripts for the fuzzer of its protocol (fed whole; cut
small at a one-byte capacity and compared with the whole feed; with the
peer's reads and time interleaved). Protocols without a split case get
seeds written here. The corpus each fuzzer grows stays in
BUILD/fuzz/corpus/<name>; a finding is written to BUILD/fuzz/artifacts and
fails the run. README.md describes the scripts' layout.
"""
import argparse
import os
import pathlib
import re
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
CASES = ROOT / "tests" / "split" / "cases" / "core"

# fuzz_stream.c's script: config byte, op count, ops, data.
END_EOF = 1
DIFFERENTIAL = 0x40


def capacity(i):
    return i << 2


def feed_small(n):  # 1..32 bytes
    return 0x00 | (n - 1)


def feed_rest():
    return 0x40


def read(v=0):
    return 0x60 | v


def eager(on):
    return 0x80 | int(on)


def advance(v):  # (v+1)^2 * 8 ms
    return 0xC0 | v


def script(config, ops, data):
    assert len(ops) <= 15
    return bytes([config, len(ops)]) + bytes(ops) + data


def unescape(line):
    out = bytearray()
    i = 0
    while i < len(line):
        c = line[i]
        if c != "\\":
            out += c.encode("latin-1")
            i += 1
            continue
        e = line[i + 1]
        if e == "x":
            out.append(int(line[i + 2:i + 4], 16))
            i += 4
            continue
        out += {"n": b"\n", "r": b"\r", "t": b"\t", "0": b"\0", "\\": b"\\"}[e]
        i += 2
    return bytes(out)


def split_case(path):
    """(protocol, eof, input) of a split case file."""
    proto, eof, data, section = None, False, bytearray(), None
    for line in path.read_text(encoding="latin-1").split("\n"):
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line
            continue
        if section is None:
            word, _, rest = line.partition(" ")
            if word == "protocol":
                proto = rest.strip()
            elif word == "eof":
                eof = True
        elif section == "[input]":
            m = re.match(r"@repeat (\d+) (.*)", line)
            r = re.match(r"@range (\d+) (\d+)", line)
            if m:
                data += unescape(m.group(2)) * int(m.group(1))
            elif r:
                data += bytes(range(int(r.group(1)), int(r.group(2)) + 1))
            else:
                data += unescape(line)
    return proto, eof, bytes(data)


def seeds_of(data, eof):
    end = END_EOF if eof else 0
    return [
        script(end, [], data),
        script(end | DIFFERENTIAL | capacity(7), [feed_small(7)], data),
        script(end | capacity(5), [feed_small(5), read(1), advance(3), feed_small(20), eager(True)], data),
    ]


def lenp_frame(payload):
    return len(payload).to_bytes(4, "big") + payload


# Protocols with no split case of their own.
EXTRA = {
    "lenp": [(lenp_frame(b"hello") + lenp_frame(b"") + lenp_frame(b"x" * 300), True),
             (b"\x00\x20\x00\x00", True)],  # above the framing's max
    "mach": [(b"go\nstay\nlater\ngo\nbody\nabc\nend\nlater\nbad\nquit\n", True),
             (b"start\nstay\nbad\nbody\n", False),
             (b"go\nbody\n" + b"x" * 40 + b"\n", True)],
}


def write_seeds(names, seeds_root):
    seeds = {name: [] for name in names}
    for path in sorted(CASES.glob("*.split")):
        proto, eof, data = split_case(path)
        if proto in seeds:
            seeds[proto] += seeds_of(data, eof)
    for name, inputs in EXTRA.items():
        if name in seeds:
            for data, eof in inputs:
                seeds[name] += seeds_of(data, eof)
    for name, scripts in seeds.items():
        d = seeds_root / name
        d.mkdir(parents=True, exist_ok=True)
        for old in d.iterdir():
            old.unlink()
        for i, s in enumerate(scripts):
            (d / f"seed-{i:03d}").write_bytes(s)
    return seeds


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build-fuzz")
    ap.add_argument("--seconds", type=int, default=15, help="per fuzzer")
    ap.add_argument("names", nargs="*", help="fuzzers to run (default: every fuzz_* built)")
    args = ap.parse_args()
    build = pathlib.Path(args.build).resolve()
    bindir = build / "tests" / "fuzz"
    names = args.names or sorted(p.name[len("fuzz_"):] for p in bindir.glob("fuzz_*") if p.is_file())
    if not names:
        sys.exit(f"no fuzz_* in {bindir}: build with -DPROTOGEN_FUZZ=ON, target fuzzers")
    work = build / "fuzz"
    seeds = write_seeds(names, work / "seeds")
    (work / "artifacts").mkdir(parents=True, exist_ok=True)
    # The smtp fuzzer's Maildirs (split_protocols.c honours TMPDIR): on a tmpfs
    # its fsyncs are free, on a disk they are most of each run.
    env = dict(os.environ)
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        env["TMPDIR"] = "/dev/shm"
    failed = []
    start = time.monotonic()
    for name in names:
        corpus = work / "corpus" / name
        corpus.mkdir(parents=True, exist_ok=True)
        log = work / f"{name}.log"
        cmd = [str(bindir / f"fuzz_{name}"), f"-max_total_time={args.seconds}", "-max_len=8192", "-timeout=10",
               "-rss_limit_mb=2048", "-print_final_stats=1",
               f"-artifact_prefix={work / 'artifacts'}/{name}-", str(corpus), str(work / "seeds" / name)]
        t0 = time.monotonic()
        with open(log, "w") as out:
            rc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                timeout=args.seconds * 4 + 60).returncode
        text = log.read_text(errors="replace")
        runs = re.search(r"stat::number_of_executed_units:\s*(\d+)", text)
        cov = re.findall(r"cov: (\d+) ft: (\d+) corp: (\d+)", text)
        summary = (f"{int(runs.group(1)) if runs else 0} runs, "
                   + (f"cov {cov[-1][0]} ft {cov[-1][1]} corpus {cov[-1][2]}" if cov else "no coverage line"))
        print(f"fuzz_{name}: {'ok' if rc == 0 else f'FAILED (exit {rc})'} in {time.monotonic() - t0:.0f} s, "
              f"{len(seeds[name])} seeds, {summary}", flush=True)
        if rc != 0:
            failed.append(name)
            # The finding, without libFuzzer's progress lines.
            quiet = [line for line in text.splitlines()
                     if not re.match(r"#\d+\s+(NEW|REDUCE|pulse|INITED)", line) and "NEW_FUNC" not in line]
            print("\n".join(quiet[-80:]))
            print(f"--- the whole log: {log}; reproduce: {cmd[0]} {work / 'artifacts'}/{name}-<crash file>")
    print(f"fuzz: {len(names) - len(failed)}/{len(names)} ok in {time.monotonic() - start:.0f} s")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
