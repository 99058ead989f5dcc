"""Renders the model into files: all in memory first, then written atomically.

A failed run leaves every file as it was. The handler skeleton is the user's
file: it is created only when absent and never replaced, even in a race.
"""

import errno
import functools
import os
import secrets
import tempfile
from dataclasses import dataclass

import jinja2

from protogen import RUNTIME_ABI, VERSION, diagram, model, re2c


@dataclass(frozen=True)
class Planned:
    """One output: its template (in the kind's folder), its file name, where it goes."""
    template: str
    filename: str          # formatted with the protocol's name
    in_handlers_dir: bool  # beside the user's handlers, not in the output directory
    user_file: bool        # the user's: written when absent, never overwritten
    default: bool = True   # written when --emit is not given


# The output plan, in the order outputs are listed and written: the one place
# that names them. NAME.c is the protocol and needs no loop; NAME_bind.c ties it
# to the built-in one (listen, connect, adopt, bind, spawn...).
PLAN = {
    "header": Planned("header.h.j2", "{name}.h", False, False),
    "source": Planned("source.c.j2", "{name}.c", False, False),
    "bind": Planned("bind.c.j2", "{name}_bind.c", False, False),
    # The protocol's machine (its states, or asyncio's lifecycle), drawn: diagram.py.
    "dot": Planned("", "{name}.dot", False, False, default=False),
    "mermaid": Planned("", "{name}.mmd", False, False, default=False),
    "handlers": Planned("handlers.c.j2", "{name}_handlers.c", True, True),
}
OUTPUTS = tuple(PLAN)
DEFAULT_OUTPUTS = tuple(what for what, planned in PLAN.items() if planned.default)


def templates_dir() -> str:
    here = os.path.dirname(os.path.abspath(__file__))
    # Source tree: generator/protogen/../../templates; installed: share/protogen/{generator/protogen,templates}.
    return os.path.normpath(os.path.join(here, "..", "..", "templates"))


def c_params(callback, proto) -> str:
    params = [f"{proto.name}_conn *conn", f"struct {proto.name}_session *session"]
    params += [f"{ctype}{'' if ctype.endswith('*') else ' '}{name}" for ctype, name in callback.params]
    return ", ".join(params)


def _c_runtime_params(callback) -> str:
    params = ["void *self"]
    params += [f"{ctype}{'' if ctype.endswith('*') else ' '}{name}" for ctype, name in callback.runtime_params]
    return ", ".join(params)


def _c_args(callback) -> str:
    return ", ".join(["conn", "session"] + [name for _, name in callback.params])


def _c_comment(text: str, indent: str = "") -> str:
    lines = text.split("\n")
    return "\n".join(f"{indent}/* {line} */" if len(lines) == 1 else f"{indent}{' * ' if i else '/* '}{line}"
                     for i, line in enumerate(lines)) + ("" if len(lines) == 1 else f"\n{indent} */")


@functools.lru_cache(maxsize=None)
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir()),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    # Every naming and formatting rule the templates use is registered here.
    env.filters["c_params"] = c_params
    env.filters["c_runtime_params"] = _c_runtime_params
    env.filters["c_args"] = _c_args
    env.filters["c_comment"] = _c_comment
    env.filters["upper_ident"] = lambda s: s.upper()
    env.filters["c_string"] = model.c_string
    # "uint8_t *" + name, "void " + name: a C return type ready to prefix a name.
    env.filters["c_type_prefix"] = lambda t: t if t.endswith("*") else t + " "
    return env


def _lifecycle(proto) -> dict:
    """The kind's lifecycle (its Machine) as C enum names and a full (state x event) table."""
    P = proto.name.upper()
    machine = model.lifecycle_machine(proto.kind, proto.callbacks)
    states = [{"name": s.name, "enum": f"{P}_{s.name.upper()}"} for s in machine.states]
    events = [{"name": e.name, "enum": f"{P}_EV_{e.name.upper()}"} for e in machine.events]
    enum_of = {s["name"]: s["enum"] for s in states}
    table = []
    for s in machine.states:
        row = []
        for e in machine.events:
            r = s.reactions.get(e.name)
            row.append(enum_of[r.targets[0]] if r else f"{P}_INVALID")
        table.append({"state": {"name": s.name}, "next": row})
    # An event that leaves every state it may come in as it is (a read, flow control) is
    # checked by a mask of those states instead of the table: one test on the hot path.
    for e in events:
        valid = [s for s in machine.states if e["name"] in s.reactions]
        keeps = valid and all(s.reactions[e["name"]].targets[0] == s.name for s in valid)
        e["keeps"] = " | ".join(f"(1u << {enum_of[s.name]})" for s in valid) if keeps else "0"
    return {"states": states, "events": events, "table": table}


def _machine(proto):
    """The spec's Machine as the C tables print it: enum names, reactions as (action, first
    target, target mask), per-state information. None without states."""
    m = proto.machine
    if m is None:
        return None
    P = proto.name.upper()
    states = [{"name": s.name, "enum": f"{P}_STATE_{s.name.upper()}", "index": s.index, "final": s.final,
               "timeout_ms": s.timeout_ms, "initial": s.initial,
               "always": f"{P}_STATE_{s.always.upper()}" if s.always else "-1",
               "framing": f"&{proto.name}__framing_{s.framing_message}" if s.framing else "NULL",
               "framing_model": s.framing, "framing_message": s.framing_message,
               "timeout_event": f"{P}__E_{s.name.upper()}_TIMEOUT" if s.timeout_ms else "0",
               "message_event": f"{P}__E_{s.framing_message.upper()}" if s.framing else "0",
               "default": s.default}
              for s in m.states]
    enum_of = {s["name"]: s["enum"] for s in states}
    events = [{"name": e.name, "kind": e.kind, "enum": f"{P}__E_{e.name.upper()}", "index": e.index,
               "handler": e.handler, "framing": e.framing} for e in m.events]
    handled = {ev for st in m.states for ev, r in st.reactions.items() if r.action == "handle"}
    actions = {"handle": "PG_MACHINE_HANDLE", "ignore": "PG_MACHINE_IGNORE", "defer": "PG_MACHINE_DEFER",
               "default": "PG_MACHINE_DEFAULT"}
    rows = []
    for st in m.states:
        cells = []
        for e in m.events:
            r = st.reactions.get(e.name)
            if r is None and e.kind == "message" and st.default and not st.final:
                cells.append((e, "PG_MACHINE_DEFAULT", "0", "0"))
            elif r is not None:
                mask = " | ".join(f"PG_MACHINE_BIT({enum_of[t]})" for t in r.targets) or "0"
                first = enum_of[r.targets[0]] if r.targets else "0"
                cells.append((e, actions[r.action], first, mask))
        rows.append({"state": states[st.index], "cells": [
            {"event": events[e.index - 1], "action": a, "first": f, "mask": k} for e, a, f, k in cells]})
    messages = [e for e in events if e["kind"] == "message"]
    timers = [{"name": t.name, "enum": f"{P}_TIMER_{t.name.upper()}", "ms": t.ms, "index": i,
               "event": f"{P}__E_{t.name.upper()}"} for i, t in enumerate(m.timers)]
    return {"states": states, "events": events, "rows": rows, "messages": messages, "timers": timers,
            "idle_ms": m.idle_ms, "close_ms": m.close_ms, "handled": handled, "defaults": m.defaults,
            "model": m}


@dataclass
class Output:
    what: str      # one of OUTPUTS
    path: str
    text: str
    user_file: bool = False   # never overwritten


def paths(proto, out_dir: str, handlers_dir: str, emit=OUTPUTS) -> list:
    """(what, path) of each wanted output, in the plan's order."""
    return [(what, os.path.join(handlers_dir if planned.in_handlers_dir else out_dir,
                                planned.filename.format(name=proto.name)))
            for what, planned in PLAN.items() if what in emit]


def has_scanner(proto) -> bool:
    """Whether NAME.c holds re2c blocks (a rules framing), which re2c compiles."""
    return bool(proto.framing and proto.framing.rules)


def render_template(proto, what: str) -> str:
    """One output's text as the template writes it (re2c blocks not compiled yet)."""
    if what == "dot":
        return diagram.dot(proto)
    if what == "mermaid":
        return diagram.mermaid(proto)
    return _environment().get_template(f"{proto.kind.name}/{PLAN[what].template}").render(_context(proto))


def _context(proto) -> dict:
    return {
        "p": proto,
        "tls_versions": model.TLS_VERSIONS,
        "version": VERSION,
        "abi": RUNTIME_ABI,
        "guard": f"{proto.name.upper()}_H_INCLUDED",
        "P": proto.name.upper(),
        "lifecycle": _lifecycle(proto),
        "machine": _machine(proto),
    }


def render(proto, out_dir: str, handlers_dir: str, emit=OUTPUTS, scanner_source: str = None) -> list:
    """The outputs' texts. NAME.c goes through re2c when it holds a scanner (scanner_source:
    its template text, if rendered already). Raises re2c.Re2cError."""
    outputs = []
    for what, path in paths(proto, out_dir, handlers_dir, emit):
        if what == "source" and has_scanner(proto):
            text = re2c.compile_source(scanner_source or render_template(proto, what))
        else:
            text = render_template(proto, what)
        outputs.append(Output(what, path, text, PLAN[what].user_file))
    return outputs


def _temp_beside(path: str, text: str) -> str:
    directory = os.path.dirname(path) or "."
    try:
        fd, tmp = tempfile.mkstemp(prefix=".protogen-", suffix=".tmp", dir=directory)
    except OSError as e:
        raise _about(e, path) from e
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
    except OSError as e:
        os.unlink(tmp)
        raise _about(e, path) from e
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


def _about(e: OSError, path: str) -> OSError:
    """The same error, naming the output rather than a temporary file."""
    return OSError(e.errno, e.strerror, path)


def _check_destination(path: str):
    """Fails now what os.replace would fail later, before anything is replaced."""
    if os.path.isdir(path) and not os.path.islink(path):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)


def _backup(path: str):
    """A second name for the file at path (None if there is none), so that it can be put
    back: a hard link, or where there are none the file moved aside."""
    directory = os.path.dirname(path) or "."
    while True:
        backup = os.path.join(directory, f".protogen-{secrets.token_hex(6)}.bak")
        try:
            os.link(path, backup, follow_symlinks=False)
            return backup
        except FileExistsError:
            continue
        except FileNotFoundError:
            return None
        except OSError:
            try:
                os.rename(path, backup)
            except FileNotFoundError:
                return None
            return backup


@dataclass
class _Pending:
    tmp: str
    final: str
    user_file: bool
    backup: str = None


def write(outputs) -> list:
    """Writes the outputs, all or nothing; returns the paths written. Skips an existing user file.

    Generated files are replaced only when their content changed, so builds
    that track timestamps do not rebuild for nothing. Every output is written to
    a temporary file beside it and every destination checked before any is
    replaced; if a replace fails all the same, what was replaced is restored from
    its backup and what was created is removed. Nothing temporary is left behind,
    and an error names the output, never a temporary file.
    """
    pending = []
    try:
        for out in outputs:
            if out.user_file and os.path.exists(out.path):
                continue
            if not out.user_file and _same_content(out.path, out.text):
                continue
            _check_destination(out.path)
            pending.append(_Pending(_temp_beside(out.path, out.text), out.path, out.user_file))
        return _replace_all(pending)
    finally:
        for p in pending:
            for leftover in (p.tmp, p.backup):
                if leftover:
                    try:
                        os.unlink(leftover)
                    except FileNotFoundError:
                        pass


def _replace_all(pending) -> list:
    done = []   # _Pending whose final path now holds the new content
    try:
        for p in pending:
            if p.user_file:
                try:
                    os.link(p.tmp, p.final)   # fails if the file appeared meanwhile: never clobbers
                except FileExistsError:
                    continue
            else:
                p.backup = _backup(p.final)
                os.replace(p.tmp, p.final)
            done.append(p)
    except OSError as e:
        for q in reversed(done):
            try:
                if q.backup:
                    os.replace(q.backup, q.final)
                else:
                    os.unlink(q.final)
            except OSError:
                pass   # nothing better to do: the error below is the one to report
        if p.backup and not os.path.lexists(p.final):
            os.replace(p.backup, p.final)   # moved aside (no hard links) and not replaced
        raise _about(e, p.final) from e
    return [p.final for p in done]


def _same_content(path: str, text: str) -> bool:
    try:
        with open(path, encoding="utf-8", newline="") as f:
            return f.read() == text
    except (OSError, UnicodeDecodeError):
        return False
