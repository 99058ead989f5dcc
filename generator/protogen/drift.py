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


_WORD = re.compile(r"\w+")


class Scan:
    """Finds the handler functions a C file defines (name -> Position) in one pass.

    A definition is, at the start of a line after only words, blanks and '*', a name
    starting with prefix, then '(', and a '{' that comes before any ';' with ')' the
    last thing before it; comments count as blanks. Every character is read once and
    steps counts them: a file of prototypes without their ')' or ';' used to make a
    regular expression rescan the rest of the file from each of them (quadratic).
    """

    def __init__(self, text: str, prefix: str):
        self.text = text
        self.prefix = prefix
        self.steps = 0

    def definitions(self) -> dict:
        text, prefix, n = self.text, self.prefix, len(self.text)
        found = {}
        i, line, line_start = 0, 1, 0
        line_ok = True      # only words, ' ', '\t' and '*' since the line began
        pending = None      # (name, position): a prefixed name that a '(' would make a candidate
        opened = []         # candidates waiting for the first ';' or '{'; the first one wins
        last = ""           # the last character that is not blank or in a comment
        while i < n:
            c = text[i]
            if c == "\n":
                i, line, line_start, line_ok = i + 1, line + 1, i + 1, True
            elif c in " \t":
                i += 1
            elif c.isspace():
                i, line_ok = i + 1, False
            elif c == "/" and text.startswith("/*", i):
                close = text.find("*/", i + 2)
                stop = n if close < 0 else close + 2
                newlines = text.count("\n", i, stop)
                if newlines:
                    line, line_start, line_ok = line + newlines, text.rfind("\n", i, stop) + 1, True
                self.steps += stop - i - 1
                i = stop
            elif c == "/" and text.startswith("//", i):
                close = text.find("\n", i)
                stop = n if close < 0 else close
                self.steps += stop - i - 1
                i = stop
            elif c == "_" or c.isalnum():
                word = _WORD.match(text, i).group(0)
                if line_ok and len(word) > len(prefix) and word.startswith(prefix):
                    pending = (word[len(prefix):], Position(line, i - line_start + 1))
                else:
                    pending = None
                self.steps += len(word) - 1
                i += len(word)
                last = word[-1]
            else:
                if c == "(" and pending:
                    opened.append(pending)
                elif c == "{" and opened and last == ")":
                    found.setdefault(*opened[0])
                if c in ";{":
                    opened.clear()
                if c != "*":
                    line_ok = False
                pending, last = None, c
                i += 1
            self.steps += 1
        return found


def compare(proto, handlers_path):
    """(warnings against the spec, warnings against the handler file); OSError if it cannot be read."""
    with open(handlers_path, encoding="utf-8", errors="replace", newline="") as f:
        text = normalized(f.read())
    prefix = f"{proto.name}_on_"
    defined = Scan(text, prefix).definitions()
    spec_warnings, file_warnings = [], []
    declared = {cb.name: cb for cb in proto.user_callbacks}
    for name, cb in declared.items():
        if name not in defined:
            pos = proto.callback_positions.get(name, Position(1, 1))
            spec_warnings.append(Diagnostic(
                pos, f"callback '{name}' has no handler in {handlers_path}: the program will not link",
                WARNING, len(name),
                notes=(f"{handlers_path}: {NOTE}: add: {_prototype(proto, cb)}",)))
    old = re.search(rf"\bstruct {proto.name}_state\b", text)
    if old and f"struct {proto.name}_session" not in text:
        line = text.count("\n", 0, old.start()) + 1
        col = old.start() - (text.rfind("\n", 0, old.start()) + 1) + 1
        file_warnings.append(Diagnostic(
            Position(line, col), f"'struct {proto.name}_state' is now 'struct {proto.name}_session', and "
            f"{proto.name}_state_size is {proto.name}_session_size: rename both (the spec's states took the word)",
            WARNING, len(old.group(0))))
    for name, pos in defined.items():
        if name not in declared:
            known = any(cb.name == name for cb in proto.callbacks)
            why = "is not declared in the spec's callbacks" if known else f"is not a callback of kind '{proto.kind.name}'"
            file_warnings.append(Diagnostic(
                pos, f"'{prefix}{name}' {why}: it is never called", WARNING, len(prefix + name)))
    return spec_warnings, file_warnings
