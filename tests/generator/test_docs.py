"""The spec language reference stays true: its grammar is the parser's, and every
example spec in it (and in the README) is accepted by protogen."""

import os
import re
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(TOP, "generator"))

from protogen import check, diagram, emit, parser  # noqa: E402
from protogen.diagnostics import SpecError  # noqa: E402

DOCS = [os.path.join(TOP, "docs", "spec-language.md"), os.path.join(TOP, "README.md")]


def code_blocks(path):
    with open(path) as f:
        text = f.read()
    return [m.group(2) for m in re.finditer(r"^( *)```[a-z]*\n(.*?)^\1```", text, re.M | re.S)]


def dedent_block(block):
    lines = block.splitlines()
    indent = min((len(l) - len(l.lstrip()) for l in lines if l.strip()), default=0)
    return "\n".join(l[indent:] for l in lines) + "\n"


class Docs(unittest.TestCase):
    def test_every_examples_diagram_is_shown_as_protogen_draws_it(self):
        import glob
        with open(os.path.join(TOP, "docs", "diagrams.md")) as f:
            page = f.read()
        specs = sorted(glob.glob(os.path.join(TOP, "examples", "*", "*.spec")))
        self.assertGreaterEqual(len(specs), 10)
        for spec in specs:
            with self.subTest(spec=os.path.relpath(spec, TOP)):
                with open(spec) as f:
                    proto = check.check(parser.parse(f.read()), spec)
                self.assertIn("```mermaid\n" + diagram.mermaid(proto), page)

    def test_reference_quotes_the_parsers_grammar(self):
        blocks = code_blocks(DOCS[0])
        self.assertIn(parser.GRAMMAR, blocks)

    def test_reference_lists_every_output_of_the_plan(self):
        with open(DOCS[0]) as f:
            text = f.read()
        section = text[text.index("## What protogen writes"):text.index("## The command line")]
        rows = re.findall(r"^\| `(\w+)` \| `([\w.]+)` \|", section, re.M)
        self.assertEqual(rows, [(what, planned.filename.format(name="NAME")) for what, planned in emit.PLAN.items()])

    def test_every_example_spec_is_valid(self):
        examples = [dedent_block(b) for path in DOCS for b in code_blocks(path)
                    if re.search(r"^\s*protocol \w+ \{", b, re.M)]
        self.assertGreaterEqual(len(examples), 3)
        for text in examples:
            with self.subTest(example=text.splitlines()[0]):
                try:
                    check.check(parser.parse(text), "example.spec")
                except SpecError as e:
                    self.fail("\n".join(d.render("example.spec", text.splitlines()) for d in e.diagnostics))


if __name__ == "__main__":
    unittest.main()
