"""How long protogen takes, as a build pays it: whole command runs, wall time.

    generator_bench.py [--runs N]

Reports the median of N runs of each case, and each as a ratio to the reference
measured in the same run: starting the same Python and importing jinja2, which
is the floor any jinja2-based generator pays.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

TOP = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
PROTOGEN = os.path.join(TOP, "bin", "protogen")


def python_with_jinja2():
    for candidate in (sys.executable, "/usr/bin/python3"):
        if subprocess.run([candidate, "-c", "import jinja2"], capture_output=True).returncode == 0:
            return candidate
    sys.exit("generator_bench: no Python 3 with jinja2")


def large_spec(path, declarations):
    """A spec with many declarations: every one a (reported) duplicate after the first few."""
    with open(path, "w") as f:
        f.write("# a large spec\nprotocol big {\n    transport tcp;\n    role server;\n    kind stream;\n")
        f.write("    callbacks { connection_made; data_received; eof_received; connection_lost;"
                " pause_writing; resume_writing; }\n")
        for i in range(declarations):
            f.write(f"    watermarks {{ high {64 + i}KiB; low {16 + i % 16}KiB; }}   # declaration {i}\n")
        f.write("}\n")


def timed(cmd, runs):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True)
        times.append(time.perf_counter() - start)
        if r.returncode not in (0, 1):
            sys.exit(f"generator_bench: {cmd} failed: {r.stderr.decode()}")
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    python = python_with_jinja2()
    with tempfile.TemporaryDirectory() as tmp:
        big = os.path.join(tmp, "big.spec")
        large_spec(big, 400)
        run = [python, PROTOGEN]
        cases = [
            ("reference: python + import jinja2", [python, "-c", "import jinja2"]),
            ("echo.spec: generate all outputs", run + [os.path.join(TOP, "examples", "echo", "echo.spec"),
                                                      "-o", tmp, "--handlers-dir", tmp]),
            ("echo.spec: --check", run + [os.path.join(TOP, "examples", "echo", "echo.spec"), "--check"]),
            ("400-declaration spec: check, 399 errors", run + [big, "--check"]),
        ]
        results = [(name, timed(cmd, args.runs)) for name, cmd in cases]
    ref = results[0][1]
    print(f"{'generator case':45} {'median ms':>10} {'x reference':>12}")
    for name, t in results:
        print(f"{name:45} {t * 1000:10.1f} {t / ref:12.2f}")


if __name__ == "__main__":
    main()
