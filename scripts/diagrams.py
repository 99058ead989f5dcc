#!/usr/bin/env python3
"""Writes docs/diagrams.md: every example spec's machine as protogen draws it (Mermaid).

    python3 scripts/diagrams.py      (from the top of the tree)

tests/generator/test_docs.py fails when the page and protogen's drawings differ."""

import glob
import os
import sys

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, "generator"))
from protogen import check, diagram, parser  # noqa: E402

HEAD = """# Every example's machine

Each example's states as protogen draws them (`protogen SPEC --emit mermaid`; `--emit dot` for
Graphviz, and `protogen_generate(... DIAGRAMS)` renders an SVG at build time). A spec with
`states` draws them ([the states chapter](spec-language.md#states-transitions-and-timeouts));
one without draws asyncio's lifecycle of its kind, with flow control as self-loops and, for a
subprocess, the machine of each pipe. The same checked model gives the generated C tables.
`python3 scripts/diagrams.py` writes this page; a test keeps it equal to what protogen draws.
"""


def main():
    out = [HEAD]
    for spec in sorted(glob.glob(os.path.join(TOP, "examples", "*", "*.spec"))):
        rel = os.path.relpath(spec, TOP)
        with open(spec) as f:
            proto = check.check(parser.parse(f.read()), spec)
        out += [f"## [{rel}](../{rel})", "", "```mermaid", diagram.mermaid(proto).rstrip("\n"), "```", ""]
    with open(os.path.join(TOP, "docs", "diagrams.md"), "w") as f:
        f.write("\n".join(out))


if __name__ == "__main__":
    main()
