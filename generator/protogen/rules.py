"""The rules framing: messages written as patterns, compiled into a resumable scanner.

A message's pattern is a sequence of items: regular expressions (matched by
re2c, longest match), captures of them, decimal numbers (`uint`), counted
payloads (`bytes N`: skipped by count, never matched) and repetitions, counted
(`repeat N`) or lasting until what follows them matches (`repeat`).

The checked patterns become a small program of steps, which the template
prints as one C function: each `match` step is an re2c block whose rules are
the tokens that may come there (one, or several where a choice is made: which
message starts, whether a repetition goes on), the other steps are plain C.
re2c's storable state (-f) lets a token straddle reads; offsets from the
message's first byte, not pointers, survive between calls.
"""

from dataclasses import dataclass, field

from protogen.diagnostics import Position

DIGITS = "[0-9]+"


def nullable(node) -> bool:
    """Whether the regular expression matches the empty string."""
    what = node[0]
    if what in ("str", "class"):
        return False
    if what == "cat":
        return all(nullable(n) for n in node[1])
    if what == "alt":
        return any(nullable(n) for n in node[1])
    return node[2] == 0 or nullable(node[1])   # rep


def _byte(b: int, in_class: bool) -> str:
    if 0x20 <= b < 0x7f and chr(b) not in '"\'\\[]-^' and chr(b).isalnum():
        return chr(b)
    return f"\\x{b:02X}"


def re2c_text(node) -> str:
    """The regular expression in re2c's syntax (bytes as \\xHH but letters and digits)."""
    what = node[0]
    if what == "str":
        quote = "'" if node[2] else '"'
        return quote + "".join(_byte(b, False) for b in node[1]) + quote
    if what == "class":
        return "[" + "".join(_byte(lo, True) if lo == hi else f"{_byte(lo, True)}-{_byte(hi, True)}"
                             for lo, hi in node[1]) + "]"
    if what == "cat":
        return " ".join(_grouped(n, for_cat=True) for n in node[1])
    if what == "alt":
        return " | ".join(re2c_text(n) for n in node[1])
    inner, low, high = node[1], node[2], node[3]
    suffix = {(0, None): "*", (1, None): "+", (0, 1): "?"}.get((low, high))
    if suffix is None:
        suffix = f"{{{low}}}" if low == high else f"{{{low},}}" if high is None else f"{{{low},{high}}}"
    return _grouped(inner, for_cat=False) + suffix


def _grouped(node, for_cat: bool) -> str:
    text = re2c_text(node)
    needs = node[0] == "alt" or (node[0] == "cat" and not for_cat) or (node[0] == "rep" and not for_cat)
    return f"({text})" if needs else text


def c_string(text: str) -> str:
    """text as the body of a C string literal (ASCII; other bytes escaped)."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif " " <= ch < "\x7f" and ch != "?":
            out.append(ch)
        else:
            out.append("".join(f"\\{b:03o}" for b in ch.encode("utf-8")))
    return "".join(out)


@dataclass
class Field:
    """A captured field of a message, as the handler sees it."""
    name: str
    type: str                  # "uint" or "bytes"
    array: bool                # captured inside a repetition, or more than once
    pos: Position
    var: str = ""              # the scanner's variable (prefix)

    @property
    def c_members(self) -> list:
        """The message struct's members for this field: (C type, name)."""
        if self.array:
            elem = "const uint64_t *" if self.type == "uint" else "const pg_slice *"
            return [(elem, self.name), ("size_t ", f"{self.name}_count")]
        return [("uint64_t " if self.type == "uint" else "pg_slice ", self.name)]


@dataclass
class Message:
    name: str
    index: int                 # 1..: pg_message.rule
    pos: Position
    fields: list = field(default_factory=list)
    text: str = ""             # the pattern as written, for the header's comment


@dataclass
class Repeat:
    index: int
    counted: bool
    count_field: Field = None  # counted by a captured number
    count_const: int = 0       # counted by a constant
    max: int = 0               # 0: no limit of its own
    pos: Position = None


@dataclass
class Alt:
    """A token that may come at a match step, and what its match does."""
    regex: str                 # re2c's syntax
    pos: Position              # of the item in the spec
    next: int = -1
    message: Message = None    # the token chooses this message (the first step)
    field: Field = None        # captured into
    uint: bool = False         # a number: parsed into field
    repeat: Repeat = None      # starts another round of this (uncounted) repetition


@dataclass
class Step:
    id: int
    what: str                  # "match", "bytes", "start", "head" or "done"
    alts: list = None          # match
    reason: str = ""           # match: why input is malformed here (C string body)
    empty: Alt = None          # match: the alternative that may match nothing, taken empty when no
                               # alternative matches a byte (re2c's longest match would pick '*')
    field: Field = None        # bytes: captured into (None: skipped)
    count_field: Field = None  # bytes: how many, from a captured number
    count_const: int = 0       # bytes: how many, a constant
    repeat: Repeat = None      # start, head
    next: int = -1             # bytes, start: the next step; head: the body's first step
    after: int = -1            # head: the step after the repetition


@dataclass
class Rules:
    max: int
    messages: list
    steps: list
    repeats: list
    fields: list               # every message's, in order: the scanner's variables

    @property
    def match_steps(self) -> list:
        return [s for s in self.steps if s.what == "match"]

    @property
    def has_bytes(self) -> bool:
        return any(s.what == "bytes" for s in self.steps)


class Compiler:
    """Turns checked messages (name token, items, fields by name) into Rules.

    check.py has verified what this relies on: every decision token matches at
    least one byte, an uncounted repetition is followed by a token, counts name
    numbers captured before them."""

    def __init__(self, max_size: int):
        self.max = max_size
        self.steps = []
        self.repeats = []

    def new(self, what: str, **kw) -> Step:
        step = Step(len(self.steps), what, **kw)
        self.steps.append(step)
        return step

    def alt(self, item, fields, nxt: int) -> Alt:
        f = fields.get(item.name.text) if item.name else None
        if item.what == "uint":
            return Alt(DIGITS, item.pos, nxt, field=f, uint=True)
        return Alt(re2c_text(item.regex), item.pos, nxt, field=f)

    @staticmethod
    def describe(item) -> str:
        return "a number" if item.what == "uint" else item.text

    def sequence(self, items, fields, k: int, context: str) -> int:
        """The first step of items, continuing with step k."""
        if not items:
            return k
        item = items[0]
        if item.what == "repeat" and item.count is None:
            return self.loop(item, items[1], self.sequence(items[2:], fields, k, context), fields, context)
        rest = self.sequence(items[1:], fields, k, context)
        if item.what == "repeat":
            return self.counted(item, rest, fields, context)
        if item.what == "bytes":
            count = item.count
            return self.new("bytes", field=fields.get(item.name.text) if item.name else None,
                            count_field=fields.get(count.text) if count.kind == "name" else None,
                            count_const=count.value if count.kind == "number" else 0, next=rest).id
        a = self.alt(item, fields, rest)
        return self.new("match", alts=[a], empty=a if item.what == "regex" and nullable(item.regex) else None,
                        reason=c_string(f"{context}: expected {self.describe(item)}")).id

    def counted(self, item, rest: int, fields, context: str) -> int:
        rep = Repeat(len(self.repeats), True, max=item.max.value if item.max else 0, pos=item.pos)
        if item.count.kind == "name":
            rep.count_field = fields[item.count.text]
        else:
            rep.count_const = item.count.value
        self.repeats.append(rep)
        head = self.new("head", repeat=rep, after=rest)
        head.next = self.sequence(item.body, fields, head.id, context)
        return self.new("start", repeat=rep, next=head.id).id

    def loop(self, item, following, rest: int, fields, context: str) -> int:
        """An uncounted repetition: a choice between its body's first token and what follows it."""
        rep = Repeat(len(self.repeats), False, max=item.max.value if item.max else 0, pos=item.pos)
        self.repeats.append(rep)
        choice = self.new("match", alts=[], reason=c_string(
            f"{context}: expected {self.describe(item.body[0])} or {self.describe(following)}"))
        go_on = self.alt(item.body[0], fields, self.sequence(item.body[1:], fields, choice.id, context))
        go_on.repeat = rep
        choice.alts = [go_on, self.alt(following, fields, rest)]
        return choice.id

    def compile(self, messages) -> Rules:
        """messages: (Message, items, {name: Field}) in the spec's order."""
        start = self.new("match", alts=[], reason=c_string(
            "expected the start of a message: " + ", ".join(m.name for m, _, _ in messages)))
        done = self.new("done")
        for msg, items, fields in messages:
            a = self.alt(items[0], fields, self.sequence(items[1:], fields, done.id, f"message {msg.name}"))
            a.message = msg
            start.alts.append(a)
        all_fields = [f for m, _, _ in messages for f in m.fields]
        return Rules(self.max, [m for m, _, _ in messages], self.steps, self.repeats, all_fields)
