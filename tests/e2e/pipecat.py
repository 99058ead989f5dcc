"""End to end: pipecat copies stdin to stdout through generated read and
write pipe protocols.

    pipecat.py PIPECAT

1. 8 MiB through pipes both ways arrive intact, and the trace of the write
   pipe shows flow control (pause_writing, then resume_writing). stdout is
   not read until so much has gone into stdin that pipecat's write buffer
   must have passed its high watermark: the pause is caused, not raced for.
   Small inputs too, where stdout's transport ends before stdin's.
2. When stdout's reader goes away early, pipecat reports EPIPE and exits 1:
   it is not killed by SIGPIPE, whose disposition it leaves at the default.
3. A regular file as stdin is refused, as asyncio refuses it.
"""

import fcntl
import os
import signal
import subprocess
import sys
import tempfile
import threading

TIMEOUT_S = 60


HIGH_WATERMARK = 256 << 10  # cat_out.spec
CHUNK = 4096  # one pipe page per write, so a pipe holds exactly its capacity


def feed(pipe, data):
    try:
        pipe.write(data)
        pipe.close()
    except BrokenPipeError:
        pass


def pipe_capacity(pipe):
    return fcntl.fcntl(pipe.fileno(), fcntl.F_GETPIPE_SZ)


def feed_counted(pipe, data, threshold, passed):
    """Writes data a page at a time and sets passed once threshold bytes
    have gone in."""
    fd = pipe.fileno()
    try:
        for at in range(0, len(data), CHUNK):
            chunk = memoryview(data)[at:at + CHUNK]
            while chunk:
                chunk = chunk[os.write(fd, chunk):]
            if at + CHUNK >= threshold:
                passed.set()
        pipe.close()
    except BrokenPipeError:
        pass
    passed.set()


def copy_all(pipecat, tmp):
    data = os.urandom(1 << 20) * 8
    trace = os.path.join(tmp, "trace")
    proc = subprocess.Popen([pipecat], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            env=dict(os.environ, PROTOGEN_TRACE=trace))
    # With stdout unread, stdout's pipe holds at most its capacity and stdin's
    # pipe at most its own: past both plus the high watermark plus a page,
    # pipecat has buffered more than the watermark, so it has paused. Until
    # it pauses it keeps reading stdin, so the writer gets that far.
    threshold = pipe_capacity(proc.stdin) + pipe_capacity(proc.stdout) + HIGH_WATERMARK + CHUNK
    passed = threading.Event()
    writer = threading.Thread(target=feed_counted, args=(proc.stdin, data, threshold, passed))
    writer.start()
    assert passed.wait(TIMEOUT_S), "pipecat stopped reading stdin before its write buffer was full"
    out = proc.stdout.read()
    writer.join(TIMEOUT_S)
    assert proc.wait(timeout=TIMEOUT_S) == 0
    assert out == data, f"{len(out)} bytes out of {len(data)}"
    with open(trace) as f:
        lines = f.read().splitlines()
    os.unlink(trace)
    # Two instances: 1 is stdout's write pipe (made first), 2 stdin's read pipe.
    out_lines = [line.split()[1] for line in lines if line.startswith("1 ")]
    assert out_lines[0] == "connection_made" and out_lines[-1] == "connection_lost", out_lines
    assert "pause_writing" in out_lines, "the write pipe never paused"
    in_lines = [line.split()[1] for line in lines if line.startswith("2 ")]
    assert in_lines[-2:] == ["eof_received", "connection_lost"], in_lines[-3:]


def small_copies(pipecat):
    """Small inputs: stdout's buffer is empty when stdin ends, so stdout's
    connection_lost may come before stdin's; a clean copy all the same."""
    for size in (0, 1, 100, 65536):
        data = os.urandom(size)
        r = subprocess.run([pipecat], input=data, capture_output=True, timeout=TIMEOUT_S)
        assert (r.returncode, r.stdout, r.stderr) == (0, data, b""), (size, r.returncode, r.stderr)


def reader_goes_away(pipecat):
    proc = subprocess.Popen([pipecat], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            restore_signals=True)
    writer = threading.Thread(target=feed, args=(proc.stdin, b"x" * (16 << 20)))
    writer.start()
    assert proc.stdout.read(10) == b"x" * 10
    proc.stdout.close()
    rc = proc.wait(timeout=TIMEOUT_S)
    writer.join(TIMEOUT_S)
    err = proc.stderr.read().decode()
    assert rc != -signal.SIGPIPE, "pipecat was killed by SIGPIPE"
    assert rc == 1 and "EPIPE" in err, (rc, err)


def regular_file_refused(pipecat, tmp):
    path = os.path.join(tmp, "file")
    with open(path, "wb") as f:
        f.write(b"data")
    with open(path, "rb") as f:
        r = subprocess.run([pipecat], stdin=f, capture_output=True, timeout=TIMEOUT_S)
    os.unlink(path)
    assert r.returncode == 1 and b"Invalid argument" in r.stderr, r


def main(pipecat):
    tmp = tempfile.mkdtemp(prefix="protogen-pipecat-")
    copy_all(pipecat, tmp)
    small_copies(pipecat)
    reader_goes_away(pipecat)
    regular_file_refused(pipecat, tmp)
    os.rmdir(tmp)
    print("pipecat: copy, early reader exit, regular file OK")


if __name__ == "__main__":
    main(*sys.argv[1:])
