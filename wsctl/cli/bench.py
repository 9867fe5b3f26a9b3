"""``wsctl bench URL``: open-model connection and message load with HDR latencies and gates."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from wsctl.bench.plan import DEFAULT_LOOP, DEFAULT_TRANSPORT
from wsctl.cli._common import env_options, load_baseline, reports_errors
from wsctl.cli._reports import report_option
from wsctl.errors import CriteriaFailed, InvalidInput, Unreachable

HELP = (
    "Open N connections to URL at R per second (open model: on schedule whether or not "
    "earlier ones finished), send M messages per second on each, and report connect_time, "
    "rtt (timed from the intended send: coordinated omission corrected) or delivery_latency, "
    "errors by kind, connections held, and the server's RSS per connection.\n\n"
    "Modes: echo (send a small JSON ping; the reference server answers pong, an echo server "
    "echoes it), resume (read protocol v1 events from the reference server: "
    "delivery_latency from each event's ts) and listen (send nothing, count what a "
    "push-only service sends; --sequence PATH gives messages.lost/duplicated/reordered, "
    "--timestamp PATH delivery_latency). `{n}` in URL becomes each connection's index. "
    "--protocol FILE, --header, --subprotocol and --on-open speak a service's own "
    "protocol (docs/own-service.md).\n\n"
    "Gates: --criteria 'connect_time.p50: <= 50ms' (repeatable), relative ones with "
    "--baseline FILE: 'connect_time.p50: <= 1.2 * baseline'. The verdicts are judged and "
    "reported as wsctl run's: a table in the terminal and --junit, --markdown, --html, or "
    "--report-dir for all four (report.json there is the run report; --json is the bench "
    "result); the Markdown summary is also appended to $GITHUB_STEP_SUMMARY when that is "
    "set.\n\n"
    "Exit codes: 0 done, every criterion passed; 1 a criterion failed (or could not be "
    "judged), or the measurement is invalid: most connections failed or were dropped, most "
    "frames were invalid, or listen mode heard nothing (a last warning line names the "
    "likely cause); 2 usage or invalid input (nothing was started); 3 the target was "
    "unreachable (no connection opened) or the run could not happen; 4 a criterion was "
    "INCONCLUSIVE (the figures could not be trusted; the report says why) and none failed."
)


class ModeName(StrEnum):
    echo = "echo"
    resume = "resume"
    listen = "listen"


class TransportName(StrEnum):
    websockets = "websockets"
    picows = "picows"


class LoopName(StrEnum):
    asyncio = "asyncio"
    uvloop = "uvloop"


_DEFAULT_TRANSPORT = TransportName(DEFAULT_TRANSPORT)
_DEFAULT_LOOP = LoopName(DEFAULT_LOOP)


class EngineName(StrEnum):
    asyncio = "asyncio"
    locust = "locust"


_opt = env_options("WSCTL_BENCH_")


def parse_criteria(texts: list[str]) -> list[Any]:
    """``KEY: EXPR`` strings -> criteria (checked against the metric catalog)."""
    from wsctl.results.criteria import CriterionError, parse

    out = []
    for text in texts:
        key, sep, expr = text.partition(":")
        if not sep or not key.strip() or not expr.strip():
            raise InvalidInput(f"--criteria {text!r}: write 'METRIC: EXPRESSION', e.g. "
                               "'connect_time.p50: <= 50ms' or 'rtt.p99: <= 1.2 * baseline'")
        try:
            out.append(parse(key.strip(), expr.strip()))
        except CriterionError as exc:
            raise InvalidInput(f"--criteria {text!r}: {exc}") from None
    return out


@reports_errors
def bench(
    url: Annotated[str, typer.Argument(help="ws:// or wss:// URL; {n} becomes the connection "
                                       "index, e.g. ws://127.0.0.1:8765/ws/bench-{n}.",
                                       envvar="WSCTL_BENCH_URL", show_default=False)],
    connections: Annotated[int, _opt("Connections to open (N).", "CONNECTIONS",
                                     "--connections", "-c", min=1)] = 100,
    connect_rate: Annotated[float, _opt("New connections per second (R), on schedule.",
                                        "CONNECT_RATE", min=0.001)] = 100.0,
    message_rate: Annotated[float, _opt("Messages per second per connection (M); 0 = none.",
                                        "MESSAGE_RATE", min=0.0)] = 1.0,
    duration: Annotated[str, _opt("How long to measure after the warmup (the ramp counts "
                                  "inside it), e.g. 30s or 2m.", "DURATION")] = "30s",
    warmup: Annotated[str, _opt("Time from the start not counted in message figures "
                                "(connect_time still counts every connect).", "WARMUP")]
    = "0s",
    mode: Annotated[ModeName, _opt("echo = time round trips of a JSON ping; resume = "
                                   "protocol v1 events from the reference server; listen = "
                                   "send nothing, count what the server pushes.", "MODE")]
    = ModeName.echo,
    protocol: Annotated[Path | None, _opt("The service's protocol block (YAML or JSON): "
                                          "headers, subprotocols, query, on_open, sequence, "
                                          "timestamp (docs/own-service.md).", "PROTOCOL",
                                          show_default=False)] = None,
    header: Annotated[list[str] | None, _opt("'Name: value' handshake header "
                                             "(repeatable; ${VAR} reads the environment).",
                                             None, "--header", show_default=False)] = None,
    subprotocol: Annotated[list[str] | None, _opt("Subprotocol to offer (repeatable).",
                                                  None, "--subprotocol",
                                                  show_default=False)] = None,
    on_open: Annotated[list[str] | None, _opt("JSON message to send once connected, e.g. "
                                              "'{\"type\":\"subscribe\"}' (repeatable; "
                                              "{n}, {stream}, ${VAR} filled).", None,
                                              "--on-open", show_default=False)] = None,
    sequence: Annotated[str | None, _opt("Listen mode: field path of each message's "
                                         "sequence number, e.g. seq or data.offset -> "
                                         "messages.lost/duplicated/reordered.", "SEQUENCE",
                                         show_default=False)] = None,
    timestamp: Annotated[str | None, _opt("Listen mode: field path of the sender's wall "
                                          "time (s or ms) -> delivery_latency; the clocks "
                                          "must agree.", "TIMESTAMP",
                                          show_default=False)] = None,
    payload_size: Annotated[int, _opt("Bytes per message sent (about; JSON included).",
                                      "PAYLOAD_SIZE", min=0)] = 64,
    in_flight: Annotated[int, _opt("Unanswered messages a connection may have before its "
                                   "next send waits (0 = no limit). A held-back send is "
                                   "still timed from its intended instant.", "IN_FLIGHT",
                                   min=0)] = 1,
    transport: Annotated[TransportName, _opt(
        "WebSocket client implementation: picows (Cython framing, about 2x the messages "
        "per CPU-second) or websockets (pure Python). See docs/transports.md.",
        "TRANSPORT")] = _DEFAULT_TRANSPORT,
    loop: Annotated[LoopName, _opt("Event loop: uvloop (libuv) or asyncio's own.", "LOOP")]
    = _DEFAULT_LOOP,
    connect_timeout: Annotated[str, _opt("Longest TCP + opening handshake.",
                                         "CONNECT_TIMEOUT")] = "10s",
    processes: Annotated[int, _opt("Worker processes to spread connections over (past one "
                                   "process's file-descriptor limit, over several cores).",
                                   "PROCESSES", "--processes", "-p", min=1)] = 1,
    server_pid: Annotated[int | None, _opt("PID of the server under test: read its RSS and "
                                           "CPU (any server; the reference server is also "
                                           "read from /metrics).", "SERVER_PID",
                                           show_default=False)] = None,
    json_out: Annotated[Path | None, _opt("Write the result (schema v1) to this file; '-' "
                                          "for stdout.", "JSON", "--json",
                                          show_default=False)] = None,
    junit: Annotated[Path | None, report_option("junit", "bench")] = None,
    markdown: Annotated[Path | None, report_option("markdown", "bench")] = None,
    html: Annotated[Path | None, report_option("html", "bench")] = None,
    report_dir: Annotated[Path | None, report_option("report-dir", "bench")] = None,
    baseline: Annotated[Path | None, _opt("An earlier --json result that criteria written "
                                          "'k * baseline' compare with.", "BASELINE",
                                          show_default=False)] = None,
    criteria: Annotated[list[str] | None, _opt("'METRIC: EXPRESSION', e.g. 'connect_time.p50:"
                                               " <= 1.2 * baseline' (repeatable).",
                                               None, "--criteria", show_default=False)]
    = None,
    engine: Annotated[EngineName, _opt("asyncio = this engine; locust = a real headless "
                                       "Locust master and --workers workers.", "ENGINE")]
    = EngineName.asyncio,
    users: Annotated[int | None, _opt("Locust users [default: --connections].", "USERS",
                                      min=1, show_default=False)] = None,
    spawn_rate: Annotated[float | None, _opt("Locust users started per second [default: "
                                             "--connect-rate].", "SPAWN_RATE", min=0.001,
                                             show_default=False)] = None,
    workers: Annotated[int, _opt("Locust worker processes (0 = one standalone process).",
                                 "WORKERS", min=0)] = 2,
    quiet: Annotated[bool, _opt("No progress output; only the summary (and errors).",
                                "QUIET", "--quiet", "-q")] = False,
) -> None:
    from rich.console import Console

    from wsctl.bench import session
    from wsctl.report import check_outputs

    crit = parse_criteria(criteria or [])
    base = _one_baseline(baseline) if baseline is not None else None
    if base is None and any(c.relative for c in crit):
        raise InvalidInput("a criterion relative to a baseline needs --baseline FILE "
                           "(the --json of an earlier run)")
    json_stdout = json_out is not None and str(json_out) == "-"
    reports = {"junit": junit, "markdown": markdown, "html": html}
    check_outputs({"json": None if json_stdout else json_out, **reports}, report_dir)
    console = Console(stderr=json_stdout)
    options = session.Options(
        url=url, connections=connections, connect_rate=connect_rate,
        message_rate=message_rate, duration=duration, warmup=warmup, mode=mode.value,
        payload_size=payload_size, in_flight=in_flight, transport=transport.value,
        loop=loop.value, connect_timeout=connect_timeout, processes=processes,
        server_pid=server_pid, engine=engine.value, users=users, spawn_rate=spawn_rate,
        workers=workers, protocol=protocol, headers=header or [],
        subprotocols=subprotocol or [], on_open=on_open or [], sequence=sequence,
        timestamp=timestamp,
    )
    prepared = session.prepare(options)  # every InvalidInput is raised here, before starting
    view = "quiet" if quiet else ("live" if console.is_terminal else "plain")
    result = session.execute(prepared, console=console, view=view)
    _report(result, crit, base, console, json_out, reports, report_dir)


def _report(result: Any, crit: list[Any], base: Any, console: Any, json_out: Path | None,
            reports: dict[str, Path | None], report_dir: Path | None) -> None:
    """Judge, print and write every report asked for, then exit as the verdicts say."""
    from wsctl.bench import session, validity
    from wsctl.bench.report import bench_report, judge
    from wsctl.report import json_text, write_outputs
    from wsctl.report._common import write_text
    from wsctl.report.console import print_report

    verdicts = judge(crit, result, base) if crit else []
    asked = len(verdicts)
    unreachable: Unreachable | None = None
    try:
        session.check_reachable(result)
    except Unreachable as exc:
        unreachable = exc
    invalid = validity.check(result)
    if invalid:
        verdicts += invalid
        result.details["criteria"] = [v.to_json() for v in verdicts]
    report = bench_report(result, verdicts,
                          error=unreachable.message if unreachable is not None else None)
    if json_out is not None:
        text = json_text(result.to_dict())
        if str(json_out) == "-":
            sys.stdout.write(text)
        else:
            write_text(json_out, text)
    console.print(session.summary_table(result))
    for warning in result.details.get("warnings", []):
        console.print(f"wsctl bench: warning: {warning}", highlight=False, soft_wrap=True)
    write_outputs(report, reports, report_dir)
    if unreachable is not None:
        raise unreachable
    if verdicts:
        print_report(report, console)
    if invalid:
        failed = [v.criterion.key for v in verdicts[:asked] if v.status in ("fail", "error")]
        if failed:
            typer.echo(f"wsctl: error: {len(failed)} of {asked} criteria failed: "
                       f"{', '.join(failed)}", err=True)
        for verdict in invalid:  # last: the one line a person reads first
            typer.echo(f"wsctl bench: warning: the measurement is invalid: {verdict.message}",
                       err=True)
        raise typer.Exit(1)
    if report.exit_code == 1:
        failed = [v.criterion.key for v in verdicts if v.status in ("fail", "error")]
        raise CriteriaFailed(f"{len(failed)} of {len(verdicts)} criteria failed: "
                             f"{', '.join(failed)}")
    if report.exit_code:
        doubtful = [v.criterion.key for v in verdicts if v.status == "inconclusive"]
        typer.echo(f"wsctl: {len(doubtful)} of {len(verdicts)} criteria inconclusive: "
                   f"{', '.join(doubtful)}", err=True)
        raise typer.Exit(report.exit_code)


def _one_baseline(path: Path) -> Any:
    """The one Result in ``--baseline FILE`` (a bench, probe or one-scenario run's result)."""
    found = load_baseline(path)
    if isinstance(found, dict):
        if len(found) != 1:
            raise InvalidInput(f"--baseline {path}: a run report with {len(found)} scenarios; "
                               "give the --json of one bench run")
        return next(iter(found.values()))
    return found


def register(app: typer.Typer) -> None:
    app.command("bench", help=HELP)(bench)
