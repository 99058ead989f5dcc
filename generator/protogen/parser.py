"""Parses tokens into a small, generic syntax tree, following GRAMMAR.

The grammar is deliberately uniform so new declarations need no parser change;
what each declaration means is the checker's business (check.py).
docs/spec-language.md quotes GRAMMAR verbatim (a test keeps them in step).
"""

from dataclasses import dataclass, field

from protogen import lexer
from protogen.diagnostics import Diagnostic, Position, SpecError, error
from protogen.lexer import EOF, LBRACE, NAME, NUMBER, RBRACE, SEMI, STRING, Token


GRAMMAR = """\
spec        = "protocol" name "{" { declaration } "}" ;
declaration = name { value } ";"              (* values on the same line as the name *)
            | name { value } "{" { declaration } "}" ;
value       = name | number | string ;
"""


@dataclass
class Declaration:
    name: Token
    values: list = field(default_factory=list)   # of Token (NAME, NUMBER or STRING)
    body: list = None                             # of Declaration, for blocks


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
        values = []
        last = name
        # Values sit on their declaration's line: a name on the next line is
        # taken as a forgotten ';', the commonest slip, and reported as such.
        while self.peek().kind in (NAME, NUMBER, STRING) and self.peek().pos.line == last.pos.line:
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
        raise SpecError(sorted(diagnostics, key=lambda d: (d.pos.line, d.pos.col)))
    return spec
