"""Draws a Machine (model.py): Graphviz DOT and Mermaid stateDiagram-v2.

The same checked Machine the C tables come from: a protocol with states draws
them; one without draws asyncio's lifecycle of its kind. Transitions that
several events share are one edge with every label; self-loops are drawn;
an eventless transition ('always') is a dashed edge; a timeout's edge says so.
"""

from protogen import model


def _machine(proto) -> model.Machine:
    return proto.machine or model.lifecycle_machine(proto.kind, proto.callbacks)


def _parts(proto):
    """The kind's machines beside its lifecycle (a subprocess's pipes), when its lifecycle is drawn."""
    return [] if proto.machine else model.part_machines(proto.kind, proto.callbacks)


def _edges(machine):
    """{(from, to): [labels]} in declaration order; a state timeout is labelled 'timeout'."""
    out = {}
    for a, b, ev in machine.edges():
        label = ev
        if ev and ev.endswith("_timeout") and any(e.name == ev and e.kind == "timeout" for e in machine.events):
            label = "timeout"
        out.setdefault((a, b), [])
        if label not in out[(a, b)]:
            out[(a, b)].append(label)
    return out


def _state_label(st) -> str:
    extra = []
    if st.timeout_ms:
        extra.append(f"timeout {_duration(st.timeout_ms)}")
    if st.framing is not None:
        extra.append(f"framing {st.framing.kind} {st.framing_message}")
    ignored = [e for e, r in st.reactions.items() if r.action == "ignore" and not r.inherited]
    deferred = [e for e, r in st.reactions.items() if r.action == "defer" and not r.inherited]
    if ignored:
        extra.append("ignore " + " ".join(ignored))
    if deferred:
        extra.append("defer " + " ".join(deferred))
    return st.name + "".join(f"\\n{x}" for x in extra)


def _duration(ms: int) -> str:
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def dot(proto) -> str:
    m = _machine(proto)
    title = f"{proto.name}: {'states' if m.user else 'asyncio ' + m.name + ' lifecycle'} ({proto.spec_file})"
    lines = [f"// {title}, drawn by protogen from the checked spec",
             f'digraph "{proto.name}" {{',
             "    rankdir=LR;",
             f'    label="{title}";',
             '    node [shape=box, style=rounded, fontname="Helvetica"];',
             '    edge [fontname="Helvetica", fontsize=10];',
             '    __start [shape=point, width=0.15, label=""];']
    for st in m.states:
        shape = ", peripheries=2" if st.final else ""
        lines.append(f'    "{st.name}" [label="{_state_label(st)}"{shape}];')
    lines.append(f'    __start -> "{m.initial.name}";')
    for (a, b), labels in _edges(m).items():
        style = ', style=dashed' if labels == [""] else ""
        lines.append(f'    "{a}" -> "{b}" [label="{", ".join(x for x in labels if x)}"{style}];')
    for i, (title, part) in enumerate(_parts(proto)):
        lines += [f"    subgraph cluster_{i} {{", f'        label="{title}";',
                  f'        __start{i} [shape=point, width=0.15, label=""];']
        for st in part.states:
            lines.append(f'        "{i}:{st.name}" [label="{st.name}"{", peripheries=2" if st.final else ""}];')
        lines.append(f'        __start{i} -> "{i}:{part.initial.name}";')
        for (a, b), labels in _edges(part).items():
            lines.append(f'        "{i}:{a}" -> "{i}:{b}" [label="{", ".join(labels)}"];')
        lines.append("    }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def mermaid(proto) -> str:
    m = _machine(proto)
    lines = [f"%% {proto.name}: drawn by protogen from {proto.spec_file}", "stateDiagram-v2"]
    for st in m.states:
        label = _state_label(st).replace("\\n", "<br/>")
        if label != st.name:
            lines.append(f'    {st.name} : {label}')
    lines.append(f"    [*] --> {m.initial.name}")
    for (a, b), labels in _edges(m).items():
        text = ", ".join(x for x in labels if x) or "always"
        lines.append(f"    {a} --> {b} : {text}")
    for st in m.states:
        if st.final:
            lines.append(f"    {st.name} --> [*]")
    for i, (title, part) in enumerate(_parts(proto)):
        lines.append(f'    state "{title}" as part{i} {{')
        lines.append(f"        [*] --> p{i}_{part.initial.name}")
        for st in part.states:
            lines.append(f"        p{i}_{st.name} : {st.name}")
        for (a, b), labels in _edges(part).items():
            lines.append(f"        p{i}_{a} --> p{i}_{b} : {', '.join(labels)}")
        lines.append("    }")
    return "\n".join(lines) + "\n"
