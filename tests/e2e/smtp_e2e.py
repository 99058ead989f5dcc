"""End to end: examples/smtp's smtp_server, served to swaks and Python's smtplib.

    smtp_e2e.py SMTP_SERVER

swaks plain, with --pipeline, HELO-only and oversize; smtplib; a whole session
in one write and the same session byte by byte (identical replies); the
replies to commands out of order (503), unknown (500), with bad arguments
(501) and a line over 1000 bytes (500, then the close); every accepted message
in the Maildir's new/, dot-stuffing undone, nothing left in tmp/; and the idle
timeout in real time (421, then the close). Every wait is on an event (a
reply, a close, the server's output), bounded by a deadline.
"""

import os
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import time

DEADLINE_S = 30


class Server:
    def __init__(self, binary, maildir, *extra):
        self.proc = subprocess.Popen([binary, "--port", "0", "--maildir", maildir, *extra],
                                     stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert line.startswith("listening on "), f"server said {line!r}"
        self.port = int(line.rsplit(":", 1)[1])

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=DEADLINE_S)
        assert rc == 0, f"smtp_server exited with {rc}"


def messages(maildir):
    new = os.path.join(maildir, "new")
    out = []
    for name in sorted(os.listdir(new), key=lambda n: os.stat(os.path.join(new, n)).st_mtime_ns):
        with open(os.path.join(new, name), "rb") as f:
            out.append(f.read())
    assert os.listdir(os.path.join(maildir, "tmp")) == [], "a message was left in tmp/"
    return out


def swaks(port, *args):
    r = subprocess.run(["swaks", "--server", f"127.0.0.1:{port}", "--to", "rcpt@example.org",
                        "--from", "sender@example.net", "--timeout", str(DEADLINE_S), *args],
                       capture_output=True, text=True, timeout=DEADLINE_S)
    return r.returncode, r.stdout + r.stderr


def session(port, chunks, half_close=False):
    """Sends chunks (bytes each, sent one by one), ends the client's side when
    half_close, and returns every byte the server answers, up to its close."""
    with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for c in chunks:
            s.sendall(c)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        out = b""
        while True:
            data = s.recv(65536)
            if not data:
                return out
            out += data


def codes(replies):
    return [line[:3] for line in replies.decode().split("\r\n") if line and line[3:4] == " "]


def main():
    binary = sys.argv[1]
    if shutil.which("swaks") is None:
        print("swaks is not installed (scripts/setup.sh installs it)", file=sys.stderr)
        return 1
    tmp = tempfile.mkdtemp(prefix="protogen-smtp-")
    maildir = os.path.join(tmp, "Maildir")
    server = Server(binary, maildir, "--max-size", "65536")
    try:
        port = server.port

        # swaks, plain ESMTP: a body with lines that start with dots.
        body = "first line\n.starts with a dot\n..two dots\nlast line"
        rc, out = swaks(port, "--body", body, "--header", "Subject: plain")
        assert rc == 0, out
        [msg] = messages(maildir)
        assert b"Subject: plain\n" in msg, msg
        assert b"\n\nfirst line\n.starts with a dot\n..two dots\nlast line\n" in msg, msg
        assert msg.startswith(b"Return-Path: <sender@example.net>\n"), msg

        # swaks --pipeline: the server advertises PIPELINING and answers a batch in order.
        rc, out = swaks(port, "--pipeline", "--body", "pipelined", "--header", "Subject: pipelined")
        assert rc == 0, out
        assert "PIPELINING" in out, out
        assert b"Subject: pipelined\n" in messages(maildir)[-1]

        # HELO only (plain SMTP).
        rc, out = swaks(port, "--protocol", "SMTP", "--header", "Subject: helo-only")
        assert rc == 0, out
        assert "-> HELO" in out, out
        assert b"Subject: helo-only\n" in messages(maildir)[-1]

        # Oversize: 552 after the body, nothing stored, the session goes on to QUIT.
        before = len(messages(maildir))
        rc, out = swaks(port, "--body", "x" * 200 + "\n" + ("y" * 500 + "\n") * 200, "--header", "Subject: big")
        assert rc != 0 and "<** 552" in out, out
        assert "221" in out, out
        assert len(messages(maildir)) == before

        # smtplib, with two recipients.
        with smtplib.SMTP("127.0.0.1", port, timeout=DEADLINE_S) as c:
            refused = c.sendmail("a@example.net", ["b@example.org", "c@example.org"],
                                 "Subject: smtplib\r\n\r\nfrom smtplib\r\n.\r\n")
            assert refused == {}, refused
        msg = messages(maildir)[-1]
        assert b"Subject: smtplib\n\nfrom smtplib\n.\n" in msg, msg

        # A whole session in one write, and the same byte by byte: the same replies.
        script = (b"EHLO client.example\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<b@example.org>\r\n"
                  b"DATA\r\nSubject: one write\r\n\r\n..dot\r\n.\r\nNOOP\r\nQUIT\r\n")
        whole = session(port, [script])
        bytewise = session(port, [script[i:i + 1] for i in range(len(script))])
        assert codes(whole) == ["220", "250", "250", "250", "354", "250", "250", "221"], whole
        strip = lambda r: [l for l in r.split(b"\r\n") if not l.startswith(b"250 2.0.0 Ok: queued")]
        assert strip(whole) == strip(bytewise), (whole, bytewise)
        assert messages(maildir)[-1].endswith(b"Subject: one write\n\n.dot\n")

        # Order and syntax: 503, 500, 501; the session is still usable after each.
        replies = session(port, [b"MAIL FROM:<a@example.net>\r\n", b"HELO c.example\r\n",
                                 b"RCPT TO:<b@example.org>\r\n", b"DATA\r\n", b"FROB\r\n",
                                 b"MAIL FROM:broken\r\n", b"HELO\r\n", b"MAIL FROM:<a@example.net>\r\n",
                                 b"DATA\r\n", b"RSET\r\n", b"QUIT\r\n"])
        assert codes(replies) == ["220", "503", "250", "503", "503", "500", "501", "501", "250", "503",
                                  "250", "221"], replies

        # RCPT TO up to 100, the 101st refused with 452.
        script = [b"HELO c.example\r\nMAIL FROM:<a@example.net>\r\n"]
        script += [b"RCPT TO:<r%d@example.org>\r\n" % i for i in range(101)]
        script += [b"QUIT\r\n"]
        replies = codes(session(port, script))
        assert replies[:3] == ["220", "250", "250"] and replies.count("250") == 102, replies
        assert replies[-2:] == ["452", "221"], replies

        # A line over 1000 bytes: 500, then the close (the line is never buffered whole).
        replies = session(port, [b"HELO c.example\r\n", b"NOOP " + b"z" * 5000 + b"\r\n"])
        assert codes(replies) == ["220", "250", "500"], replies
        assert b"Line too long" in replies

        # The client's end cuts a line short: no 500 for it, and a message cut inside
        # DATA is not delivered.
        replies = session(port, [b"HELO c.example\r\nMAIL FROM:<a@exa"], half_close=True)
        assert codes(replies) == ["220", "250"], replies
        stored = len(messages(maildir))
        replies = session(port, [b"HELO c.example\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<b@example.org>\r\n"
                                 b"DATA\r\nSubject: cut\r\n\r\nno end"], half_close=True)
        assert codes(replies) == ["220", "250", "250", "250", "354"], replies
        assert len(messages(maildir)) == stored
    finally:
        server.stop()

    # The idle timeout, in real time: 421 after a second of silence, then the close.
    idle = Server(binary, maildir, "--idle-timeout", "1")
    try:
        start = time.monotonic()
        replies = session(idle.port, [b"HELO c.example\r\n"])
        took = time.monotonic() - start
        assert codes(replies) == ["220", "250", "421"], replies
        assert 0.9 <= took < DEADLINE_S, took
    finally:
        idle.stop()
    shutil.rmtree(tmp)
    print("smtp end to end: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
