"""Positions in a spec and the errors reported against them."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Position:
    line: int  # 1-based
    col: int   # 1-based, in characters


@dataclass(frozen=True)
class Diagnostic:
    pos: Position
    message: str
    severity: str = "error"

    def format(self, filename: str) -> str:
        return f"{filename}:{self.pos.line}:{self.pos.col}: {self.severity}: {self.message}"


class SpecError(Exception):
    """One or more diagnostics that stop generation."""

    def __init__(self, diagnostics):
        super().__init__(diagnostics[0].message)
        self.diagnostics = list(diagnostics)


def error(pos: Position, message: str) -> SpecError:
    return SpecError([Diagnostic(pos, message)])


def did_you_mean(word: str, candidates) -> str:
    """' (did you mean 'x'?)' for the closest candidate, or ''."""
    import difflib

    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""
