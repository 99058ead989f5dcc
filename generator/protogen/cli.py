"""The protogen command line."""

import argparse
import os
import sys

from protogen import VERSION, check, emit, parser
from protogen.diagnostics import Diagnostic, Position, SpecError

EXIT_OK, EXIT_SPEC_ERROR, EXIT_USAGE = 0, 1, 2

USAGE_EXAMPLES = """\
examples:
  protogen echo.spec                 writes echo.h, echo.c here, and echo_handlers.c
                                     beside echo.spec if it does not exist yet
  protogen echo.spec -o build/gen    writes echo.h and echo.c into build/gen
  protogen echo.spec --emit header,source
                                     never touches the handler file
"""


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message):
        self.print_usage(sys.stderr)
        print(f"protogen: error: {message}", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def _arguments():
    ap = _ArgumentParser(
        prog="protogen",
        description="Generate non-blocking C protocol code from a protogen spec.",
        epilog=USAGE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("spec", help="the protocol spec to compile")
    ap.add_argument("-o", "--out-dir", default=".", metavar="DIR",
                    help="where to write NAME.h and NAME.c (default: the current directory)")
    ap.add_argument("--handlers-dir", metavar="DIR",
                    help="where to create NAME_handlers.c if absent (default: beside the spec)")
    ap.add_argument("--emit", default=",".join(emit.OUTPUTS), metavar="LIST",
                    help="comma-separated outputs to write: header, source, handlers (default: all)")
    ap.add_argument("--version", action="version", version=f"protogen {VERSION}")
    return ap


def _read_spec(path):
    """The spec's text, or a SpecError positioned at the first byte that is not UTF-8."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        before = data[: e.start]
        line = before.count(b"\n") + 1
        col = len(before[before.rfind(b"\n") + 1:].decode("utf-8", "replace")) + 1
        raise SpecError([Diagnostic(Position(line, col), f"invalid UTF-8 byte 0x{data[e.start]:02x}")])


def _run(args) -> int:
    wanted = [w.strip() for w in args.emit.split(",") if w.strip()]
    unknown = [w for w in wanted if w not in emit.OUTPUTS]
    if unknown or not wanted:
        print(f"protogen: error: --emit takes a list of {', '.join(emit.OUTPUTS)}; got '{args.emit}'", file=sys.stderr)
        return EXIT_USAGE
    try:
        text = _read_spec(args.spec)
        proto = check.check(parser.parse(text), args.spec)
    except OSError as e:
        print(f"protogen: error: cannot read {args.spec}: {e.strerror}", file=sys.stderr)
        return EXIT_USAGE
    except SpecError as e:
        for d in e.diagnostics:
            print(d.format(args.spec), file=sys.stderr)
        return EXIT_SPEC_ERROR

    handlers_dir = args.handlers_dir or os.path.dirname(args.spec) or "."
    for what, directory in (("--out-dir", args.out_dir), ("--handlers-dir", handlers_dir)):
        if not os.path.isdir(directory):
            print(f"protogen: error: {what} {directory} is not a directory", file=sys.stderr)
            return EXIT_USAGE
    try:
        emit.write(emit.render(proto, args.out_dir, handlers_dir, wanted))
    except OSError as e:
        print(f"protogen: error: cannot write {e.filename or 'output'}: {e.strerror}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def main(argv=None) -> int:
    args = _arguments().parse_args(argv)
    try:
        return _run(args)
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # never a traceback: report and fail
        print(f"protogen: internal error: {type(e).__name__}: {e} (please report this with your spec)", file=sys.stderr)
        return EXIT_USAGE
