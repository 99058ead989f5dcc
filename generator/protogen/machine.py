"""Checks a spec's `states` and `timeouts` blocks and builds its Machine (model.py).

What is proved here, at generation time, each with its own diagnostic:
  - every name exists: states, messages, timers (with a did-you-mean);
  - every (state, message) pair is handled, ignored, deferred or covered by a
    declared default (P's rule), and every timeout has a reaction in every
    state it can fire in;
  - every state is reachable from the initial one; no non-final state is a
    dead end (nothing it does can change anything); a final state reacts to
    nothing (entering it closes the connection);
  - eventless transitions ('always') form no cycle.
"""

from protogen import model
from protogen.diagnostics import Diagnostic, did_you_mean
from protogen.lexer import ARROW, NAME, NUMBER

# The lifecycle's events a state may react to ('on connection_made -> ...'):
# their handlers are the kind's callbacks of the same name.
LIFECYCLE_EVENTS = ("connection_made", "eof_received")
STATE_KEYS = ("on", "ignore", "defer", "default", "timeout", "framing", "always")
MACHINE_KEYS = ("state", "on", "ignore", "defer", "default")
TIMEOUT_KEYS = ("idle", "close", "timer")
MAX_STATES = 64   # a transition's targets are a 64-bit mask in the C tables


class MachineChecker:
    """Used by check._Checker: err/warn/duration/framing helpers come from it."""

    def __init__(self, checker, proto_name, messages, framing_checker, rules):
        self.c = checker
        self.proto = proto_name
        self.messages = messages              # the declared framing's message names, in order
        self.rules = rules                    # a rules framing: message_received is its raw messages
        self.framing_checker = framing_checker   # (decl, kind) -> model.Framing or None

    def err(self, where, message, notes=()):
        """An error at a token or a position; notes: (Position, text) pointing at what is involved."""
        if hasattr(where, "text"):
            self.c.diagnostics.append(Diagnostic(where.pos, message, length=len(where.text), notes=tuple(notes)))
        else:
            self.c.diagnostics.append(Diagnostic(where, message, notes=tuple(notes)))

    # -- timeouts --------------------------------------------------------

    def timeouts(self, decl):
        """(idle_ms, close_ms, [Timer], {name: token}) of a timeouts block."""
        idle = close = 0
        timers, seen = [], {}
        if decl is None:
            return 0, 0, [], {}
        for item in self.c.block_items(decl, "timeouts"):
            key = item.name.text
            if key not in TIMEOUT_KEYS:
                self.err(item.name, f"unknown timeout '{key}'{did_you_mean(key, TIMEOUT_KEYS) or '; expected idle, close or timer'}")
                continue
            if key in ("idle", "close"):
                if key in seen:
                    self.err(item.name, f"duplicate '{key}' timeout (first declared at line {seen[key].pos.line})")
                    continue
                seen[key] = item.name
                ms = self.duration(item, item.values, f"the {key} timeout")
                if key == "idle":
                    idle = ms or 0
                else:
                    close = ms or 0
                continue
            # timer NAME DURATION;
            if not item.values or item.values[0].kind != NAME:
                self.err(item.name, "a timer takes a name and a duration: timer retry 5s;")
                continue
            tok = item.values[0]
            if tok.text in seen:
                self.err(tok, f"duplicate timer '{tok.text}' (first declared at line {seen[tok.text].pos.line})")
                continue
            seen[tok.text] = tok
            ms = self.duration(item, item.values[1:], f"timer '{tok.text}'")
            if ms:
                timers.append(model.Timer(tok.text, ms, tok.pos))
        return idle, close, timers, seen

    def duration(self, item, values, what):
        """Milliseconds of one duration value, or None (reported)."""
        if item.body is not None:
            self.err(item.name, f"{what} takes a duration, not a block")
            return None
        if len(values) != 1:
            where = values[1] if len(values) > 1 else item.name
            self.err(where, f"{what} takes one duration, e.g. 30s")
            return None
        tok = values[0]
        if tok.kind != NUMBER or tok.unit not in model.DURATION_UNITS:
            units = ", ".join(model.DURATION_UNITS)
            if tok.kind == NUMBER and tok.unit in model.SIZE_UNITS:
                self.err(tok, f"{what} takes a duration such as 30s, not a size like '{tok.text}'")
            else:
                self.err(tok, f"{what} takes a duration with a unit ({units}), e.g. 30s; found '{tok.text}'")
            return None
        ms = tok.value * model.DURATION_UNITS[tok.unit]
        if ms == 0 or ms > 2 ** 31:
            self.err(tok, f"{what} must be between 1ms and 24 days")
            return None
        return ms

    # -- states ----------------------------------------------------------

    def machine(self, decl, timeouts_decl, declared_callbacks):
        """The checked Machine, or None (reported)."""
        before = len(self.c.diagnostics)
        idle, close, timers, timer_toks = self.timeouts(timeouts_decl)
        if decl is None:
            if timeouts_decl is not None:
                self.err(timeouts_decl.name, "timeouts need 'states': their reactions are transitions, "
                                            "e.g. states { state open initial { on idle -> closed; } state closed final; }")
            return None
        items = self.c.block_items(decl, "states")
        states, common, defaults = [], {}, []
        names = {}
        for item in items:
            key = item.name.text
            if key not in MACHINE_KEYS:
                hint = did_you_mean(key, MACHINE_KEYS) or "; states takes state, on, ignore, defer and default"
                self.err(item.name, f"unknown key '{key}' in states{hint}")
                continue
            if key == "state":
                st = self.state_decl(item, len(states), names)
                if st is not None:
                    states.append((st, item))
            else:
                self.reaction_decl(item, common, "every state", defaults)
        if not states:
            if len(self.c.diagnostics) == before:
                self.err(decl.name, "states declares no state: add one, e.g. state open initial { ... }")
            return None
        initial = [st for st, _ in states if st.initial]
        if not initial:
            self.err(decl.name, "no state is marked 'initial': write e.g. 'state "
                                f"{states[0][0].name} initial {{ ... }}'")
            return None
        if len(initial) > 1:
            self.err(states[[s for s, _ in states].index(initial[1])][1].values[1],
                     f"a second initial state '{initial[1].name}'",
                     [(initial[0].pos, f"'{initial[0].name}' is the initial state")])
            return None
        # Each state's own items: its framing first (it decides which messages come).
        state_framings = {}
        for st, item in states:
            for sub in item.body or ():
                if sub.name.text == "framing":
                    self.state_framing(st, sub, state_framings, declared_callbacks)
        events = self.events(states, state_framings, timers, idle, declared_callbacks)
        if len(self.c.diagnostics) > before:
            return None
        by_name = {e.name: e for e in events}
        for st, item in states:
            own = {}
            for sub in item.body or ():
                key = sub.name.text
                if key not in STATE_KEYS:
                    hint = did_you_mean(key, STATE_KEYS) or "; a state takes on, ignore, defer, default, timeout, framing and always"
                    self.err(sub.name, f"unknown key '{key}' in state '{st.name}'{hint}")
                elif key == "timeout":
                    self.state_timeout(st, sub, own)
                elif key == "always":
                    self.always(st, sub)
                elif key != "framing":
                    self.reaction_decl(sub, own, f"state '{st.name}'", None, st)
            st.reactions = own
        if len(self.c.diagnostics) > before:
            return None
        machine = model.Machine(self.proto, [st for st, _ in states], events, timers, idle, close)
        machine.states.sort(key=lambda s: not s.initial)
        for i, st in enumerate(machine.states):
            st.index = i
        self.resolve(machine, common, by_name, timer_toks)
        if len(self.c.diagnostics) > before:
            return None
        machine.defaults = tuple(sorted({s.default for s in machine.states if s.default}))
        self.check_graph(machine)
        return None if len(self.c.diagnostics) > before else machine

    def state_decl(self, item, index, names):
        """state NAME [initial] [final] (';' or a block): a MachineState, or None (reported)."""
        if not item.values or item.values[0].kind != NAME:
            self.err(item.name, "a state takes a name: state open { ... }")
            return None
        tok = item.values[0]
        if tok.text in names:
            self.err(tok, f"duplicate state '{tok.text}'", [(names[tok.text], "first declared here")])
            return None
        if tok.text.startswith("_") or len(tok.text) > 64:
            self.err(tok, f"state name '{tok.text}' cannot name a C constant: do not start it with '_'")
            return None
        names[tok.text] = tok.pos
        st = model.MachineState(tok.text, index, tok.pos)
        for flag in item.values[1:]:
            if flag.kind == NAME and flag.text == "initial":
                st.initial = True
            elif flag.kind == NAME and flag.text == "final":
                st.final = True
            else:
                self.err(flag, f"a state is marked 'initial' or 'final', not '{flag.text}'")
        if st.final and item.body:
            self.err(item.body[0].name, f"final state '{st.name}' reacts to nothing: entering it closes the "
                                        "connection once what is written is sent")
        if st.final and st.initial:
            self.err(tok, f"state '{st.name}' is both initial and final: the connection would close at once")
        return st

    def state_framing(self, st, sub, state_framings, declared_callbacks):
        """framing line NAME { ... } (or length) in a state: its own framing and message."""
        if len(sub.values) != 2 or sub.values[0].text not in ("line", "length") or sub.values[1].kind != NAME:
            self.err(sub.name, "a state's framing is 'framing line NAME { ... }' or 'framing length NAME { ... }': "
                               "the framing and its message's name")
            return
        if st.framing is not None:
            self.err(sub.name, f"state '{st.name}' has a second framing")
            return
        msg = sub.values[1]
        if msg.text in self.messages or msg.text in state_framings or msg.text in declared_callbacks:
            self.err(msg, f"message name '{msg.text}' is taken: a state's framing names a message of its own")
            return
        framing = self.framing_checker(sub, sub.values[0].text)
        if framing is not None:
            st.framing = framing
            st.framing_message = msg.text
            state_framings[msg.text] = (framing, msg.pos, st)

    def events(self, states, state_framings, timers, idle, declared_callbacks):
        """Every event of the machine: messages (the declared framing's, then the states'),
        timers, idle, the states' timeouts, lifecycle events."""
        events = []
        for m in self.messages:
            raw = self.rules and m == "message_received"
            events.append(model.MachineEvent(m, "message", handler=m, raw=raw,
                                             params=(("const uint8_t *", "data"), ("size_t", "len")) if raw else ()))
        for name, (framing, pos, st) in state_framings.items():
            events.append(model.MachineEvent(name, "message", pos=pos, framing=framing, handler=name,
                                             params=(("const uint8_t *", "data"), ("size_t", "len"))))
        taken = {e.name for e in events} | set(declared_callbacks)
        for t in timers:
            if t.name in taken or t.name in ("idle", "close"):
                self.err(t.pos, f"timer name '{t.name}' is taken by a message or a callback: its handler "
                                f"would be theirs")
            events.append(model.MachineEvent(t.name, "timer", pos=t.pos, handler=t.name))
        if idle:
            events.append(model.MachineEvent("idle", "idle", handler="idle"))
        for st, item in states:
            if any(sub.name.text == "timeout" for sub in item.body or ()):
                name = f"{st.name}_timeout"
                if name in taken:
                    self.err(st.pos, f"the handler of state '{st.name}''s timeout, '{name}', is taken by a message")
                events.append(model.MachineEvent(name, "timeout", pos=st.pos, handler=name))
        for cb in LIFECYCLE_EVENTS:
            events.append(model.MachineEvent(cb, "lifecycle", handler=cb))
        for i, e in enumerate(events, 1):
            e.index = i
        return events

    def state_timeout(self, st, sub, own):
        """timeout DURATION [-> TARGETS];"""
        values = sub.values
        arrow = next((i for i, v in enumerate(values) if v.kind == ARROW), len(values))
        ms = self.duration(sub, values[:arrow], f"state '{st.name}''s timeout")
        if st.timeout_ms:
            self.err(sub.name, f"state '{st.name}' has a second timeout")
            return
        if ms:
            st.timeout_ms = ms
            targets = self.targets(values[arrow + 1:], sub) if arrow < len(values) else [(st.name, sub.name)]
            own[f"{st.name}_timeout"] = ("handle", targets, sub.name)

    def always(self, st, sub):
        """always -> TARGET; an eventless transition, taken on entering the state."""
        if len(sub.values) != 2 or sub.values[0].kind != ARROW or sub.values[1].kind != NAME:
            self.err(sub.name, "an eventless transition is 'always -> STATE;', one target")
            return
        st.always = (sub.values[1].text, sub.values[1])

    def targets(self, toks, where):
        if not toks:
            self.err(where, "'->' needs at least one target state")
            return []
        out = []
        for t in toks:
            if t.kind != NAME:
                self.err(t, f"a target is a state's name, not '{t.text}'")
            else:
                out.append((t.text, t))
        return out

    def reaction_decl(self, item, into, where, defaults, st=None):
        """on EVENT [-> T...]; ignore M...; defer M...; default HANDLER; into: event -> (action, targets, tok)."""
        key = item.name.text
        if item.body is not None:
            self.err(item.name, f"'{key}' takes values, not a block")
            return
        values = item.values
        if key == "default":
            if len(values) != 1 or values[0].kind != NAME:
                self.err(item.name, "'default' names the handler of the messages a state does not expect: "
                                    "default out_of_sequence;")
                return
            if "" in into:
                self.err(item.name, f"a second 'default' in {where}")
                return
            into[""] = ("default", values[0].text, values[0])
            return
        if not values or values[0].kind != NAME:
            self.err(item.name, f"'{key}' needs an event's name: {key} NAME;")
            return
        if key == "on":
            event = values[0]
            rest = values[1:]
            if rest and rest[0].kind != ARROW:
                self.err(rest[0], f"expected '->' and the target states after 'on {event.text}', or ';' to stay")
                return
            targets = self.targets(rest[1:], rest[0]) if rest else [(None, event)]
            self.add(into, event, ("handle", targets, event), where)
            return
        for tok in values:
            if tok.kind != NAME:
                self.err(tok, f"'{key}' takes message names, not '{tok.text}'")
                continue
            self.add(into, tok, (key, [], tok), where)

    def add(self, into, tok, reaction, where):
        if tok.text in into:
            first = into[tok.text][2]
            self.err(tok, f"a second reaction to '{tok.text}' in {where}", [(first.pos, "the first one")])
            return
        into[tok.text] = reaction

    def resolve(self, machine, common, by_name, timer_toks):
        """Turns the declared reactions into Reactions, every name checked, the common ones
        applied to every state that has the event and no reaction of its own."""
        state_names = [s.name for s in machine.states]
        event_names = list(by_name)
        default_common = common.pop("", None)

        def known_event(tok):
            if tok.text in by_name:
                return True
            if tok.text == "idle" and not machine.idle_ms:
                self.err(tok, "'idle' needs an idle timeout: declare one, e.g. timeouts { idle 300s; }")
                return False
            self.err(tok, f"unknown event '{tok.text}'{did_you_mean(tok.text, event_names) or '; events are the messages, timers, idle and the lifecycle' + chr(39) + 's connection_made and eof_received'}")
            return False

        def reaction(st, name, decl, inherited):
            action, targets, tok = decl
            ev = by_name[name]
            if action in ("ignore", "defer") and ev.kind != "message":
                what = "a lifecycle event" if ev.kind == "lifecycle" else "a timeout"
                self.err(tok, f"only messages can be {action}d; '{name}' is {what}: react to it with 'on {name} ...;'")
                return None
            if action != "handle":
                return model.Reaction(action, (), tok.pos, inherited)
            out = []
            for t, ttok in targets:
                t = t or st.name
                if t not in state_names:
                    self.err(ttok, f"unknown state '{t}'{did_you_mean(t, state_names)}")
                    return None
                if t not in out:
                    out.append(t)
            return model.Reaction("handle", tuple(out), tok.pos, inherited)

        for name, decl in common.items():
            known_event(decl[2])
        for st in machine.states:
            own = st.reactions
            st.reactions = {}
            default = own.pop("", None) or default_common
            if default:
                st.default = default[1]
            for name, decl in own.items():
                if name in by_name or known_event(decl[2]):
                    if not self.event_in_state(by_name[name], st):
                        self.err(decl[2], f"'{name}' cannot come in state '{st.name}': "
                                          + self.why_not(by_name[name], st))
                        continue
                    r = reaction(st, name, decl, False)
                    if r:
                        st.reactions[name] = r
            for name, decl in common.items():
                if name in by_name and name not in st.reactions and self.event_in_state(by_name[name], st) \
                        and not st.final:
                    r = reaction(st, name, decl, True)
                    if r:
                        st.reactions[name] = r
            if st.always:
                target, ttok = st.always
                if target not in state_names:
                    self.err(ttok, f"unknown state '{target}'{did_you_mean(target, state_names)}")
                    st.always = ""
                else:
                    st.always = target
        for name, tok in timer_toks.items():
            if name in ("idle", "close"):
                continue
            if not any(name in s.reactions for s in machine.states):
                self.err(tok, f"timer '{name}' has no reaction: add 'on {name} ...' to the states it can fire in")

    def event_in_state(self, ev, st):
        if ev.kind == "message" and ev.raw:
            return True   # a raw message (NAME_expect_raw) comes in whatever state asked for it
        if ev.kind == "message":
            return (ev.framing is None and st.framing is None) or (ev.framing is not None and st.framing_message == ev.name)
        if ev.kind == "timeout":
            return ev.name == f"{st.name}_timeout"
        if ev.kind == "lifecycle" and ev.name == "connection_made":
            return st.initial
        return True

    def why_not(self, ev, st):
        if ev.kind == "message" and st.framing is not None:
            return f"its framing is its own, whose message is '{st.framing_message}'"
        if ev.kind == "message":
            return "the message belongs to another state's framing"
        if ev.kind == "lifecycle":
            return "connection_made comes only in the initial state"
        return "it is another state's timeout"

    def check_graph(self, machine):
        """Coverage (P's rule), timeouts' reactions, reachability, dead ends, eventless cycles."""
        for st in machine.states:
            if st.final or st.always:
                continue   # nothing comes in a final state, nor in one left at once
            missing = [e.name for e in machine.events if e.kind == "message" and self.event_in_state(e, st)
                       and e.name not in st.reactions]
            if missing and not st.default:
                shown = ", ".join(f"'{m}'" for m in missing[:4]) + (", ..." if len(missing) > 4 else "")
                self.err(st.pos, f"state '{st.name}' does not say what to do with message{'s' if len(missing) > 1 else ''} "
                                 f"{shown}: add 'on {missing[0]} ...;', 'ignore {missing[0]};', 'defer {missing[0]};' "
                                 "or a 'default HANDLER;'")
            if machine.idle_ms and "idle" not in st.reactions:
                self.err(st.pos, f"state '{st.name}' has no reaction to the idle timeout: add 'on idle -> ...;' "
                                 "(here, or for every state directly in 'states')")
        initial = machine.initial
        seen, todo = {initial.name}, [initial.name]
        succ = {}
        for a, b, _ in machine.edges():
            succ.setdefault(a, set()).add(b)
        while todo:
            for b in succ.get(todo.pop(), ()):
                if b not in seen:
                    seen.add(b)
                    todo.append(b)
        for st in machine.states:
            if st.name not in seen:
                self.err(st.pos, f"state '{st.name}' is unreachable from the initial state '{initial.name}'",
                         [(initial.pos, "the initial state")])
            elif not st.final and not any(r.action == "handle" for r in st.reactions.values()) and not st.always:
                self.err(st.pos, f"state '{st.name}' is a dead end: it handles no event and is not final "
                                 "(mark it 'final', or add a transition)")
        # Eventless transitions: following 'always' from any state must end.
        always = {s.name: s.always for s in machine.states if s.always}
        reported = set()
        for start in always:
            path, at = [], start
            while at in always and at not in path:
                path.append(at)
                at = always[at]
            if at in path and at not in reported:
                cycle = path[path.index(at):]
                reported.update(cycle)
                self.err(machine.state(at).pos, "eventless transitions ('always') go round in a cycle: "
                                                + " -> ".join(cycle + [at]),
                         [(machine.state(s).pos, f"state '{s}'") for s in cycle[1:]])
