"""Positions in a spec and the diagnostics reported against them, rendered like a compiler's:

    echo.spec:7:9: error: unknown callback 'data_recieved' for kind 'stream'; did you mean 'data_received'?
        7 |         data_recieved;
          |         ^~~~~~~~~~~~~
"""

import difflib
from dataclasses import dataclass

ERROR, WARNING, NOTE = "error", "warning", "note"

_COLOURS = {ERROR: "\033[1;31m", WARNING: "\033[1;35m", NOTE: "\033[1;36m"}
_BOLD, _GREEN, _RESET = "\033[1m", "\033[1;32m", "\033[0m"


@dataclass(frozen=True)
class Position:
    line: int  # 1-based
    col: int   # 1-based, in characters


@dataclass(frozen=True)
class Diagnostic:
    pos: Position
    message: str
    severity: str = ERROR
    length: int = 1           # characters to underline
    notes: tuple = ()         # extra lines printed after the source excerpt

    def render(self, filename: str, lines=None, colour: bool = False) -> str:
        """The diagnostic; with the spec's lines, also the culprit line and a caret."""
        head = f"{filename}:{self.pos.line}:{self.pos.col}: "
        if colour:
            head = f"{_BOLD}{head}{_COLOURS[self.severity]}{self.severity}:{_RESET}{_BOLD} {self.message}{_RESET}"
        else:
            head = f"{head}{self.severity}: {self.message}"
        out = [head]
        if lines is not None and 1 <= self.pos.line <= len(lines):
            text = lines[self.pos.line - 1].rstrip("\r\n").replace("\t", " ")
            gutter = f"{self.pos.line:5d} | "
            pad = " " * (len(gutter) - 2) + "| "
            caret = "^" + "~" * (max(1, self.length) - 1)
            if colour:
                caret = f"{_GREEN}{caret}{_RESET}"
            out.append(gutter + text)
            out.append(pad + " " * (self.pos.col - 1) + caret)
        out.extend(self.notes)
        return "\n".join(out)


class SpecError(Exception):
    """Diagnostics that stop generation (and any warnings found on the way)."""

    def __init__(self, diagnostics):
        super().__init__(diagnostics[0].message)
        self.diagnostics = list(diagnostics)


def error(pos: Position, message: str, length: int = 1) -> SpecError:
    return SpecError([Diagnostic(pos, message, ERROR, length)])


def did_you_mean(word: str, candidates) -> str:
    """"; did you mean 'x'?" for the closest candidate, or ''."""
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""
