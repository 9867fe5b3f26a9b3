"""The ``protocol:`` block: how probes speak and judge a team's own WebSocket protocol.

One declarative block shared by ``wsctl probe``, ``wsctl bench`` and scenarios
(``probes.protocol`` in YAML, or ``--protocol FILE``); docs/own-service.md describes every
field. Everything here is pure: the model validates, and the functions build what a
connection needs (URL, headers, the messages to send after the handshake) and judge what
arrives (sequence number, sender's timestamp, heartbeat answer) from a decoded message.

Templates: in header and query values, ``on_open``, ``resume``, the heartbeat message and
Socket.IO ``auth``, the placeholders ``{stream}``, ``{n}``, ``{last_seq}`` and
``${ENV_VAR}`` are replaced (other braces are left alone, so raw JSON text is safe). A
string that is exactly ``"{n}"`` or ``"{last_seq}"`` becomes a JSON number (``{last_seq}``
before any number arrived: ``null``; a query parameter with that value is left out);
inside a longer string it is text (``""`` when there is no number yet). An environment
variable that is not set is an ``InvalidInput`` naming the field.

How a probe uses it (per connection; ``Context(stream, n, tracker.last_seq, os.environ)``):
connect to ``url(base, ctx)`` with ``headers_for(ctx)`` and ``subprotocols``; once open,
send ``frame(m)`` for each of ``open_messages(ctx)`` (Socket.IO: ``client.emit(*m)`` on
``socketio_client(ctx)``, which also answers pings and gives liveness); for each message,
``read_frame`` (or ``read(event.payload)`` for a counted Socket.IO event) gives the number
for ``sequence.GenerationTracker`` and the sender's time for ``delivery_latency``;
``is_heartbeat_answer`` recognises the heartbeat's reply; ``measures`` says which metrics
exist at all. ``check_env`` runs before anything starts.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    ValidationError,
    field_validator,
    model_validator,
)

from wsctl import yamlfile
from wsctl.errors import InvalidInput
from wsctl.probe.socketio import SocketIOClient, engine_url
from wsctl.yamlfile import FieldError

Adapter = Literal["none", "socketio"]
TimeUnit = Literal["s", "ms", "auto"]

# ``unit: auto``: a number at or above this is milliseconds, below it seconds. 1e11 s is
# the year 5138; 1e11 ms is 1973-03-03: no plausible wall time is ambiguous.
AUTO_MS_FROM = 1e11

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\{(stream|n|last_seq)\}")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_SEGMENT = re.compile(r"[^.\s]+")
_HANDSHAKE_HEADERS = {
    "host": "the URL's host", "upgrade": "the WebSocket handshake",
    "connection": "the WebSocket handshake", "sec-websocket-key": "the WebSocket handshake",
    "sec-websocket-version": "the WebSocket handshake",
    "sec-websocket-extensions": "the client's compression setting",
    "sec-websocket-protocol": "subprotocols: [...]",
}
MISSING = object()  # get_path's answer for a path the message lacks


# Values ------------------------------------------------------------------------------


def _field_path(value: str) -> str:
    if not all(_SEGMENT.fullmatch(part) for part in value.split(".")):
        raise ValueError("a field path is names joined by dots, e.g. seq or data.offset "
                         "(a number picks a list item: items.0.seq)")
    return value


FieldPath = Annotated[str, AfterValidator(_field_path)]


def _message(value: Any) -> Any:
    """A message to send: a JSON object, a JSON array, or a string sent as it is."""
    if not isinstance(value, dict | list | str):
        raise ValueError("a message is a JSON object, a list, or a string sent as it is")
    return value


Message = Annotated[Any, BeforeValidator(_message)]


def _scalar(value: Any) -> Any:
    if not isinstance(value, str | int | float | bool):
        raise ValueError("a value here is a string, a number or true/false")
    return value


Scalar = Annotated[str | int | float | bool, BeforeValidator(_scalar)]


def _query(value: Any) -> Any:
    """A query: raw text (``"since={last_seq}"``) or a mapping of parameters."""
    if isinstance(value, str):
        return value
    if not isinstance(value, dict):
        raise ValueError('a query is text such as "since={last_seq}" or a mapping of '
                         "parameters")
    for key, item in value.items():
        try:
            _scalar(item)
        except ValueError as exc:
            raise FieldError((key,), str(exc)) from None
    return value


def get_path(message: Any, path: str) -> Any:
    """The value at dotted ``path`` in a decoded JSON ``message``, or ``MISSING``."""
    value = message
    for part in path.split("."):
        if isinstance(value, dict):
            value = value.get(part, MISSING)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return MISSING
        if value is MISSING:
            return MISSING
    return value



def sequence_number(value: Any) -> int:
    """A sequence value as an int: an integer, an integral float or a decimal string."""
    if isinstance(value, bool):
        raise ValueError(f"not a sequence number: {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise ValueError(f"not a sequence number: {value!r}")


def wall_seconds(value: Any, unit: TimeUnit) -> float:
    """A sender's timestamp as Unix seconds: a number in ``unit`` (``auto``: milliseconds
    from ``AUTO_MS_FROM`` up, else seconds), or an ISO 8601 string (no zone: UTC)."""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"not a timestamp: {value!r}") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"not a timestamp: {value!r}")
    if unit == "ms" or (unit == "auto" and abs(value) >= AUTO_MS_FROM):
        return value / 1000
    return float(value)


# The block ---------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TimestampSpec(_Model):
    """Where the sender's wall time sits, and its unit (``auto``: by magnitude)."""

    path: FieldPath
    unit: TimeUnit = "auto"


class ResumeSpec(_Model):
    """How to ask for what was missed after a reconnect: a query (``"since={last_seq}"``
    or a mapping) added to the URL, or a message sent after ``on_open``."""

    query: Annotated[str | dict[str, str | int | float | bool] | None,
                     BeforeValidator(_query)] = None
    message: Message | None = None

    @model_validator(mode="after")
    def _one(self) -> ResumeSpec:
        if (self.query is None) == (self.message is None):
            raise ValueError("give one of query (e.g. \"since={last_seq}\") or message")
        return self


class HeartbeatSpec(_Model):
    """An application heartbeat: the message to send, and the fields (path: value) that
    all match in its answer. Interval and timeout are the probe's heartbeat settings."""

    send: Message
    answer: dict[FieldPath, Scalar | None]

    @field_validator("answer")
    @classmethod
    def _some(cls, value: dict[str, Any]) -> dict[str, Any]:
        if not value:
            raise ValueError("name at least one field the answer has, e.g. {type: pong}")
        return value


class SocketIOSpec(_Model):
    """Socket.IO settings: the namespace, which events count as messages (all when not
    given) and the ``auth`` payload of the namespace CONNECT."""

    namespace: str = "/"
    events: list[str] | None = None
    auth: dict[str, Any] | None = None

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        if not value.startswith("/") or "," in value:
            raise ValueError("a namespace starts with / and has no comma, e.g. /feed")
        return value


def _timestamp(value: Any) -> Any:
    if isinstance(value, str):
        return {"path": value}
    if value is not None and not isinstance(value, dict):
        raise ValueError("a field path such as ts, or {path: ts, unit: s|ms|auto}")
    return value


@dataclass(frozen=True, slots=True)
class Context:
    """What templates are filled with, for one connection of one probe."""

    stream: str = ""
    n: int = 0
    last_seq: int | None = None
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Reading:
    """What a decoded message says: its sequence number and sender's time (Unix seconds),
    ``None`` where its path is absent (counted, not judged), and a ``problem`` where a
    path is present but its value is not a number or time (the message is invalid)."""

    seq: int | None = None
    sent_at: float | None = None
    problem: str | None = None


class Dialect(_Model):
    """The ``protocol:`` block (docs/own-service.md)."""

    adapter: Adapter = "none"
    headers: dict[str, str] = {}
    subprotocols: list[str] = []
    query: dict[str, Scalar] = {}
    on_open: list[Message] = []
    sequence: FieldPath | None = None
    timestamp: Annotated[TimestampSpec | None, BeforeValidator(_timestamp)] = None
    resume: ResumeSpec | None = None
    heartbeat: HeartbeatSpec | None = None
    socketio: SocketIOSpec | None = None

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not _TOKEN.fullmatch(name):
                raise FieldError((name,), "not a valid header name")
            owner = _HANDSHAKE_HEADERS.get(name.lower())
            if owner is not None:
                raise FieldError((name,), f"set by {owner}, not by headers")
        return value

    @field_validator("subprotocols")
    @classmethod
    def _subprotocols(cls, value: list[str]) -> list[str]:
        for index, name in enumerate(value):
            if not _TOKEN.fullmatch(name):
                raise FieldError((index,), "a subprotocol is one token, e.g. graphql-ws")
        return value

    @model_validator(mode="after")
    def _fits_adapter(self) -> Dialect:
        if self.adapter != "socketio":
            if self.socketio is not None:
                raise FieldError(("socketio",), "only with adapter: socketio")
        else:
            for index, item in enumerate(self.on_open):
                if not _is_emit(item):
                    raise FieldError(("on_open", index), "with adapter socketio, a message "
                                     "is an emit: [event, arg, ...]")
            if self.resume is not None and self.resume.message is not None:
                if not _is_emit(self.resume.message):
                    raise FieldError(("resume", "message"), "with adapter socketio, a "
                                     "message is an emit: [event, arg, ...]")
            if self.heartbeat is not None:
                raise FieldError(("heartbeat",), "with adapter socketio, liveness comes "
                                 "from Engine.IO's own pings: leave heartbeat out")
        if self.resume is not None and self.sequence is None:
            raise FieldError(("resume",), "needs sequence: {last_seq} is the highest "
                             "sequence number received, e.g. sequence: seq")
        return self

    # -- what the block lets a probe measure -----------------------------------------

    @property
    def measures(self) -> frozenset[str]:
        """Metrics this block makes measurable beyond what every probe measures."""
        out: set[str] = set()
        if self.sequence is not None:
            out |= {"messages.lost", "messages.duplicated", "messages.reordered", "resyncs"}
        if self.timestamp is not None:
            out.add("delivery_latency")
        if self.heartbeat is not None:
            out.add("rtt")
        if self.resume is not None:
            out.add("resume_time")
        return frozenset(out)

    def mode_problem(self, mode: str) -> tuple[str, str] | None:
        """``(field, problem)`` when this block asks for what probe ``mode`` cannot do:
        ``listen`` takes every field; ``echo`` numbers and times its own messages, so it
        takes only how to connect (headers, subprotocols, query, on_open); ``resume``
        speaks the reference protocol and takes headers, subprotocols and query."""
        if mode == "listen":
            return None
        allowed = {"headers", "subprotocols", "query"} | ({"on_open"} if mode == "echo"
                                                           else set())
        if self.adapter == "socketio":
            return ("adapter", f"{mode} mode cannot speak Socket.IO: use listen mode "
                    "(events are counted, sequenced and timed there)")
        for name in ("on_open", "sequence", "timestamp", "resume", "heartbeat"):
            if getattr(self, name) not in (None, []) and name not in allowed:
                own = ("its own numbered echoes" if mode == "echo"
                       else "the reference protocol's offsets, welcome and ping")
                return (name, f"not in {mode} mode, which uses {own}: use listen mode "
                        "for a service's own protocol")
        return None

    def to_data(self) -> dict[str, Any]:
        """The block as plain JSON data that ``parse`` turns back into an equal block
        (what a worker process or a result's ``config`` carries); defaults left out."""
        return self.model_dump(mode="json", exclude_defaults=True)

    # -- building a connection ---------------------------------------------------------

    def url(self, base: str, ctx: Context) -> str:
        """The URL to connect to: ``base`` (``{stream}``/``{n}`` already filled), the
        Engine.IO path and query for Socket.IO, ``query``, and the resume query once a
        number arrived (``ctx.last_seq``)."""
        url = engine_url(base) if self.adapter == "socketio" else base
        extra: list[str] = []
        if self.query:
            extra.append(_encode_query(self.query, ctx, "query"))
        resume = self.resume
        if resume is not None and resume.query is not None and ctx.last_seq is not None:
            if isinstance(resume.query, str):
                extra.append(render_text(resume.query, ctx, "resume.query", quote_values=True))
            else:
                extra.append(_encode_query(resume.query, ctx, "resume.query"))
        extra = [part for part in extra if part]
        if not extra:
            return url
        parts = urlsplit(url)
        query = "&".join(([parts.query] if parts.query else []) + extra)
        return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))

    def headers_for(self, ctx: Context) -> list[tuple[str, str]]:
        """The extra handshake headers, templates filled."""
        return [(name, render_text(value, ctx, f"headers.{name}"))
                for name, value in self.headers.items()]

    def open_messages(self, ctx: Context) -> list[Any]:
        """What to send once the connection (or Socket.IO namespace) is open: ``on_open``,
        then the resume message once a number arrived. Each is a JSON value (dict, list)
        or a string; ``frame`` makes a text frame of one (Socket.IO: ``emit(*value)``)."""
        out = [render(item, ctx, f"on_open[{i}]") for i, item in enumerate(self.on_open)]
        resume = self.resume
        if resume is not None and resume.message is not None and ctx.last_seq is not None:
            out.append(render(resume.message, ctx, "resume.message"))
        return out

    def heartbeat_message(self, ctx: Context) -> Any:
        """The heartbeat to send (a JSON value or string), or ``None`` without one."""
        if self.heartbeat is None:
            return None
        return render(self.heartbeat.send, ctx, "heartbeat.send")

    def socketio_client(self, ctx: Context) -> SocketIOClient:
        """A Socket.IO session for one connection, with this block's namespace and auth."""
        spec = self.socketio or SocketIOSpec()
        auth = render(spec.auth, ctx, "socketio.auth") if spec.auth is not None else None
        return SocketIOClient(spec.namespace, auth)

    def check_env(self, env: Mapping[str, str]) -> None:
        """``InvalidInput`` naming the first ``${VAR}`` that ``env`` lacks (before a run
        starts, so that nothing runs with a half-filled token)."""
        ctx = Context(stream="s", n=0, last_seq=0, env=env)
        self.url("ws://check", ctx)
        self.headers_for(ctx)
        self.open_messages(ctx)
        self.heartbeat_message(ctx)
        if self.adapter == "socketio":
            self.socketio_client(ctx)

    # -- judging what arrives ----------------------------------------------------------

    def counts_event(self, name: str) -> bool:
        """Whether a Socket.IO event of this name counts as a message."""
        events = self.socketio.events if self.socketio is not None else None
        return events is None or name in events

    def is_heartbeat_answer(self, message: Any) -> bool:
        """Whether a decoded message answers the heartbeat (every ``answer`` field equal)."""
        if self.heartbeat is None:
            return False
        return all(get_path(message, path) == expected
                   for path, expected in self.heartbeat.answer.items())

    def read(self, message: Any) -> Reading:
        """The sequence number and sender's time of a decoded message (for Socket.IO: an
        event's payload, its first argument)."""
        seq = sent_at = None
        problems = []
        if self.sequence is not None:
            value = get_path(message, self.sequence)
            if value is not MISSING:
                try:
                    seq = sequence_number(value)
                except ValueError as exc:
                    problems.append(f"{self.sequence}: {exc}")
        if self.timestamp is not None:
            value = get_path(message, self.timestamp.path)
            if value is not MISSING:
                try:
                    sent_at = wall_seconds(value, self.timestamp.unit)
                except ValueError as exc:
                    problems.append(f"{self.timestamp.path}: {exc}")
        return Reading(seq, sent_at, "; ".join(problems) or None)

    def read_frame(self, frame: str | bytes) -> tuple[Any, Reading]:
        """A plain (``adapter: none``) frame decoded as JSON, and its reading; a frame that
        is not JSON is ``(None, Reading())``: counted, not judged."""
        try:
            message = json.loads(frame)
        except (ValueError, UnicodeDecodeError):
            return None, Reading()
        return message, self.read(message)


def frame(value: Any) -> str:
    """The text frame for an outgoing message: JSON for objects and lists, strings as is."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _is_emit(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and isinstance(value[0], str)


# Templates ---------------------------------------------------------------------------


def render_text(text: str, ctx: Context, where: str, *, quote_values: bool = False) -> str:
    """``text`` with every placeholder replaced by text (``{last_seq}`` unknown: "")."""

    def sub(match: re.Match[str]) -> str:
        env_name, name = match.group(1), match.group(2)
        if env_name is not None:
            if env_name not in ctx.env:
                raise InvalidInput(f"protocol.{where}: environment variable {env_name} is "
                                   "not set")
            value = ctx.env[env_name]
        elif name == "stream":
            value = ctx.stream
        elif name == "n":
            value = str(ctx.n)
        else:
            value = "" if ctx.last_seq is None else str(ctx.last_seq)
        return quote(value, safe="") if quote_values else value

    return _PLACEHOLDER.sub(sub, text)


def render(value: Any, ctx: Context, where: str) -> Any:
    """A JSON value with templates filled in its strings (keys are left as written); a
    string that is exactly ``{n}`` or ``{last_seq}`` becomes a number (or ``None``)."""
    if isinstance(value, str):
        if value == "{n}":
            return ctx.n
        if value == "{last_seq}":
            return ctx.last_seq
        return render_text(value, ctx, where)
    if isinstance(value, dict):
        return {key: render(item, ctx, f"{where}.{key}") for key, item in value.items()}
    if isinstance(value, list):
        return [render(item, ctx, f"{where}[{i}]") for i, item in enumerate(value)]
    return value


def _encode_query(params: Mapping[str, Scalar], ctx: Context, where: str) -> str:
    pairs = []
    for key, raw in params.items():
        value = render(raw, ctx, f"{where}.{key}")
        if value is None:
            continue  # "{last_seq}" before any number arrived
        if isinstance(value, bool):
            value = "true" if value else "false"
        pairs.append((key, str(value)))
    return urlencode(pairs, quote_via=quote)


# Loading -----------------------------------------------------------------------------


def parse(data: Any) -> Dialect:
    """Validate a decoded block (``ValidationError`` as pydantic raises it)."""
    return Dialect.model_validate(data)


def loads(text: str, source: str = "<protocol>") -> Dialect:
    """Validate YAML or JSON ``text``; ``InvalidInput`` with ``FILE:LINE: field: problem``."""
    data, lines = yamlfile.parse(text, source)
    prefix: yamlfile.Loc = ()
    if isinstance(data, dict) and set(data) == {"protocol"}:
        data, prefix = data["protocol"], ("protocol",)  # a file may wrap the block
    if not isinstance(data, dict):
        raise InvalidInput(f"{source}:1: (top level): expected a mapping of protocol fields "
                           "(adapter, headers, on_open, sequence, ...)")
    try:
        return Dialect.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(yamlfile.report(exc, source, lines, prefix)) from None


def load(path: Path | str) -> Dialect:
    """Read and validate a ``--protocol FILE``."""
    return loads(yamlfile.read(path, "protocol file"), str(path))


def from_flags(
    base: Dialect | None = None,
    *,
    headers: list[str] | None = None,
    subprotocols: list[str] | None = None,
    on_open: list[str] | None = None,
    sequence: str | None = None,
    timestamp: str | None = None,
    socketio: bool = False,
) -> Dialect | None:
    """The block of ``--protocol FILE`` (``base``) with the command line's flags applied:
    ``--header 'Name: value'`` and ``--on-open JSON`` extend (a header replaces the file's
    of the same name), ``--subprotocol`` extends, ``--sequence``/``--timestamp`` replace,
    ``--socketio`` sets the adapter. None when there is neither a file nor a flag.
    ``InvalidInput`` names the flag or field that is wrong."""
    if base is None and not (headers or subprotocols or on_open or sequence or timestamp
                             or socketio):
        return None
    data = base.to_data() if base is not None else {}
    if headers:
        merged = dict(data.get("headers", {}))
        for item in headers:
            name, sep, value = item.partition(":")
            if not sep or not name.strip():
                raise InvalidInput(f"--header {item!r}: write 'Name: value'")
            merged[name.strip()] = value.strip()
        data["headers"] = merged
    if subprotocols:
        data["subprotocols"] = [*data.get("subprotocols", []), *subprotocols]
    if on_open:
        messages = []
        for item in on_open:
            try:
                messages.append(json.loads(item))
            except ValueError:
                raise InvalidInput(f"--on-open {item!r}: not JSON (a text message is "
                                   "written as a JSON string: '\"hello\"')") from None
        data["on_open"] = [*data.get("on_open", []), *messages]
    if sequence:
        data["sequence"] = sequence
    if timestamp:
        data["timestamp"] = {**data.get("timestamp", {}), "path": timestamp}
    if socketio:
        data["adapter"] = "socketio"
    try:
        return Dialect.model_validate(data)
    except ValidationError as exc:
        problems = [f"protocol.{yamlfile.dotted(loc)}: {message}"
                    for loc, message in yamlfile.problems(exc)]
        raise InvalidInput("; ".join(problems)) from None
