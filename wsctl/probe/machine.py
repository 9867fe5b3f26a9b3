"""The probe's pure state machine: events in, actions and timestamped records out.

    connecting -> open -> lost -> backoff -> connecting … -> closed | gave_up

Nothing here awaits, sleeps or touches a socket. Every event carries the instant it
happened (``time.monotonic()`` in the driver, any number in tests); the machine answers
with actions for the driver (connect, send, ping, abort, close), keeps its timers as
absolute instants (``deadline``), appends state changes to ``records`` and writes the
DESIGN.md section 6 metrics into a shared ``MetricSet``.

A protocol block (``ProbeConfig.dialect``, wsctl.probe.dialect) makes the machine speak a
service's own protocol: the URL, headers and subprotocols of each connect, the messages
sent once open, sequence numbers judged by a ``GenerationTracker``, the sender's timestamp,
a resume after a reconnect, an application heartbeat, and Socket.IO through a sans-I/O
``SocketIOClient`` owned per connection. ``new_metrics`` holds only the metrics the mode
and block can measure; ``unmeasured`` says, for every other one, what to configure.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from wsctl import protocol
from wsctl.backoff import BackoffPolicy, Retrier, Uniform
from wsctl.errors import CONNECT_KINDS, InvalidInput, connect_kind_costs_server
from wsctl.metrics import MetricSet
from wsctl.probe import socketio as sio
from wsctl.probe.dialect import Context, Dialect, Reading, frame
from wsctl.probe.sequence import GenerationTracker, SequenceTracker

Mode = Literal["resume", "echo", "listen"]
MODES: tuple[Mode, ...] = ("resume", "echo", "listen")
HeartbeatKind = Literal["auto", "app", "protocol", "off"]
HEARTBEATS: tuple[HeartbeatKind, ...] = ("auto", "app", "protocol", "off")

DEFAULT_HEARTBEAT_INTERVAL = 5.0
DEFAULT_HEARTBEAT_TIMEOUT = 5.0
ECHO_KEY = "wsctl_echo"
MAX_UNPAIRED = 16  # losses kept for pairing with a fault instant given after the fact

# Metric names: a public contract (DESIGN.md section 6, docs/probe.md).
HISTOGRAMS: tuple[tuple[str, Literal["s", "count"]], ...] = (
    ("connect_time", "s"),
    ("detect_time", "s"),
    ("reconnect_time", "s"),
    ("resume_time", "s"),
    ("outage_time", "s"),
    ("reconnect_attempts", "count"),
    ("delivery_latency", "s"),
    ("rtt", "s"),
)
COUNTERS: tuple[str, ...] = (
    "messages.received",
    "messages.lost",
    "messages.duplicated",
    "messages.reordered",
    "messages.replayed",
    "messages.sent",
    "messages.invalid",
    "probes.gave_up",
    "resyncs",
    "connections.opened",
    "connections.failed",
    "connections.lost",
)


# Failed connects by kind (``errors.<kind>``, wsctl.errors.CONNECT_KINDS); present at zero so
# a criterion on one is measured. ``errors.status_<code>`` appears when that status does.
ERROR_COUNTERS: tuple[str, ...] = tuple(f"errors.{kind}" for kind in CONNECT_KINDS)


SEQUENCED = ("messages.lost", "messages.duplicated", "messages.reordered", "resyncs")


def heartbeat_kind(mode: Mode, heartbeat: HeartbeatKind = "auto",
                   dialect: Dialect | None = None) -> Literal["app", "protocol", "off"]:
    """What ``auto`` means: the application ping in resume mode or when the protocol block
    has a heartbeat; nothing with Socket.IO (Engine.IO's own pings give liveness);
    WebSocket protocol pings otherwise."""
    if heartbeat != "auto":
        return heartbeat
    if mode == "resume" or (dialect is not None and dialect.heartbeat is not None):
        return "app"
    if dialect is not None and dialect.adapter == "socketio":
        return "off"
    return "protocol"


def unmeasured(mode: Mode = "resume", dialect: Dialect | None = None,
               heartbeat: HeartbeatKind = "auto") -> dict[str, str]:
    """Probe metrics that ``mode`` with this protocol block cannot measure, each with what
    to configure instead (a result's ``details.unmeasured``; a criterion on one is ERROR)."""
    measures = dialect.measures if dialect is not None else frozenset()
    out: dict[str, str] = {}
    if mode == "listen" and "messages.lost" not in measures:
        for name in SEQUENCED:
            out[name] = ("listen mode counts frames but cannot tell which are missing: set "
                         "protocol.sequence to the field that numbers the messages (e.g. "
                         "sequence: seq, or --sequence seq)")
    if mode == "echo":
        out["resyncs"] = "echo mode numbers its own messages: nothing can resync"
    if mode != "resume" and "delivery_latency" not in measures:
        out["delivery_latency"] = (
            "set protocol.timestamp to the field holding the sender's time (e.g. "
            "timestamp: ts, or --timestamp ts) in listen mode" if mode == "listen" else
            "echo mode times round trips (rtt): for delivery latency use listen mode with "
            "protocol.timestamp")
    if mode != "resume" and "resume_time" not in measures:
        out["resume_time"] = ("set protocol.resume (e.g. resume: {query: \"since={last_seq}\"}"
                              ") with protocol.sequence in listen mode, or use resume mode "
                              "against a protocol v1 server")
    if mode != "resume":
        out["messages.replayed"] = ("only resume mode: the reference protocol's welcome "
                                    "says how many events were replayed")
    if mode != "echo":
        out["messages.sent"] = "only echo mode sends data messages (use --mode echo)"
    if mode != "echo" and heartbeat_kind(mode, heartbeat, dialect) == "off":
        out["rtt"] = ("the heartbeat is off: set --heartbeat protocol (WebSocket pings) or a "
                      "protocol.heartbeat (an application ping and its answer)")
    return out


def new_metrics(mode: Mode = "resume", dialect: Dialect | None = None,
                heartbeat: HeartbeatKind = "auto") -> MetricSet:
    """A metric set with every metric this mode and protocol block can measure present
    (zero or empty), and no other: a criterion on a missing one is an ERROR verdict."""
    missing = unmeasured(mode, dialect, heartbeat)
    return MetricSet([(name, unit) for name, unit in HISTOGRAMS if name not in missing],
                     [name for name in COUNTERS if name not in missing] + list(ERROR_COUNTERS))


class State(StrEnum):
    CONNECTING = "connecting"
    OPEN = "open"
    LOST = "lost"
    BACKOFF = "backoff"
    CLOSED = "closed"
    GAVE_UP = "gave_up"

    def __str__(self) -> str:
        return self.value


FINAL = (State.CLOSED, State.GAVE_UP)


@dataclass(frozen=True, slots=True)
class ProbeConfig:
    """What one probe does; shared by every probe of a fleet (``{n}`` becomes the index)."""

    url: str
    mode: Mode = "resume"
    backoff: BackoffPolicy = BackoffPolicy()
    heartbeat: HeartbeatKind = "auto"
    heartbeat_interval: float | None = None  # None: the server's welcome, else 5 s
    heartbeat_timeout: float | None = None
    connect_timeout: float = 10.0
    echo_rate: float = 1.0  # echo messages per second per probe
    duration: float | None = None  # None: until stopped
    dialect: Dialect | None = None  # the protocol block: how to speak the service's protocol
    stream: str = ""  # {stream} in the URL and the block's templates ({n} filled)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.heartbeat not in HEARTBEATS:
            raise ValueError(f"heartbeat must be one of {', '.join(HEARTBEATS)}")
        for name in ("heartbeat_interval", "heartbeat_timeout", "duration"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name.replace('_', ' ')} must be > 0")
        if self.connect_timeout <= 0 or self.echo_rate <= 0:
            raise ValueError("connect timeout and echo rate must be > 0")
        if self.dialect is not None:
            problem = self.dialect.mode_problem(self.mode)
            if problem is not None:
                raise InvalidInput(f"protocol.{problem[0]}: {problem[1]}")

    @property
    def heartbeat_kind(self) -> Literal["app", "protocol", "off"]:
        """What ``auto`` means here (``heartbeat_kind``)."""
        return heartbeat_kind(self.mode, self.heartbeat, self.dialect)

    @property
    def unmeasured(self) -> dict[str, str]:
        """The metrics this config cannot measure, with what to configure (``unmeasured``)."""
        return unmeasured(self.mode, self.dialect, self.heartbeat)

    def new_metrics(self) -> MetricSet:
        """A metric set for probes of this config (``new_metrics``)."""
        return new_metrics(self.mode, self.dialect, self.heartbeat)

    def stream_for(self, index: int) -> str:
        return self.stream.replace("{n}", str(index))

    def url_for(self, index: int) -> str:
        url = self.url.replace("{stream}", self.stream_for(index)) if self.stream else self.url
        return url.replace("{n}", str(index))

    def to_json(self) -> dict[str, Any]:
        """The config as JSON data (a result's ``config``); the block as ``Dialect.to_data``."""
        out = dataclasses.asdict(dataclasses.replace(self, dialect=None))
        out["dialect"] = self.dialect.to_data() if self.dialect is not None else None
        return out


# Events (in) -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Connected:
    """The opening handshake completed. ``started_at``: when the connect began on the
    wire (just before the TCP connect), when the link knows it; ``connect_time`` runs
    from there, else from the moment the machine asked for the attempt."""

    at: float
    started_at: float | None = None


@dataclass(frozen=True, slots=True)
class ConnectFailed:
    """A connection attempt failed; ``retry_after`` is a server hint in seconds, ``kind``
    how it failed (``wsctl.errors.ConnectError.kind``: counted as ``errors.<kind>``)."""

    at: float
    reason: str
    retry_after: float | None = None
    kind: str = "other"


@dataclass(frozen=True, slots=True)
class Received:
    """A data frame arrived; ``wall`` is ``time.time()`` for latency against server ``ts``."""

    at: float
    wall: float
    frame: str | bytes


@dataclass(frozen=True, slots=True)
class Closed:
    """The connection closed or failed (code 1006 when there was no close frame)."""

    at: float
    code: int | None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class PongReceived:
    """A protocol-level pong answered the ping sent at ``sent_at``."""

    at: float
    sent_at: float


@dataclass(frozen=True, slots=True)
class Tick:
    """Time passed: the driver calls this at (or after) ``deadline``."""

    at: float


@dataclass(frozen=True, slots=True)
class Stop:
    """The run is over: close politely and stop."""

    at: float


Event = Connected | ConnectFailed | Received | Closed | PongReceived | Tick | Stop

# Actions (out) -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Connect:
    url: str
    timeout: float
    headers: tuple[tuple[str, str], ...] = ()  # extra handshake headers (protocol block)
    subprotocols: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Send:
    text: str


@dataclass(frozen=True, slots=True)
class SendPing:
    """Send a protocol ping; report its pong as ``PongReceived(sent_at=at)``."""

    at: float


@dataclass(frozen=True, slots=True)
class Abort:
    """Drop the connection now without a closing handshake (it is presumed dead)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Close:
    code: int = protocol.CLOSE_NORMAL
    reason: str = ""


Action = Connect | Send | SendPing | Abort | Close


@dataclass(frozen=True, slots=True)
class Record:
    """A state change (or, with ``state == previous``, a notable event such as a resync)."""

    at: float
    probe: int
    previous: State
    state: State
    reason: str = ""
    code: int | None = None
    kind: str | None = None  # after a failed attempt: how it failed (ConnectError.kind)

    def to_json(self, wall_offset: float = 0.0) -> dict[str, object]:
        out: dict[str, object] = {
            "t": round(self.at + wall_offset, 6),
            "probe": self.probe,
            "from": self.previous.value,
            "to": self.state.value,
        }
        if self.reason:
            out["reason"] = self.reason
        if self.code is not None:
            out["code"] = self.code
        if self.kind is not None:
            out["kind"] = self.kind
        return out


class ProbeMachine:
    """One reconnecting probe. Feed ``start`` then ``handle`` events; run its actions."""

    __slots__ = (
        "index", "config", "metrics", "url", "state", "records", "keep_records", "retrier",
        "hb_kind", "hb_interval", "hb_timeout", "stop_at", "reconnect_at", "ping_at",
        "ping_sent", "pong_due", "welcome_due", "send_at", "attempt_started", "opened_at",
        "loss_at", "awaiting_welcome", "outage_from", "last_data_at", "recovery_attempts",
        "fault_at", "unpaired", "tracker", "epoch", "echo_seq", "reconnects", "last_rtt",
        "last_latency", "last_error", "ever_opened", "dialect", "stream", "env", "generations",
        "session", "resume_from", "closed_by_server",
    )

    def __init__(
        self,
        index: int,
        config: ProbeConfig,
        metrics: MetricSet,
        rng: Uniform,
        now: float,
        *,
        keep_records: bool = True,
        stop_at: float | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.index = index
        self.config = config
        self.metrics = metrics
        self.url = config.url_for(index)
        self.dialect = config.dialect
        self.stream = config.stream_for(index)
        self.env: Mapping[str, str] = os.environ if env is None else env  # for ${VAR}
        # A service's own numbers (listen mode with protocol.sequence), restarts allowed.
        self.generations: GenerationTracker | None = None
        if config.mode == "listen" and self.dialect is not None and self.dialect.sequence:
            self.generations = GenerationTracker()
        self.session: sio.SocketIOClient | None = None  # the Socket.IO session, while open
        self.resume_from: float | None = None  # a resume asked for: the loss it follows
        self.closed_by_server = False  # ended by the server's 1000 close, not by the run
        self.state = State.CONNECTING
        self.records: list[Record] = []
        self.keep_records = keep_records
        self.retrier = Retrier(config.backoff, rng, now)
        self.hb_kind = config.heartbeat_kind
        self.hb_interval = config.heartbeat_interval or DEFAULT_HEARTBEAT_INTERVAL
        self.hb_timeout = config.heartbeat_timeout or DEFAULT_HEARTBEAT_TIMEOUT
        # When it closes politely: given (the fleet's common end), or ``duration`` from now.
        if stop_at is None and config.duration is not None:
            stop_at = now + config.duration
        self.stop_at = stop_at
        self.reconnect_at: float | None = None
        self.ping_at: float | None = None
        self.ping_sent: float | None = None
        self.pong_due: float | None = None
        self.welcome_due: float | None = None
        self.send_at: float | None = None
        self.attempt_started = now
        self.opened_at = now  # when the current (or last) connection opened
        # One recovery: from the loss noticed until the state is synchronized again (the
        # welcome in resume mode, the connection open otherwise). A connection lost before
        # its welcome does not start a new one: loss_at keeps the first loss.
        self.loss_at: float | None = None
        self.awaiting_welcome = False
        self.outage_from: float | None = None  # last data before the loss
        self.last_data_at: float | None = None
        self.recovery_attempts = 0
        self.fault_at: float | None = None
        # Losses noticed with no fault instant pending, as (connection opened, loss noticed):
        # a fault instant given after the fact (a signal, an HTTP call) still finds its loss.
        self.unpaired: list[tuple[float, float]] | None = None
        self.tracker = SequenceTracker()
        self.epoch: str | None = None
        self.echo_seq = 0
        self.reconnects = 0
        self.last_rtt: float | None = None
        self.last_latency: float | None = None
        self.last_error = ""
        self.ever_opened = False

    # -- inputs -------------------------------------------------------------------------

    def start(self, now: float) -> list[Action]:
        """The first action: connect straight away."""
        self._record(now, State.CONNECTING, "start")
        return [self._connect(now)]

    def fault_injected(self, at: float) -> None:
        """A fault was injected at ``at``, which may be in the past: the first loss noticed
        at or after ``at``, on a connection open at ``at``, yields ``detect_time`` - whether
        it was noticed before this call (an instantaneous fault: the probe noticed before
        it was told) or is noticed later."""
        losses = self.unpaired
        if losses:
            if len(losses) == MAX_UNPAIRED and losses[0][1] > at:
                return  # the loss that fault caused may have been forgotten: no guess
            for i, (opened, lost) in enumerate(losses):
                if lost >= at:
                    del losses[:i + 1]
                    if opened <= at:
                        self.metrics.histograms["detect_time"].record(lost - at)
                    return
        if self.state is State.OPEN and self.opened_at <= at:
            self.fault_at = at

    def stop(self, now: float) -> list[Action]:
        """Stop now (the caller's decision rather than the configured duration)."""
        return self.handle(Stop(now))

    def handle(self, event: Event) -> list[Action]:
        """Apply one event; returns the actions the driver must carry out, in order."""
        if self.state in FINAL:
            return []
        if isinstance(event, Received):
            return self._on_received(event) if self.state is State.OPEN else []
        if isinstance(event, Tick):
            return self._on_tick(event.at)
        if isinstance(event, PongReceived):
            if self.state is State.OPEN and self.ping_sent == event.sent_at:
                self._pong(event.at)
            return []
        if isinstance(event, Connected):
            if self.state is not State.CONNECTING:
                return []
            started = self.attempt_started
            if event.started_at is not None and event.started_at > started:
                started = event.started_at
            return self._on_connected(event.at, started)
        if isinstance(event, ConnectFailed):
            if self.state is not State.CONNECTING:
                return []
            self.last_error = event.reason
            self.metrics.counters["connections.failed"] += 1
            self.metrics.add(f"errors.{event.kind}")
            return self._retry(event.at, event.reason, event.retry_after, kind=event.kind)
        if isinstance(event, Closed):
            return self._on_closed(event) if self.state is State.OPEN else []
        if isinstance(event, Stop):
            return self._stop(event.at, "stopped")
        raise TypeError(f"not a probe event: {event!r}")

    @property
    def deadline(self) -> float | None:
        """The next instant the machine needs a ``Tick``, or ``None``."""
        state = self.state
        candidates: tuple[float | None, ...]
        if state is State.OPEN:
            candidates = (self.stop_at, self.ping_at, self.pong_due, self.welcome_due,
                          self.send_at, self.session.deadline if self.session else None)
        elif state is State.BACKOFF:
            candidates = (self.stop_at, self.reconnect_at)
        elif state is State.CONNECTING:
            candidates = (self.stop_at,)
        else:
            return None
        return min((c for c in candidates if c is not None), default=None)

    @property
    def done(self) -> bool:
        return self.state in FINAL

    def take_records(self) -> list[Record]:
        """Records since the last call (the driver writes them out)."""
        records, self.records = self.records, []
        return records

    # -- transitions --------------------------------------------------------------------

    def _record(self, at: float, state: State, reason: str = "", code: int | None = None,
                kind: str | None = None) -> None:
        previous, self.state = self.state, state
        if self.keep_records:
            self.records.append(Record(at, self.index, previous, state, reason, code, kind))

    def _note(self, at: float, reason: str) -> None:
        if self.keep_records:
            self.records.append(Record(at, self.index, self.state, self.state, reason))

    def _context(self) -> Context:
        last_seq = self.generations.last_seq if self.generations is not None else None
        return Context(self.stream, self.index, last_seq, self.env)

    def _connect(self, now: float) -> Connect:
        self.attempt_started = now
        self.recovery_attempts += 1
        url = self.url
        dialect = self.dialect
        headers: tuple[tuple[str, str], ...] = ()
        subprotocols: tuple[str, ...] = ()
        if dialect is not None:
            ctx = self._context()
            url = dialect.url(url, ctx)
            headers = tuple(dialect.headers_for(ctx))
            subprotocols = tuple(dialect.subprotocols)
        if self.config.mode == "resume" and self.epoch is not None:
            highest = self.tracker.highest if self.tracker.highest is not None else 0
            query = protocol.resume_query(self.epoch, highest)
            url += ("&" + query[1:]) if "?" in url else query
        return Connect(url, self.config.connect_timeout, headers, subprotocols)

    def _on_connected(self, now: float, started: float) -> list[Action]:
        metrics = self.metrics
        metrics.histograms["connect_time"].record(now - started)
        metrics.counters["connections.opened"] += 1
        self.retrier.opened(now)
        self.ever_opened = True
        self.last_error = ""
        self._record(now, State.OPEN, f"attempt {self.recovery_attempts}")
        self.opened_at = now
        self.ping_sent = self.pong_due = self.ping_at = self.send_at = None
        actions: list[Action] = []
        dialect = self.dialect
        if self.generations is not None:
            self.generations.connected()
        if self.config.mode == "resume":
            # Synchronized (and any recovery over) only once the welcome arrives.
            self.awaiting_welcome = True
            self.welcome_due = now + self.config.connect_timeout
        elif dialect is not None and dialect.adapter == "socketio":
            # Synchronized once the namespace accepts; emits wait in the session till then.
            ctx = self._context()
            self.session = session = dialect.socketio_client(ctx)
            for message in dialect.open_messages(ctx):
                session.emit(*message)
            self.awaiting_welcome = True
            self.welcome_due = now + self.config.connect_timeout
            self._start_heartbeat(now)
        else:
            self._synchronized(now)
            self._start_heartbeat(now)
            if dialect is not None:
                actions.extend(Send(frame(m)) for m in dialect.open_messages(self._context()))
            if self.config.mode == "echo":
                self.send_at = now
                self.tracker.expect(self.echo_seq)
                actions.extend(self._on_tick(now))
        return actions

    def _synchronized(self, now: float) -> None:
        """The state is synchronized: a recovery in progress is complete, measure it once."""
        if self.loss_at is not None:
            histograms = self.metrics.histograms
            histograms["reconnect_time"].record(self.opened_at - self.loss_at)
            histograms["reconnect_attempts"].record(self.recovery_attempts)
            if self.config.mode == "resume":
                histograms["resume_time"].record(now - self.loss_at)
            elif self._resuming():
                self.resume_from = self.loss_at  # resume_time ends at the first number
            self.reconnects += 1
            self.loss_at = None
        self.recovery_attempts = 0

    def _resuming(self) -> bool:
        """Whether this connection asked the service for what was missed."""
        return (self.dialect is not None and self.dialect.resume is not None
                and self.generations is not None and self.generations.last_seq is not None)

    def _start_heartbeat(self, now: float) -> None:
        if self.hb_kind != "off":
            self.ping_at = now + self.hb_interval

    def _on_tick(self, now: float) -> list[Action]:
        if self.stop_at is not None and now >= self.stop_at:
            return self._stop(now, "duration reached")
        state = self.state
        if state is State.BACKOFF:
            if self.reconnect_at is not None and now >= self.reconnect_at:
                self.reconnect_at = None
                self._record(now, State.CONNECTING, f"attempt {self.recovery_attempts + 1}")
                return [self._connect(now)]
            return []
        if state is not State.OPEN:
            return []
        actions: list[Action] = []
        session = self.session
        if session is not None:
            session.check(now)  # past pingInterval + pingTimeout without a ping: dead
            actions = self._session_events(now, now)
            if self.state is not State.OPEN:
                return actions
        if self.welcome_due is not None and now >= self.welcome_due:
            what = ("no namespace CONNECT from the Socket.IO server" if session is not None
                    else "no welcome from the server")
            return self._lose(now, what, abort=True)
        if self.pong_due is not None and now >= self.pong_due:
            return self._lose(now, f"no pong within {self.hb_timeout:g}s", abort=True)
        if self.ping_at is not None and now >= self.ping_at:
            self.ping_at = now + self.hb_interval
            if self.ping_sent is None:
                self.ping_sent = now
                self.pong_due = now + self.hb_timeout
                if self.hb_kind == "app" and self.dialect is not None and \
                        self.dialect.heartbeat is not None:
                    actions.append(Send(frame(self.dialect.heartbeat_message(
                        self._context()))))
                elif self.hb_kind == "app":
                    # protocol.encode(Ping(t=now)), without dataclasses.asdict's cost
                    actions.append(Send(f'{{"type":"ping","t":{now!r}}}'))
                else:
                    actions.append(SendPing(now))
        if self.send_at is not None and now >= self.send_at:
            period = 1.0 / self.config.echo_rate
            # Catch up by at most one period: a stalled loop must not burst-send.
            self.send_at = max(self.send_at + period, now)
            seq = self.echo_seq
            self.echo_seq += 1
            self.metrics.counters["messages.sent"] += 1
            actions.append(Send(f'{{"{ECHO_KEY}":{seq},"t":{now!r}}}'))
        return actions

    def _pong(self, now: float) -> None:
        assert self.ping_sent is not None
        rtt = now - self.ping_sent
        self.metrics.histograms["rtt"].record(rtt)
        self.last_rtt = rtt
        self.ping_sent = self.pong_due = None

    def _on_received(self, event: Received) -> list[Action]:
        mode = self.config.mode
        if mode == "resume":
            return self._on_protocol_frame(event)
        if mode == "echo":
            self._on_echo(event)
        elif self.session is not None:
            if isinstance(event.frame, str):
                self.session.receive_text(event.frame, event.at)
            else:
                self.session.receive_bytes(event.frame, event.at)
            return self._session_events(event.at, event.wall)
        elif self.dialect is not None:
            message, reading = self.dialect.read_frame(event.frame)
            if self.ping_sent is not None and message is not None and \
                    self.dialect.is_heartbeat_answer(message):
                self._pong(event.at)  # the heartbeat's answer: timed, not a message
            else:
                self._judge(event.at, event.wall, reading)
        elif self.ping_sent is not None and self.hb_kind == "app" and \
                self._is_reference_pong(event.frame):
            self._pong(event.at)
        else:
            self.metrics.counters["messages.received"] += 1
            self._data_arrived(event.at)
        return []

    def _is_reference_pong(self, data: str | bytes) -> bool:
        """A protocol v1 ``pong`` answering the ping in flight (``--heartbeat app``)."""
        try:
            message = protocol.parse_server(data)
        except protocol.ProtocolError:
            return False
        return isinstance(message, protocol.Pong) and self.ping_sent is not None and \
            abs(message.t - self.ping_sent) < 1e-6

    def _judge(self, now: float, wall: float, reading: Reading) -> None:
        """One message of a service's own protocol: counted, then judged by its sequence
        number and sender's time where it has them (a bad value makes it invalid)."""
        counters = self.metrics.counters
        if reading.problem is not None:
            counters["messages.invalid"] += 1
            self.last_error = f"invalid message: {reading.problem}"
            return
        counters["messages.received"] += 1
        generations = self.generations
        if reading.seq is not None and generations is not None:
            highest = generations.last_seq
            judged = generations.seen(reading.seq)
            if judged.kind == "resync":
                counters["resyncs"] += 1
                counters["messages.lost"] += judged.lost
                self._note(now, f"resync: sequence restarted at {reading.seq} "
                           f"(highest was {highest})")
            elif judged.kind == "duplicate":
                counters["messages.duplicated"] += 1
            elif judged.kind == "reordered":
                counters["messages.reordered"] += 1
            if self.resume_from is not None:
                self.metrics.histograms["resume_time"].record(now - self.resume_from)
                self.resume_from = None
        if reading.sent_at is not None:
            latency = wall - reading.sent_at
            self.metrics.histograms["delivery_latency"].record(latency)
            self.last_latency = latency
        self._data_arrived(now)

    def _session_events(self, now: float, wall: float) -> list[Action]:
        """What the Socket.IO session made of the input: events judged as messages, the
        namespace connect as the point of synchronization, an ending as a loss."""
        session = self.session
        assert session is not None and self.dialect is not None
        counters = self.metrics.counters
        for item in session.events_received():
            if isinstance(item, sio.Event):
                if self.dialect.counts_event(item.name):
                    self._judge(now, wall, self.dialect.read(item.payload))
            elif isinstance(item, sio.Connected):
                if self.awaiting_welcome:
                    self.awaiting_welcome = False
                    self.welcome_due = None
                    self._synchronized(now)
            elif isinstance(item, sio.Malformed):
                counters["messages.invalid"] += 1
                self.last_error = f"not Socket.IO: {item.reason}"
            elif isinstance(item, sio.Unsupported):
                counters["messages.received"] += 1  # counted, not judged
            elif isinstance(item, sio.Disconnect | sio.ConnectError):
                reason = (item.reason if isinstance(item, sio.Disconnect)
                          else f"Socket.IO connect error: {item.message}")
                sent: list[Action] = [Send(f) for f in session.data_to_send()]
                return sent + self._lose(now, reason, abort=True)
        return [Send(f) for f in session.data_to_send()]

    def _data_arrived(self, now: float) -> None:
        if self.outage_from is not None:
            self.metrics.histograms["outage_time"].record(now - self.outage_from)
            self.outage_from = None
        self.last_data_at = now

    def _count(self, outcome: str) -> None:
        counters = self.metrics.counters
        counters["messages.received"] += 1
        if outcome == "duplicate":
            counters["messages.duplicated"] += 1
        elif outcome == "reordered":
            counters["messages.reordered"] += 1

    def _on_echo(self, event: Received) -> None:
        try:
            obj = json.loads(event.frame)
            seq, sent = obj[ECHO_KEY], obj["t"]
        except (ValueError, TypeError, KeyError):
            self.metrics.counters["messages.invalid"] += 1
            return
        if not isinstance(seq, int) or not isinstance(sent, int | float):
            self.metrics.counters["messages.invalid"] += 1
            return
        self._count(self.tracker.seen(seq))
        rtt = event.at - sent
        self.metrics.histograms["rtt"].record(rtt)
        self.last_rtt = rtt
        self._data_arrived(event.at)

    def _on_protocol_frame(self, event: Received) -> list[Action]:
        try:
            message = protocol.parse_server(event.frame)
        except protocol.ProtocolError:
            self.metrics.counters["messages.invalid"] += 1
            return []
        if isinstance(message, protocol.Event):
            if self.awaiting_welcome:
                self.metrics.counters["messages.invalid"] += 1
                return []
            self._count(self.tracker.seen(message.offset))
            latency = event.wall - message.ts
            self.metrics.histograms["delivery_latency"].record(latency)
            self.last_latency = latency
            self._data_arrived(event.at)
        elif isinstance(message, protocol.Welcome):
            self._on_welcome(event.at, message)
        elif isinstance(message, protocol.Pong):
            if self.ping_sent is not None and abs(message.t - self.ping_sent) < 1e-6:
                self._pong(event.at)
        else:
            self.last_error = f"server error {message.code}: {message.message}"
        return []

    def _on_welcome(self, now: float, welcome: protocol.Welcome) -> None:
        if not self.awaiting_welcome:
            self.metrics.counters["messages.invalid"] += 1
            return
        self.awaiting_welcome = False
        self.welcome_due = None
        tracker = self.tracker
        resumed = self.epoch is not None
        if resumed and welcome.recovered and welcome.epoch == self.epoch:
            tracker.expect((tracker.highest or 0) + 1)
            self.metrics.counters["messages.replayed"] += welcome.replayed
            self._note(now, f"resumed: {welcome.replayed} replayed")
        else:
            if resumed:
                # A declared resync: the gap is covered, holes before it are not.
                self.metrics.counters["messages.lost"] += tracker.settle()
                self.metrics.counters["resyncs"] += 1
                self._note(now, f"resync: epoch {self.epoch} -> {welcome.epoch}")
            self.epoch = welcome.epoch
            tracker.highest = welcome.offset
            tracker.expect(welcome.offset + 1)
        self._synchronized(now)
        if self.config.heartbeat_interval is None:
            self.hb_interval = welcome.heartbeat.interval
        if self.config.heartbeat_timeout is None:
            self.hb_timeout = welcome.heartbeat.timeout
        self._start_heartbeat(now)

    def _on_closed(self, event: Closed) -> list[Action]:
        reason = f"closed {event.code}" + (f" {event.reason}" if event.reason else "")
        if self.session is not None:
            # Socket.IO: the WebSocket going away is a "transport close", whatever its
            # code; the session reconnects as Socket.IO's own clients do.
            return self._lose(event.at, f"{sio.REASON_TRANSPORT_CLOSE} ({reason})",
                              code=event.code)
        if event.code == protocol.CLOSE_NORMAL:
            self.closed_by_server = True
            self._finish()
            self._record(event.at, State.CLOSED, reason, event.code)
            return []
        hint = None
        if event.code in (protocol.CLOSE_GOING_AWAY, protocol.CLOSE_TRY_AGAIN_LATER):
            hint_ms = protocol.retry_hint_ms(event.reason)
            hint = hint_ms / 1000 if hint_ms is not None else None
        return self._lose(event.at, reason, code=event.code, hint=hint)

    def _lose(
        self,
        now: float,
        reason: str,
        *,
        code: int | None = None,
        hint: float | None = None,
        abort: bool = False,
    ) -> list[Action]:
        metrics = self.metrics
        metrics.counters["connections.lost"] += 1
        if self.fault_at is not None:
            if now >= self.fault_at:
                metrics.histograms["detect_time"].record(now - self.fault_at)
            self.fault_at = None
        else:
            if self.unpaired is None:
                self.unpaired = []
            elif len(self.unpaired) == MAX_UNPAIRED:
                del self.unpaired[0]
            self.unpaired.append((self.opened_at, now))
        self.last_error = reason
        self._record(now, State.LOST, reason, code)
        if self.loss_at is None:
            # A new recovery. Otherwise (lost before its welcome) the current one goes on.
            self.loss_at = now
            self.recovery_attempts = 0
        self.awaiting_welcome = False
        self.session = None
        self.resume_from = None  # a resume that never delivered: no resume_time
        self.outage_from = self.last_data_at
        self.ping_at = self.ping_sent = self.pong_due = self.welcome_due = self.send_at = None
        if self.config.mode == "echo":
            self._echoes_lost()
        self.retrier.lost(now)
        actions: list[Action] = [Abort(reason)] if abort else []
        actions.extend(self._retry(now, reason, hint))
        return actions

    def _echoes_lost(self) -> None:
        tracker = self.tracker
        if tracker.next is not None and tracker.next < self.echo_seq:
            tracker.missing.append([tracker.next, self.echo_seq - 1])
        self.metrics.counters["messages.lost"] += tracker.settle()
        tracker.expect(self.echo_seq)

    def _retry(self, now: float, reason: str, hint: float | None, *,
               kind: str | None = None) -> list[Action]:
        """Back off before the next attempt. A failed attempt that cost the server nothing
        (``kind`` refused, dns, fds) is retried on the policy's fast path."""
        free = kind is not None and not connect_kind_costs_server(kind)
        delay = self.retrier.next_delay(now, hint, free=free)
        if delay is None:
            self._finish()
            self.metrics.counters["probes.gave_up"] += 1
            self._record(now, State.GAVE_UP, f"{reason}; gave up after "
                         f"{self.retrier.attempts} attempts", kind=kind)
            return []
        self.reconnect_at = now + delay
        self._record(now, State.BACKOFF, f"retry in {delay:.3f}s", kind=kind)
        if delay == 0:
            return self._on_tick(now)
        return []

    def _stop(self, now: float, reason: str) -> list[Action]:
        was_open = self.state is State.OPEN
        actions: list[Action] = []
        if was_open and self.session is not None:
            self.session.disconnect()  # leave the namespace politely
            actions.extend(Send(f) for f in self.session.data_to_send())
        self._finish()
        self._record(now, State.CLOSED, reason)
        return [*actions, Close(protocol.CLOSE_NORMAL, reason)] if was_open else []

    def _finish(self) -> None:
        """Final accounting: holes that were never filled are lost (echoes still in
        flight at a stop are not: they may simply not be back yet)."""
        counters = self.metrics.counters
        if self.config.mode != "listen":
            counters["messages.lost"] += self.tracker.settle()
        elif self.generations is not None:
            counters["messages.lost"] += self.generations.settle()
        self.session = None
        self.ping_at = self.ping_sent = self.pong_due = self.welcome_due = None
        self.send_at = self.reconnect_at = None

    def __repr__(self) -> str:
        return f"ProbeMachine({self.index}, state={self.state.value}, url={self.url!r})"
