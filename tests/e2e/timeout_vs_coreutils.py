"""End to end: pgtimeout (examples/timeout) against coreutils' timeout.

    timeout_vs_coreutils.py PGTIMEOUT

Each case runs the same command under both tools and compares their exit
statuses, as a shell reports them: a tool killed by signal N counts as 128+N
(coreutils' timeout re-raises the signal that killed its command on itself;
pgtimeout exits with 128+N). Then pgtimeout's own streaming: stdin through the
command to stdout, stderr, and a reader that goes away. Nothing sleeps: the
tests wait for the processes, for a "ready" line before they send a signal.
"""

import fcntl
import os
import signal
import socket
import subprocess
import sys
import tempfile
import unittest

PGTIMEOUT = None
COREUTILS = "/usr/bin/timeout"
DEADLINE_S = 30


def shell_status(returncode):
    return 128 - returncode if returncode < 0 else returncode


def default_signals():
    # Whatever ran this test may have had SIGINT ignored (a background job):
    # the tools and their commands get the default actions.
    for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGTERM, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_DFL)


def coreutils_argv(cmd, timeout=None, grace=None):
    argv = [COREUTILS]
    if grace is not None:
        argv += ["-k", str(grace)]
    return argv + [str(timeout if timeout is not None else 0)] + cmd


def pgtimeout_argv(cmd, timeout=None, grace=None):
    argv = [PGTIMEOUT]
    if timeout is not None:
        argv += ["--timeout", str(timeout)]
    if grace is not None:
        argv += ["--grace", str(grace)]
    return argv + ["--"] + cmd


def run(argv, **kwargs):
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=DEADLINE_S,
                       preexec_fn=default_signals, **kwargs)
    return shell_status(r.returncode), r


class ExitStatuses(unittest.TestCase):
    """The same command under both tools: the same status."""

    def compare(self, cmd, expected, timeout=None, grace=None):
        theirs, _ = run(coreutils_argv(cmd, timeout, grace))
        ours, r = run(pgtimeout_argv(cmd, timeout, grace))
        self.assertEqual(theirs, expected, f"coreutils timeout on {cmd}")
        self.assertEqual(ours, expected, f"pgtimeout on {cmd}: {r.stderr.decode(errors='replace')}")

    def test_command_exits_by_itself(self):
        self.compare(["true"], 0)
        self.compare(["false"], 1)
        self.compare(["sh", "-c", "exit 42"], 42)
        self.compare(["sh", "-c", "exit 7"], 7, timeout=10)

    def test_command_killed_by_a_signal(self):
        self.compare(["sh", "-c", "kill -TERM $$"], 128 + signal.SIGTERM)
        self.compare(["sh", "-c", "kill -KILL $$"], 128 + signal.SIGKILL)
        self.compare(["sh", "-c", "kill -HUP $$"], 128 + signal.SIGHUP)

    def test_time_runs_out(self):
        self.compare(["sleep", "10"], 124, timeout=0.3)
        self.compare(["sleep", "10"], 124, timeout=0.3, grace=10)   # SIGTERM was enough

    def test_command_that_exits_on_sigterm_after_the_time_ran_out(self):
        # It handles SIGTERM and exits 3: still "timed out", as coreutils says.
        self.compare(["sh", "-c", "trap 'exit 3' TERM; sleep 10 & wait"], 124, timeout=0.3)

    def test_command_ignoring_sigterm_is_killed_after_the_grace_period(self):
        self.compare(["sh", "-c", "trap '' TERM; sleep 10"], 128 + signal.SIGKILL, timeout=0.3, grace=0.3)

    def test_command_not_found_or_not_runnable(self):
        self.compare(["protogen-no-such-command"], 127)
        self.compare(["/nonexistent/command"], 127)
        self.compare(["/"], 126)
        with tempfile.NamedTemporaryFile(prefix="pgtimeout-", suffix=".sh") as f:
            f.write(b"#!/bin/sh\nexit 0\n")
            f.flush()
            os.chmod(f.name, 0o644)
            self.compare([f.name], 126)

    def test_usage_errors(self):
        theirs, _ = run([COREUTILS, "--bogus", "1", "true"])
        ours, r = run([PGTIMEOUT, "--bogus", "--", "true"])
        self.assertEqual((theirs, ours), (125, 125))
        self.assertIn(b"usage:", r.stderr)
        for args in (["--timeout", "soon", "--", "true"], ["--timeout", "-1", "--", "true"], ["--", ], []):
            self.assertEqual(run([PGTIMEOUT] + args)[0], 125, args)

    def test_durations_take_units(self):
        self.assertEqual(run(pgtimeout_argv(["sleep", "10"], timeout="0.005m"))[0], 124)
        self.assertEqual(run(pgtimeout_argv(["true"], timeout="1d"))[0], 0)


class Signals(unittest.TestCase):
    """A signal sent to the tool goes on to the command."""

    def signalled(self, argv, sig):
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             preexec_fn=default_signals)
        try:
            self.assertEqual(p.stdout.readline(), b"ready\n")   # the command runs: now
            p.send_signal(sig)
            p.wait(timeout=DEADLINE_S)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stdout.close()
            p.stderr.close()
        return shell_status(p.returncode)

    def compare(self, cmd, sig, expected, grace=None):
        theirs = self.signalled(coreutils_argv(cmd, 10, grace), sig)
        ours = self.signalled(pgtimeout_argv(cmd, 10, grace), sig)
        self.assertEqual((theirs, ours), (expected, expected), f"{signal.Signals(sig).name} on {cmd}")

    def test_forwarded_signals(self):
        cmd = ["sh", "-c", "echo ready; exec sleep 10"]
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            self.compare(cmd, sig, 128 + sig)

    def test_forwarded_signal_then_kill_after_the_grace_period(self):
        cmd = ["sh", "-c", "trap '' TERM; echo ready; exec sleep 10"]
        ours = self.signalled(pgtimeout_argv(cmd, 10, 0.3), signal.SIGTERM)
        theirs = self.signalled(coreutils_argv(cmd, 10, 0.3), signal.SIGTERM)
        self.assertEqual(ours, 128 + signal.SIGKILL)
        # coreutils 9.1 itself is not deterministic here: measured on a loaded
        # 2-core machine, 2 to 6 runs in 60 exit 143 instead of 137 (pgtimeout:
        # 137 in 60 of 60). Its usual answer is the one pgtimeout must give.
        self.assertIn(theirs, (128 + signal.SIGKILL, 128 + signal.SIGTERM))


class Streams(unittest.TestCase):
    """What pgtimeout adds: it relays stdin, stdout and stderr itself."""

    def test_stdin_through_the_command_to_stdout(self):
        data = os.urandom(3 * 1024 * 1024 + 7)
        r = subprocess.run(pgtimeout_argv(["cat"], timeout=20), input=data, capture_output=True,
                           timeout=DEADLINE_S, preexec_fn=default_signals)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, data)

    def test_stdout_and_stderr_apart(self):
        status, r = run(pgtimeout_argv(["sh", "-c", "echo out; echo err >&2; echo out2; exit 5"]))
        self.assertEqual((status, r.stdout, r.stderr), (5, b"out\nout2\n", b"err\n"))

    def test_output_of_a_command_that_timed_out(self):
        status, r = run(pgtimeout_argv(["sh", "-c", "echo started; exec sleep 10"], timeout=0.3))
        self.assertEqual((status, r.stdout), (124, b"started\n"))

    def test_files_are_handed_over_not_relayed(self):
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as inp:
            inp.write(b"from a file\n")
            inp.seek(0)
            r = subprocess.run(pgtimeout_argv(["cat"]), stdin=inp, stdout=out, stderr=subprocess.PIPE,
                               timeout=DEADLINE_S, preexec_fn=default_signals)
            self.assertEqual(r.returncode, 0, r.stderr)
            out.seek(0)
            self.assertEqual(out.read(), b"from a file\n")

    def test_reader_going_away(self):
        # `yes | head -1`: with coreutils, yes dies of SIGPIPE; through pgtimeout too.
        statuses = []
        for argv in (coreutils_argv(["yes"]), pgtimeout_argv(["yes"])):
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, preexec_fn=default_signals)
            try:
                self.assertEqual(p.stdout.readline(), b"y\n")
                p.stdout.close()
                statuses.append(shell_status(p.wait(timeout=DEADLINE_S)))
            finally:
                if p.poll() is None:   # never leave it behind
                    p.kill()
                    p.wait()
        self.assertEqual(statuses, [128 + signal.SIGPIPE] * 2)

    def test_shared_stdin_is_left_blocking(self):
        # The relay makes our stdin non-blocking; the flags are put back at exit,
        # for whoever shares them (here: this test's end of a socketpair).
        a, b = socket.socketpair()
        with a, b:
            a.sendall(b"hello\n")
            a.shutdown(socket.SHUT_WR)
            r = subprocess.run(pgtimeout_argv(["cat"]), stdin=b.fileno(), capture_output=True,
                               timeout=DEADLINE_S, preexec_fn=default_signals)
            self.assertEqual((r.returncode, r.stdout), (0, b"hello\n"))
            self.assertFalse(fcntl.fcntl(b.fileno(), fcntl.F_GETFL) & os.O_NONBLOCK)


if __name__ == "__main__":
    PGTIMEOUT = os.path.abspath(sys.argv.pop(1))
    unittest.main()
