"""Make-style dependency files, so build systems regenerate exactly when needed."""

import os

from protogen import emit, version

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def generator_files() -> list:
    """The generator's own sources, every template and the runtime's version.h: output depends on all of them."""
    sources = sorted(os.path.join(PACKAGE_DIR, f) for f in os.listdir(PACKAGE_DIR) if f.endswith(".py"))
    templates = []
    for root, _, files in os.walk(emit.templates_dir()):
        templates += [os.path.join(root, f) for f in files if f.endswith(".j2")]
    return sources + sorted(templates) + ([version.HEADER] if version.HEADER else [])


def _escape(path: str) -> str:
    return path.replace("\\", "\\\\").replace(" ", "\\ ").replace("#", "\\#").replace("$", "$$")


def output(path: str, targets, prerequisites) -> emit.Output:
    deps = " \\\n  ".join(_escape(p) for p in prerequisites)
    text = f"{' '.join(_escape(t) for t in targets)}: \\\n  {deps}\n"
    return emit.Output("depfile", path, text)
