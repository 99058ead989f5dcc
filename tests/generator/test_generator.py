"""Tests of the protogen command: golden output, diagnostics, and what it may write.

Run by ctest; PROTOGEN is the command under test (bin/protogen), CC a C compiler.
Set PROTOGEN_UPDATE_GOLDEN=1 to rewrite the golden files after an intended change.
"""

import glob
import os
import re
import shutil
import subprocess
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.normpath(os.path.join(HERE, "..", ".."))
PROTOGEN = os.environ.get("PROTOGEN", os.path.join(TOP, "bin", "protogen"))
CC = os.environ.get("CC", "cc")
RUNTIME_INCLUDE = os.path.join(TOP, "runtime", "include")
EXAMPLE_SPECS = [os.path.join(TOP, "examples", "echo", name) for name in ("echo.spec", "echo_client.spec")]
EXAMPLE_SPECS += [os.path.join(TOP, "examples", "handshake", name)
                  for name in ("hello.spec", "sink.spec", "hello_client.spec")]
EXAMPLE_SPECS += [os.path.join(TOP, "examples", "pipecat", name) for name in ("cat_in.spec", "cat_out.spec")]
EXAMPLE_SPECS += [os.path.join(TOP, "examples", "udp-echo", name) for name in ("udp_echo.spec", "udp_echo_client.spec")]
EXAMPLE_SPECS += [os.path.join(TOP, "examples", "timeout", "monitored.spec")]


def protogen(*args, cwd=None):
    return subprocess.run([PROTOGEN, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def read(path, mode="r"):
    with open(path, mode) as f:
        return f.read()


def tree(directory):
    """Every file under directory with its bytes and modification time."""
    out = {}
    for root, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            out[os.path.relpath(path, directory)] = (read(path, "rb"), os.stat(path).st_mtime_ns)
    return out


class TempDirTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="protogen-test-")
        self.addCleanup(shutil.rmtree, self.tmp)

    def copy_spec(self, spec, name=None):
        dest = os.path.join(self.tmp, name or os.path.basename(spec))
        shutil.copyfile(spec, dest)
        return dest


class GoldenOutput(TempDirTest):
    def test_examples_match_golden_files_byte_for_byte(self):
        for spec in EXAMPLE_SPECS:
            name = os.path.basename(spec)[: -len(".spec")]
            out = os.path.join(self.tmp, name)
            os.mkdir(out)
            r = protogen(spec, "-o", out, "--handlers-dir", out)
            self.assertEqual((r.returncode, r.stderr, r.stdout), (0, "", ""))
            files = sorted(os.listdir(out))
            self.assertEqual(files, sorted([f"{name}.h", f"{name}.c", f"{name}_bind.c", f"{name}_handlers.c"]))
            for f in files:
                golden = os.path.join(HERE, "golden", f)
                if os.environ.get("PROTOGEN_UPDATE_GOLDEN"):
                    shutil.copyfile(os.path.join(out, f), golden)
                with self.subTest(file=f):
                    self.assertEqual(read(os.path.join(out, f), "rb"), read(golden, "rb"))

    def test_output_is_identical_across_runs_and_directories(self):
        spec = self.copy_spec(EXAMPLE_SPECS[0])
        a, b = os.path.join(self.tmp, "a"), os.path.join(self.tmp, "b")
        os.mkdir(a)
        os.mkdir(b)
        self.assertEqual(protogen(spec, "-o", a, "--handlers-dir", a).returncode, 0)
        self.assertEqual(protogen(os.path.basename(spec), "-o", b, "--handlers-dir", b, cwd=self.tmp).returncode, 0)
        self.assertEqual({k: v[0] for k, v in tree(a).items()}, {k: v[0] for k, v in tree(b).items()})
        for path, (data, _) in tree(a).items():
            self.assertNotIn(self.tmp.encode(), data, f"{path} contains an absolute path")

    def test_unchanged_output_is_not_rewritten(self):
        spec = self.copy_spec(EXAMPLE_SPECS[0])
        self.assertEqual(protogen(spec, "-o", self.tmp).returncode, 0)
        before = tree(self.tmp)
        self.assertEqual(protogen(spec, "-o", self.tmp).returncode, 0)
        self.assertEqual(tree(self.tmp), before)

    def test_generated_code_and_skeleton_compile_cleanly(self):
        minimal = os.path.join(self.tmp, "bare.spec")
        with open(minimal, "w") as f:
            f.write("protocol bare { transport tcp; role client; kind stream; }\n")
        for spec in EXAMPLE_SPECS + [minimal]:
            name = os.path.basename(spec)[: -len(".spec")]
            out = os.path.join(self.tmp, "c-" + name)
            os.mkdir(out)
            self.assertEqual(protogen(spec, "-o", out, "--handlers-dir", out).returncode, 0)
            for source in (f"{name}.c", f"{name}_bind.c", f"{name}_handlers.c"):
                r = subprocess.run([CC, "-std=c11", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-fsyntax-only",
                                    "-I", RUNTIME_INCLUDE, "-I", out, os.path.join(out, source)],
                                   capture_output=True, text=True, timeout=60)
                self.assertEqual(r.returncode, 0, f"{source}:\n{r.stderr}")


class Diagnostics(TempDirTest):
    def test_every_malformed_spec_gets_its_exact_message_and_position(self):
        specs = sorted(glob.glob(os.path.join(HERE, "errors", "*.spec")))
        self.assertGreaterEqual(len(specs), 15)
        for spec in specs:
            with self.subTest(spec=os.path.basename(spec)):
                r = protogen(os.path.basename(spec), "-o", self.tmp, "--handlers-dir", self.tmp,
                             cwd=os.path.dirname(spec))
                self.assertEqual(r.returncode, 1)
                self.assertEqual(r.stdout, "")
                self.assertEqual(r.stderr, read(spec[: -len(".spec")] + ".err"))
                self.assertNotIn("Traceback", r.stderr)
                self.assertEqual(os.listdir(self.tmp), [], "a failed run wrote files")

    def test_a_failed_run_changes_no_existing_file(self):
        spec = os.path.join(self.tmp, "echo.spec")
        for name in ("echo.h", "echo.c", "echo_handlers.c"):
            with open(os.path.join(self.tmp, name), "w") as f:
                f.write("previous content\n")
        with open(spec, "w") as f:
            f.write("protocol echo { transport tcp; role server; kind stream; watermarks { low 1MiB; high 1KiB; } }\n")
        before = tree(self.tmp)
        r = protogen(spec, "-o", self.tmp)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(tree(self.tmp), before)


class UserFiles(TempDirTest):
    def test_handler_skeleton_is_written_once_and_never_overwritten(self):
        spec = self.copy_spec(EXAMPLE_SPECS[0])
        out = os.path.join(self.tmp, "out")
        os.mkdir(out)
        self.assertEqual(protogen(spec, "-o", out).returncode, 0)
        handlers = os.path.join(self.tmp, "echo_handlers.c")   # beside the spec by default
        self.assertIn("echo_on_data_received", read(handlers))
        with open(handlers, "w") as f:
            f.write("/* the user's own code */\n")
        with open(spec, "a") as f:
            f.write("# the spec changed\n")
        r = protogen(spec, "-o", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(read(handlers), "/* the user's own code */\n")

    def test_emit_header_and_source_only_leaves_handlers_alone(self):
        spec = self.copy_spec(EXAMPLE_SPECS[0])
        r = protogen(spec, "-o", self.tmp, "--emit", "header,source")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sorted(os.listdir(self.tmp)), ["echo.c", "echo.h", "echo.spec"])

    def test_emit_bind_alone(self):
        spec = self.copy_spec(EXAMPLE_SPECS[0])
        r = protogen(spec, "-o", self.tmp, "--emit", "bind")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sorted(os.listdir(self.tmp)), ["echo.spec", "echo_bind.c"])


# What ties a protocol to the built-in loop, none of which NAME.c may need.
LOOP_SYMBOLS = re.compile(r"^(pg_loop_|pg_tcp_|pg_unix_|pg_udp_|pg_pipe_|pg_server_|pg_stream_adopt_fd$"
                          r"|pg_datagram_adopt_fd$|pg_subprocess_spawn|epoll_|socket$|bind$|listen$|accept"
                          r"|connect$)")


class LinkableAlone(TempDirTest):
    """NAME.c is the protocol: it links without the loop; NAME_bind.c is what needs it."""

    def undefined(self, spec, source, *flags):
        out = os.path.join(self.tmp, os.path.basename(spec) + "-" + "".join(flags))
        os.makedirs(out, exist_ok=True)
        self.assertEqual(protogen(spec, "-o", out, "--emit", "header,source,bind").returncode, 0)
        obj = os.path.join(out, source + ".o")
        r = subprocess.run([CC, "-std=c11", *flags, "-c", "-I", RUNTIME_INCLUDE, "-I", out,
                            os.path.join(out, source), "-o", obj], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = subprocess.run(["nm", "-u", "--format=just-symbols", obj], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout.split()

    def test_echo_c_names_no_loop_epoll_or_socket_symbol(self):
        for flags in ((), ("-O2",)):
            with self.subTest(flags=flags):
                names = self.undefined(EXAMPLE_SPECS[0], "echo.c", *flags)
                self.assertIn("echo_on_data_received", names)   # the check sees undefined names at all
                self.assertEqual([n for n in names if LOOP_SYMBOLS.match(n)], [])

    def test_every_example_source_is_free_of_the_loop_and_its_bind_file_is_not(self):
        for spec in EXAMPLE_SPECS:
            name = os.path.basename(spec)[: -len(".spec")]
            with self.subTest(spec=name):
                self.assertEqual([n for n in self.undefined(spec, f"{name}.c") if LOOP_SYMBOLS.match(n)], [])
                self.assertNotEqual([n for n in self.undefined(spec, f"{name}_bind.c") if LOOP_SYMBOLS.match(n)], [])


class CommandLine(TempDirTest):
    def test_version_and_help(self):
        r = protogen("--version")
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout.strip(), r"^protogen \d+\.\d+\.\d+$")   # which one: test_version.py
        r = protogen("--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("--out-dir", r.stdout)
        self.assertIn("examples:", r.stdout)

    def test_usage_and_io_errors_exit_2_with_one_line(self):
        cases = [
            ((), "protogen: error: the following arguments are required: spec"),
            (("missing.spec",), "protogen: error: cannot read missing.spec: No such file or directory"),
            ((EXAMPLE_SPECS[0], "-o", os.path.join(self.tmp, "nowhere")),
             f"protogen: error: --out-dir {os.path.join(self.tmp, 'nowhere')} is not a directory"),
            ((EXAMPLE_SPECS[0], "--emit", "header,docs"),
             "protogen: error: --emit takes a list of header, source, bind, dot, mermaid, handlers; got 'header,docs'"),
        ]
        for args, message in cases:
            with self.subTest(args=args):
                r = protogen(*args, cwd=self.tmp)
                self.assertEqual(r.returncode, 2)
                self.assertEqual(r.stderr.strip().splitlines()[-1], message)
                self.assertNotIn("Traceback", r.stderr)


if __name__ == "__main__":
    unittest.main()
