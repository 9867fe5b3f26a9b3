"""``wsctl serve``: run the reference server (or print an auth token)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from wsctl.cli._common import reports_errors
from wsctl.errors import InvalidInput
from wsctl.units import parse_duration


class ProfileName(StrEnum):
    reference = "reference"
    baseline = "baseline"


class HealthModeName(StrEnum):
    scheduler = "scheduler"
    per_connection = "per-connection"


class LoopName(StrEnum):
    auto = "auto"
    asyncio = "asyncio"
    uvloop = "uvloop"


class LogFormat(StrEnum):
    text = "text"
    json = "json"


def _opt(help: str, env: str, **kw: object) -> typer.models.OptionInfo:  # noqa: A002
    """An option with help text and its ``WSCTL_<env>`` environment variable."""
    kw.setdefault("show_default", True)
    return typer.Option(help=help, envvar=f"WSCTL_{env}", **kw)  # type: ignore[arg-type]


@reports_errors
def serve(
    host: Annotated[str, _opt("Address to bind.", "HOST")] = "127.0.0.1",
    port: Annotated[int, _opt("Port to listen on; 0 picks a free one.", "PORT", min=0,
                              max=65535)] = 8765,
    profile: Annotated[ProfileName, _opt(
        "reference = EP-0001's server done right; baseline = the 'before' (websockets' "
        "defaults: compression on, keepalive task per connection, no admission control, "
        "no replay).", "PROFILE")] = ProfileName.reference,
    max_connections: Annotated[int, _opt("Global connection limit (0 = none); refusals are "
                                         "HTTP 503 with Retry-After.", "MAX_CONNECTIONS",
                                         min=0)] = 10_000,
    max_per_client: Annotated[int, _opt("Connections per client address (0 = none).",
                                        "MAX_PER_CLIENT", min=0)] = 0,
    max_streams: Annotated[int, _opt("Streams (jobs) held at once (0 = none).",
                                     "MAX_STREAMS", min=0)] = 20_000,
    max_message_size: Annotated[int, _opt("Largest client frame in bytes; larger -> close "
                                          "1009.", "MAX_MESSAGE_SIZE", min=1)] = 65_536,
    send_buffer: Annotated[int, _opt("Unsent bytes a client may have buffered before it is "
                                     "closed as a slow consumer (1008, resumable).",
                                     "SEND_BUFFER", min=1024)] = 262_144,
    ping_interval: Annotated[str, _opt("Protocol ping period per connection.",
                                       "PING_INTERVAL")] = "5s",
    ping_timeout: Annotated[str, _opt("No pong within this -> closed 1011 and counted dead.",
                                      "PING_TIMEOUT")] = "5s",
    health_mode: Annotated[HealthModeName, _opt(
        "scheduler = one task pings every connection; per-connection = websockets' "
        "keepalive task per connection.", "HEALTH_MODE")] = HealthModeName.scheduler,
    replay_size: Annotated[int, _opt("Events kept per stream for resume.", "REPLAY_SIZE",
                                     min=0)] = 1000,
    replay_age: Annotated[str, _opt("Oldest event kept for resume; also how long an unread "
                                    "stream's job keeps running.", "REPLAY_AGE")] = "1m",
    job_rate: Annotated[float, _opt("Progress events per second on each stream.", "JOB_RATE",
                                    min=0.001, max=1000.0)] = 1.0,
    job_steps: Annotated[int, _opt("Steps in one simulated job.", "JOB_STEPS", min=1)] = 100,
    secret: Annotated[str | None, _opt("Require HMAC tokens made with this secret.",
                                       "SECRET", show_default=False)] = None,
    origin: Annotated[list[str] | None, _opt(
        "Allowed Origin (repeat for several); other browser origins get 403.",
        "ORIGIN")] = None,
    certfile: Annotated[str | None, _opt("TLS certificate (PEM): serve wss://.",
                                         "CERTFILE")] = None,
    keyfile: Annotated[str | None, _opt("TLS private key (PEM).", "KEYFILE")] = None,
    shutdown_timeout: Annotated[str, _opt("Longest graceful shutdown before aborting.",
                                          "SHUTDOWN_TIMEOUT")] = "5s",
    retry_hint: Annotated[str, _opt("Retry hint sent on 1001 shutdown and 503 refusals.",
                                    "RETRY_HINT")] = "1s",
    log_format: Annotated[LogFormat, _opt("Connection log format (stderr).",
                                          "LOG_FORMAT")] = LogFormat.text,
    log_level: Annotated[str, _opt("debug, info, warning or error.", "LOG_LEVEL")] = "info",
    loop: Annotated[LoopName, _opt(
        "Event loop: auto = uvloop for the reference profile (if installed), asyncio's own "
        "for baseline.", "LOOP")] = LoopName.auto,
    issue_token: Annotated[str | None, typer.Option(
        help="Print a token for this stream (needs --secret) and exit.",
        metavar="STREAM")] = None,
    ttl: Annotated[str, typer.Option(help="Lifetime of --issue-token.")] = "1h",
) -> None:
    """Run the reference server: resume protocol v1 at /ws/{stream}, /ws/health, /metrics,
    and a live dashboard at http://HOST:PORT/.

    The first line on stdout holds the URL (ws://HOST:PORT) and the dashboard's address.
    SIGTERM or Ctrl-C closes every connection with 1001 and a retry hint and exits 0.
    Exit 2 on bad input, 3 if the port is taken.
    """
    from server_stub.auth import issue_token as make_token
    from server_stub.config import ServerConfig
    from server_stub.logs import setup_logging
    from server_stub.main import run
    from wsctl.protocol import STREAM_NAME

    if issue_token is not None:
        if not secret:
            raise InvalidInput("--issue-token needs --secret (or WSCTL_SECRET)")
        if not STREAM_NAME.fullmatch(issue_token):
            raise InvalidInput(f"invalid stream name {issue_token!r}: use A-Z a-z 0-9 . _ -")
        typer.echo(make_token(secret, issue_token, parse_duration(ttl, "--ttl")))
        return
    if bool(certfile) != bool(keyfile):
        raise InvalidInput("--certfile and --keyfile go together")
    if log_level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise InvalidInput(f"--log-level {log_level!r}: use debug, info, warning or error")
    config = ServerConfig(
        host=host,
        port=port,
        profile=profile.value,
        max_connections=max_connections,
        max_per_client=max_per_client,
        max_streams=max_streams,
        max_message_size=max_message_size,
        send_buffer=send_buffer,
        ping_interval=_positive(ping_interval, "--ping-interval"),
        ping_timeout=_positive(ping_timeout, "--ping-timeout"),
        health_mode=health_mode.value,
        replay_size=replay_size,
        replay_age=_positive(replay_age, "--replay-age"),
        job_rate=job_rate,
        job_steps=job_steps,
        secret=secret,
        origins=tuple(origin or ()),
        certfile=certfile,
        keyfile=keyfile,
        shutdown_timeout=_positive(shutdown_timeout, "--shutdown-timeout"),
        retry_hint_ms=round(parse_duration(retry_hint, "--retry-hint") * 1000),
        log_format=log_format.value,
        log_level=log_level,
        loop=loop.value,
    )
    setup_logging(config.log_format, config.log_level)
    raise typer.Exit(run(config))


def _positive(text: str, what: str) -> float:
    seconds = parse_duration(text, what)
    if seconds <= 0:
        raise InvalidInput(f"{what} must be greater than zero, got {text!r}")
    return seconds


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
