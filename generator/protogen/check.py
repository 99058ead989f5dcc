"""Checks a parsed spec and builds the model, or reports every problem it finds."""

import os

from protogen import machine as machines, model, rules
from protogen.diagnostics import WARNING, Diagnostic, SpecError, did_you_mean
from protogen.lexer import NAME, NUMBER, STRING, Token

C_KEYWORDS = frozenset("""
    auto break case char const continue default do double else enum extern float for goto if
    inline int long register restrict return short signed sizeof static struct switch typedef
    union unsigned void volatile while _Alignas _Alignof _Atomic _Bool _Complex _Generic
    _Imaginary _Noreturn _Static_assert _Thread_local bool true false
""".split())

# A protocol's NAME.h sits in a directory on the include path: named like one of these,
# it would be included in place of the standard header (file names may ignore case).
C_STANDARD_HEADERS = frozenset("""
    assert complex ctype errno fenv float inttypes iso646 limits locale math setjmp signal
    stdalign stdarg stdatomic stdbool stddef stdint stdio stdlib stdnoreturn string tgmath
    threads time uchar wchar wctype
""".split())

MAX_NAME_LENGTH = 64


def format_size(n: int) -> str:
    for unit, scale in sorted(model.SIZE_UNITS.items(), key=lambda u: -u[1]):
        if n % scale == 0 and n >= scale:
            return f"{n // scale}{unit}"
    return f"{n}B"


class _Checker:
    def __init__(self, spec, spec_file):
        self.spec = spec
        self.spec_file = spec_file
        self.diagnostics = []
        self.warnings = []

    def warn(self, where, message):
        self.warnings.append(Diagnostic(where.pos, message, WARNING, len(where.text)))

    def err(self, where, message):
        """Reports at a token (underlining all of it) or at a bare position."""
        if isinstance(where, Token):
            self.diagnostics.append(Diagnostic(where.pos, message, length=len(where.text)))
        else:
            self.diagnostics.append(Diagnostic(where, message))

    # -- the protocol level ------------------------------------------------

    SETTINGS = ("transport", "role", "kind")
    BLOCKS = ("callbacks", "watermarks", "framing", "states", "timeouts", "tls")

    def protocol(self):
        name_tok = self.spec.name
        name = name_tok.text
        if name in C_KEYWORDS:
            self.err(name_tok, f"protocol name '{name}' is a C keyword")
        elif name.lower() in C_STANDARD_HEADERS:
            self.err(name_tok, f"protocol name '{name}' is the name of a C standard header: "
                               f"the generated {name}.h would hide <{name.lower()}.h>")
        elif name.lower() == "pg":
            self.err(name_tok, f"protocol name '{name}' is the runtime's prefix: the generated names "
                               f"({name}_conn, {name.upper()}_...) would collide with the runtime's")
        elif name.lower().startswith("pg_"):
            self.err(name_tok, f"protocol name '{name}' uses the runtime's reserved prefix 'pg_'")
        elif name.startswith("_"):
            self.err(name_tok, f"protocol name '{name}' must not start with '_' (reserved in C)")
        elif len(name) > MAX_NAME_LENGTH:
            self.err(name_tok, f"protocol name is {len(name)} characters long; the limit is {MAX_NAME_LENGTH}")

        seen = {}
        misspelt = set()   # declarations a hint already pointed at: not reported missing too
        for decl in self.spec.body:
            key = decl.name.text
            if key not in self.SETTINGS and key not in self.BLOCKS:
                hint = did_you_mean(key, self.SETTINGS + self.BLOCKS)
                self.err(decl.name, f"unknown declaration '{key}'{hint}")
                if hint:
                    misspelt.add(hint.split("'")[1])
                continue
            if key in seen:
                self.err(decl.name, f"duplicate '{key}' declaration (first declared at line {seen[key].name.pos.line})")
                continue
            seen[key] = decl

        transport = self.choice(seen.get("transport"), "transport", model.TRANSPORTS)
        role = self.choice(seen.get("role"), "role", {r: r for r in model.ROLES})
        kind = self.choice(seen.get("kind"), "kind", model.KINDS, check_supported=False)
        if "role" not in seen and transport and transport.default_role:
            role = transport.default_role   # a subprocess: the program is the side that starts it
        for key in self.SETTINGS:
            if key not in seen and key not in misspelt and not (key == "role" and role):
                self.err(name_tok, f"protocol '{name}' has no '{key}' declaration")

        role, kind = self.compatibility(seen, transport, role, kind)

        declared = self.callbacks(seen.get("callbacks"), kind)
        framing = self.framing(seen.get("framing"), transport, role, kind, declared)
        if kind is not None:
            self.required_callbacks(kind, declared, seen["callbacks"].name if "callbacks" in seen else seen["kind"].values[0])
        watermarks = self.watermarks(seen.get("watermarks"))
        self.flow_control_warnings(declared, seen.get("watermarks"), framing is not None)
        if transport and role:
            for cb in transport.never_calls.get(role, ()):
                if cb in declared:
                    self.warn(declared[cb], f"callback '{cb}' is never called with transport {transport.name}, "
                                            f"role {role}: its handler would be dead code")

        machine = self.states(seen, kind, framing, declared)
        tls = self.tls(seen.get("tls"), transport, role, kind)

        if self.diagnostics:
            raise SpecError(sorted(self.diagnostics + self.warnings, key=lambda d: (d.pos.line, d.pos.col)))
        messages = framing.rules.messages if framing and framing.rules else ()
        positions = {name: tok.pos for name, tok in declared.items()}
        positions.update({m.name: m.pos for m in messages})
        handlers = tuple(model.message_callback(name, m) for m in messages)
        if machine is not None:
            handled = {ev for st in machine.states for ev, r in st.reactions.items() if r.action == "handle"}
            handlers = tuple(cb for cb in handlers if cb.name in handled) + model.machine_callbacks(name, machine, handled)
            declared.update({ev: None for ev in handled if ev in machines.LIFECYCLE_EVENTS})
        return model.Protocol(
            name=name,
            spec_file=os.path.basename(self.spec_file),
            transport=transport,
            role=role,
            kind=kind,
            declared=frozenset(declared),
            callback_positions=positions,
            watermarks=watermarks,
            callbacks=kind.callbacks + (model.FRAMING_CALLBACKS if framing else ()),
            framing=framing,
            message_callbacks=handlers,
            machine=machine,
            tls=tls,
        )

    def states(self, seen, kind, framing, declared):
        """The spec's Machine (states and timeouts), or None."""
        decl, timeouts = seen.get("states"), seen.get("timeouts")
        if decl is None and timeouts is None:
            return None
        where = (decl or timeouts).name
        if kind is not None and kind.name != "stream":
            self.err(where, f"'{where.text}' needs kind stream, not '{kind.name}'")
            return None
        if decl is not None and "framing" not in seen:
            self.err(where, "states need a 'framing': their transitions fire on its messages, "
                            "e.g. framing line { delimiter \"\\r\\n\"; max 1000B; }")
            return None
        if framing is None:
            return None   # reported already
        if framing.rules:
            messages = [m.name for m in framing.rules.messages]
            if "message_received" in declared:
                messages.append("message_received")   # the raw messages (NAME_expect_raw), in any state
        else:
            messages = ["message_received"]

        def state_framing(sub, what):
            items = self.framing_items(sub, what)
            if items is None:
                return None
            return self.framing_line(sub, items) if what == "line" else self.framing_length(sub, items)

        checker = machines.MachineChecker(self, self.spec.name.text, messages, state_framing, bool(framing.rules))
        return checker.machine(decl, timeouts, declared)

    def compatibility(self, seen, transport, role, kind):
        """(role, kind), each None when the transport cannot take it (reported)."""
        if kind:
            where = seen["kind"].values[0]
            if transport and kind.name not in transport.kinds:
                carried = ", ".join(transport.kinds)
                self.err(where, f"kind '{kind.name}' cannot run over transport '{transport.name}' (it carries: {carried})")
                kind = None
            elif not kind.supported:
                self.err(where, f"kind '{kind.name}' is not supported yet by this version of protogen")
                kind = None
        if transport and role and role not in transport.roles:
            roles = " or ".join(transport.roles)
            note = f" ({transport.roles_note})" if transport.roles_note else ""
            self.err(seen["role"].values[0],
                     f"transport '{transport.name}' takes role {roles}, not '{role}'{note}")
            role = None
        if transport and role and kind and role in transport.role_kinds \
                and kind.name not in transport.role_kinds[role]:
            kinds = ", ".join(transport.role_kinds[role])
            self.err(seen["kind"].values[0],
                     f"kind '{kind.name}' cannot run over a {role} {transport.name} (it carries: {kinds})")
            kind = None
        return role, kind

    def choice(self, decl, key, options, check_supported=True):
        """A setting with one name out of options; returns the option or None."""
        if decl is None:
            return None
        if decl.body is not None:
            self.err(decl.name, f"'{key}' takes a value, not a block: {key} {next(iter(options))};")
            return None
        if not decl.values:
            self.err(decl.name, f"'{key}' needs a value: one of {', '.join(options)}")
            return None
        value = decl.values[0]
        if len(decl.values) > 1:
            self.err(decl.values[1], f"'{key}' takes one value, found {len(decl.values)}")
            return None
        if value.kind != NAME or value.text not in options:
            hint = did_you_mean(value.text, options) if value.kind == NAME else ""
            self.err(value, f"unknown {key} '{value.text}'{hint or '; expected one of ' + ', '.join(options)}")
            return None
        chosen = options[value.text]
        if check_supported and getattr(chosen, "supported", True) is False:
            self.err(value, f"{key} '{value.text}' is not supported yet by this version of protogen")
            return None
        return chosen

    # -- blocks ------------------------------------------------------------

    def block_items(self, decl, key):
        if decl.body is None:
            self.err(decl.name, f"'{key}' takes a block: {key} {{ ... }}")
            return []
        if decl.values:
            self.err(decl.values[0], f"'{key}' takes a block and no value: {key} {{ ... }}")
        return decl.body

    def callbacks(self, decl, kind):
        if decl is None:
            return {}
        names = [cb.name for cb in kind.callbacks + model.FRAMING_CALLBACKS] if kind else None
        declared = {}
        for item in self.block_items(decl, "callbacks"):
            cb = item.name.text
            if item.body is not None or item.values:
                where = item.values[0] if item.values else item.name
                self.err(where, f"callback '{cb}' takes no value: write '{cb};'")
                continue
            if names is not None and cb not in names:
                self.err(item.name, self.unknown_callback(cb, kind, names))
                continue
            if cb in declared:
                self.err(item.name, f"duplicate callback '{cb}' (first declared at line {declared[cb].pos.line})")
                continue
            declared[cb] = item.name
        return declared

    def required_callbacks(self, kind, declared, where):
        """Callbacks a kind has no default for (asyncio's abstract methods) must be declared."""
        missing = [cb for cb in kind.required if cb not in declared]
        if missing:
            names = " and ".join(f"'{cb}'" for cb in missing)
            them = "them" if len(missing) > 1 else "it"
            self.err(where, f"kind '{kind.name}' needs {names} in its callbacks: "
                            f"asyncio's {kind.name.capitalize()}Protocol has no default for {them}")

    def unknown_callback(self, cb, kind, names):
        """A callback the kind does not have: another kind's (said so, with a hint), or a typo."""
        owners = [k.name for k in model.KINDS.values() if k is not kind and any(c.name == cb for c in k.callbacks)]
        if not owners:
            return f"unknown callback '{cb}' for kind '{kind.name}'{did_you_mean(cb, names)}"
        kinds = " and ".join(f"'{owner}'" for owner in owners)
        belongs = f"callback '{cb}' belongs to kind{'s' if len(owners) > 1 else ''} {kinds}"
        hint = model.CALLBACK_HINTS.get((kind.name, cb))
        return f"{belongs}; {hint}" if hint else f"{belongs}, not to kind '{kind.name}'"

    def flow_control_warnings(self, declared, watermarks_decl, framed):
        """Valid but suspicious: flow control that nothing reacts to, or that never ends.
        A framing reacts by itself: it holds its messages while writing is paused."""
        pause, resume = declared.get("pause_writing"), declared.get("resume_writing")
        if pause and not resume:
            self.warn(pause, "'pause_writing' is declared without 'resume_writing': "
                             "whatever it stops is never told to start again")
        if resume and not pause:
            self.warn(resume, "'resume_writing' is declared without 'pause_writing': it only follows a pause "
                              "that nothing reacts to")
        if watermarks_decl is not None and not pause and not framed:
            self.warn(watermarks_decl.name, "watermarks are set but 'pause_writing' is not declared: "
                                            "nothing reacts when the write buffer goes above them")

    def watermarks(self, decl):
        if decl is None:
            return None
        values = {}
        first = {}
        for item in self.block_items(decl, "watermarks"):
            key = item.name.text
            if key not in ("high", "low"):
                self.err(item.name, f"unknown watermark '{key}'{did_you_mean(key, ('high', 'low')) or '; expected high or low'}")
                continue
            if key in first:
                self.err(item.name, f"duplicate '{key}' watermark (first declared at line {first[key].pos.line})")
                continue
            first[key] = item.name
            size = self.size(item, f"{key} watermark")
            if size is not None:
                values[key] = size
        if decl.body == []:
            self.err(decl.name, "'watermarks' is empty: give 'high', 'low' or both")
            return None
        if not first or len(values) != len(first):
            return None  # an error was reported already
        high, low = values.get("high"), values.get("low")
        if high is None:
            high = 4 * low
        if low is None:
            low = high // 4
        if low > high:
            self.err(first.get("low", decl.name),
                     f"low watermark {format_size(low)} is above high watermark {format_size(high)}")
            return None
        if high > model.MAX_WATERMARK:
            where = first.get("high", first.get("low"))
            self.err(where, f"high watermark {format_size(high)} is above the limit of {format_size(model.MAX_WATERMARK)}")
            return None
        return model.Watermarks(high, low)

    # -- tls ---------------------------------------------------------------

    TLS_STRINGS = ("cert_file", "key_file", "ca_file", "server_name")
    TLS_SWITCHES = ("require_client_cert", "insecure_no_verify")
    TLS_DURATIONS = ("handshake_timeout", "shutdown_timeout")
    TLS_KEYS = TLS_STRINGS + TLS_SWITCHES + ("alpn", "min_version") + TLS_DURATIONS
    TLS_ROLE_KEYS = {"require_client_cert": "server", "server_name": "client", "insecure_no_verify": "client"}

    def tls(self, decl, transport, role, kind):
        """The checked 'tls' block (model.Tls), or None when absent or broken (reported)."""
        if decl is None:
            return None
        items = self.block_items(decl, "tls")
        if decl.body is None:
            return None
        if kind is not None and kind.name != "stream":
            self.err(decl.name, f"'tls' needs kind stream, not '{kind.name}'")
            return None
        if transport is not None and transport.name not in ("tcp", "unix"):
            self.err(decl.name, f"'tls' runs over a connection: transport tcp or unix, not '{transport.name}'")
            return None
        values, first, ok = {}, {}, True
        for item in items:
            key = item.name.text
            if key not in self.TLS_KEYS:
                self.err(item.name, f"unknown key '{key}' in tls{did_you_mean(key, self.TLS_KEYS) or '; tls takes ' + ', '.join(self.TLS_KEYS)}")
                ok = False
                continue
            if key in first:
                self.err(item.name, f"duplicate '{key}' (first declared at line {first[key].pos.line})")
                ok = False
                continue
            first[key] = item.name
            if role in ("server", "client") and self.TLS_ROLE_KEYS.get(key, role) != role:
                self.err(item.name, f"'{key}' is a {self.TLS_ROLE_KEYS[key]}'s setting; this protocol is a {role}")
                ok = False
                continue
            value = self.tls_value(item, key)
            if value is None:
                ok = False
            else:
                values[key] = value
        if not ok:
            return None
        if ("cert_file" in values) != ("key_file" in values):
            given, missing = ("cert_file", "key_file") if "cert_file" in values else ("key_file", "cert_file")
            self.err(first[given], f"'{given}' needs '{missing}' too: a certificate goes with its private key")
            return None
        if values.get("require_client_cert") and "ca_file" not in values:
            self.err(first["require_client_cert"], "'require_client_cert' needs 'ca_file': the CA that signs "
                                                   "the clients' certificates")
            return None
        handshake = values.pop("handshake_timeout", model.Tls.handshake_timeout_ms)
        shutdown = values.pop("shutdown_timeout", model.Tls.shutdown_timeout_ms)
        return model.Tls(**values, handshake_timeout_ms=handshake, shutdown_timeout_ms=shutdown)

    def tls_value(self, item, key):
        """One checked value of a 'tls' block, or None (reported)."""
        if key in self.TLS_DURATIONS:
            return machines.MachineChecker(self, self.spec.name.text, [], None, False).duration(
                item, item.values, f"the TLS {key.replace('_', ' ')}")
        if item.body is not None:
            self.err(item.name, f"'{key}' takes a value, not a block")
            return None
        if key == "alpn":
            if not item.values:
                self.err(item.name, "'alpn' needs the protocols, in order of preference: alpn \"h2\" \"http/1.1\";")
                return None
            for tok in item.values:
                if tok.kind != STRING or not 1 <= len(tok.data) <= 255 or 0 in tok.data:
                    self.err(tok, f"an ALPN protocol is a string of 1 to 255 bytes (no NUL), not {tok.describe()}")
                    return None
            return tuple(tok.data for tok in item.values)
        if len(item.values) != 1:
            where = item.values[1] if item.values else item.name
            self.err(where, f"'{key}' takes one value" + (f", found {len(item.values)}" if item.values else ""))
            return None
        tok = item.values[0]
        if key in self.TLS_STRINGS:
            if tok.kind != STRING or not tok.data or 0 in tok.data:
                example = {"cert_file": "server.pem", "key_file": "server.key", "ca_file": "ca.pem",
                           "server_name": "localhost"}[key]
                self.err(tok, f"'{key}' takes a non-empty string in double quotes (no NUL), e.g. \"{example}\"; "
                              f"found {tok.describe()}")
                return None
            return tok.data
        if key in self.TLS_SWITCHES:
            if tok.kind != NAME or tok.text not in ("yes", "no"):
                self.err(tok, f"'{key}' takes yes or no, not '{tok.text}'")
                return None
            return tok.text == "yes"
        if tok.kind != NAME or tok.text not in model.TLS_VERSIONS:
            self.err(tok, f"min_version '{tok.text}' is not one of {', '.join(model.TLS_VERSIONS)}")
            return None
        return tok.text

    # -- framing -----------------------------------------------------------

    FRAMING_KEYS = {
        "line": ("delimiter", "max"),
        "length": ("width", "endian", "offset", "header", "includes_header", "max"),
    }
    NOT_FRAMED = {
        "buffered": "a buffered protocol reads into its own buffer (get_buffer); use kind stream",
        "datagram": "datagrams are whole messages already",
        "subprocess": "a subprocess protocol receives the child's output with 'pipe_data_received'",
    }

    def framing(self, decl, transport, role, kind, declared):
        """The checked framing (model.Framing), or None when absent or broken (reported)."""
        framed = [declared[cb.name] for cb in model.FRAMING_CALLBACKS if cb.name in declared]
        if decl is None:
            for tok in framed:
                self.err(tok, f"callback '{tok.text}' needs a 'framing' declaration, "
                              f"e.g. framing line {{ delimiter \"\\n\"; max 8KiB; }}")
            return None
        if decl.body is None:
            self.err(decl.name, "'framing' takes a block: framing line { delimiter \"\\n\"; max 8KiB; }")
            return None
        if not decl.values:
            self.err(decl.name, f"'framing' needs a kind: one of {', '.join(model.FRAMING_KINDS)}")
            return None
        if len(decl.values) > 1:
            self.err(decl.values[1], f"'framing' takes one kind, found {len(decl.values)} values")
            return None
        what = decl.values[0]
        if what.kind != NAME or what.text not in model.FRAMING_KINDS:
            hint = did_you_mean(what.text, model.FRAMING_KINDS) if what.kind == NAME else ""
            self.err(what, f"unknown framing '{what.text}'{hint or '; expected one of ' + ', '.join(model.FRAMING_KINDS)}")
            return None
        if kind is not None and kind.name != "stream":
            self.err(decl.name, f"framing needs kind stream, not '{kind.name}': {self.NOT_FRAMED[kind.name]}")
            return None
        if transport is not None and transport.name == "pipe" and role == "write":
            self.err(decl.name, "framing on a write pipe: it never reads")
            return None
        if "data_received" in declared:
            self.err(declared["data_received"], "'data_received' cannot be declared with a framing: "
                                                "the framer receives the bytes, 'message_received' the messages")
            return None
        if what.text == "rules":
            return self.framing_rules(decl, kind)
        if "message_received" not in declared:
            self.err(decl.name, "framing is declared but 'message_received' is not among the callbacks: "
                                "nothing would receive the messages")
            return None
        items = self.framing_items(decl, what.text)
        if items is None:
            return None
        return self.framing_line(decl, items) if what.text == "line" else self.framing_length(decl, items)

    def framing_items(self, decl, kind):
        """{key: declaration} of the block, or None when a key is unknown or repeated (reported)."""
        keys = self.FRAMING_KEYS[kind]
        items, ok = {}, True
        for item in decl.body:
            key = item.name.text
            if key not in keys:
                hint = did_you_mean(key, keys) or f"; framing {kind} takes {', '.join(keys)}"
                self.err(item.name, f"unknown key '{key}' in framing {kind}{hint}")
                ok = False
            elif key in items:
                self.err(item.name, f"duplicate '{key}' (first declared at line {items[key].name.pos.line})")
                ok = False
            elif item.body is not None:
                self.err(item.name, f"'{key}' takes a value, not a block")
                ok = False
            elif len(item.values) != 1:
                where = item.values[1] if item.values else item.name
                self.err(where, f"'{key}' takes one value" + (f", found {len(item.values)}" if item.values else ""))
                ok = False
            else:
                items[key] = item
        return items if ok else None

    # -- framing rules -----------------------------------------------------

    def framing_rules(self, decl, kind):
        """framing rules { max SIZE; message NAME { pattern } ... }: model.Framing, or None (reported)."""
        max_item, token_max_item, messages, ok = None, None, [], True
        names = {}
        reserved = {cb.name for cb in (kind.callbacks if kind else ()) + model.FRAMING_CALLBACKS}
        for item in decl.body:
            key = item.name.text
            if key == "max":
                if max_item is not None:
                    self.err(item.name, f"duplicate 'max' (first declared at line {max_item.name.pos.line})")
                    ok = False
                max_item = item
            elif key == "token_max":
                if token_max_item is not None:
                    self.err(item.name, f"duplicate 'token_max' (first declared at line "
                                        f"{token_max_item.name.pos.line})")
                    ok = False
                token_max_item = item
            elif key == "message":
                if item.pattern is None:
                    self.err(item.name, "'message' takes a name and its pattern in braces: "
                                        "message ping { \"PING\\r\\n\" }")
                    ok = False
                    continue
                tok = item.values[0]
                if tok.text in names:
                    self.err(tok, f"duplicate message '{tok.text}' (first declared at line {names[tok.text].pos.line})")
                    ok = False
                elif tok.text in C_KEYWORDS or tok.text.startswith("_") or len(tok.text) > MAX_NAME_LENGTH:
                    self.err(tok, f"message name '{tok.text}' cannot name a C function and type: "
                                  "use a name that is not a C keyword and does not start with '_'")
                    ok = False
                elif tok.text in reserved:
                    self.err(tok, f"message name '{tok.text}' is the name of a callback: its handler "
                                  f"would be the callback's")
                    ok = False
                else:
                    names[tok.text] = tok
                    messages.append(item)
            else:
                hint = (did_you_mean(key, ("max", "token_max", "message"))
                        or "; framing rules takes max, token_max and message")
                self.err(item.name, f"unknown key '{key}' in framing rules{hint}")
                ok = False
        if max_item is None:
            self.err(decl.name, "framing rules needs 'max', the largest message it accepts, e.g. 'max 64KiB;'")
            return None
        size = self.framing_max(decl, {"max": max_item})
        token_max = 0
        if token_max_item is not None:
            token_max = self.size(token_max_item, "token_max")
            if token_max is not None and size is not None and not 1 <= token_max <= size:
                self.err(token_max_item.values[0], "token_max is at least 1B and at most the framing's max")
                ok = False
        if not messages and ok:
            self.err(decl.name, "framing rules declares no message: add one, e.g. message ping { \"PING\\r\\n\" }")
            return None
        checked = []
        for index, item in enumerate(messages, 1):
            msg = self.rules_message(item, index, size)
            ok = ok and msg is not None
            checked.append(msg)
        if not ok or size is None:
            return None
        if token_max is None:
            return None
        compiled = rules.Compiler(size).compile(checked)
        compiled.token_max = token_max
        return model.Framing("rules", size, rules=compiled)

    def rules_message(self, decl, index, max_size):
        """(rules.Message, items, {name: Field}) of a checked message, or None (reported)."""
        name = decl.values[0]
        items = decl.pattern
        if not items:
            self.err(name, f"message '{name.text}' has an empty pattern: it would match nothing")
            return None
        fields = {}
        before = len(self.diagnostics)
        self.rules_fields(items, fields, in_repeat=False)
        for f in fields.values():
            if f.name in C_KEYWORDS or f.name.startswith("_"):
                self.err(f.pos, f"field name '{f.name}' is a C keyword or starts with '_'")
            elif f.name == "raw":
                self.err(f.pos, "field name 'raw' is taken: every message has 'raw', the whole message")
            elif f.name.endswith("_count") and f.name[:-6] in fields and fields[f.name[:-6]].array:
                self.err(f.pos, f"field '{f.name}' collides with the count of the repeated field '{f.name[:-6]}'")
        self.rules_sizes(items)
        if self.rules_first(items[0], f"message '{name.text}'"):
            self.rules_sequence(items, fields, set(), f"message '{name.text}'", max_size)
        if len(self.diagnostics) > before:
            return None
        msg = rules.Message(name.text, index, name.pos, list(fields.values()))
        for f in msg.fields:
            f.var = f"m{index}_{f.name}"
        return msg, items, fields

    def rules_sizes(self, items):
        """Every matched item small enough for re2c: a long literal or a large bounded repetition
        would make its automaton explode (a payload is counted, never matched)."""
        for item in items:
            if item.what == "repeat":
                self.rules_sizes(item.body)
            elif item.what == "regex" and rules.positions(item.regex) > rules.MAX_POSITIONS:
                self.err(item.pos, f"this pattern is too large for the scanner ({rules.positions(item.regex)} "
                                   f"positions; the limit is {rules.MAX_POSITIONS}): match a long literal as a "
                                   "counted payload (NAME: bytes N), a large bounded repetition unbounded")

    def rules_fields(self, items, fields, in_repeat):
        """Collects the captures of items into fields (rules.Field by name), checking their types."""
        for item in items:
            if item.what == "repeat":
                self.rules_fields(item.body, fields, True)
                continue
            if item.name is None:
                continue
            kind = "uint" if item.what == "uint" else "bytes"
            known = fields.get(item.name.text)
            if known is None:
                fields[item.name.text] = rules.Field(item.name.text, kind, in_repeat, item.name.pos)
            elif known.type != kind:
                self.err(item.name, f"'{item.name.text}' is captured as {self.rules_kind(kind)} here but as "
                                    f"{self.rules_kind(known.type)} at {known.pos.line}:{known.pos.col}: one field has one type")
            else:
                known.array = True   # captured more than once: every capture, in order

    @staticmethod
    def rules_kind(kind):
        return "a number" if kind == "uint" else "bytes"

    def rules_first(self, item, context) -> bool:
        """Whether item can make a choice (a token that matches at least one byte); reported if not."""
        if item.what == "uint":
            return True
        if item.what != "regex":
            what = "a repetition" if item.what == "repeat" else "a counted payload"
            self.err(item.pos, f"{context} starts with {what}: it must start with a string, a byte class "
                               "or a number, so that the scanner can tell what comes")
            return False
        if rules.nullable(item.regex):
            self.err(item.pos, f"{context} starts with '{item.text}', which matches the empty string: "
                               "the scanner could not tell whether it came")
            return False
        return True

    def rules_count(self, tok, defined, what):
        """Whether tok (a count: a number, or a number captured before) is valid; reported if not."""
        if tok.kind == NUMBER:
            if tok.unit or tok.value < 1:
                self.err(tok, f"{what} is a plain number of at least 1, not '{tok.text}'")
                return False
            return True
        if tok.text not in defined:
            self.err(tok, f"{what} '{tok.text}' is not a number captured before it: capture it first, "
                          f"e.g. '{tok.text}: uint'")
            return False
        return True

    def rules_sequence(self, items, fields, defined, context, max_size):
        """Checks a sequence; defined: the numbers captured before it, in scope."""
        defined = set(defined)
        for i, item in enumerate(items):
            if item.what == "uint":
                defined.add(item.name.text)
            elif item.what == "bytes":
                if self.rules_count(item.count, defined, "the payload's size"):
                    if item.count.kind == NUMBER and item.count.value > max_size:
                        self.err(item.count, f"a payload of {item.count.value} bytes is above the framing's max")
            elif item.what == "repeat":
                if item.count is not None:
                    self.rules_count(item.count, defined, "the repetition's count")
                if item.max is not None and (item.max.unit or item.max.value < 1):
                    self.err(item.max, f"a repetition's max is a plain number of at least 1, not '{item.max.text}'")
                if not item.body:
                    self.err(item.pos, "this repetition repeats nothing")
                    continue
                if not any(self.rules_consumes(x) for x in item.body):
                    self.err(item.pos, "this repetition's items may all match the empty string: every round "
                                       "must take at least one byte")
                    continue
                if item.count is None:
                    where = f"{context}: an uncounted repetition"
                    if i + 1 == len(items):
                        self.err(item.pos, f"{where} must be followed by a token that ends it (a string, a byte "
                                           "class or a number); to repeat a counted number of times, write 'repeat N'")
                        continue
                    if not (self.rules_first(item.body[0], f"{where}'s body")
                            and self.rules_first(items[i + 1], f"what follows {where}")):
                        continue
                self.rules_sequence(item.body, fields, defined, context, max_size)

    @staticmethod
    def rules_consumes(item) -> bool:
        if item.what == "uint":
            return True
        if item.what == "regex":
            return not rules.nullable(item.regex)
        if item.what == "bytes":
            return item.count.kind == NUMBER and item.count.value >= 1
        return False

    def framing_max(self, decl, items):
        if "max" not in items:
            self.err(decl.name, "framing needs 'max', the largest message it accepts, e.g. 'max 8KiB;'")
            return None
        size = self.size(items["max"], "max")
        if size == 0:
            self.err(items["max"].values[0], "max must be at least 1B")
            return None
        return size

    def framing_line(self, decl, items):
        delimiter = None
        if "delimiter" not in items:
            self.err(decl.name, "framing line needs a 'delimiter', e.g. 'delimiter \"\\r\\n\";'")
        else:
            tok = items["delimiter"].values[0]
            if tok.kind != STRING:
                self.err(tok, f"the delimiter is a string in double quotes, e.g. \"\\n\", not '{tok.text}'")
            elif not tok.data:
                self.err(tok, "the delimiter is empty")
            elif len(tok.data) > 255:
                self.err(tok, f"the delimiter is {len(tok.data)} bytes long; the limit is 255")
            else:
                delimiter = tok.data
        size = self.framing_max(decl, items)
        if delimiter is None or size is None:
            return None
        return model.Framing("line", size, delimiter=delimiter)

    def framing_byte_count(self, items, key):
        """A plain number 0..255 (offset, header), or None (reported)."""
        tok = items[key].values[0]
        if tok.kind != NUMBER or tok.unit:
            self.err(tok, f"'{key}' takes a number of bytes without a unit, e.g. '{key} 4;'")
            return None
        if tok.value > 255:
            self.err(tok, f"'{key}' {tok.value} is above the limit of 255 bytes")
            return None
        return tok.value

    def framing_length(self, decl, items):
        ok = True
        width = None
        if "width" not in items:
            self.err(decl.name, "framing length needs a 'width': 1, 2, 4, 8 or varint")
            ok = False
        else:
            tok = items["width"].values[0]
            if tok.kind == NAME and tok.text == "varint":
                width = 0
            elif tok.kind == NUMBER and not tok.unit and tok.value in (1, 2, 4, 8):
                width = tok.value
            else:
                self.err(tok, f"width '{tok.text}' is not one of 1, 2, 4, 8, varint")
                ok = False
        big_endian = True
        if "endian" in items:
            tok = items["endian"].values[0]
            if width == 0:
                self.err(tok, "a varint has no endianness: leave 'endian' out")
                ok = False
            elif tok.kind != NAME or tok.text not in ("big", "little"):
                self.err(tok, f"endian '{tok.text}' is not big or little")
                ok = False
            else:
                big_endian = tok.text == "big"
        includes_header = False
        if "includes_header" in items:
            tok = items["includes_header"].values[0]
            if tok.kind != NAME or tok.text not in ("yes", "no"):
                self.err(tok, f"includes_header takes yes or no, not '{tok.text}'")
                ok = False
            else:
                includes_header = tok.text == "yes"
        offset = self.framing_byte_count(items, "offset") if "offset" in items else 0
        header = None
        if "header" in items:
            header = self.framing_byte_count(items, "header")
            if width == 0 and header is not None:
                self.err(items["header"].values[0], "a varint's header ends with the varint: leave 'header' out")
                ok = False
        size = self.framing_max(decl, items)
        if not ok or width is None or offset is None or size is None or ("header" in items and header is None):
            return None
        if width and header is None:
            header = offset + width
        if width and offset + width > header:
            self.err(items["header"].values[0], f"header {header} is too short for a {width}-byte length "
                                                f"at offset {offset}: it needs at least {offset + width} bytes")
            return None
        return model.Framing("length", size, width=width, big_endian=big_endian, offset=offset,
                             header=header or 0, includes_header=includes_header)

    def size(self, item, what):
        if item.body is not None:
            self.err(item.name, f"{what} takes a size, not a block")
            return None
        if not item.values:
            self.err(item.name, f"{what} needs a size, e.g. '{item.name.text} 64KiB;'")
            return None
        if len(item.values) > 1:
            self.err(item.values[1], f"{what} takes one size, found {len(item.values)} values")
            return None
        tok = item.values[0]
        if tok.kind != NUMBER:
            self.err(tok, f"expected a size such as 64KiB, found '{tok.text}'")
            return None
        units = ", ".join(model.SIZE_UNITS)
        if not tok.unit:
            self.err(tok, f"size '{tok.text}' needs a unit: one of {units}")
            return None
        if tok.unit in model.DURATION_UNITS:
            self.err(tok, f"{what} takes a size such as 64KiB, not a duration like '{tok.text}'")
            return None
        if tok.unit not in model.SIZE_UNITS:
            hint = did_you_mean(tok.unit, model.SIZE_UNITS) or f"; expected one of {units}"
            self.err(tok, f"unknown size unit '{tok.unit}'{hint}")
            return None
        value = tok.value * model.SIZE_UNITS[tok.unit]
        if value > model.MAX_WATERMARK:
            self.err(tok, f"{what} {tok.text} is above the limit of {format_size(model.MAX_WATERMARK)}")
            return None
        return value


def check(spec, spec_file: str, warnings=None) -> model.Protocol:
    """The model of a valid spec, or SpecError. Warnings are appended to warnings."""
    checker = _Checker(spec, spec_file)
    try:
        return checker.protocol()
    finally:
        if warnings is not None:
            warnings.extend(sorted(checker.warnings, key=lambda d: (d.pos.line, d.pos.col)))
