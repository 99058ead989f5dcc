"""What the UDP end-to-end tests share: a server process started on a free
port that says where it listens, and its trace, read once it has stopped."""

import os
import select
import signal
import subprocess
import tempfile
import time


class Deadline:
    def __init__(self, seconds):
        self.end = time.monotonic() + seconds

    def left(self):
        left = self.end - time.monotonic()
        if left <= 0:
            raise AssertionError("the test ran out of time")
        return left


def read_line(stream, deadline, what):
    """One line from a pipe, waiting on the pipe (never sleeping) until the deadline."""
    ready, _, _ = select.select([stream], [], [], deadline.left())
    if not ready:
        raise AssertionError(f"no line from {what} in time")
    return stream.readline()


class Server:
    """argv + ["--host", host, "--port", "0"], traced to a file of its own."""

    def __init__(self, argv, host, deadline):
        self.deadline = deadline
        fd, self.trace_path = tempfile.mkstemp(prefix="protogen-udp-trace-")
        os.close(fd)
        env = dict(os.environ, PROTOGEN_TRACE=self.trace_path)
        self.proc = subprocess.Popen(argv + ["--host", host, "--port", "0"], stdout=subprocess.PIPE, text=True,
                                     env=env)
        line = read_line(self.proc.stdout, deadline, argv[0]).strip()
        assert line.startswith("listening on "), f"server said {line!r}"
        self.address = line[len("listening on "):]
        self.port = int(self.address.rsplit(":", 1)[1])

    def stop(self):
        """SIGTERM; returns the trace's lines."""
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=self.deadline.left())
        assert rc == 0, f"server exited with {rc}"
        with open(self.trace_path) as f:
            lines = f.read().splitlines()
        os.unlink(self.trace_path)
        return lines

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if os.path.exists(self.trace_path):
            os.unlink(self.trace_path)
