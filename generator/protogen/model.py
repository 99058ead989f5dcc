"""The checked model of a protocol, and the catalogue of what the language knows.

Everything the templates need is decided here or in check.py; templates only print it.
"""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Callback:
    """A protocol callback as the user implements it: <proto>_on_<name>(conn, state, params...)."""
    name: str
    returns: str                 # C return type
    params: tuple = ()           # extra (ctype, name) pairs after conn and state
    runtime_params: tuple = ()   # the runtime's own parameter list, after `void *self`
    default_return: str = ""     # what an undeclared callback returns (asyncio's default)
    doc: str = ""
    runtime: bool = True         # a runtime protocol op; False: made by the generated code (framing)


@dataclass(frozen=True)
class Lifecycle:
    """Which callbacks may come in which state: the order asyncio guarantees, as data."""
    states: tuple                 # first one is the initial state
    transitions: dict             # (state, callback) -> next state
    flow_callbacks: tuple = ()    # pause/resume: allowed while in flow_states, alternating
    flow_states: tuple = ()


@dataclass(frozen=True)
class Kind:
    name: str
    callbacks: tuple              # of Callback, in the order they are documented
    lifecycle: Lifecycle = None
    supported: bool = True
    required: tuple = ()          # callbacks with no default: the spec must declare them


@dataclass(frozen=True)
class Transport:
    name: str
    kinds: tuple                  # kinds this transport can carry
    can_write_eof: bool = True
    supported: bool = True
    runtime: str = ""             # prefix of the runtime's listen/connect functions
    address_params: str = ""      # C parameters naming an address
    address_args: str = ""
    address_doc: str = ""
    listen_note: str = ""         # what listening on that address adds
    never_calls: dict = field(default_factory=dict)   # role -> callbacks this transport never makes
    roles: tuple = ("server", "client")   # the roles this transport can play
    roles_note: str = ""          # why those roles, for diagnostics
    role_kinds: dict = field(default_factory=dict)   # role -> the kinds it can carry, when not all of kinds
    default_role: str = ""        # the role when the spec gives none ("": role is required)


STREAM_CALLBACKS = (
    Callback("connection_made", "void", (), (("pg_transport *", "transport"),),
             doc="The connection is ready. No data arrives before this returns."),
    Callback("data_received", "void", (("const uint8_t *", "data"), ("size_t", "len")),
             (("const uint8_t *", "data"), ("size_t", "len")),
             doc="Bytes from the peer. The memory is the loop's: copy what you keep."),
    Callback("eof_received", "bool", (), (), default_return="false",
             doc="The peer closed its write side. Return true to stay open for writing,\n"
                 "false to close once the write buffer drains."),
    Callback("connection_lost", "void", (("int", "error"),), (("int", "error"),),
             doc="The connection is closed: error is 0, or a negative errno (-ECONNRESET).\n"
                 "The connection and its state are freed when this returns."),
    Callback("pause_writing", "void", (), (),
             doc="The write buffer went above the high watermark: stop writing."),
    Callback("resume_writing", "void", (), (),
             doc="The write buffer drained to the low watermark: writing may go on."),
)

# Framing's callbacks, which the generated code calls from the framer (a
# stream protocol with a 'framing' declaration has them).
FRAMING_CALLBACKS = (
    Callback("message_received", "void", (("const uint8_t *", "data"), ("size_t", "len")), runtime=False,
             doc="One whole message, as the framing declares it: a line without its delimiter, a\n"
                 "length-prefixed payload without its header. The memory is the runtime's: copy\n"
                 "what you keep."),
    Callback("protocol_error", "bool", (("int", "code"), ("uint64_t", "pos"), ("const char *", "reason")),
             default_return="false", runtime=False,
             doc="The input broke the framing (code -EMSGSIZE: too big; -EPROTO: malformed) at\n"
                 "byte pos of the stream; no message follows. Return true to keep the\n"
                 "connection open (you close it), false to close it once what is written is sent."),
)
FRAMING_KINDS = ("line", "length", "rules")
# The largest 'max' a framing may declare (the runtime's PG_FRAMING_MAX).
MAX_MESSAGE = 1024 ** 3


@dataclass(frozen=True)
class Framing:
    kind: str                     # "line", "length" or "rules"
    max: int                      # the largest payload (rules: message), in bytes
    delimiter: bytes = b""        # line
    width: int = 0                # length: 1, 2, 4, 8, or 0 for a varint
    big_endian: bool = True
    offset: int = 0               # of the length field in the header
    header: int = 0               # the header's size (fixed widths)
    includes_header: bool = False
    rules: object = None          # rules: the compiled messages (rules.Rules)

    @property
    def c_delimiter(self) -> str:
        """The delimiter as a C string literal's body."""
        return c_string(self.delimiter)


def c_string(data: bytes) -> str:
    """Bytes as a C string literal's body."""
    named = {13: "\\r", 10: "\\n", 9: "\\t"}
    return "".join(named.get(b) or (chr(b) if 32 <= b < 127 and chr(b) not in '"\\?' else f"\\{b:03o}")
                   for b in data)


# TLS versions a 'tls' block's min_version takes: the runtime's PG_TLS_VERSION_* (asyncio's
# ssl.TLSVersion names).
TLS_VERSIONS = {"TLSv1_2": "PG_TLS_VERSION_1_2", "TLSv1_3": "PG_TLS_VERSION_1_3"}


@dataclass(frozen=True)
class Tls:
    """A 'tls' block: the protocol's TLS policy, what NAME_tls_config() fills in.
    Strings are bytes (C literals through c_string); None: not given."""
    cert_file: bytes = None
    key_file: bytes = None
    ca_file: bytes = None
    require_client_cert: bool = False
    server_name: bytes = None
    insecure_no_verify: bool = False
    alpn: tuple = ()              # of bytes, in order of preference
    min_version: str = ""         # a TLS_VERSIONS key; "": TLS 1.2
    handshake_timeout_ms: int = 60000
    shutdown_timeout_ms: int = 30000


STREAM_LIFECYCLE = Lifecycle(
    states=("new", "open", "eof", "lost"),
    transitions={
        ("new", "connection_made"): "open",
        ("open", "data_received"): "open",
        ("open", "message_received"): "open",
        ("open", "protocol_error"): "open",
        ("eof", "message_received"): "eof",     # input held back before the EOF
        ("eof", "protocol_error"): "eof",
        ("open", "eof_received"): "eof",
        ("open", "connection_lost"): "lost",
        ("eof", "connection_lost"): "lost",
    },
    flow_callbacks=("pause_writing", "resume_writing"),
    flow_states=("open", "eof"),
)

BUFFERED_CALLBACKS = (
    STREAM_CALLBACKS[0],
    Callback("get_buffer", "uint8_t *", (("size_t", "size_hint"), ("size_t *", "len")),
             (("size_t", "size_hint"), ("size_t *", "len")), default_return="NULL",
             doc="Where the next read may write: return a buffer and set *len to its size (at least 1).\n"
                 "size_hint is the most one read takes; any size will do. NULL or *len 0 ends\n"
                 "the connection with connection_lost(-ENOBUFS), as asyncio."),
    Callback("buffer_updated", "void", (("size_t", "nbytes"),), (("size_t", "nbytes"),),
             doc="nbytes were read into the start of the buffer get_buffer returned."),
    *STREAM_CALLBACKS[2:],
)

BUFFERED_LIFECYCLE = Lifecycle(
    states=("new", "open", "eof", "lost"),
    transitions={
        ("new", "connection_made"): "open",
        ("open", "get_buffer"): "open",
        ("open", "buffer_updated"): "open",
        ("open", "eof_received"): "eof",
        ("open", "connection_lost"): "lost",
        ("eof", "connection_lost"): "lost",
    },
    flow_callbacks=("pause_writing", "resume_writing"),
    flow_states=("open", "eof"),
)

SUBPROCESS_CALLBACKS = (
    Callback("connection_made", "void", (), (("pg_subprocess *", "proc"),),
             doc="The child runs and its pipes are ready. No other callback comes before this."),
    Callback("pipe_data_received", "void", (("int", "fd"), ("const uint8_t *", "data"), ("size_t", "len")),
             (("int", "fd"), ("const uint8_t *", "data"), ("size_t", "len")),
             doc="Bytes the child wrote to its stdout (fd 1) or stderr (fd 2).\n"
                 "The memory is the loop's: copy what you keep."),
    Callback("pipe_connection_lost", "void", (("int", "fd"), ("int", "error")), (("int", "fd"), ("int", "error")),
             doc="The pipe to the child's fd (0, 1 or 2) is closed: error is 0, or a negative errno\n"
                 "(-EPIPE: the child stopped reading while bytes for its stdin were still buffered)."),
    Callback("process_exited", "void", (), (),
             doc="The child has exited and was reaped: get_returncode tells how."),
    Callback("connection_lost", "void", (("int", "error"),), (("int", "error"),),
             doc="The last callback: the child is reaped and every pipe is closed (error is 0).\n"
                 "The process's conn and state are freed when this returns."),
    Callback("pause_writing", "void", (), (),
             doc="The child's stdin buffer went above the high watermark: stop writing."),
    Callback("resume_writing", "void", (), (),
             doc="The child's stdin buffer drained to the low watermark: writing may go on."),
)

# The process as a whole; the per-pipe order (data, then lost, once per pipe;
# connection_lost only when no pipe is left) is PIPE_LIFECYCLE, one per pipe,
# which the template keeps as a bit per pipe (open or lost).
SUBPROCESS_LIFECYCLE = Lifecycle(
    states=("new", "running", "exited", "lost"),
    transitions={
        ("new", "connection_made"): "running",
        ("running", "pipe_data_received"): "running",
        ("running", "pipe_connection_lost"): "running",
        ("running", "process_exited"): "exited",
        ("exited", "pipe_data_received"): "exited",
        ("exited", "pipe_connection_lost"): "exited",
        ("exited", "connection_lost"): "lost",
    },
    flow_callbacks=("pause_writing", "resume_writing"),
    flow_states=("running", "exited"),
)

PIPE_LIFECYCLE = Lifecycle(
    states=("open", "lost"),
    transitions={
        ("open", "pipe_data_received"): "open",
        ("open", "pipe_connection_lost"): "lost",
    },
)

DATAGRAM_CALLBACKS = (
    Callback("connection_made", "void", (), (("pg_datagram_transport *", "transport"),),
             doc="The endpoint is ready. No datagram arrives before this returns."),
    Callback("datagram_received", "void",
             (("const uint8_t *", "data"), ("size_t", "len"), ("const struct sockaddr *", "addr"),
              ("socklen_t", "addrlen")),
             (("const uint8_t *", "data"), ("size_t", "len"), ("const struct sockaddr *", "addr"),
              ("socklen_t", "addrlen")),
             doc="One whole datagram (len may be 0) and its sender's address, to reply to.\n"
                 "The memory is the loop's: copy what you keep."),
    Callback("error_received", "void", (("int", "error"),), (("int", "error"),),
             doc="An OS error about a datagram sent or received: -ECONNREFUSED when nothing\n"
                 "listens on a connected endpoint's port, -EMSGSIZE, ... The endpoint stays open."),
    Callback("connection_lost", "void", (("int", "error"),), (("int", "error"),),
             doc="The endpoint is closed: error is 0, or a negative errno.\n"
                 "The endpoint and its state are freed when this returns."),
    Callback("pause_writing", "void", (), (),
             doc="The send queue went above the high watermark: stop sending."),
    Callback("resume_writing", "void", (), (),
             doc="The send queue drained to the low watermark: sending may go on."),
)

DATAGRAM_LIFECYCLE = Lifecycle(
    states=("new", "open", "lost"),
    transitions={
        ("new", "connection_made"): "open",
        ("open", "datagram_received"): "open",
        ("open", "error_received"): "open",
        ("open", "connection_lost"): "lost",
    },
    flow_callbacks=("pause_writing", "resume_writing"),
    flow_states=("open",),
)

KINDS = {
    "stream": Kind("stream", STREAM_CALLBACKS, STREAM_LIFECYCLE),
    "buffered": Kind("buffered", BUFFERED_CALLBACKS, BUFFERED_LIFECYCLE,
                     required=("get_buffer", "buffer_updated")),
    "datagram": Kind("datagram", DATAGRAM_CALLBACKS, DATAGRAM_LIFECYCLE),
    "subprocess": Kind("subprocess", SUBPROCESS_CALLBACKS, SUBPROCESS_LIFECYCLE),
}

# Another kind's callback declared for a kind: (kind, callback) -> what this
# kind does instead, for the diagnostic.
CALLBACK_HINTS = {
    ("datagram", "data_received"): "a datagram protocol receives with 'datagram_received'",
    ("datagram", "eof_received"): "datagrams have no end of stream: an endpoint ends with 'connection_lost' only",
    ("datagram", "get_buffer"): "a datagram protocol receives whole datagrams with 'datagram_received'",
    ("datagram", "buffer_updated"): "a datagram protocol receives whole datagrams with 'datagram_received'",
    ("stream", "datagram_received"): "a stream protocol receives with 'data_received'",
    ("stream", "error_received"): "a stream protocol learns of errors in 'connection_lost'",
    ("buffered", "datagram_received"): "a buffered protocol receives with 'get_buffer' and 'buffer_updated'",
    ("buffered", "error_received"): "a buffered protocol learns of errors in 'connection_lost'",
    ("subprocess", "data_received"): "a subprocess protocol receives the child's output with 'pipe_data_received'",
    ("subprocess", "get_buffer"): "a subprocess protocol receives the child's output with 'pipe_data_received'",
    ("subprocess", "buffer_updated"): "a subprocess protocol receives the child's output with 'pipe_data_received'",
    ("subprocess", "datagram_received"): "a subprocess protocol receives the child's output with 'pipe_data_received'",
    ("subprocess", "eof_received"): "a subprocess protocol learns that a pipe ended with 'pipe_connection_lost'",
    ("subprocess", "error_received"): "a subprocess protocol learns of errors in 'pipe_connection_lost'",
    ("stream", "pipe_data_received"): "a stream protocol receives with 'data_received'",
    ("buffered", "pipe_data_received"): "a buffered protocol receives with 'get_buffer' and 'buffer_updated'",
    ("datagram", "pipe_data_received"): "a datagram protocol receives with 'datagram_received'",
}

TRANSPORTS = {
    "tcp": Transport("tcp", ("stream", "buffered"), runtime="pg_tcp",
                     address_params="const char *host, uint16_t port", address_args="host, port",
                     address_doc="host:port", listen_note=" (port 0: any free port)"),
    "unix": Transport("unix", ("stream", "buffered"), runtime="pg_unix",
                      address_params="const char *path", address_args="path",
                      address_doc="the Unix socket path (\"@name\": Linux's abstract namespace)"),
    "pipe": Transport("pipe", ("stream", "buffered"), runtime="pg_pipe", roles=("read", "write"),
                      roles_note="a pipe is neither listened on nor connected to: it reads or it writes",
                      role_kinds={"read": ("stream", "buffered"), "write": ("stream",)},
                      never_calls={"read": ("pause_writing", "resume_writing"),
                                   "write": ("data_received", "eof_received")}),
    "udp": Transport("udp", ("datagram",), can_write_eof=False, runtime="pg_udp",
                     address_params="const char *host, uint16_t port", address_args="host, port",
                     address_doc="host:port", listen_note=" (port 0: any free port)"),
    "subprocess": Transport("subprocess", ("subprocess",), runtime="pg_subprocess", roles=("client",),
                            default_role="client",
                            roles_note="the program starts the child: leave 'role' out, or write 'role client;'"),
}

ROLES = ("server", "client", "read", "write")

# Size units: powers of two, spelled as in the IEC standard.
SIZE_UNITS = {"B": 1, "KiB": 1024, "MiB": 1024 ** 2, "GiB": 1024 ** 3}
# Duration units, in milliseconds. The lexer and the checker know them so that a
# duration written where a size belongs gets a clear message; no declaration of
# this version takes a duration yet.
DURATION_UNITS = {"ms": 1, "s": 1000}
MAX_WATERMARK = 1024 ** 3


@dataclass(frozen=True)
class Watermarks:
    high: int
    low: int


@dataclass
class Protocol:
    name: str
    spec_file: str                # the spec's file name as given, for banners
    transport: Transport
    role: str
    kind: Kind
    declared: frozenset           # names of the callbacks the user implements
    watermarks: Watermarks = None
    callbacks: tuple = field(default=())   # the kind's callbacks, all of them
    callback_positions: dict = field(default_factory=dict)   # declared name -> Position in the spec
    framing: Framing = None
    message_callbacks: tuple = ()   # rules framing: one handler per message, always implemented
    machine: object = None          # the spec's states (Machine), or None
    tls: Tls = None                 # the spec's 'tls' block, or None

    @property
    def role_template(self):
        """The templates/stream/<name>.c.j2 that makes this protocol's connections."""
        return "pipe" if self.transport.name == "pipe" else self.role

    @property
    def runtime_callbacks(self):
        """The callbacks of the runtime's pg_protocol_ops (not framing's)."""
        return tuple(cb for cb in self.callbacks if cb.runtime)

    @property
    def user_callbacks(self):
        return tuple(cb for cb in self.callbacks if cb.name in self.declared) + self.message_callbacks


def message_callback(proto_name: str, message) -> Callback:
    """The handler of a rules framing's message: NAME_on_MESSAGE(conn, state, msg)."""
    return Callback(message.name, "void", ((f"const {proto_name}_{message.name}_msg *", "msg"),), runtime=False,
                    doc=f"One whole '{message.name}' message, its fields captured (framing rules). The\n"
                        "memory is the runtime's, valid until this returns: copy what you keep.")


# ---- Machines ----------------------------------------------------------------
# One abstraction for every state machine protogen knows: asyncio's lifecycle
# of each kind (with flow control, and a subprocess's pipes), and the states a
# spec declares. The C tables and the diagrams (diagram.py) are renderings of it.

@dataclass
class Reaction:
    """What a state does with an event: handle it (call its handler, then go to
    one of targets: the first unless the handler chooses), ignore it, defer it
    (retry after the next state change), or hand a message to the default handler."""
    action: str                   # "handle", "ignore", "defer" or "default"
    targets: tuple = ()           # handle: state names, the first the default target
    pos: object = None            # where the spec says so
    inherited: bool = False       # declared for every state, not in this one


@dataclass
class MachineEvent:
    name: str
    kind: str                     # "message", "timer", "idle", "timeout" (a state's), "lifecycle", "callback"
    index: int = 0                # C event number (messages first, from 1)
    pos: object = None
    framing: object = None        # message of a state's own framing: that Framing (None: the declared one)
    handler: str = ""             # NAME_on_<handler>
    params: tuple = ()            # the handler's parameters after conn and state, as Callback.params
    raw: bool = False             # message_received: the raw messages NAME_expect_raw asks for


@dataclass
class MachineState:
    name: str
    index: int
    pos: object = None
    initial: bool = False
    final: bool = False
    framing: object = None        # model.Framing of its own, or None: the declared one
    framing_message: str = ""     # that framing's message name
    timeout_ms: int = 0           # a state timeout (0: none)
    always: str = ""              # an eventless transition's target
    default: str = ""             # the default handler for messages it does not expect
    reactions: dict = field(default_factory=dict)   # event name -> Reaction


@dataclass
class Timer:
    name: str
    ms: int
    pos: object = None


@dataclass
class Machine:
    name: str
    states: list                  # of MachineState, the initial one first
    events: list = field(default_factory=list)   # of MachineEvent
    timers: list = field(default_factory=list)   # named timers, of Timer
    idle_ms: int = 0              # the idle timeout (0: none)
    close_ms: int = 0             # the close deadline (0: none)
    defaults: tuple = ()          # the default handlers' names
    user: bool = True             # a spec's states; False: asyncio's lifecycle

    @property
    def initial(self):
        return self.states[0]

    def state(self, name):
        return next(s for s in self.states if s.name == name)

    def edges(self):
        """(from, to, label) of every transition, eventless ones labelled '', self-loops included."""
        out = []
        for s in self.states:
            for ev, r in s.reactions.items():
                if r.action == "handle":
                    for t in r.targets:
                        out.append((s.name, t, ev))
            if s.always:
                out.append((s.name, s.always, ""))
        return out


def lifecycle_machine(kind: Kind, callbacks, lc: Lifecycle = None) -> Machine:
    """asyncio's lifecycle of a kind as a Machine: its states, each callback an event;
    flow control is a self-loop in the states that allow it. lc: another lifecycle of
    the kind's (a subprocess's per-pipe one)."""
    lc = lc or kind.lifecycle
    names = [cb.name for cb in callbacks]
    states = [MachineState(s, i, initial=i == 0, final=s == lc.states[-1]) for i, s in enumerate(lc.states)]
    for st in states:
        for cb in names:
            if cb in lc.flow_callbacks:
                if st.name in lc.flow_states:
                    st.reactions[cb] = Reaction("handle", (st.name,))
            elif (st.name, cb) in lc.transitions:
                st.reactions[cb] = Reaction("handle", (lc.transitions[(st.name, cb)],))
    events = [MachineEvent(cb, "callback", i) for i, cb in enumerate(names)]
    return Machine(kind.name, states, events, user=False)


def part_machines(kind: Kind, callbacks) -> list:
    """(name, Machine) of the machines a kind runs beside its lifecycle, one per part."""
    if kind.name == "subprocess":
        names = [cb for cb in callbacks if cb.name in ("pipe_data_received", "pipe_connection_lost")]
        return [("each pipe (fd 0, 1, 2)", lifecycle_machine(kind, names, PIPE_LIFECYCLE))]
    return []


def machine_callbacks(proto_name: str, machine: Machine, handled) -> tuple:
    """The handlers a Machine adds: its states' own framings' messages, timers, the idle
    timeout, the states' timeouts, and the default handlers."""
    out = []
    for e in machine.events:
        if e.name not in handled or e.kind in ("lifecycle",) or (e.kind == "message" and e.framing is None):
            continue
        if e.kind == "message":
            doc = (f"One whole '{e.name}' message of a state's own framing (payload only). The\n"
                   "memory is the runtime's, valid until this returns: copy what you keep.")
        elif e.kind == "timer":
            doc = f"Timer '{e.name}' fired (started with {proto_name}_start_timer)."
        elif e.kind == "idle":
            doc = "No byte came or went for the idle timeout."
        else:
            doc = f"The state timeout of state '{e.name[:-len('_timeout')]}' fired."
        if e.kind == "message" and e.name == "message_received":
            continue   # the declared line or length framing's: the callback of that name
        out.append(Callback(e.handler, "void", e.params, runtime=False, doc=doc))
    for d in machine.defaults:
        out.append(Callback(d, "void", ((f"enum {proto_name}_message_id", "message"), ("pg_slice", "raw")),
                            runtime=False,
                            doc="A message the current state does not expect (the spec's 'default'):\n"
                                "message says which, raw holds its bytes."))
    return tuple(out)
