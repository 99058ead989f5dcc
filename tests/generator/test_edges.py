"""The generator at its edges (issue 16): hostile or broken input gets a bounded,
positioned answer, a failed run leaves every file as it was, and the handler-file
check does linear work.

Runs protogen as a command (PROTOGEN) and, where a failure has to be injected or
work counted, its modules in-process (so it needs a Python with jinja2).
"""

import os
import random
import sys
import unittest
from unittest import mock

from test_generator import EXAMPLE_SPECS, TOP, TempDirTest, protogen, read, tree

sys.path.insert(0, os.path.join(TOP, "generator"))

from protogen import drift, emit  # noqa: E402

ECHO = EXAMPLE_SPECS[0]


def garbage(size, seed=16):
    """One line of characters that start no token: every one is an error, and then the
    spec is empty (one more). ('"' starts a string.)"""
    rng = random.Random(seed)
    return "".join(rng.choice("!@$%^&*()<>?/\\|[]=+-~`,.:'") for _ in range(size))


class ErrorLimit(TempDirTest):
    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        return path

    def errors(self, stderr):
        return [l for l in stderr.splitlines() if ": error: " in l]

    def test_a_10k_one_line_garbage_spec_prints_a_bounded_amount(self):
        spec = self.write("g.spec", garbage(10_000))
        r = protogen(spec, "--check")
        self.assertEqual(r.returncode, 1)
        # Unbounded, this printed 151 MB (10,000 errors each quoting the 10 KB line).
        self.assertLess(len(r.stderr.encode()), 10_000)   # less than the spec itself
        errors = self.errors(r.stderr)
        self.assertEqual(len(errors), 21, r.stderr)   # 20, then the one that stops
        self.assertTrue(errors[0].startswith(f"{spec}:1:1: error: unexpected character"), errors[0])
        self.assertEqual(errors[-1], "protogen: error: too many errors emitted, stopping now "
                                     "(--max-errors N changes the limit, 0 for none)")

    def test_max_errors_sets_the_limit_and_0_removes_it(self):
        spec = self.write("g.spec", garbage(50))
        r = protogen(spec, "--check", "--max-errors", "3")
        self.assertEqual((r.returncode, len(self.errors(r.stderr))), (1, 4), r.stderr)
        r = protogen(spec, "--check", "--max-errors", "0")
        self.assertEqual((r.returncode, len(self.errors(r.stderr))), (1, 51), r.stderr)
        self.assertNotIn("too many errors", r.stderr)
        r = protogen(spec, "--check", "--max-errors", "-1")
        self.assertEqual(r.returncode, 2)
        self.assertIn("protogen: error: argument --max-errors: takes a number of errors, 0 for no limit; got '-1'", r.stderr)

    def test_a_spec_with_exactly_the_limit_says_nothing_more(self):
        spec = self.write("g.spec", garbage(19))
        r = protogen(spec, "--check")
        self.assertEqual(len(self.errors(r.stderr)), 20)
        self.assertNotIn("too many errors", r.stderr)

    def test_help_and_docs_describe_max_errors(self):
        self.assertIn("--max-errors N", protogen("--help").stdout)
        self.assertIn("--max-errors N", read(os.path.join(TOP, "docs", "spec-language.md")))

    def quoted(self, stderr):
        """(quoted source text, caret line) of the first diagnostic."""
        lines = stderr.splitlines()
        source, caret = lines[1], lines[2]
        self.assertRegex(source, r"^ +\d+ \| ")
        gutter = source.index("| ") + 2
        return source[gutter:], caret[gutter:]

    def test_a_long_line_is_quoted_in_a_window_with_the_caret_on_the_culprit(self):
        text = "protocol echo { transport tcp; role server;" + " " * 5000 + "kind strem;" + " " * 5000 + "}\n"
        spec = self.write("long.spec", text)
        r = protogen(spec, "--check")
        self.assertEqual(r.returncode, 1)
        self.assertTrue(r.stderr.startswith(f"{spec}:1:5049: error: unknown kind 'strem'"), r.stderr)
        source, caret = self.quoted(r.stderr)
        self.assertLessEqual(len(source), 102)
        self.assertTrue(source.startswith("…") and source.endswith("…"), source)
        at = caret.index("^")
        self.assertEqual(caret[at:], "^~~~~")
        self.assertEqual(source[at:at + 5], "strem")

    def test_a_culprit_near_either_end_of_a_long_line_keeps_that_end(self):
        spec = self.write("start.spec", "protocol echo { transport tcq; role server; kind stream;" + " " * 3000 + "}\n")
        source, caret = self.quoted(protogen(spec, "--check").stderr)
        self.assertTrue(source.startswith("protocol echo {") and source.endswith("…"), source)
        self.assertEqual(source[caret.index("^"):][:3], "tcq")
        spec = self.write("end.spec", "protocol echo { role server; kind stream;" + " " * 3000 + "transport tcq; }\n")
        source, caret = self.quoted(protogen(spec, "--check").stderr)
        self.assertTrue(source.startswith("…") and source.endswith("transport tcq; }"), source)
        self.assertEqual(source[caret.index("^"):][:3], "tcq")


C11_HEADERS = ("assert complex ctype errno fenv float inttypes iso646 limits locale math setjmp signal "
               "stdalign stdarg stdatomic stdbool stddef stdint stdio stdlib stdnoreturn string tgmath "
               "threads time uchar wchar wctype").split()


class ReservedNames(TempDirTest):
    def check_name(self, name):
        spec = os.path.join(self.tmp, "n.spec")
        with open(spec, "w") as f:
            f.write(f"protocol {name} {{ transport tcp; role server; kind stream; }}\n")
        return protogen(spec, "--check"), spec

    def test_c_standard_header_names_are_refused_at_the_name(self):
        for name in [h for h in C11_HEADERS if h != "float"] + ["Errno", "STDIO"]:
            with self.subTest(name=name):
                r, spec = self.check_name(name)
                self.assertEqual(r.returncode, 1)
                self.assertEqual(r.stderr.splitlines()[0],
                                 f"{spec}:1:10: error: protocol name '{name}' is the name of a C standard "
                                 f"header: the generated {name}.h would hide <{name.lower()}.h>")

    def test_a_keyword_is_reported_as_a_keyword(self):
        r, spec = self.check_name("float")
        self.assertEqual(r.stderr.splitlines()[0], f"{spec}:1:10: error: protocol name 'float' is a C keyword")

    def test_the_runtime_prefix_is_refused(self):
        for name, why in (("pg", "is the runtime's prefix"), ("PG", "is the runtime's prefix"),
                          ("pg_", "uses the runtime's reserved prefix 'pg_'"),
                          ("pg_echo", "uses the runtime's reserved prefix 'pg_'")):
            with self.subTest(name=name):
                r, spec = self.check_name(name)
                self.assertEqual(r.returncode, 1)
                self.assertTrue(r.stderr.startswith(f"{spec}:1:10: error: protocol name '{name}' {why}"),
                                r.stderr)

    def test_names_that_only_resemble_them_are_fine(self):
        for name in ("errnos", "my_string", "pgx", "pgecho", "timer"):
            with self.subTest(name=name):
                r, _ = self.check_name(name)
                self.assertEqual((r.returncode, r.stderr), (0, ""))


class AllOrNothing(TempDirTest):
    def previous(self, *names):
        for name in names:
            with open(os.path.join(self.tmp, name), "w") as f:
                f.write("previous content\n")

    def leftovers(self):
        return [n for n in os.listdir(self.tmp) if n.startswith(".protogen-")]

    def test_an_output_that_is_a_directory_changes_nothing_and_is_named(self):
        self.previous("echo.h")
        os.mkdir(os.path.join(self.tmp, "echo.c"))
        before = tree(self.tmp)
        r = protogen(ECHO, "-o", self.tmp, "--handlers-dir", self.tmp)
        self.assertEqual(r.returncode, 2)
        self.assertEqual(r.stderr, f"protogen: error: cannot write {os.path.join(self.tmp, 'echo.c')}: "
                                   "Is a directory\n")
        self.assertEqual(tree(self.tmp), before)
        self.assertEqual(self.leftovers(), [])

    def test_a_failure_while_replacing_restores_what_was_replaced(self):
        self.previous("echo.h", "echo.c")
        before = tree(self.tmp)
        inode = os.stat(os.path.join(self.tmp, "echo.h")).st_ino
        source = os.path.join(self.tmp, "echo.c")
        real_replace = os.replace

        def failing_replace(src, dst):
            if dst == source and os.path.basename(src).startswith(".protogen-"):
                raise OSError(5, "Input/output error", src)
            return real_replace(src, dst)

        outputs = emit.render(_echo_model(), self.tmp, self.tmp)
        with mock.patch("os.replace", failing_replace):
            with self.assertRaises(OSError) as caught:
                emit.write(outputs)
        self.assertEqual((caught.exception.filename, caught.exception.strerror), (source, "Input/output error"))
        self.assertEqual(tree(self.tmp), before)
        self.assertEqual(os.stat(os.path.join(self.tmp, "echo.h")).st_ino, inode)
        self.assertEqual(self.leftovers(), [])

    def test_without_hard_links_the_backups_are_moved_aside_and_back(self):
        self.previous("echo.h", "echo.c")
        before = tree(self.tmp)
        source = os.path.join(self.tmp, "echo.c")
        real_replace, real_link = os.replace, os.link

        def failing_replace(src, dst):
            if dst == source and src.endswith(".tmp"):
                raise OSError(5, "Input/output error", src)
            return real_replace(src, dst)

        def no_links_for_backups(src, dst, **kwargs):
            if dst.endswith(".bak"):
                raise OSError(1, "Operation not permitted", dst)
            return real_link(src, dst, **kwargs)

        outputs = emit.render(_echo_model(), self.tmp, self.tmp)
        with mock.patch("os.replace", failing_replace), mock.patch("os.link", no_links_for_backups):
            with self.assertRaises(OSError):
                emit.write(outputs)
        self.assertEqual(tree(self.tmp), before)
        self.assertEqual(self.leftovers(), [])

    def test_a_failure_while_replacing_removes_what_was_created(self):
        source = os.path.join(self.tmp, "echo.c")
        real_replace = os.replace

        def failing_replace(src, dst):
            if dst == source:
                raise OSError(28, "No space left on device", src)
            return real_replace(src, dst)

        outputs = emit.render(_echo_model(), self.tmp, self.tmp)
        with mock.patch("os.replace", failing_replace):
            with self.assertRaises(OSError):
                emit.write(outputs)
        self.assertEqual(os.listdir(self.tmp), [])

    def test_a_directory_that_cannot_take_a_file_is_named_not_a_temp_file(self):
        outputs = emit.render(_echo_model(), os.path.join(self.tmp, "gone"), self.tmp)
        with self.assertRaises(OSError) as caught:
            emit.write(outputs)
        self.assertEqual(caught.exception.filename, os.path.join(self.tmp, "gone", "echo.h"))
        self.assertEqual(os.listdir(self.tmp), [])


def _echo_model():
    from protogen import check, parser

    return check.check(parser.parse(read(ECHO)), ECHO)


class Nesting(TempDirTest):
    def test_deep_braces_get_a_positioned_error(self):
        for depth in (500, 100_000):
            with self.subTest(depth=depth):
                spec = os.path.join(self.tmp, "deep.spec")
                with open(spec, "w") as f:
                    f.write("protocol echo {\n    callbacks " + "{ a " * depth + "}" * depth + "\n}\n")
                r = protogen(spec, "--check")
                self.assertEqual(r.returncode, 1)
                self.assertNotIn("internal error", r.stderr)
                # protocol { callbacks { a {... : the 64th block is the deepest allowed.
                col = len("    callbacks ") + 1 + 4 * 63
                self.assertEqual(r.stderr.splitlines()[0],
                                 f"{spec}:2:{col}: error: blocks nested too deep (the limit is 64)")

    def test_the_limit_itself_is_accepted_by_the_parser(self):
        from protogen import parser

        spec = parser.parse("protocol echo {" + " a {" * 63 + " }" * 63 + " }")
        self.assertEqual(spec.name.text, "echo")


class HandlerScanIsLinear(unittest.TestCase):
    """The handler-file check looks at each character a bounded number of times.

    The scan counts the characters it reads (drift.Scan.steps): that, not a clock,
    shows the work grows with the file and not with its square. Unterminated
    prototypes made the old regular expression rescan the rest of the file from
    every one of them (a 288 KB file took 51 s).
    """

    def steps(self, text):
        scan = drift.Scan(text, "echo_on_")
        found = scan.definitions()
        return found, scan.steps

    def test_unterminated_prototypes(self):
        for n in (1_000, 4_000):
            text = "".join(f"void echo_on_x{i}(int a,\n" for i in range(n))
            found, steps = self.steps(text)
            self.assertEqual(found, {})
            self.assertLessEqual(steps, 2 * len(text), n)

    def test_unterminated_comments_and_many_definitions(self):
        for text in ("/* echo_on_a(\n" * 5_000,
                     "void echo_on_a(void) {}\n" * 5_000,
                     "echo_on_a echo_on_b echo_on_c\n" * 5_000,
                     "void echo_on_a(\n" + "int x,\n" * 20_000 + ") {}\n"):
            found, steps = self.steps(text)
            self.assertLessEqual(steps, 2 * len(text), text[:30])

    def test_what_it_finds(self):
        text = ("#include \"echo.h\"\n"
                "/* void echo_on_commented(void) { } */\n"
                "// void echo_on_line_commented(void) { }\n"
                "void echo_on_proto(int a);\n"
                "static void\n"
                "echo_on_data_received(echo_conn *conn, struct echo_session *state,\n"
                "                      const uint8_t *data, size_t len)\n"
                "{\n"
                "    echo_on_call(conn); if (x) { }\n"
                "}\n"
                "bool  echo_on_eof_received (echo_conn *c) /* why */ {\n"
                "    return false;\n"
                "}\n"
                "int x = f(echo_on_nested(1)) { };\n")
        found, _ = self.steps(text)
        self.assertEqual({k: (p.line, p.col) for k, p in found.items()},
                         {"data_received": (6, 1), "eof_received": (11, 7)})


class LineEndings(TempDirTest):
    """The line the caret is under is the line the position names."""

    def run_on(self, text):
        spec = os.path.join(self.tmp, "e.spec")
        with open(spec, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        r = protogen(spec, "--check")
        self.assertEqual(r.returncode, 1)
        return r.stderr.replace(spec, "e.spec")

    def test_cr_only_line_endings_count_as_lines(self):
        err = self.run_on("protocol echo {\r transport tcp;\r role server;\r kind strem;\r}\r")
        self.assertEqual(err.splitlines()[:2], ["e.spec:4:7: error: unknown kind 'strem'; did you mean 'stream'?",
                                                "    4 |  kind strem;"])

    def test_crlf_line_endings(self):
        err = self.run_on("protocol echo {\r\n transport tcp;\r\n role server;\r\n kind strem;\r\n}\r\n")
        self.assertEqual(err.splitlines()[:2], ["e.spec:4:7: error: unknown kind 'strem'; did you mean 'stream'?",
                                                "    4 |  kind strem;"])

    def test_an_invalid_byte_after_cr_line_endings(self):
        spec = os.path.join(self.tmp, "e.spec")
        with open(spec, "wb") as f:
            f.write(b"protocol echo {\r transport tcp;\r role \xff;\r}\r")
        r = protogen(spec, "--check")
        self.assertEqual(r.stderr.replace(spec, "e.spec").splitlines()[:2],
                         ["e.spec:3:7: error: invalid UTF-8 byte 0xff", "    3 |  role \ufffd;"])

    def test_form_feeds_and_other_separators_do_not_end_lines(self):
        for sep in ("\f", "\v", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"):
            with self.subTest(sep=repr(sep)):
                text = f"protocol echo {{\n transport tcp;{sep} role server;\n kind strem;\n}}\n"
                lines = self.run_on(text).splitlines()
                if sep in "\f\v":   # blanks to the lexer: the error is the next line's
                    self.assertEqual(lines[:2], ["e.spec:3:7: error: unknown kind 'strem'; did you mean 'stream'?",
                                                 "    3 |  kind strem;"])
                else:                # a character that starts no token, on line 2, quoted as U+FFFD
                    self.assertTrue(lines[0].startswith("e.spec:2:16: error: unexpected character"), lines[0])
                    self.assertEqual(lines[1:3], ["    2 |  transport tcp;\ufffd role server;",
                                                  "      |                ^"])
                for l in lines:
                    self.assertNotIn(sep, l)   # never printed raw

    def test_a_handler_file_with_cr_line_endings(self):
        spec = os.path.join(self.tmp, "echo.spec")
        with open(spec, "w") as f:
            f.write("protocol echo { transport tcp; role server; kind stream; callbacks { data_received; } }\n")
        with open(os.path.join(self.tmp, "echo_handlers.c"), "w", newline="") as f:
            f.write("#include \"echo.h\"\r\rvoid echo_on_data_received(echo_conn *c, struct echo_session *s,\r"
                    "    const uint8_t *d, size_t n) { }\r\rvoid echo_on_connection_lost(echo_conn *c, "
                    "struct echo_session *s, int e) { }\r")
        r = protogen(spec, "--check")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stderr.replace(self.tmp + "/", "").splitlines()
        self.assertEqual(lines[0], "echo_handlers.c:6:6: warning: 'echo_on_connection_lost' is not declared in "
                                   "the spec's callbacks: it is never called")
        self.assertTrue(lines[1].startswith("    6 | void echo_on_connection_lost("), lines[1])


class HandlerPath(TempDirTest):
    def test_a_handler_path_that_is_no_file_is_an_io_error(self):
        spec = os.path.join(self.tmp, "echo.spec")
        with open(spec, "w") as f:
            f.write(read(ECHO))
        handlers = os.path.join(self.tmp, "echo_handlers.c")
        for what, make in (("is a directory", os.mkdir),
                           ("is a dangling symbolic link", lambda p: os.symlink("nowhere.c", p))):
            for extra in ((), ("--check",)):
                with self.subTest(what=what, args=extra):
                    make(handlers)
                    try:
                        r = protogen(spec, "-o", self.tmp, *extra)
                        self.assertEqual(r.returncode, 2)
                        self.assertEqual(r.stderr, f"protogen: error: handler file {handlers} {what}\n")
                        self.assertEqual(sorted(os.listdir(self.tmp)), ["echo.spec", "echo_handlers.c"])
                    finally:
                        (os.rmdir if os.path.isdir(handlers) and not os.path.islink(handlers) else os.unlink)(handlers)


if __name__ == "__main__":
    unittest.main()
