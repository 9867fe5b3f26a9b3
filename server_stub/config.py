"""Server settings as one small value object, with the two profiles the EP compares, and
the command-line options that set them (the one source of their defaults and help, for
``wsctl serve`` and ``python -m server_stub`` alike)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, Literal, get_args

from server_stub.stores import store_maker
from wsctl.errors import InvalidInput
from wsctl.units import parse_duration, parse_interval, parse_positive_duration

Profile = Literal["reference", "baseline"]
HealthMode = Literal["scheduler", "per-connection"]
LogFormat = Literal["text", "json"]
LoopName = Literal["auto", "asyncio", "uvloop"]
GcName = Literal["auto", "paced", "cpython"]


@dataclass(frozen=True)
class ServerConfig:
    """Everything ``wsctl serve`` can set. Defaults are the safe ``reference`` profile.

    Limits of 0 mean "no limit". Durations are seconds.
    """

    host: str = "127.0.0.1"
    port: int = 8765
    profile: Profile = "reference"
    max_connections: int = 10_000
    max_per_client: int = 0
    max_streams: int = 20_000
    max_streams_per_client: int = 1000
    max_message_size: int = 64 * 1024
    send_buffer: int = 256 * 1024
    ping_interval: float = 5.0
    ping_timeout: float = 5.0
    health_mode: HealthMode = "scheduler"
    replay_size: int = 1000
    replay_age: float = 60.0
    resume: bool = True
    compression: bool = False
    job_rate: float = 1.0
    job_steps: int = 100
    secret: str | None = None
    origins: tuple[str, ...] = ()
    certfile: str | None = None
    keyfile: str | None = None
    shutdown_timeout: float = 5.0
    close_timeout: float = 3.0
    retry_hint_ms: int = 1000
    log_format: LogFormat = "text"
    log_level: str = "info"
    loop: LoopName = "auto"  # auto: uvloop for reference (if installed), asyncio for baseline
    gc: GcName = "auto"  # auto: paced for reference, CPython's own for baseline
    store: str = "memory"  # memory | sqlite:PATH (server_stub.stores)
    workers: int = 1  # > 1: a supervisor and N processes on one port (server_stub.workers)

    @property
    def scheme(self) -> str:
        return "wss" if self.certfile else "ws"

    def for_profile(self) -> ServerConfig:
        """Apply the profile: ``baseline`` is EP-0001's "before" (websockets' defaults).

        Baseline: permessage-deflate on, websockets' own keepalive task per connection
        (20 s / 20 s), no admission control, no replay (every resume is a resync).
        """
        if self.profile == "baseline":
            return replace(
                self,
                compression=True,
                health_mode="per-connection",
                ping_interval=20.0,
                ping_timeout=20.0,
                max_connections=0,
                max_per_client=0,
                resume=False,
                replay_size=0,
            )
        return self


DEFAULT = ServerConfig()


def seconds_text(seconds: float) -> str:
    """How a duration is written on the command line: ``5.0`` -> ``5s``, ``60.0`` -> ``1m``,
    ``0.25`` -> ``250ms``."""
    for unit, size in (("h", 3600.0), ("m", 60.0), ("s", 1.0)):
        if seconds >= size and seconds % size == 0:
            return f"{_plain(seconds / size)}{unit}"
    return f"{_plain(seconds)}s" if seconds >= 1 else f"{_plain(seconds * 1000)}ms"


def _plain(number: float) -> str:
    """``number`` without an exponent (``1e+06s`` is not a duration the parser reads)."""
    text = format(Decimal(repr(number)), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


@dataclass(frozen=True, slots=True)
class Option:
    """One option of ``wsctl serve`` and ``python -m server_stub``: the flag ``--NAME``
    (dashes for underscores), the variable ``WSCTL_NAME``, its help, its default as typed
    on the command line, and the values it takes."""

    name: str
    help: str
    default: Any
    kind: Literal["str", "int", "float", "duration"] = "str"
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()
    repeat: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return "WSCTL_" + self.name.upper()


MAX_WORKERS = 64
# Stores a worker may use beside the others: memory (each worker its own streams) and the
# stores made to be shared. A file store has one writer: one process.
WORKER_STORES = ("memory", "redis")
LOG_LEVELS = ("debug", "info", "warning", "error")
_LEVELS_TEXT = "debug, info, warning or error"
# Durations that cannot be zero (``retry_hint`` can: it is kept in ms).
POSITIVE_DURATIONS = ("ping_interval", "ping_timeout", "replay_age", "shutdown_timeout",
                      "close_timeout")

OPTIONS: dict[str, Option] = {o.name: o for o in (
    Option("host", "Address to bind.", DEFAULT.host),
    Option("port", "Port to listen on; 0 picks a free one.", DEFAULT.port, "int", 0, 65535),
    Option("profile", "reference = EP-0001's server done right; baseline = the 'before' "
           "(websockets' defaults: compression on, keepalive task per connection, no "
           "admission control, no replay).", DEFAULT.profile, choices=get_args(Profile)),
    Option("max_connections", "Global connection limit (0 = none); refusals are HTTP 503 "
           "with Retry-After.", DEFAULT.max_connections, "int", 0),
    Option("max_per_client", "Connections per client address (0 = none).",
           DEFAULT.max_per_client, "int", 0),
    Option("max_streams", "Streams (jobs) held at once (0 = none).", DEFAULT.max_streams,
           "int", 0),
    Option("max_streams_per_client", "Streams one client address may have made and still "
           "held (0 = none); a stream is held until unread for the replay age.",
           DEFAULT.max_streams_per_client, "int", 0),
    Option("max_message_size", "Largest client frame in bytes; larger -> close 1009.",
           DEFAULT.max_message_size, "int", 1),
    Option("send_buffer", "Unsent bytes a client may have buffered before it is closed as "
           "a slow consumer (1008, resumable).", DEFAULT.send_buffer, "int", 1024),
    Option("ping_interval", "Protocol ping period per connection.",
           seconds_text(DEFAULT.ping_interval), "duration"),
    Option("ping_timeout", "No pong within this -> closed 1011 and counted dead.",
           seconds_text(DEFAULT.ping_timeout), "duration"),
    Option("health_mode", "scheduler = one task pings every connection; per-connection = "
           "websockets' keepalive task per connection.", DEFAULT.health_mode,
           choices=get_args(HealthMode)),
    Option("replay_size", "Events kept per stream for resume.", DEFAULT.replay_size, "int",
           0),
    Option("replay_age", "Oldest event kept for resume; also how long an unread stream's "
           "job keeps running.", seconds_text(DEFAULT.replay_age), "duration"),
    Option("job_rate", "Progress events per second on each stream.", DEFAULT.job_rate,
           "float", 0.001, 1000.0),
    Option("job_steps", "Steps in one simulated job.", DEFAULT.job_steps, "int", 1),
    Option("secret", "Require HMAC tokens made with this secret.", DEFAULT.secret),
    Option("origin", "Allowed Origin (repeat for several); other browser origins get 403.",
           None, repeat=True),
    Option("certfile", "TLS certificate (PEM): serve wss://.", DEFAULT.certfile),
    Option("keyfile", "TLS private key (PEM).", DEFAULT.keyfile),
    Option("shutdown_timeout", "Longest graceful shutdown before aborting.",
           seconds_text(DEFAULT.shutdown_timeout), "duration"),
    Option("close_timeout", "Longest a close the server decides on may take (slow consumer "
           "1008, dead peer 1011, bad message 1008): the close frame is sent, and a peer "
           "not closed by then (its receive window shut) is aborted.",
           seconds_text(DEFAULT.close_timeout), "duration"),
    Option("retry_hint", "Retry hint sent on 1001 shutdown and 503 refusals.",
           seconds_text(DEFAULT.retry_hint_ms / 1000), "duration"),
    Option("log_format", "Connection log format (stderr).", DEFAULT.log_format,
           choices=get_args(LogFormat)),
    Option("log_level", f"{_LEVELS_TEXT}.", DEFAULT.log_level),
    Option("store", "Where stream history is kept: memory (lost with the process) or "
           "sqlite:PATH (survives a crash; PATH?synchronous=full survives a power loss "
           "too). See docs/server.md, 'Stores'.", DEFAULT.store),
    Option("workers", "Server processes sharing the port (SO_REUSEPORT, Linux): 1 = one "
           "process; N > 1 = a supervisor starting N workers, restarting any that dies. "
           "Each worker has its own connections, /ws/health and /metrics, and with --store "
           "memory its own streams. See docs/server.md, 'Several worker processes'.",
           DEFAULT.workers, "int", 1, MAX_WORKERS),
    Option("loop", "Event loop: auto = uvloop for the reference profile (if installed), "
           "asyncio's own for baseline.", DEFAULT.loop, choices=get_args(LoopName)),
    Option("gc", "Garbage collector: auto = paced for the reference profile, cpython for "
           "baseline; paced = young collections every 20 ms of the event loop and a full "
           "one only after connections end; cpython = CPython's own thresholds.",
           DEFAULT.gc, choices=get_args(GcName)),
)}


def config_from_options(**values: Any) -> ServerConfig:
    """A ServerConfig from OPTIONS as typed (durations as text, ``origin`` a list); options
    left out keep their defaults. InvalidInput names the option of a value it cannot take."""
    values = {name: OPTIONS[name].default for name in OPTIONS} | values
    if bool(values["certfile"]) != bool(values["keyfile"]):
        raise InvalidInput("--certfile and --keyfile go together")
    level = str(values["log_level"])
    if level.lower() not in LOG_LEVELS:
        raise InvalidInput(f"--log-level {level!r}: use {_LEVELS_TEXT}")
    for name in POSITIVE_DURATIONS:  # a ping every microsecond is a busy loop: 10ms at least
        parse = parse_interval if name == "ping_interval" else parse_positive_duration
        values[name] = parse(values[name], OPTIONS[name].flag)
    store_maker(str(values["store"]))  # InvalidInput in one line for a bad --store
    _check_workers(int(values["workers"]), str(values["store"]), str(values["profile"]))
    hint = parse_duration(values.pop("retry_hint"), "--retry-hint")
    origins = tuple(values.pop("origin") or ())
    return ServerConfig(**values, origins=origins, retry_hint_ms=round(hint * 1000))


def _check_workers(workers: int, store: str, profile: str) -> None:
    """InvalidInput in one line for a ``--workers`` the server cannot run."""
    if workers == 1:
        return
    if not 1 <= workers <= MAX_WORKERS:
        raise InvalidInput(f"--workers {workers}: use 1 to {MAX_WORKERS}")
    if not sys.platform.startswith("linux"):
        raise InvalidInput(f"--workers {workers} needs Linux (SO_REUSEPORT balancing); "
                           "use --workers 1")
    if profile != "reference":
        raise InvalidInput(f"--workers {workers} needs --profile reference: baseline is "
                           "EP-0001's one-process 'before'")
    kind = store.partition(":")[0]
    if kind not in WORKER_STORES:
        raise InvalidInput(f"--store {store} cannot be shared by --workers {workers} (one "
                           "writer per file): use --store redis://… or --workers 1")
