"""Compares the user's handler file with the spec, after the spec changed.

protogen never edits NAME_handlers.c. Instead it says which handlers the spec
now needs that the file lacks (with their prototypes, to paste in), and which
ones the file defines that nothing calls any more: no surprise at link time.
"""

import re

from protogen.diagnostics import NOTE, WARNING, Diagnostic, Position, normalized


def _prototype(proto, cb) -> str:
    from protogen.emit import c_params

    return f"{cb.returns} {proto.name}_on_{cb.name}({c_params(cb, proto)})"


def _definitions(text: str, prefix: str) -> dict:
    """Handler functions defined in text: name -> Position. Comments are skipped."""
    code = re.sub(r"/\*.*?\*/|//[^\n]*", lambda m: re.sub(r"[^\n]", " ", m.group(0)), text, flags=re.S)
    found = {}
    pattern = re.compile(r"^[\w \t\*]*?\b" + re.escape(prefix) + r"(\w+)\s*\([^;{]*\)\s*\{", re.M)
    for m in pattern.finditer(code):
        start = m.start(1) - len(prefix)
        line = code.count("\n", 0, start) + 1
        col = start - (code.rfind("\n", 0, start) + 1) + 1
        found.setdefault(m.group(1), Position(line, col))
    return found


def compare(proto, handlers_path):
    """(warnings against the spec, warnings against the handler file); OSError if it cannot be read."""
    with open(handlers_path, encoding="utf-8", errors="replace", newline="") as f:
        text = normalized(f.read())
    prefix = f"{proto.name}_on_"
    defined = _definitions(text, prefix)
    spec_warnings, file_warnings = [], []
    declared = {cb.name: cb for cb in proto.user_callbacks}
    for name, cb in declared.items():
        if name not in defined:
            pos = proto.callback_positions.get(name, Position(1, 1))
            spec_warnings.append(Diagnostic(
                pos, f"callback '{name}' has no handler in {handlers_path}: the program will not link",
                WARNING, len(name),
                notes=(f"{handlers_path}: {NOTE}: add: {_prototype(proto, cb)}",)))
    for name, pos in defined.items():
        if name not in declared:
            known = any(cb.name == name for cb in proto.callbacks)
            why = "is not declared in the spec's callbacks" if known else f"is not a callback of kind '{proto.kind.name}'"
            file_warnings.append(Diagnostic(
                pos, f"'{prefix}{name}' {why}: it is never called", WARNING, len(prefix + name)))
    return spec_warnings, file_warnings
