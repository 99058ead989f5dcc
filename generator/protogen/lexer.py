"""Turns spec text into tokens: names, numbers (with an optional unit), strings, and punctuation.

Comments run from '#' to the end of the line. Whitespace separates tokens.
An arrow `->` separates a transition's event from its target states.
A string is written in double quotes on one line; its escapes are \\r \\n \\t
\\\\ \\" and \\xHH (any byte).

Inside the braces of `message NAME { ... }` (a framing rules block) the text is
a pattern, and the lexer also knows a pattern's tokens: strings in single
quotes (matched without regard to ASCII case), byte classes `[a-z\\r]` and
`[^...]`, and the punctuation ( ) | * + ? : ,
"""

from dataclasses import dataclass

from protogen.diagnostics import Diagnostic, Position, normalized

NAME, NUMBER, STRING, LBRACE, RBRACE, SEMI, EOF = "name", "number", "string", "'{'", "'}'", "';'", "end of file"
ARROW = "'->'"   # a transition's targets follow it: on helo -> ready;
ISTRING, CLASS = "case-insensitive string", "byte class"   # in patterns only

_PUNCT = {"{": LBRACE, "}": RBRACE, ";": SEMI}
PATTERN_PUNCT = "()|*+?:,"   # each its own kind, named by itself


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    pos: Position
    value: int = 0     # NUMBER: the digits' value
    unit: str = ""     # NUMBER: letters written right after the digits (64KiB)
    data: bytes = b""  # STRING, ISTRING: the bytes it stands for, escapes resolved
    ranges: tuple = ()  # CLASS: the (low, high) byte ranges it matches, negation applied

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


def _escape(text: str, i: int, line: int, line_start: int, diagnostics: list, where: str, extra: str = ""):
    """The byte of the escape whose backslash is at i (None after reporting it), and where it ends."""
    n = len(text)
    nxt = text[i + 1] if i + 1 < n else ""
    if nxt and (nxt in _ESCAPES or nxt in extra):
        return _ESCAPES.get(nxt, ord(nxt)), i + 2
    if nxt == "x" and len(text[i + 2:i + 4]) == 2 and all(c in _HEX for c in text[i + 2:i + 4]):
        return int(text[i + 2:i + 4], 16), i + 4
    shown = nxt if nxt.isprintable() and nxt not in ("", "\n") else ""
    what = f"'\\{shown}'" if shown else "'\\' at the end"
    listed = " ".join("\\" + c for c in ("r", "n", "t", "\\", '"') + tuple(extra))
    hint = "\\x takes two hex digits" if nxt == "x" else f"escapes are {listed} \\xHH"
    diagnostics.append(Diagnostic(Position(line, i - line_start + 1), f"bad escape {what} in {where}: {hint}",
                                  length=2 if shown else 1))
    return None, i + (2 if shown else 1)


def _string(text: str, i: int, line: int, line_start: int, diagnostics: list):
    """The STRING (or, in single quotes, ISTRING) token whose opening quote is at i (or None after
    reporting it), and where it ends."""
    quote = text[i]
    kind = STRING if quote == '"' else ISTRING
    start = i
    pos = Position(line, i - line_start + 1)
    data = bytearray()
    ok = True
    i += 1
    n = len(text)
    while True:
        if i >= n or text[i] == "\n":
            diagnostics.append(Diagnostic(pos, f"unterminated string: close it with '{quote}' on the same line",
                                          length=i - start))
            return Token(kind, text[start:i], pos, data=bytes(data)), i   # taken as a string: no cascade
        ch = text[i]
        if ch == quote:
            i += 1
            break
        if ch != "\\":
            data += ch.encode("utf-8")
            i += 1
            continue
        byte, i = _escape(text, i, line, line_start, diagnostics, "a string", "'" if quote == "'" else "")
        if byte is None:
            ok = False
        else:
            data.append(byte)
    if not ok:
        return None, i
    return Token(kind, text[start:i], pos, data=bytes(data)), i


def _class(text: str, i: int, line: int, line_start: int, diagnostics: list):
    """The CLASS token whose '[' is at i (or None after reporting it), and where it ends.

    A class lists bytes and ranges (a-z); a leading ^ negates it. Escapes are a
    string's, plus \\] \\[ \\- \\^."""
    start = i
    pos = Position(line, i - line_start + 1)
    n = len(text)
    i += 1
    negated = i < n and text[i] == "^"
    if negated:
        i += 1
    items, ok = [], True   # of (byte, column)
    while True:
        if i >= n or text[i] == "\n":
            diagnostics.append(Diagnostic(pos, "unterminated byte class: close it with ']' on the same line",
                                          length=i - start))
            return None, i
        ch = text[i]
        col = i - line_start + 1
        if ch == "]":
            i += 1
            break
        if ch == "\\":
            byte, i = _escape(text, i, line, line_start, diagnostics, "a byte class", "]-^[")
            if byte is None:
                ok = False
                continue
            items.append((byte, col, True))
            continue
        encoded = ch.encode("utf-8")
        if len(encoded) > 1:
            diagnostics.append(Diagnostic(Position(line, col), f"'{ch}' is not one byte: write its bytes "
                                          f"as \\xHH in a byte class"))
            ok = False
        else:
            items.append((encoded[0], col, False))
        i += 1
    ranges, k = [], 0
    while k < len(items):
        low, col, _ = items[k]
        if k + 2 < len(items) and items[k + 1][0] == ord("-") and not items[k + 1][2]:
            high = items[k + 2][0]
            if high < low:
                diagnostics.append(Diagnostic(Position(line, col), f"range {text[start + (col - pos.col):i - 1][:20]} "
                                              "is backwards: write the lower byte first", length=1))
                ok = False
            ranges.append((low, high))
            k += 3
        else:
            ranges.append((low, low))
            k += 1
    if not ok:   # reported: taken as a class of every byte, so that no error follows from it
        return Token(CLASS, text[start:i], pos, ranges=((0, 255),)), i
    if not ranges:
        diagnostics.append(Diagnostic(pos, "empty byte class: it matches nothing" if not negated else
                                      "'[^]' matches any byte: say so with [\\x00-\\xff]", length=i - start))
        return Token(CLASS, text[start:i], pos, ranges=((0, 255),)), i
    covered = [False] * 256
    for low, high in ranges:
        for b in range(low, high + 1):
            covered[b] = True
    if negated:
        covered = [not c for c in covered]
    merged, b = [], 0
    while b < 256:
        if covered[b]:
            e = b
            while e + 1 < 256 and covered[e + 1]:
                e += 1
            merged.append((b, e))
            b = e + 1
        else:
            b += 1
    if not merged:
        diagnostics.append(Diagnostic(pos, "this byte class excludes every byte: it matches nothing",
                                      length=i - start))
        return Token(CLASS, text[start:i], pos, ranges=((0, 255),)), i
    return Token(CLASS, text[start:i], pos, ranges=tuple(merged)), i


def _opens_pattern(tokens: list) -> bool:
    """Whether a '{' now opens a message's pattern: it follows `message NAME`."""
    return (len(tokens) >= 2 and tokens[-1].kind == NAME and tokens[-2].kind == NAME
            and tokens[-2].text == "message" and tokens[-2].pos.line == tokens[-1].pos.line)


def tokenize(text: str, diagnostics: list) -> list:
    """The tokens of text; a character that starts no token is reported and skipped."""
    text = normalized(text)
    tokens = []
    i, line, line_start = 0, 1, 0
    n = len(text)
    pattern = 0   # brace depth inside a `message NAME { ... }` pattern, 0 outside
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
        elif ch == '"' or (ch == "'" and pattern):
            tok, i = _string(text, i, line, line_start, diagnostics)
            if tok is not None:
                tokens.append(tok)
        elif ch == "[" and pattern:
            tok, i = _class(text, i, line, line_start, diagnostics)
            if tok is not None:
                tokens.append(tok)
        elif ch in PATTERN_PUNCT and pattern:
            tokens.append(Token(ch, ch, pos))
            i += 1
        elif ch == "-" and not pattern and text.startswith("->", i):
            tokens.append(Token(ARROW, "->", pos))
            i += 2
        elif ch in _PUNCT:
            if ch == "{" and (pattern or _opens_pattern(tokens)):
                pattern += 1
            elif ch == "}" and pattern:
                pattern -= 1
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
