"""Turns spec text into tokens: names, numbers (with an optional unit), and punctuation.

Comments run from '#' to the end of the line. Whitespace separates tokens.
"""

from dataclasses import dataclass

from protogen.diagnostics import Diagnostic, Position, normalized

NAME, NUMBER, LBRACE, RBRACE, SEMI, EOF = "name", "number", "'{'", "'}'", "';'", "end of file"

_PUNCT = {"{": LBRACE, "}": RBRACE, ";": SEMI}


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    pos: Position
    value: int = 0     # NUMBER: the digits' value
    unit: str = ""     # NUMBER: letters written right after the digits (64KiB)

    def describe(self) -> str:
        if self.kind == EOF:
            return "end of file"
        return f"'{self.text}'"


def _is_name_start(ch: str) -> bool:
    return ch == "_" or ("a" <= ch <= "z") or ("A" <= ch <= "Z")


def _is_name_char(ch: str) -> bool:
    return _is_name_start(ch) or ("0" <= ch <= "9")


def _is_digit(ch: str) -> bool:
    return "0" <= ch <= "9"


def tokenize(text: str, diagnostics: list) -> list:
    """The tokens of text; a character that starts no token is reported and skipped."""
    text = normalized(text)
    tokens = []
    i, line, line_start = 0, 1, 0
    n = len(text)
    while i < n:
        ch = text[i]
        pos = Position(line, i - line_start + 1)
        if ch == "\n":
            i += 1
            line, line_start = line + 1, i
        elif ch in " \t\f\v":
            i += 1
        elif ch == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif ch in _PUNCT:
            tokens.append(Token(_PUNCT[ch], ch, pos))
            i += 1
        elif _is_name_start(ch):
            start = i
            while i < n and _is_name_char(text[i]):
                i += 1
            tokens.append(Token(NAME, text[start:i], pos))
        elif _is_digit(ch):
            start = i
            while i < n and _is_digit(text[i]):
                i += 1
            digits = text[start:i]
            unit_start = i
            while i < n and _is_name_char(text[i]):
                i += 1
            if len(digits) > 30:
                diagnostics.append(Diagnostic(pos, f"number '{digits[:20]}...' is too large", length=i - start))
                continue
            tokens.append(Token(NUMBER, text[start:i], pos, int(digits), text[unit_start:i]))
        else:
            shown = ch if ch.isprintable() else f"\\x{ord(ch):02x}" if ord(ch) < 256 else f"U+{ord(ch):04X}"
            diagnostics.append(Diagnostic(pos, f"unexpected character '{shown}'"))
            i += 1
    tokens.append(Token(EOF, "", Position(line, n - line_start + 1)))
    return tokens
