"""Make-style dependency files, so build systems regenerate exactly when needed."""

import os

from protogen import emit

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def generator_files(templates) -> list:
    """The generator's own sources and the templates a run used."""
    sources = sorted(os.path.join(PACKAGE_DIR, f) for f in os.listdir(PACKAGE_DIR) if f.endswith(".py"))
    return sources + [os.path.join(emit.templates_dir(), t) for t in sorted(templates)]


def _escape(path: str) -> str:
    return path.replace("\\", "\\\\").replace(" ", "\\ ").replace("#", "\\#").replace("$", "$$")


def output(path: str, targets, prerequisites) -> emit.Output:
    deps = " \\\n  ".join(_escape(p) for p in prerequisites)
    text = f"{' '.join(_escape(t) for t in targets)}: \\\n  {deps}\n"
    return emit.Output("depfile", path, text)
