"""``wsctl serve``: run the reference server (or print an auth token).

The options, their defaults and help are ``server_stub.config.OPTIONS``; the body hands
them to ``server_stub.command.serve``, which ``python -m server_stub`` runs too."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import typer

from server_stub.command import DESCRIPTION, ISSUE_TOKEN_HELP, TTL_DEFAULT, TTL_HELP
from server_stub.command import serve as serve_server
from server_stub.config import OPTIONS
from wsctl.cli._common import env_options, reports_errors

_env_opt = env_options("WSCTL_")


# The choices of OPTIONS' profile, health_mode and log_format, as types typer can show.
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


class GcName(StrEnum):
    auto = "auto"
    paced = "paced"
    cpython = "cpython"


class LogFormat(StrEnum):
    text = "text"
    json = "json"



def _opt(name: str) -> Any:
    """The option ``name`` as ``server_stub.config.OPTIONS`` describes it."""
    option = OPTIONS[name]
    kw: dict[str, Any] = {"show_default": option.default is not None}
    if option.min is not None:
        kw["min"] = option.min
    if option.max is not None:
        kw["max"] = option.max
    return _env_opt(option.help, name.upper(), **kw)


_DEFAULT = {name: option.default for name, option in OPTIONS.items()}


@reports_errors
def serve(
    host: Annotated[str, _opt("host")] = _DEFAULT["host"],
    port: Annotated[int, _opt("port")] = _DEFAULT["port"],
    profile: Annotated[ProfileName, _opt("profile")] = _DEFAULT["profile"],
    max_connections: Annotated[int, _opt("max_connections")] = _DEFAULT["max_connections"],
    max_per_client: Annotated[int, _opt("max_per_client")] = _DEFAULT["max_per_client"],
    max_streams: Annotated[int, _opt("max_streams")] = _DEFAULT["max_streams"],
    max_streams_per_client: Annotated[int, _opt("max_streams_per_client")] = (
        _DEFAULT["max_streams_per_client"]),
    max_message_size: Annotated[int, _opt("max_message_size")] = _DEFAULT["max_message_size"],
    send_buffer: Annotated[int, _opt("send_buffer")] = _DEFAULT["send_buffer"],
    ping_interval: Annotated[str, _opt("ping_interval")] = _DEFAULT["ping_interval"],
    ping_timeout: Annotated[str, _opt("ping_timeout")] = _DEFAULT["ping_timeout"],
    health_mode: Annotated[HealthModeName, _opt("health_mode")] = _DEFAULT["health_mode"],
    replay_size: Annotated[int, _opt("replay_size")] = _DEFAULT["replay_size"],
    replay_age: Annotated[str, _opt("replay_age")] = _DEFAULT["replay_age"],
    job_rate: Annotated[float, _opt("job_rate")] = _DEFAULT["job_rate"],
    job_steps: Annotated[int, _opt("job_steps")] = _DEFAULT["job_steps"],
    secret: Annotated[str | None, _opt("secret")] = _DEFAULT["secret"],
    origin: Annotated[list[str] | None, _opt("origin")] = _DEFAULT["origin"],
    certfile: Annotated[str | None, _opt("certfile")] = _DEFAULT["certfile"],
    keyfile: Annotated[str | None, _opt("keyfile")] = _DEFAULT["keyfile"],
    shutdown_timeout: Annotated[str, _opt("shutdown_timeout")] = _DEFAULT["shutdown_timeout"],
    close_timeout: Annotated[str, _opt("close_timeout")] = _DEFAULT["close_timeout"],
    retry_hint: Annotated[str, _opt("retry_hint")] = _DEFAULT["retry_hint"],
    log_format: Annotated[LogFormat, _opt("log_format")] = _DEFAULT["log_format"],
    log_level: Annotated[str, _opt("log_level")] = _DEFAULT["log_level"],
    loop: Annotated[LoopName, _opt("loop")] = _DEFAULT["loop"],
    gc: Annotated[GcName, _opt("gc")] = _DEFAULT["gc"],
    store: Annotated[str, _opt("store")] = _DEFAULT["store"],
    workers: Annotated[int, _opt("workers")] = _DEFAULT["workers"],
    issue_token: Annotated[str | None, typer.Option(help=ISSUE_TOKEN_HELP,
                                                    metavar="STREAM")] = None,
    ttl: Annotated[str, typer.Option(help=TTL_HELP)] = TTL_DEFAULT,
) -> None:
    options = dict(locals())  # exactly the parameters: the body has no other names yet
    for name, value in options.items():
        if isinstance(value, StrEnum):
            options[name] = value.value
    raise typer.Exit(serve_server(**options))


def register(app: typer.Typer) -> None:
    app.command("serve", help=DESCRIPTION)(serve)
