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
    notes: tuple = ()         # extra lines printed after the source excerpt; (Position, text): a note there

    def render(self, filename: str, lines=None, colour: bool = False) -> str:
        """The diagnostic; with the spec's lines, also the culprit line and a caret."""
        head = f"{filename}:{self.pos.line}:{self.pos.col}: "
        if colour:
            head = f"{_BOLD}{head}{_COLOURS[self.severity]}{self.severity}:{_RESET}{_BOLD} {self.message}{_RESET}"
        else:
            head = f"{head}{self.severity}: {self.message}"
        out = [head]
        if lines is not None and 1 <= self.pos.line <= len(lines):
            text, col, length = _window(lines[self.pos.line - 1], self.pos.col, max(1, self.length))
            text = _shown(text)
            gutter = f"{self.pos.line:5d} | "
            pad = " " * (len(gutter) - 2) + "| "
            caret = "^" + "~" * (length - 1)
            if colour:
                caret = f"{_GREEN}{caret}{_RESET}"
            out.append(gutter + text)
            out.append(pad + " " * (col - 1) + caret)
        for note in self.notes:
            if isinstance(note, tuple):
                where, text = note
                out.append(f"{filename}:{where.line}:{where.col}: {NOTE}: {text}")
            else:
                out.append(note)
        return "\n".join(out)


def normalized(text: str) -> str:
    """text with every line ended by '\n': the one definition of a line that positions,
    the lexer and quoted lines share. '\r\n' and a lone '\r' end a line too (as in C
    compilers); form feeds, U+2028 and the other separators str.splitlines() knows do not."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def source_lines(text: str) -> list:
    """The lines of text, numbered as positions number them (from 1, at index 0); the end
    of the last line starts none."""
    lines = normalized(text).split("\n")
    if lines[-1] == "":
        lines.pop()
    return lines


def end_position(text: str) -> Position:
    """The position just after text."""
    lines = normalized(text).split("\n")
    return Position(len(lines), len(lines[-1]) + 1)


def _shown(text: str) -> str:
    """A quoted line as one printable character per column: blanks as spaces, any other
    control or separator character as U+FFFD (printed raw it would move the cursor)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else " " if c in "\t\f\v" else "\ufffd" for c in text)


MAX_QUOTED = 100   # characters of a source line quoted under a diagnostic, markers included
_CONTEXT = 30      # of them, how many come before the culprit when the line is cut


def _window(text: str, col: int, length: int):
    """(text, col, length) cut to at most MAX_QUOTED characters around col, each cut end
    marked with '…', so that a long line costs a bounded amount and the caret still
    points at the culprit (col and length are moved and clipped to match)."""
    if len(text) <= MAX_QUOTED:
        return text, col, length
    keep = MAX_QUOTED - 2
    start = max(0, min(col - 1 - _CONTEXT, len(text) - keep))
    end = start + keep
    shown = ("…" if start else "") + text[start:end] + ("…" if end < len(text) else "")
    col = col - start + (1 if start else 0)
    return shown, col, max(1, min(length, len(shown) - col + 1))


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
