"""Turns spec text into tokens: names, numbers (with an optional unit), strings, and punctuation.

Comments run from '#' to the end of the line. Whitespace separates tokens.
A string is written in double quotes on one line; its escapes are \\r \\n \\t
\\\\ \\" and \\xHH (any byte).
"""

from dataclasses import dataclass

from protogen.diagnostics import Diagnostic, Position, normalized

NAME, NUMBER, STRING, LBRACE, RBRACE, SEMI, EOF = "name", "number", "string", "'{'", "'}'", "';'", "end of file"

_PUNCT = {"{": LBRACE, "}": RBRACE, ";": SEMI}


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    pos: Position
    value: int = 0     # NUMBER: the digits' value
    unit: str = ""     # NUMBER: letters written right after the digits (64KiB)
    data: bytes = b""  # STRING: the bytes it stands for, escapes resolved

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


_ESCAPES = {"r": 13, "n": 10, "t": 9, "\\": 92, '"': 34}
_HEX = "0123456789abcdefABCDEF"


def _string(text: str, i: int, line: int, line_start: int, diagnostics: list):
    """The STRING token whose opening quote is at i (or None after reporting it), and where it ends."""
    start = i
    pos = Position(line, i - line_start + 1)
    data = bytearray()
    ok = True
    i += 1
    n = len(text)
    while True:
        if i >= n or text[i] == "\n":
            diagnostics.append(Diagnostic(pos, "unterminated string: close it with '\"' on the same line",
                                          length=i - start))
            return Token(STRING, text[start:i], pos, data=bytes(data)), i   # taken as a string: no cascade
        ch = text[i]
        if ch == '"':
            i += 1
            break
        if ch != "\\":
            data += ch.encode("utf-8")
            i += 1
            continue
        esc_pos = Position(line, i - line_start + 1)
        nxt = text[i + 1] if i + 1 < n else ""
        if nxt and nxt in _ESCAPES:
            data.append(_ESCAPES[nxt])
            i += 2
        elif nxt == "x" and len(text[i + 2:i + 4]) == 2 and all(c in _HEX for c in text[i + 2:i + 4]):
            data.append(int(text[i + 2:i + 4], 16))
            i += 4
        else:
            shown = nxt if nxt.isprintable() and nxt not in ("", "\n") else ""
            what = f"'\\{shown}'" if shown else "'\\' at the end"
            hint = "\\x takes two hex digits" if nxt == "x" else "escapes are \\r \\n \\t \\\\ \\\" \\xHH"
            diagnostics.append(Diagnostic(esc_pos, f"bad escape {what} in a string: {hint}",
                                          length=2 if shown else 1))
            ok = False
            i += 2 if shown else 1
    if not ok:
        return None, i
    return Token(STRING, text[start:i], pos, data=bytes(data)), i


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
        elif ch == '"':
            tok, i = _string(text, i, line, line_start, diagnostics)
            if tok is not None:
                tokens.append(tok)
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
