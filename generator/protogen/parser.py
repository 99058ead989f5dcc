"""Parses tokens into a small, generic syntax tree, following GRAMMAR.

The grammar is deliberately uniform so new declarations need no parser change;
what each declaration means is the checker's business (check.py).
docs/spec-language.md quotes GRAMMAR verbatim (a test keeps them in step).
"""

from dataclasses import dataclass, field

from protogen import lexer
from protogen.diagnostics import Diagnostic, Position, SpecError, error
from protogen.lexer import ARROW, CLASS, EOF, ISTRING, LBRACE, NAME, NUMBER, RBRACE, SEMI, STRING, Token


GRAMMAR = """\
spec        = "protocol" name "{" { declaration } "}" ;
declaration = name { value } ";"              (* values on the same line as the name *)
            | name { value } "{" { declaration } "}"
            | "message" name "{" { item } "}" ;   (* a pattern: in framing rules *)
value       = name | number | string | "->" ;
item        = regex                           (* matched *)
            | name ":" ( term | "uint" | "bytes" ( name | number ) )    (* captured *)
            | "repeat" [ name | number ] [ "max" number ] "{" { item } "}" ;
regex       = term { term } ;
term        = atom [ "*" | "+" | "?" | "{" number [ "," [ number ] ] "}" ] ;
atom        = string | istring | class | "(" regex { "|" regex } ")" ;
"""


@dataclass
class Declaration:
    name: Token
    values: list = field(default_factory=list)   # of Token (NAME, NUMBER, STRING or ARROW)
    body: list = None                             # of Declaration, for blocks
    pattern: list = None                          # of Item, for `message NAME { ... }`


# A pattern's regular expressions, as trees: ("str", bytes, icase), ("class", ranges),
# ("cat", [nodes]), ("alt", [nodes]), ("rep", node, low, high or None).

@dataclass
class Item:
    """One item of a message's pattern."""
    what: str                 # "regex", "uint", "bytes" or "repeat"
    pos: Position
    name: Token = None        # the capture's name (regex, uint, bytes); None: matched only
    regex: tuple = None       # regex: the tree
    text: str = ""            # regex: as written (for messages)
    count: Token = None       # bytes: how many (NAME or NUMBER); repeat: how often (None: until what follows)
    max: Token = None         # repeat: the most repetitions (NUMBER), or None
    body: list = None         # repeat: of Item


@dataclass
class Spec:
    keyword: Token
    name: Token
    body: list


MAX_NESTING = 64   # blocks inside one another, the protocol's own counted: the language uses 2


class _Parser:
    def __init__(self, tokens, diagnostics):
        self.tokens = tokens
        self.i = 0
        self.diagnostics = diagnostics
        self.depth = 0   # blocks open: block_body and declaration recurse once per level

    def peek(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        tok = self.tokens[self.i]
        if tok.kind != EOF:
            self.i += 1
        return tok

    def expect(self, kind: str, what: str) -> Token:
        tok = self.peek()
        if tok.kind != kind:
            raise error(tok.pos, f"expected {what}, found {tok.describe()}", len(tok.text))
        return self.take()

    def spec(self) -> Spec:
        first = self.peek()
        if first.kind == EOF:
            raise error(first.pos, "empty spec: expected 'protocol NAME { ... }'")
        if first.kind != NAME or first.text != "protocol":
            raise error(first.pos, f"expected 'protocol', found {first.describe()}", len(first.text))
        keyword = self.take()
        name = self.expect(NAME, "a protocol name after 'protocol'")
        self.expect(LBRACE, f"'{{' after 'protocol {name.text}'")
        body = self.block_body()
        extra = self.peek()
        if extra.kind != EOF:
            raise error(extra.pos, f"unexpected {extra.describe()} after the end of protocol '{name.text}'",
                        len(extra.text))
        return Spec(keyword, name, body)

    def block_body(self) -> list:
        """Declarations up to and including the closing brace."""
        self.depth += 1
        try:
            return self.declarations()
        finally:
            self.depth -= 1

    def declarations(self) -> list:
        decls = []
        while True:
            tok = self.peek()
            if tok.kind == RBRACE:
                self.take()
                return decls
            if tok.kind == EOF:
                raise error(tok.pos, "expected '}' before end of file")
            try:
                decls.append(self.declaration())
            except SpecError as e:
                # Report it, skip to the end of the broken declaration, go on.
                self.diagnostics.extend(e.diagnostics)
                self.skip_declaration()

    def skip_declaration(self):
        """Skips past the next ';' or balanced '{...}', stopping before a '}' that closes the block."""
        depth = 0
        while True:
            tok = self.peek()
            if tok.kind == EOF or (tok.kind == RBRACE and depth == 0):
                return
            self.take()
            if tok.kind == LBRACE:
                depth += 1
            elif tok.kind == RBRACE:
                depth -= 1
                if depth == 0:
                    return
            elif tok.kind == SEMI and depth == 0:
                return

    def declaration(self) -> Declaration:
        name = self.expect(NAME, "a declaration")
        if name.text == "message" and self.peek().kind == NAME and self.tokens[self.i + 1].kind == LBRACE:
            values = [self.take()]
            opening = self.i
            self.take()
            try:
                return Declaration(name, values, pattern=self.pattern())
            except SpecError as e:
                # Report it and go on after the pattern's own closing brace.
                self.diagnostics.extend(e.diagnostics)
                self.i = self.matching_brace(opening) + 1
                return Declaration(name, values, pattern=[])
        values = []
        last = name
        # Values sit on their declaration's line: a name on the next line is
        # taken as a forgotten ';', the commonest slip, and reported as such.
        while self.peek().kind in (NAME, NUMBER, STRING, ARROW) and self.peek().pos.line == last.pos.line:
            last = self.take()
            values.append(last)
        tok = self.peek()
        if tok.kind == LBRACE:
            if self.depth >= MAX_NESTING:
                # Skipped without recursing (skip_declaration counts braces), so any depth is safe.
                raise error(tok.pos, f"blocks nested too deep (the limit is {MAX_NESTING})")
            self.take()
            return Declaration(name, values, self.block_body())
        if tok.kind == SEMI:
            self.take()
            return Declaration(name, values)
        if tok.pos.line != last.pos.line:
            # Carry on as if the ';' were there: the next line is likely fine.
            end = Position(last.pos.line, last.pos.col + len(last.text))
            self.diagnostics.append(Diagnostic(end, f"expected ';' after '{last.text}'"))
            return Declaration(name, values)
        raise error(tok.pos, f"expected ';' after '{last.text}', found {tok.describe()}", len(tok.text))


    # -- patterns --------------------------------------------------------

    ATOM_STARTS = (STRING, ISTRING, CLASS, "(")

    def pattern(self) -> list:
        """Items up to and including the closing brace."""
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise error(self.peek().pos, f"blocks nested too deep (the limit is {MAX_NESTING})")
        try:
            items = []
            while True:
                tok = self.peek()
                if tok.kind == RBRACE:
                    self.take()
                    return items
                if tok.kind == EOF:
                    raise error(tok.pos, "expected '}' before end of file")
                items.append(self.item())
        finally:
            self.depth -= 1

    def item(self) -> Item:
        tok = self.peek()
        if tok.kind in self.ATOM_STARTS:
            return self.regex_item(None)
        if tok.kind != NAME:
            raise error(tok.pos, f"expected a pattern item (a string, a byte class, '(', a capture 'NAME:' "
                                 f"or 'repeat'), found {tok.describe()}", len(tok.text))
        self.take()
        if tok.text == "repeat" and self.peek().kind != ":":
            return self.repeat(tok)
        if self.peek().kind != ":":
            raise error(tok.pos, f"'{tok.text}' alone is not a pattern item: a capture is written "
                                 f"'{tok.text}: ...', a string in quotes", len(tok.text))
        self.take()
        what = self.peek()
        if what.kind == NAME and what.text == "uint":
            self.take()
            return Item("uint", tok.pos, name=tok)
        if what.kind == NAME and what.text == "bytes":
            self.take()
            count = self.peek()
            if count.kind not in (NAME, NUMBER):
                raise error(count.pos, f"expected how many bytes after 'bytes' (a captured number's name, "
                                       f"or a number), found {count.describe()}", len(count.text))
            self.take()
            return Item("bytes", tok.pos, name=tok, count=count)
        if what.kind not in self.ATOM_STARTS:
            raise error(what.pos, f"expected what '{tok.text}' captures (a string, a byte class or a group in "
                                  f"parentheses, 'uint' or 'bytes N'), found {what.describe()}", len(what.text))
        return self.regex_item(tok)

    def repeat(self, keyword: Token) -> Item:
        count = limit = None
        if self.peek().kind in (NAME, NUMBER) and not (self.peek().kind == NAME and self.peek().text == "max"):
            count = self.take()
        if self.peek().kind == NAME and self.peek().text == "max":
            self.take()
            limit = self.expect(NUMBER, "the most repetitions after 'max'")
        self.expect(LBRACE, "'{' and the repeated items")
        return Item("repeat", keyword.pos, count=count, max=limit, body=self.pattern())

    def matching_brace(self, opening: int) -> int:
        """The index of the '}' that closes the '{' at opening (or of the end of file)."""
        depth = 0
        for k in range(opening, len(self.tokens)):
            kind = self.tokens[k].kind
            depth += kind == LBRACE
            depth -= kind == RBRACE
            if depth == 0 or kind == EOF:
                return k if kind != EOF else k - 1
        return len(self.tokens) - 1

    def regex_item(self, name) -> Item:
        """A regular expression: a capture takes one term (group a sequence in parentheses), an
        item matched only takes every term up to the next capture or keyword."""
        start = self.i
        tree = self.term() if name else self.regex()
        text = self.tokens[start].text
        for before, tok in zip(self.tokens[start:self.i], self.tokens[start + 1:self.i]):
            adjacent = tok.pos.line == before.pos.line and tok.pos.col == before.pos.col + len(before.text)
            text += ("" if adjacent else " ") + tok.text   # as written, blanks shown as one space
        return Item("regex", name.pos if name else self.tokens[start].pos, name=name, regex=tree, text=text)

    def regex(self):
        terms = [self.term()]
        while self.peek().kind in self.ATOM_STARTS:
            terms.append(self.term())
        return terms[0] if len(terms) == 1 else ("cat", terms)

    def term(self):
        atom = self.atom()
        tok = self.peek()
        if tok.kind in ("*", "+", "?"):
            self.take()
            return ("rep", atom, 1 if tok.kind == "+" else 0, 1 if tok.kind == "?" else None)
        if tok.kind == LBRACE:
            self.take()
            low = self.expect(NUMBER, "a repetition count after '{'")
            high = low
            if self.peek().kind == ",":
                self.take()
                high = self.take() if self.peek().kind == NUMBER else None
            self.expect(RBRACE, "'}' after the repetition count")
            for t in (low, high):
                if t is not None and (t.unit or t.value > 1000):
                    raise error(t.pos, f"a repetition count is a plain number up to 1000, not '{t.text}'",
                                len(t.text))
            if high is not None and high.value < low.value:
                raise error(high.pos, f"repetition {{{low.value},{high.value}}} has its bounds backwards",
                            len(high.text))
            return ("rep", atom, low.value, None if high is None else high.value)
        return atom

    def atom(self):
        tok = self.take()
        if tok.kind == STRING or tok.kind == ISTRING:
            if not tok.data:
                raise error(tok.pos, "an empty string matches nothing: leave it out", len(tok.text))
            return ("str", tok.data, tok.kind == ISTRING)
        if tok.kind == CLASS:
            return ("class", tok.ranges)
        if tok.kind == "(":
            alts = [self.regex()]
            while self.peek().kind == "|":
                self.take()
                if self.peek().kind not in self.ATOM_STARTS:
                    bad = self.peek()
                    raise error(bad.pos, f"expected an alternative after '|', found {bad.describe()}",
                                len(bad.text))
                alts.append(self.regex())
            self.expect(")", "')' to close the group")
            return alts[0] if len(alts) == 1 else ("alt", alts)
        raise error(tok.pos, f"expected a string, a byte class or '(', found {tok.describe()}", len(tok.text))


def parse(text: str) -> Spec:
    """The syntax tree, or a SpecError with every lexical and syntax error found."""
    diagnostics = []
    tokens = lexer.tokenize(text, diagnostics)
    p = _Parser(tokens, diagnostics)
    try:
        spec = p.spec()
    except SpecError as e:
        diagnostics.extend(e.diagnostics)
    if diagnostics:
        unique = {(d.pos, d.message): d for d in diagnostics}   # recovery may meet the end of file twice
        raise SpecError(sorted(unique.values(), key=lambda d: (d.pos.line, d.pos.col)))
    return spec
