"""Feeds protogen thousands of mutated specs. Each must either generate C that
compiles, or fail with exit status 1 and positioned errors: never a traceback,
never a hang, never a file left behind.

Runs the generator in-process (it needs jinja2) for speed; the mutations are
seeded, so a failure reproduces. PROTOGEN_MUTATIONS sets how many (default 3000).
"""

import contextlib
import io
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(TOP, "generator"))

from protogen import cli, emit  # noqa: E402

CC = os.environ.get("CC", "cc")
COUNT = int(os.environ.get("PROTOGEN_MUTATIONS", "3000"))
COMPILE_EVERY = 10          # compiling every success would take minutes
SEEDS = [os.path.join(TOP, "examples", "echo", n) for n in ("echo.spec", "echo_client.spec")]
SEEDS += [os.path.join(TOP, "examples", "udp-echo", n) for n in ("udp_echo.spec", "udp_echo_client.spec")]
VOCABULARY = ["protocol", "transport", "role", "kind", "callbacks", "watermarks", "tcp", "unix", "udp",
              "server", "client", "stream", "buffered", "high", "low", "data_received", "eof_received",
              "connection_made", "connection_lost", "pause_writing", "resume_writing", "{", "}", ";",
              "64KiB", "0B", "1MiB", "int", "pg_x", "_x", "pipe", "read", "write", "get_buffer",
              "buffer_updated"]
VOCABULARY += ["datagram", "datagram_received", "error_received"]
SEEDS += [os.path.join(TOP, "examples", "timeout", "monitored.spec")]
VOCABULARY += ["subprocess", "pipe_data_received", "pipe_connection_lost", "process_exited"]
SEEDS += [os.path.join(TOP, "examples", "lines", "lines.spec"), os.path.join(TOP, "tests", "generated", "lenp.spec")]
VOCABULARY += ["framing", "line", "length", "rules", "delimiter", "max", "width", "endian", "offset", "header",
               "includes_header", "varint", "big", "little", "yes", "no", "message_received", "protocol_error",
               '"\\r\\n"', '"\\n"', '""', '"\\x0"', '"\\q"', '"', '"\\', "8KiB", "1GiB", "2GiB", "3", "255", "256"]
SEEDS += [os.path.join(TOP, "tests", "generated", "kv.spec")]
VOCABULARY += ["message", "repeat", "uint", "bytes", "argc", "len", "(", ")", "|", "*", "+", "?", ":", ",",
               "[a-z]", "[^ \\r\\n]", "[z-a]", "[", "]", "'get'", "'", "{2,3}", "{3,1}", "inline", "raw"]
TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"?|[A-Za-z_][A-Za-z0-9_]*|\d+[A-Za-z]*|[{};]|#[^\n]*|\s+|.', re.S)


def mutate(text: str, rng: random.Random) -> bytes:
    tokens = TOKEN.findall(text)
    real = [i for i, t in enumerate(tokens) if not t.isspace() and not t.startswith("#")]
    op = rng.randrange(11)
    if not real:
        return (text + rng.choice(VOCABULARY)).encode()
    i = rng.choice(real)
    if op == 0:                                   # truncated
        return text[: rng.randrange(len(text) + 1)].encode()
    if op == 1:                                   # a token deleted
        tokens[i] = ""
    elif op == 2:                                 # two tokens swapped
        j = rng.choice(real)
        tokens[i], tokens[j] = tokens[j], tokens[i]
    elif op == 3:                                 # a token duplicated
        tokens[i] = tokens[i] + " " + tokens[i]
    elif op == 4:                                 # a typo
        t = tokens[i]
        k = rng.randrange(len(t))
        tokens[i] = rng.choice([t[:k] + t[k + 1:], t[:k] + rng.choice("aeiouxz_9") + t[k:],
                                t[:k] + t[k + 1: k + 2] + t[k: k + 1] + t[k + 2:]])
    elif op == 5:                                 # another word of the language
        tokens[i] = rng.choice(VOCABULARY)
    elif op == 6:                                 # a huge number
        tokens[i] = str(rng.choice([2 ** 64, 10 ** rng.randrange(1, 60)])) + rng.choice(["", "B", "KiB", "MiB"])
    elif op == 7:                                 # a very long name
        tokens[i] = "n" * rng.choice([65, 1000, 100000])
    elif op == 8:                                 # random bytes, often not UTF-8
        k = rng.randrange(len(text) + 1)
        junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 8)))
        return text[:k].encode() + junk + text[k:].encode()
    elif op == 9:                                 # empty, or only blanks and comments
        return rng.choice([b"", b"\n\n", b"# nothing\n", b"   "])
    else:                                         # several mutations at once
        data = text
        for _ in range(3):
            data = mutate(data, rng).decode("utf-8", "replace")
        return data.encode()
    return "".join(tokens).encode()


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout()


class Mutations(unittest.TestCase):
    def test_mutated_specs_generate_valid_c_or_fail_cleanly(self):
        rng = random.Random(20261126)
        seeds = []
        for path in SEEDS:
            with open(path) as f:
                seeds.append(f.read())
        work = tempfile.mkdtemp(prefix="protogen-mut-")
        self.addCleanup(shutil.rmtree, work)
        spec = os.path.join(work, "m.spec")
        out = os.path.join(work, "out")
        signal.signal(signal.SIGALRM, _alarm)
        outcomes = {0: 0, 1: 0}
        compiled = 0
        diag = re.compile(r"^" + re.escape(spec) + r":\d+:\d+: (error|warning): \S")
        for n in range(COUNT):
            data = mutate(rng.choice(seeds), rng)
            with open(spec, "wb") as f:
                f.write(data)
            os.mkdir(out)
            err = io.StringIO()
            signal.alarm(10)
            try:
                with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                    rc = cli.main([spec, "-o", out, "--handlers-dir", out])
            except _Timeout:
                self.fail(f"mutation {n} hangs: {data!r}")
            finally:
                signal.alarm(0)
            message = f"mutation {n}: {data!r}\n{err.getvalue()}"
            self.assertIn(rc, (0, 1), message)
            self.assertNotIn("Traceback", err.getvalue(), message)
            self.assertNotIn("internal error", err.getvalue(), message)
            outcomes[rc] += 1
            files = sorted(os.listdir(out))
            if rc == 1:
                lines = err.getvalue().splitlines()
                self.assertTrue(any(" error: " in l and diag.match(l) for l in lines), message)
                for line in lines:
                    if line.startswith(spec):
                        self.assertRegex(line, diag, message)
                self.assertEqual(files, [], message)
            else:
                self.assertEqual(len(files), len(emit.DEFAULT_OUTPUTS), message)
                if outcomes[0] % COMPILE_EVERY == 1:
                    for source in files:
                        if source.endswith(".c"):
                            r = subprocess.run([CC, "-std=c11", "-Wall", "-Wextra", "-Wpedantic", "-Werror",
                                                "-fsyntax-only", "-I", os.path.join(TOP, "runtime", "include"),
                                                "-I", out, os.path.join(out, source)],
                                               capture_output=True, text=True, timeout=60)
                            self.assertEqual(r.returncode, 0, message + r.stderr)
                            compiled += 1
            shutil.rmtree(out)
        print(f"\n{COUNT} mutations: {outcomes[0]} generated ({compiled} files compiled), "
              f"{outcomes[1]} rejected with positioned errors", file=sys.stderr)
        self.assertGreater(outcomes[0], 0)
        self.assertGreater(outcomes[1], 0)


if __name__ == "__main__":
    unittest.main()
