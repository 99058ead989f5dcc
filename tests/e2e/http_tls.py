"""End to end: examples/http's http_server over TLS (--cert/--key), served to curl.

    http_tls.py HTTP_SERVER CERT_DIR

CERT_DIR holds tests/tls/make_certs.sh's certificates (the tls_certs fixture).
curl --cacert ca.pem: GET / twice on one connection (keep-alive over TLS),
a POST /echo of 300 KiB and a chunked one; curl without the CA refuses the
server (exit 60: the certificate does not verify); plain HTTP to the HTTPS
port gets no HTTP answer. Each wait is on the server's output or curl's end,
bounded by a deadline.
"""

import os
import signal
import subprocess
import sys
import tempfile

DEADLINE_S = 30


def main():
    binary, certs = sys.argv[1], sys.argv[2]
    ca = os.path.join(certs, "ca.pem")
    proc = subprocess.Popen([binary, "--port", "0", "--cert", os.path.join(certs, "server.pem"),
                             "--key", os.path.join(certs, "server.key")], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("listening on "), line
        port = int(line.rsplit(":", 1)[1])
        url = f"https://localhost:{port}"
        resolve = ["--resolve", f"localhost:{port}:127.0.0.1"]

        def curl(*args, check=True):
            r = subprocess.run(["curl", "-sS", "--max-time", str(DEADLINE_S), *resolve, *args],
                               capture_output=True, timeout=DEADLINE_S)
            if check:
                assert r.returncode == 0, r.stderr
            return r

        r = curl("-v", "--cacert", ca, f"{url}/", f"{url}/")
        assert r.stdout == b"Hello from protogen\n" * 2, r.stdout
        assert b"Re-using existing connection" in r.stderr, r.stderr
        assert b"SSL certificate verify ok" in r.stderr or b"SSL connection using" in r.stderr, r.stderr
        with tempfile.NamedTemporaryFile() as f:
            data = os.urandom(300 * 1024)
            f.write(data)
            f.flush()
            assert curl("--cacert", ca, "--data-binary", f"@{f.name}", f"{url}/echo").stdout == data
            assert curl("--cacert", ca, "-H", "Transfer-Encoding: chunked", "--data-binary", f"@{f.name}",
                        f"{url}/echo").stdout == data
        r = curl(f"{url}/", check=False)   # no CA: the test CA is no one else's
        assert r.returncode == 60, (r.returncode, r.stderr)
        r = curl(f"http://localhost:{port}/", check=False)
        assert r.returncode != 0 and b"Hello" not in r.stdout, (r.returncode, r.stdout)
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=DEADLINE_S)
    assert rc == 0, f"http_server exited with {rc}"
    print("https end to end: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
