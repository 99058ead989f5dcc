"""The generator's datagram kind: every role and callback subset compiles
cleanly, the state table is asyncio's DatagramProtocol order, and a stream's
callbacks on a datagram protocol (or the reverse) get the other kind named.

Run by ctest; PROTOGEN is the command under test (bin/protogen), CC a C compiler.
"""

import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.normpath(os.path.join(HERE, "..", ".."))
PROTOGEN = os.environ.get("PROTOGEN", os.path.join(TOP, "bin", "protogen"))
CC = os.environ.get("CC", "cc")
RUNTIME_INCLUDE = os.path.join(TOP, "runtime", "include")
CALLBACKS = ("connection_made", "datagram_received", "error_received", "connection_lost", "pause_writing",
             "resume_writing")


def protogen(*args, cwd=None):
    return subprocess.run([PROTOGEN, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


class Datagram(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="protogen-datagram-")
        self.addCleanup(shutil.rmtree, self.tmp)

    def generate(self, name, body):
        spec = os.path.join(self.tmp, f"{name}.spec")
        with open(spec, "w") as f:
            f.write(f"protocol {name} {{ {body} }}\n")
        out = os.path.join(self.tmp, name)
        os.mkdir(out)
        r = protogen(spec, "-o", out, "--handlers-dir", out, "-w")
        self.assertEqual(r.returncode, 0, r.stderr)
        return out

    def compile(self, out, name):
        for source in (f"{name}.c", f"{name}_bind.c", f"{name}_handlers.c"):
            r = subprocess.run([CC, "-std=c11", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-fsyntax-only",
                                "-I", RUNTIME_INCLUDE, "-I", out, os.path.join(out, source)],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 0, f"{source}:\n{r.stderr}")

    def test_every_role_with_none_some_or_all_callbacks_compiles(self):
        subsets = [(), CALLBACKS, ("datagram_received",), ("error_received", "connection_lost"),
                   ("pause_writing", "resume_writing")]
        for (role, callbacks), n in zip(itertools.product(("server", "client"), subsets), itertools.count()):
            with self.subTest(role=role, callbacks=callbacks):
                name = f"d{n}"
                decl = f"callbacks {{ {' '.join(c + ';' for c in callbacks)} }}" if callbacks else ""
                out = self.generate(name, f"transport udp; role {role}; kind datagram; {decl} "
                                          "watermarks { high 8KiB; }")
                self.compile(out, name)
                with open(os.path.join(out, f"{name}.h")) as f:
                    header = f.read()
                makes = f"int {name}_bind(" if role == "server" else f"int {name}_connect("
                self.assertIn(makes, header)
                self.assertIn(f"int {name}_sendto(", header)
                self.assertIn(f"int {name}_adopt(", header)
                self.assertNotIn("write_eof", header)   # datagrams have no end of stream

    def test_state_table_is_asyncios_datagram_order(self):
        out = self.generate("order", "transport udp; role client; kind datagram;")
        with open(os.path.join(out, "order.c")) as f:
            source = f.read()
        # states new, open, lost; events in the kind's order:
        # made, datagram, error, lost, pause, resume
        self.assertIn("/* new */ { ORDER_OPEN, ORDER_INVALID, ORDER_INVALID, ORDER_INVALID, ORDER_INVALID, "
                      "ORDER_INVALID }", source)
        self.assertIn("/* open */ { ORDER_INVALID, ORDER_OPEN, ORDER_OPEN, ORDER_LOST, ORDER_OPEN, ORDER_OPEN }",
                      source)
        self.assertIn("/* lost */ { ORDER_INVALID, ORDER_INVALID, ORDER_INVALID, ORDER_INVALID, ORDER_INVALID, "
                      "ORDER_INVALID }", source)

    def test_other_kinds_callbacks_are_named_with_a_hint(self):
        cases = [
            ("kind datagram", "data_received",
             "callback 'data_received' belongs to kind 'stream'; "
             "a datagram protocol receives with 'datagram_received'"),
            ("kind datagram", "buffer_updated",
             "callback 'buffer_updated' belongs to kind 'buffered'; "
             "a datagram protocol receives whole datagrams with 'datagram_received'"),
            ("kind stream", "error_received",
             "callback 'error_received' belongs to kind 'datagram'; "
             "a stream protocol learns of errors in 'connection_lost'"),
        ]
        for kind, callback, message in cases:
            with self.subTest(kind=kind, callback=callback):
                transport = "udp" if kind == "kind datagram" else "tcp"
                spec = os.path.join(self.tmp, "x.spec")
                with open(spec, "w") as f:
                    f.write(f"protocol x {{ transport {transport}; role server; {kind}; callbacks {{ {callback}; }} }}\n")
                r = protogen(spec, "-o", self.tmp, "--handlers-dir", self.tmp)
                self.assertEqual(r.returncode, 1)
                self.assertIn(f"error: {message}\n", r.stderr)
                self.assertNotIn("Traceback", r.stderr)


if __name__ == "__main__":
    sys.exit(unittest.main())
