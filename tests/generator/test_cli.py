"""Tests of protogen as a tool in a build: warnings, --check, depfiles, colour, and
what it says when the spec and the user's handler file drift apart."""

import glob
import os
import pty
import shutil
import subprocess
import tempfile
import unittest

from test_generator import EXAMPLE_SPECS, HERE, PROTOGEN, TempDirTest, protogen, read, tree

PAUSE_ONLY = os.path.join(HERE, "warnings", "pause_without_resume.spec")


class Warnings(TempDirTest):
    def test_each_warning_has_its_exact_message_and_position(self):
        specs = sorted(glob.glob(os.path.join(HERE, "warnings", "*.spec")))
        self.assertGreaterEqual(len(specs), 3)
        for spec in specs:
            with self.subTest(spec=os.path.basename(spec)):
                r = protogen(os.path.basename(spec), "--check", cwd=os.path.dirname(spec))
                self.assertEqual(r.returncode, 0)
                self.assertEqual(r.stderr, read(spec[: -len(".spec")] + ".err"))

    def test_werror_turns_warnings_into_errors_and_writes_nothing(self):
        r = protogen(PAUSE_ONLY, "-Werror", "-o", self.tmp, "--handlers-dir", self.tmp)
        self.assertEqual(r.returncode, 1)
        self.assertIn(": error: 'pause_writing' is declared without 'resume_writing'", r.stderr)
        self.assertIn("[-Werror]", r.stderr)
        self.assertEqual(os.listdir(self.tmp), [])

    def test_a_framing_reacts_to_the_watermarks_itself(self):
        spec = os.path.join(self.tmp, "framed.spec")
        with open(spec, "w") as f:
            f.write("protocol framed { transport tcp; role server; kind stream;\n"
                    "  framing line { delimiter \"\\n\"; max 1KiB; }\n"
                    "  callbacks { message_received; }\n  watermarks { high 64KiB; }\n}\n")
        r = protogen(spec, "--check")
        self.assertEqual((r.returncode, r.stderr), (0, ""))   # the framer holds its messages: no warning

    def test_w_silences_warnings(self):
        r = protogen(PAUSE_ONLY, "-w", "-o", self.tmp, "--handlers-dir", self.tmp)
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        self.assertEqual(sorted(os.listdir(self.tmp)), ["echo.c", "echo.h", "echo_bind.c", "echo_handlers.c"])


KV_SPEC = os.path.join(HERE, "..", "generated", "kv.spec")


class Re2c(TempDirTest):
    """A rules framing's scanner goes through re2c when protogen writes NAME.c."""

    def run_with_re2c(self, re2c, *args):
        env = dict(os.environ, PROTOGEN_RE2C=re2c)
        return subprocess.run([PROTOGEN, *args], capture_output=True, text=True, timeout=60, env=env)

    def test_a_missing_re2c_is_a_clear_error_and_nothing_is_written(self):
        spec = self.copy_spec(KV_SPEC)
        r = self.run_with_re2c(os.path.join(self.tmp, "no-such-re2c"), spec, "-o", self.tmp,
                               "--handlers-dir", self.tmp)
        self.assertEqual(r.returncode, 2)
        self.assertTrue(r.stderr.startswith("protogen: error: re2c could not run: "), r.stderr)
        self.assertNotIn("Traceback", r.stderr)
        self.assertEqual(os.listdir(self.tmp), ["kv.spec"])

    def test_the_scanner_is_compiled_and_the_output_is_reproducible(self):
        spec = self.copy_spec(KV_SPEC)
        outputs = []
        for run in ("a", "b"):
            out = os.path.join(self.tmp, run)
            os.mkdir(out)
            r = protogen(spec, "-o", out, "--handlers-dir", out)
            self.assertEqual((r.returncode, r.stderr), (0, ""))
            outputs.append(read(os.path.join(out, "kv.c")))
        self.assertEqual(outputs[0], outputs[1])   # no date stamp, nothing that moves
        self.assertNotIn("/*!re2c", outputs[0])     # every block compiled
        self.assertIn("switch (s->yystate)", outputs[0])   # storable state: resumes inside a token


class CheckOnly(TempDirTest):
    def test_check_validates_and_writes_nothing(self):
        spec = self.copy_spec(EXAMPLE_SPECS[0])
        r = protogen(spec, "--check", "-o", self.tmp)
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, "", ""))
        self.assertEqual(os.listdir(self.tmp), ["echo.spec"])

    def test_check_reports_errors_with_status_1(self):
        spec = os.path.join(HERE, "errors", "unknown_callback.spec")
        r = protogen(spec, "--check")
        self.assertEqual(r.returncode, 1)
        self.assertIn("did you mean 'data_received'?", r.stderr)


class ListOutputs(TempDirTest):
    """What CMake's protogen_generate() asks at configure time instead of reading the spec itself."""

    def test_lists_every_output_in_the_plans_order_and_writes_nothing(self):
        spec = self.copy_spec(EXAMPLE_SPECS[0])
        out = os.path.join(self.tmp, "gen")
        r = protogen("--list-outputs", spec, "-o", out)
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        self.assertEqual(r.stdout.splitlines(), [os.path.join(out, "echo.h"), os.path.join(out, "echo.c"),
                                                 os.path.join(out, "echo_bind.c"),
                                                 os.path.join(self.tmp, "echo_handlers.c")])
        self.assertEqual(os.listdir(self.tmp), ["echo.spec"])

    def test_the_list_is_what_a_run_writes(self):
        for spec in EXAMPLE_SPECS:
            name = os.path.basename(spec)[: -len(".spec")]
            with self.subTest(spec=name):
                out = os.path.join(self.tmp, name)
                os.mkdir(out)
                args = (spec, "-o", out, "--handlers-dir", out)
                listed = protogen("--list-outputs", *args).stdout.splitlines()
                self.assertEqual(protogen(*args).returncode, 0)
                self.assertEqual(sorted(listed), sorted(os.path.join(out, f) for f in os.listdir(out)))

    def test_emit_chooses_and_the_depfile_comes_last(self):
        spec = self.copy_spec(EXAMPLE_SPECS[0])
        r = protogen("--list-outputs", spec, "--emit", "handlers,bind", "-M", "x.d", "--handlers-dir", "h",
                     "-o", "gen", cwd=self.tmp)
        self.assertEqual((r.returncode, r.stdout), (0, "gen/echo_bind.c\nh/echo_handlers.c\nx.d\n"))

    def test_errors_as_usual_and_no_warnings(self):
        r = protogen("--list-outputs", os.path.join(HERE, "errors", "unknown_role.spec"), "-o", self.tmp)
        self.assertEqual((r.returncode, r.stdout), (1, ""))
        self.assertRegex(r.stderr, r"^\S*unknown_role\.spec:\d+:\d+: error: ")
        self.assertNotIn("Traceback", r.stderr)
        r = protogen("--list-outputs", PAUSE_ONLY, "-o", self.tmp)
        self.assertEqual((r.returncode, r.stderr, len(r.stdout.splitlines())), (0, "", 4))
        r = protogen("--list-outputs", "--check", PAUSE_ONLY)
        self.assertEqual(r.returncode, 2)
        r = protogen("--list-outputs", PAUSE_ONLY, "--emit", "docs")
        self.assertEqual((r.returncode, r.stdout), (2, ""))


class Depfile(TempDirTest):
    def test_depfile_lists_spec_generator_and_templates(self):
        spec = self.copy_spec(EXAMPLE_SPECS[0])
        dep = os.path.join(self.tmp, "echo.d")
        r = protogen(spec, "-o", self.tmp, "--emit", "header,source", "-M", dep)
        self.assertEqual(r.returncode, 0, r.stderr)
        text = read(dep)
        targets, prerequisites = text.split(":", 1)
        self.assertEqual(targets.split(), [os.path.join(self.tmp, "echo.h"), os.path.join(self.tmp, "echo.c")])
        deps = prerequisites.replace("\\\n", " ").split()
        self.assertEqual(deps[0], spec)
        self.assertTrue(any(d.endswith("generator/protogen/check.py") for d in deps), deps)
        self.assertTrue(any(d.endswith("stream/source.c.j2") for d in deps), deps)
        self.assertTrue(any(d.endswith("common/banner.j2") for d in deps), deps)
        for d in deps:
            self.assertTrue(os.path.isfile(d), d)

    def test_no_depfile_on_error(self):
        dep = os.path.join(self.tmp, "x.d")
        r = protogen(os.path.join(HERE, "errors", "unknown_role.spec"), "-o", self.tmp, "-M", dep)
        self.assertEqual(r.returncode, 1)
        self.assertFalse(os.path.exists(dep))


class HandlerDrift(TempDirTest):
    def write_spec(self, callbacks):
        spec = os.path.join(self.tmp, "echo.spec")
        with open(spec, "w") as f:
            f.write("protocol echo {\n    transport tcp;\n    role server;\n    kind stream;\n"
                    f"    callbacks {{ {' '.join(c + ';' for c in callbacks)} }}\n}}\n")
        return spec

    def test_new_callback_in_spec_is_reported_with_its_prototype(self):
        spec = self.write_spec(["data_received"])
        self.assertEqual(protogen(spec, "-o", self.tmp).returncode, 0)
        handlers = os.path.join(self.tmp, "echo_handlers.c")
        before = read(handlers)
        spec = self.write_spec(["data_received", "eof_received"])
        r = protogen(spec, "-o", self.tmp)
        self.assertEqual(r.returncode, 0)
        self.assertEqual(read(handlers), before, "the handler file was edited")
        self.assertIn(f"{spec}:5:32: warning: callback 'eof_received' has no handler in {handlers}", r.stderr)
        self.assertIn("note: add: bool echo_on_eof_received(echo_conn *conn, struct echo_session *session)", r.stderr)

    def test_the_old_name_of_the_per_connection_struct_is_reported(self):
        spec = self.write_spec(["data_received"])
        handlers = os.path.join(self.tmp, "echo_handlers.c")
        with open(handlers, "w") as f:
            f.write("#include \"echo.h\"\n\nstruct echo_state {\n    int n;\n};\n"
                    "const size_t echo_state_size = sizeof(struct echo_state);\n\n"
                    "void echo_on_data_received(echo_conn *conn, struct echo_state *state, const uint8_t *data, "
                    "size_t len)\n{\n    (void)conn; (void)state; (void)data; (void)len;\n}\n")
        r = protogen(spec, "-o", self.tmp)
        self.assertEqual(r.returncode, 0)
        self.assertIn(f"{handlers}:3:1: warning: 'struct echo_state' is now 'struct echo_session', and "
                      "echo_state_size is echo_session_size: rename both", r.stderr)

    def test_callback_removed_from_spec_is_reported_at_its_definition(self):
        spec = self.write_spec(["data_received", "connection_lost"])
        self.assertEqual(protogen(spec, "-o", self.tmp).returncode, 0)
        handlers = os.path.join(self.tmp, "echo_handlers.c")
        line = next(i for i, l in enumerate(read(handlers).splitlines(), 1) if "echo_on_connection_lost(" in l)
        spec = self.write_spec(["data_received"])
        r = protogen(spec, "-o", self.tmp)
        self.assertEqual(r.returncode, 0)
        self.assertIn(f"{handlers}:{line}:6: warning: 'echo_on_connection_lost' is not declared in the spec's "
                      "callbacks: it is never called", r.stderr)

    def test_matching_handlers_give_no_warning(self):
        spec = self.copy_spec(EXAMPLE_SPECS[0])
        shutil.copyfile(os.path.join(os.path.dirname(EXAMPLE_SPECS[0]), "echo_handlers.c"),
                        os.path.join(self.tmp, "echo_handlers.c"))
        r = protogen(spec, "--check")
        self.assertEqual((r.returncode, r.stderr), (0, ""))


class Colour(TempDirTest):
    def run_on_terminal(self, env):
        """protogen's stderr when it is a terminal."""
        spec = os.path.join(HERE, "errors", "unknown_role.spec")
        pid, fd = pty.fork()
        if pid == 0:
            os.dup2(1, 2)
            os.execve(PROTOGEN, [PROTOGEN, spec, "--check"], env)
        out = b""
        while True:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        os.waitpid(pid, 0)
        os.close(fd)
        return out.decode()

    def test_colour_only_on_a_terminal_and_never_with_no_color(self):
        env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
        env["TERM"] = "xterm"
        self.assertIn("\033[1;31merror:", self.run_on_terminal(env))
        self.assertNotIn("\033[", self.run_on_terminal(dict(env, NO_COLOR="1")))
        r = protogen(os.path.join(HERE, "errors", "unknown_role.spec"), "--check")
        self.assertNotIn("\033[", r.stderr)


if __name__ == "__main__":
    unittest.main()
