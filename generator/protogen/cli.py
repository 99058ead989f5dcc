"""The protogen command line."""

import argparse
import os
import sys

from protogen import VERSION, check, depfile, drift, emit, parser, re2c, version
from protogen.diagnostics import ERROR, WARNING, Diagnostic, SpecError, end_position, source_lines

EXIT_OK, EXIT_SPEC_ERROR, EXIT_USAGE = 0, 1, 2

USAGE_EXAMPLES = """\
examples:
  protogen echo.spec                 writes echo.h, echo.c and echo_bind.c here, and
                                     echo_handlers.c beside echo.spec if it does not exist yet
  protogen echo.spec -o build/gen    writes echo.h, echo.c and echo_bind.c into build/gen
  protogen --check echo.spec         checks the spec, writes nothing
  protogen --list-outputs echo.spec -o build/gen
                                     prints the paths it would write, one per line
  protogen echo.spec --emit header,source,bind -M build/echo.d
                                     what a build system runs: never touches the
                                     handler file, lists dependencies for make/ninja

exit status: 0 success (warnings allowed), 1 errors in the spec, 2 usage or I/O error
"""


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message):
        self.print_usage(sys.stderr)
        print(f"protogen: error: {message}", file=sys.stderr)
        sys.exit(EXIT_USAGE)


DEFAULT_MAX_ERRORS = 20


def _error_limit(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"takes a number of errors, 0 for no limit; got '{text}'")
    return int(text)


def _arguments():
    ap = _ArgumentParser(
        prog="protogen",
        description="Generate non-blocking C protocol code from a protogen spec.",
        epilog=USAGE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("spec", help="the protocol spec to compile")
    ap.add_argument("-o", "--out-dir", default=".", metavar="DIR",
                    help="where to write NAME.h, NAME.c and NAME_bind.c (default: the current directory)")
    ap.add_argument("--handlers-dir", metavar="DIR",
                    help="where NAME_handlers.c lives: created there if absent (default: beside the spec)")
    ap.add_argument("--emit", default=",".join(emit.DEFAULT_OUTPUTS), metavar="LIST",
                    help="comma-separated outputs to write: "
                         + ", ".join(f"{what} ({planned.filename.format(name='NAME')})"
                                     for what, planned in emit.PLAN.items())
                         + f" (default: {','.join(emit.DEFAULT_OUTPUTS)}; dot and mermaid draw the protocol's states)")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="check the spec and the handlers; write nothing")
    mode.add_argument("--list-outputs", action="store_true",
                      help="print the paths of the outputs (--emit) one per line, in the order "
                           f"{', '.join(emit.OUTPUTS)}, then the depfile's (-M); write nothing")
    ap.add_argument("-M", "--depfile", metavar="FILE",
                    help="also write Make-style dependencies of the outputs to FILE")
    ap.add_argument("-Werror", dest="werror", action="store_true", help="treat warnings as errors")
    ap.add_argument("-w", dest="no_warnings", action="store_true", help="do not report warnings")
    ap.add_argument("--max-errors", type=_error_limit, default=DEFAULT_MAX_ERRORS, metavar="N",
                    help=f"stop after N errors (default: {DEFAULT_MAX_ERRORS}; 0: no limit)")
    ap.add_argument("--version", action="version", version=f"protogen {VERSION}")
    return ap


def _read_spec(path):
    """The spec's text, or a SpecError positioned at the first byte that is not UTF-8."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SpecError([Diagnostic(end_position(data[: e.start].decode("utf-8")),
                                    f"invalid UTF-8 byte 0x{data[e.start]:02x}")])


def _use_colour() -> bool:
    return sys.stderr.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


class _Reporter:
    """Prints diagnostics against the file they belong to, counting them; after
    --max-errors errors it says so once and prints nothing more (as compilers do)."""

    def __init__(self, args):
        self.args = args
        self.colour = _use_colour()
        self.errors = 0
        self.stopped = False
        self.sources = {}

    def source_lines(self, path):
        if path not in self.sources:
            try:
                with open(path, encoding="utf-8", errors="replace", newline="") as f:
                    self.sources[path] = source_lines(f.read())
            except OSError:
                self.sources[path] = None
        return self.sources[path]

    def report(self, diagnostics, path):
        for d in diagnostics:
            if d.severity == WARNING:
                if self.args.no_warnings:
                    continue
                if self.args.werror:
                    d = Diagnostic(d.pos, d.message + " [-Werror]", ERROR, d.length, d.notes)
            if self.stopped:
                return
            if d.severity == ERROR:
                if self.errors == self.args.max_errors > 0:
                    print("protogen: error: too many errors emitted, stopping now "
                          "(--max-errors N changes the limit, 0 for none)", file=sys.stderr)
                    self.stopped = True
                    return
                self.errors += 1
            print(d.render(path, self.source_lines(path), self.colour), file=sys.stderr)


def _run(args) -> int:
    wanted = [w.strip() for w in args.emit.split(",") if w.strip()]
    unknown = [w for w in wanted if w not in emit.OUTPUTS]
    if unknown or not wanted:
        print(f"protogen: error: --emit takes a list of {', '.join(emit.OUTPUTS)}; got '{args.emit}'", file=sys.stderr)
        return EXIT_USAGE
    reporter = _Reporter(args)
    warnings = []
    try:
        text = _read_spec(args.spec)
        reporter.sources[args.spec] = source_lines(text)
        proto = check.check(parser.parse(text), args.spec, warnings)
    except OSError as e:
        print(f"protogen: error: cannot read {args.spec}: {e.strerror}", file=sys.stderr)
        return EXIT_USAGE
    except SpecError as e:
        reporter.report(e.diagnostics, args.spec)
        return EXIT_SPEC_ERROR
    handlers_dir = args.handlers_dir or os.path.dirname(args.spec) or "."
    if args.list_outputs:   # what a build system asks at configure time: errors only, no warnings
        for _, path in emit.paths(proto, args.out_dir, handlers_dir, wanted):
            print(path)
        if args.depfile:
            print(args.depfile)
        return EXIT_OK
    reporter.report(warnings, args.spec)
    scanner_source = None
    if emit.has_scanner(proto):   # re2c's own warnings about the rules, at the spec's positions
        scanner_source = emit.render_template(proto, "source")
        try:
            reporter.report(re2c.lint(scanner_source), args.spec)
        except re2c.Re2cError as e:
            print(f"protogen: error: {e}", file=sys.stderr)
            return EXIT_USAGE

    [(_, handlers_path)] = emit.paths(proto, args.out_dir, handlers_dir, ["handlers"])
    if os.path.lexists(handlers_path) and not os.path.isfile(handlers_path):
        what = ("a dangling symbolic link" if not os.path.exists(handlers_path) else
                "a directory" if os.path.isdir(handlers_path) else "not a regular file")
        print(f"protogen: error: handler file {handlers_path} is {what}", file=sys.stderr)
        return EXIT_USAGE
    if os.path.exists(handlers_path):
        try:
            spec_warnings, handler_warnings = drift.compare(proto, handlers_path)
        except OSError as e:
            print(f"protogen: error: cannot read {handlers_path}: {e.strerror}", file=sys.stderr)
            return EXIT_USAGE
        reporter.report(spec_warnings, args.spec)
        reporter.report(handler_warnings, handlers_path)
    if reporter.errors:
        return EXIT_SPEC_ERROR
    if args.check:
        return EXIT_OK

    directories = [("--out-dir", args.out_dir)] if any(not emit.PLAN[w].in_handlers_dir for w in wanted) else []
    if any(emit.PLAN[w].in_handlers_dir for w in wanted):
        directories.append(("--handlers-dir", handlers_dir))
    for what, directory in directories:
        if not os.path.isdir(directory):
            print(f"protogen: error: {what} {directory} is not a directory", file=sys.stderr)
            return EXIT_USAGE
    try:
        outputs = emit.render(proto, args.out_dir, handlers_dir, wanted, scanner_source)
        extra = []
        if args.depfile:
            generated = [o.path for o in outputs if not o.user_file]
            extra.append(depfile.output(args.depfile, generated or [o.path for o in outputs],
                                        [args.spec] + depfile.generator_files()))
        emit.write(outputs + extra)
    except OSError as e:
        print(f"protogen: error: cannot write {e.filename or 'output'}: {e.strerror}", file=sys.stderr)
        return EXIT_USAGE
    except re2c.Re2cError as e:
        print(f"protogen: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def main(argv=None) -> int:
    if version.PROBLEM:   # an installation that lost the runtime's version.h
        print(f"protogen: error: {version.PROBLEM}", file=sys.stderr)
        return EXIT_USAGE
    args = _arguments().parse_args(argv)
    try:
        return _run(args)
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # never a traceback: report and fail
        print(f"protogen: internal error: {type(e).__name__}: {e} (please report this with your spec)", file=sys.stderr)
        return EXIT_USAGE
