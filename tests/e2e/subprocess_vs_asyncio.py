"""Conformance: the same children under asyncio's SubprocessProtocol and under
protogen's generated subprocess protocol give the same callbacks.

    subprocess_vs_asyncio.py PGTIMEOUT

protogen's side is pgtimeout (examples/timeout) with PROTOGEN_TRACE set: its
child is protocol instance 1, the generated `monitored` protocol. asyncio's
side is a SubprocessProtocol that writes the same trace format. The order of
events between different pipes, and between a pipe and the exit, is the
kernel's; so the traces are compared as asyncio guarantees them:
connection_made first, connection_lost last, per pipe its bytes (chunks merged)
then one pipe_connection_lost, and the return code.
"""

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import unittest

PGTIMEOUT = None
DEADLINE_S = 30

SCENARIOS = {
    # name: (argv, stdin bytes or None for /dev/null)
    "output_on_both_then_exit_3": (["sh", "-c", "printf out; printf errors >&2; exit 3"], None),
    "cat_round_trip": (["cat"], b"hello through cat\n" * 1000),
    "killed_by_sigterm": (["sh", "-c", "echo before; kill -TERM $$"], None),
    "stdout_closed_early": (["sh", "-c", "exec 1>&-; echo still here >&2"], None),
    "stdin_not_read": (["sh", "-c", "exec 0<&-; echo done"], b"x" * 10),
    "grandchild_holds_stdout": (["sh", "-c", "(read line; echo \"late $line\") <&0 & exec 0<&-; exit 4"], None),
    "big_output": (["sh", "-c", "head -c 3000000 /dev/zero"], None),
}

# Whether the bytes written to a child that closes its stdin at once meet an
# open pipe (then drained: "ok") or a closed one (EPIPE) is the kernel's timing,
# under asyncio as under protogen: how that pipe ended is not compared there.
STDIN_LOSS_RACES = {"stdin_not_read"}


class Tracer(asyncio.SubprocessProtocol):
    def __init__(self, done, stdin):
        self.done, self.stdin, self.lines = done, stdin, []

    def connection_made(self, transport):
        self.transport = transport
        self.lines.append("connection_made")
        pipe = transport.get_pipe_transport(0)
        if pipe is not None:
            pipe.write(self.stdin)
            pipe.close()

    def pipe_data_received(self, fd, data):
        self.lines.append(f"pipe_data_received {fd} {len(data)}")

    def pipe_connection_lost(self, fd, exc):
        self.lines.append(f"pipe_connection_lost {fd} {'ok' if exc is None else type(exc).__name__}")

    def process_exited(self):
        self.lines.append(f"process_exited {self.transport.get_returncode()}")

    def connection_lost(self, exc):
        self.lines.append("connection_lost ok")
        self.done.set_result(None)


async def asyncio_trace(argv, stdin):
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    transport, proto = await loop.subprocess_exec(
        lambda: Tracer(done, stdin), *argv,
        stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    await asyncio.wait_for(done, DEADLINE_S)
    transport.close()
    return proto.lines


def protogen_trace(argv, stdin):
    with tempfile.NamedTemporaryFile(prefix="protogen-trace-") as trace:
        env = dict(os.environ, PROTOGEN_TRACE=trace.name)
        r = subprocess.run([PGTIMEOUT, "--", *argv], input=stdin, capture_output=True, env=env,
                           stdin=None if stdin is not None else subprocess.DEVNULL, timeout=DEADLINE_S)
        with open(trace.name) as f:
            lines = [l.split(" ", 1)[1] for l in f.read().splitlines() if l.startswith("1 ")]
    return lines, r


def normalize(lines):
    """What asyncio guarantees: first, last, per pipe bytes then loss, the return code."""
    assert lines[0] == "connection_made", lines
    assert lines[-1] == "connection_lost ok", lines
    pipes, returncode = {}, None
    for line in lines[1:-1]:
        words = line.split()
        if words[0] in ("pause_writing", "resume_writing"):
            continue
        if words[0] == "process_exited":
            assert returncode is None, lines
            returncode = int(words[1])
            continue
        fd = int(words[1])
        pipe = pipes.setdefault(fd, {"bytes": 0, "lost": None})
        assert pipe["lost"] is None, f"fd {fd} after its pipe_connection_lost: {lines}"
        if words[0] == "pipe_data_received":
            pipe["bytes"] += int(words[2])
        else:
            assert words[0] == "pipe_connection_lost", line
            pipe["lost"] = "ok" if words[2] == "ok" else "error"
    assert returncode is not None, lines
    return {"pipes": pipes, "returncode": returncode}


class Conformance(unittest.TestCase):
    def test_every_scenario(self):
        for name, (argv, stdin) in SCENARIOS.items():
            with self.subTest(scenario=name):
                theirs = normalize(asyncio.run(asyncio_trace(argv, stdin)))
                lines, r = protogen_trace(argv, stdin)
                ours = normalize(lines)
                if name in STDIN_LOSS_RACES:
                    for trace in (ours, theirs):
                        trace["pipes"][0].pop("lost")
                self.assertEqual(ours, theirs, f"{name}: protogen {lines}")
                # And pgtimeout passed the bytes through.
                self.assertEqual(len(r.stdout), theirs["pipes"].get(1, {"bytes": 0})["bytes"], name)
                self.assertEqual(len(r.stderr), theirs["pipes"].get(2, {"bytes": 0})["bytes"], name)


if __name__ == "__main__":
    PGTIMEOUT = os.path.abspath(sys.argv.pop(1))
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    unittest.main()
