"""``wsctl probe URL``: reconnecting probe clients that measure what a user would feel."""

from __future__ import annotations

import json
import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from wsctl.backoff import BackoffPolicy
from wsctl.cli._common import env_options, reports_errors
from wsctl.errors import InvalidInput
from wsctl.fdlimit import raise_fd_limit
from wsctl.protocol import check_url
from wsctl.units import parse_duration, parse_interval, parse_positive_duration

HELP = (
    "Run N reconnecting probe clients against URL and report what they saw.\n\n"
    "Modes: resume (the reference server's protocol v1: offsets, replays, resyncs), echo "
    "(round trips against any echo server), listen (counts what any server sends; with a "
    "protocol block, --protocol FILE or the flags below, it speaks and judges a service's "
    "own protocol: docs/own-service.md). `{n}` in URL becomes each probe's index, e.g. "
    "ws://127.0.0.1:8765/ws/alert-{n}. Only the metrics the mode and block can measure "
    "are reported.\n\n"
    "Exit codes: 0 done; 1 the run happened but its figures are not a measurement (most "
    "frames invalid, most connection attempts failed or most connections dropped: a "
    "warning names the likely cause); 2 invalid input; 3 the target was unreachable (a "
    "probe gave up, or no probe ever connected), with what failed: refused, DNS, TLS or "
    "HTTP status."
)


class ModeName(StrEnum):
    resume = "resume"
    echo = "echo"
    listen = "listen"


class HeartbeatName(StrEnum):
    auto = "auto"
    app = "app"
    protocol = "protocol"
    off = "off"


class BackoffName(StrEnum):
    full = "full"
    equal = "equal"
    decorrelated = "decorrelated"
    exponential = "exponential"


class ViewName(StrEnum):
    auto = "auto"
    live = "live"
    plain = "plain"
    quiet = "quiet"


_opt = env_options("WSCTL_PROBE_")


@reports_errors
def probe(
    url: Annotated[str, typer.Argument(help="ws:// or wss:// URL; {n} becomes the probe index.",
                                       envvar="WSCTL_PROBE_URL", show_default=False)],
    count: Annotated[int, _opt("Number of probes (one connection each).", "COUNT",
                               "--count", "-n", min=1)] = 1,
    duration: Annotated[str, _opt("How long to run, e.g. 30s or 5m.", "DURATION")] = "10s",
    forever: Annotated[bool, _opt("Run until interrupted (synthetic monitor); overrides "
                                  "--duration.", "FOREVER", show_default=False)] = False,
    mode: Annotated[ModeName, _opt("resume = protocol v1 offsets and resume; echo = time "
                                   "round trips; listen = count frames.", "MODE")]
    = ModeName.resume,
    heartbeat: Annotated[HeartbeatName, _opt(
        "Liveness check: app = protocol v1 ping/pong frames; protocol = WebSocket "
        "ping/pong; auto = app for resume, protocol otherwise.", "HEARTBEAT")]
    = HeartbeatName.auto,
    heartbeat_interval: Annotated[str | None, _opt(
        "Time between pings [default: the server's welcome in resume mode, else 5s].",
        "HEARTBEAT_INTERVAL", show_default=False)] = None,
    heartbeat_timeout: Annotated[str | None, _opt(
        "No pong within this -> the connection is dead (half-open) and is replaced "
        "[default: the server's welcome in resume mode, else 5s].", "HEARTBEAT_TIMEOUT",
        show_default=False)] = None,
    connect_timeout: Annotated[str, _opt("Longest TCP + TLS + opening handshake (and wait "
                                         "for the welcome).", "CONNECT_TIMEOUT")] = "10s",
    rate: Annotated[float, _opt("Echo mode: messages per second per probe.", "RATE",
                                min=0.001)] = 1.0,
    backoff: Annotated[BackoffName, _opt("Reconnect delay policy.", "BACKOFF")]
    = BackoffName.full,
    backoff_base: Annotated[str, _opt("First backoff ceiling.", "BACKOFF_BASE")] = "500ms",
    backoff_cap: Annotated[str, _opt("Largest backoff delay.", "BACKOFF_CAP")] = "30s",
    backoff_factor: Annotated[float, _opt("Growth of the ceiling per attempt.",
                                          "BACKOFF_FACTOR", min=1.0)] = 2.0,
    min_uptime: Annotated[str, _opt("A connection must last this long before the attempt "
                                    "counter resets.", "MIN_UPTIME")] = "2s",
    max_attempts: Annotated[int, _opt("Give up after this many attempts in one outage "
                                      "(0 = never).", "MAX_ATTEMPTS", min=0)] = 0,
    retry_deadline: Annotated[str, _opt("Give up when an outage lasts this long (0 = never).",
                                        "RETRY_DEADLINE")] = "0",
    retry_fast: Annotated[str, _opt(
        "Wait at most this long (jittered from half of it) after a connect refused because "
        "nothing listens: it costs the server nothing (0 = back off as for any failure).",
        "RETRY_FAST")] = "250ms",
    retry_fast_for: Annotated[str, _opt(
        "How long into an outage refused connects are retried that fast.",
        "RETRY_FAST_FOR")] = "30s",
    seed: Annotated[int | None, _opt("Seed for backoff jitter: same seed, same delays.",
                                     "SEED", show_default=False)] = None,
    spawn_rate: Annotated[float, _opt("New probes started per second.", "SPAWN_RATE",
                                      min=1.0)] = 1000.0,
    processes: Annotated[int | None, _opt(
        "Worker processes to spread the probes over [default: enough that none runs more "
        "than 200, at most one per core; 1 runs them in this process].", "PROCESSES",
        "--processes", "-p", min=1, show_default=False)] = None,
    json_out: Annotated[Path | None, _opt("Write the result object (schema v1, see "
                                          "docs/probe.md) to this file; '-' for stdout.",
                                          "JSON", "--json", show_default=False)] = None,
    records: Annotated[Path | None, _opt("Write every state change as JSON lines here.",
                                         "RECORDS", show_default=False)] = None,
    fault_file: Annotated[Path | None, _opt(
        "On SIGUSR1, read the fault's instant from this file (a Unix time, e.g. `date "
        "+%s.%N`, or 'monotonic SECONDS') rather than taking the signal's arrival: "
        "detect_time then counts for probes that noticed before the signal too.",
        "FAULT_FILE", show_default=False)] = None,
    metrics_port: Annotated[int | None, _opt(
        "Serve Prometheus metrics on this port (0 picks one) at /metrics.", "METRICS_PORT",
        min=0, max=65535, show_default=False)] = None,
    metrics_host: Annotated[str, _opt("Address for --metrics-port.", "METRICS_HOST")]
    = "127.0.0.1",
    cacert: Annotated[Path | None, _opt("CA bundle (PEM) to verify a wss:// server.",
                                        "CACERT", show_default=False)] = None,
    insecure: Annotated[bool, _opt("wss:// without certificate verification.",
                                   "INSECURE", show_default=False)] = False,
    deflate: Annotated[bool, _opt("Offer permessage-deflate, as browsers do (off by "
                                  "default: it costs ~45 KiB per connection).",
                                  "DEFLATE", show_default=False)] = False,
    view: Annotated[ViewName, _opt("live = rich table (TTY); plain = a status line every "
                                   "--report-interval; quiet = summary only.", "VIEW")]
    = ViewName.auto,
    report_interval: Annotated[str, _opt("Time between plain status lines.",
                                         "REPORT_INTERVAL")] = "5s",
    protocol: Annotated[Path | None, _opt(
        "Protocol block file (YAML or JSON): how to speak and judge the service's own "
        "protocol (docs/own-service.md). The flags below override or extend it.",
        "PROTOCOL", show_default=False)] = None,
    header: Annotated[list[str] | None, _opt(
        "Extra handshake header 'Name: value' (repeatable; ${VAR} is filled from the "
        "environment).", None, show_default=False)] = None,
    subprotocol: Annotated[list[str] | None, _opt(
        "Subprotocol to offer (repeatable, in order of preference).", None,
        show_default=False)] = None,
    on_open: Annotated[list[str] | None, _opt(
        "JSON message to send once connected, e.g. '{\"type\":\"subscribe\"}' "
        "(repeatable; with --socketio an emit: '[\"event\", arg]').", None,
        show_default=False)] = None,
    sequence: Annotated[str | None, _opt(
        "Field path of each message's sequence number (e.g. seq, data.offset): gives "
        "messages.lost, duplicated, reordered and resyncs in listen mode.", "SEQUENCE",
        show_default=False)] = None,
    timestamp: Annotated[str | None, _opt(
        "Field path of the sender's time (s or ms, by size): gives delivery_latency.",
        "TIMESTAMP", show_default=False)] = None,
    socketio: Annotated[bool, _opt(
        "Speak Socket.IO (v5 over Engine.IO v4): events are the messages; liveness from "
        "the server's pings. Listen mode only.", "SOCKETIO", show_default=False)] = False,
    stream: Annotated[str, _opt(
        "Stream name for {stream} in URL and protocol templates ({n} filled).", "STREAM")]
    = "alert-{n}",
) -> None:

    from rich.console import Console

    from wsctl.metrics import validate
    from wsctl.probe import dialect as block
    from wsctl.probe import ioclock
    from wsctl.probe.console import summary
    from wsctl.probe.fleet import Fleet
    from wsctl.probe.machine import ProbeConfig
    from wsctl.probe.runner import RecordsWriter, check_reachable, run_fleet, tls_context
    from wsctl.probe.sanity import measurement_problem
    from wsctl.probe.workers import AnyFleet, ConnectorSpec, WorkerFleet, resolve_processes

    check_url(url)
    if (cacert or insecure) and not url.startswith("wss://"):
        raise InvalidInput("--cacert and --insecure apply to wss:// URLs only")
    if metrics_port is not None and not forever:
        typer.echo("wsctl probe: note: --metrics-port without --forever stops serving at "
                   "the end of --duration", err=True)
    base = block.load(protocol) if protocol is not None else None
    dialect = block.from_flags(base, headers=header, subprotocols=subprotocol,
                               on_open=on_open, sequence=sequence, timestamp=timestamp,
                               socketio=socketio)
    if dialect is not None:
        dialect.check_env(os.environ)  # a ${VAR} not set stops here, before any connect
    try:
        policy = BackoffPolicy(
            kind=backoff.value,
            base=parse_duration(backoff_base, "--backoff-base"),
            cap=parse_duration(backoff_cap, "--backoff-cap"),
            factor=backoff_factor,
            min_uptime=parse_duration(min_uptime, "--min-uptime"),
            max_attempts=max_attempts or None,
            deadline=parse_duration(retry_deadline, "--retry-deadline") or None,
            fast=parse_duration(retry_fast, "--retry-fast") or None,
            fast_for=parse_duration(retry_fast_for, "--retry-fast-for"),
        )
        config = ProbeConfig(
            url=url,
            mode=mode.value,
            backoff=policy,
            heartbeat=heartbeat.value,
            heartbeat_interval=(
                parse_interval(heartbeat_interval, "--heartbeat-interval")
                if heartbeat_interval else None),
            heartbeat_timeout=(
                parse_positive_duration(heartbeat_timeout, "--heartbeat-timeout")
                if heartbeat_timeout else None),
            connect_timeout=parse_positive_duration(connect_timeout, "--connect-timeout"),
            echo_rate=rate,
            duration=None if forever else parse_positive_duration(duration, "--duration"),
            dialect=dialect,
            stream=stream,
        )
    except ValueError as exc:
        raise InvalidInput(str(exc)) from exc
    interval = parse_interval(report_interval, "--report-interval")
    workers = resolve_processes(count, processes)
    if workers == 1:
        raise_fd_limit(count + 64, f"--count {count}", "use --processes to spread them")
    context = tls_context(cacert, insecure)

    from wsctl.probe.driver import websockets_connector

    json_stdout = json_out is not None and str(json_out) == "-"
    if json_out is not None and not json_stdout:  # a directory or read-only path: now, not after
        from wsctl.report.outputs import check_writable

        check_writable(json_out, "--json")
    fleet_ref: list[AnyFleet] = []
    writer = RecordsWriter(records, fleet_ref) if records else None
    fleet: AnyFleet
    if workers > 1:
        fleet = WorkerFleet(config, count, workers, seed=seed, sink=writer,
                            spawn_rate=spawn_rate, live_view=True,
                            connector=ConnectorSpec(deflate, str(cacert) if cacert else None,
                                                    insecure))
    else:
        fleet = Fleet(config, count, seed=seed, sink=writer, spawn_rate=spawn_rate,
                      tune_gc=True, connector=websockets_connector(context, deflate=deflate))
    fleet_ref.append(fleet)
    # With --json - stdout carries only the JSON; people's output goes to stderr.
    console = Console(stderr=json_stdout)
    try:
        result = ioclock.run(run_fleet(fleet, view=view.value, report_interval=interval,
                                       metrics_port=metrics_port, metrics_host=metrics_host,
                                       console=console, out=console.file,
                                       fault_file=fault_file))
    finally:
        if writer is not None:
            writer.close()
    obj = result.to_dict()
    validate(obj)
    if json_out is not None:
        text = json.dumps(obj, indent=2)
        if json_stdout:
            typer.echo(text)
        else:
            json_out.write_text(text + "\n", encoding="utf-8")
    console.print(summary(result))
    check_reachable(result)
    problem = measurement_problem(result)
    if problem is not None:
        typer.echo(f"wsctl probe: warning: {problem}", err=True)
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("probe", help=HELP)(probe)
