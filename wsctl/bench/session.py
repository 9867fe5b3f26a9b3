"""One ``wsctl bench`` from options to Result: check everything first (``prepare``, raises
InvalidInput before anything starts), then run (``execute``); ``wsctl.bench.report`` judges
it and makes its run report.

Python callers can do what the CLI does::

    from wsctl.bench.session import Options, prepare, execute
    result = execute(prepare(Options(url="ws://127.0.0.1:8765/ws/b-{n}", connections=100)))
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from wsctl.bench.console import Display, summary
from wsctl.bench.plan import DEFAULT_LOOP, DEFAULT_TRANSPORT, BenchPlan
from wsctl.bench.resources import ServerWatch, apply, check_pid
from wsctl.errors import InvalidInput, Unreachable
from wsctl.fdlimit import check_fd_limit
from wsctl.metrics import Result, validate
from wsctl.protocol import check_url
from wsctl.units import parse_duration, parse_positive_duration

STEADY_LEAD = 4.0  # seconds before the end at which the server's steady state is read
FD_LIMIT = 20_000  # descriptors one process may open on this machine (DESIGN.md section 10)


@dataclass(slots=True)
class Options:
    """The command's options as typed (durations as text)."""

    url: str
    connections: int = 100
    connect_rate: float = 100.0
    message_rate: float = 1.0
    duration: str | float = "30s"
    warmup: str | float = "0s"
    mode: str = "echo"
    payload_size: int = 64
    in_flight: int = 1
    transport: str = DEFAULT_TRANSPORT
    loop: str = DEFAULT_LOOP
    connect_timeout: str | float = "10s"
    processes: int = 1
    server_pid: int | None = None
    engine: str = "asyncio"
    users: int | None = None
    spawn_rate: float | None = None
    workers: int = 2
    protocol: str | Path | None = None
    headers: list[str] = field(default_factory=list)
    subprotocols: list[str] = field(default_factory=list)
    on_open: list[str] = field(default_factory=list)
    sequence: str | None = None
    timestamp: str | None = None


@dataclass(slots=True)
class Prepared:
    """A checked run: the plan (asyncio engine) or Locust's plan, and the server watch."""

    options: Options
    plan: BenchPlan
    locust_plan: Any = None


def prepare(options: Options) -> Prepared:
    """Check every option; raises InvalidInput (exit 2) before anything has started."""
    check_url(options.url)
    plan = BenchPlan(
        url=options.url, connections=options.connections, connect_rate=options.connect_rate,
        message_rate=options.message_rate,
        duration=parse_positive_duration(options.duration, "--duration"),
        warmup=parse_duration(options.warmup, "--warmup"), mode=options.mode,  # type: ignore[arg-type]
        payload_size=options.payload_size, in_flight=options.in_flight,
        transport=options.transport, loop=options.loop,
        connect_timeout=parse_positive_duration(options.connect_timeout,
                                                "--connect-timeout"),
        protocol=protocol_block(options),
    )
    try:
        plan.check()
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    dialect = plan.dialect()
    if dialect is not None:
        dialect.check_env(os.environ)
        if options.engine != "asyncio":
            raise InvalidInput("the protocol options (--protocol, --header, --on-open, …) "
                               "work with --engine asyncio")
    if options.server_pid is not None:
        check_pid(options.server_pid)
    if options.engine == "locust":
        return Prepared(options, plan, _locust_plan(options, plan))
    if options.engine != "asyncio":
        raise InvalidInput(f"unknown --engine {options.engine!r}; choose asyncio or locust")
    from wsctl.bench.runner import loop_factory
    from wsctl.bench.transport import get_transport

    get_transport(plan.transport)  # InvalidInput when unknown or not installed
    loop_factory(plan.loop)
    if options.processes < 1:
        raise InvalidInput("--processes must be at least 1")
    per_process = -(-plan.connections // options.processes)
    if per_process + 64 > FD_LIMIT:
        need = -(-plan.connections // (FD_LIMIT - 64))
        raise InvalidInput(
            f"{plan.connections} connections over {options.processes} process(es) is "
            f"{per_process} per process, past the {FD_LIMIT} file descriptors one process may "
            f"open; use --processes {need} or more"
        )
    check_fd_limit(per_process + 64, f"{per_process} connections per process",
                   "use more --processes")
    return Prepared(options, plan)


def protocol_block(options: Options) -> dict[str, Any] | None:
    """The ``protocol:`` block from ``--protocol FILE`` and the flags, validated, as JSON
    (None when none was given). Flags add to the file: headers (a flag's wins), then
    subprotocols and on_open messages after the file's; --sequence and --timestamp
    replace the file's paths."""
    from pydantic import ValidationError

    from wsctl.probe.dialect import load, parse

    data: dict[str, Any] = {}
    if options.protocol is not None:
        data = load(options.protocol).model_dump(mode="json", exclude_defaults=True)
    headers = dict(data.get("headers", {}))
    for text in options.headers:
        name, sep, value = text.partition(":")
        if not sep or not name.strip():
            raise InvalidInput(f"--header {text!r}: write 'Name: value'")
        headers[name.strip()] = value.strip()
    on_open = list(data.get("on_open", []))
    for text in options.on_open:
        try:
            on_open.append(json.loads(text))
        except ValueError:
            raise InvalidInput(f"--on-open {text!r} is not JSON; a text message is written "
                               "as a JSON string: '\"subscribe\"'") from None
    flags: dict[str, Any] = {
        "headers": headers, "on_open": on_open,
        "subprotocols": [*data.get("subprotocols", []), *options.subprotocols],
        "sequence": options.sequence, "timestamp": options.timestamp,
    }
    data.update({k: v for k, v in flags.items() if v})
    if not data:
        return None
    try:
        block = parse(data)
    except ValidationError as exc:
        where = ".".join(str(p) for p in exc.errors()[0]["loc"])
        raise InvalidInput(f"protocol option {where}: {exc.errors()[0]['msg']}") from None
    dumped: dict[str, Any] = block.model_dump(mode="json", exclude_defaults=True)
    return dumped


def _locust_plan(options: Options, plan: BenchPlan) -> Any:
    from wsctl.bench.locust import LocustPlan

    lp = LocustPlan(
        url=plan.url, users=options.users or plan.connections,
        spawn_rate=options.spawn_rate or plan.connect_rate, workers=options.workers,
        duration=plan.warmup + plan.duration, mode=plan.mode, message_rate=plan.message_rate,
    )
    check = getattr(lp, "check", None)
    if check is not None:
        check()
    return lp


def execute(prepared: Prepared, *, console: Console | None = None,
            view: str = "quiet") -> Result:
    """Run the prepared bench; returns the whole run's Result (kind "bench")."""
    options, plan = prepared.options, prepared.plan
    console = console or Console(stderr=True)
    watch = ServerWatch(plan.url, options.server_pid)
    watch.take_before()
    # Sample the server shortly before the end, leaving time for a slow /metrics page.
    steady_lead = min(STEADY_LEAD, plan.duration / 4)
    if prepared.locust_plan is not None:
        from wsctl.bench.locust import run_locust

        end = time.time() + plan.warmup + plan.duration
        watch.schedule_steady(end - steady_lead, end)
        out = None if view == "quiet" else sys.stderr
        result = run_locust(prepared.locust_plan, out=out)
    else:
        total = plan.warmup + plan.duration
        with Display(console, view=view, total=total, connections=plan.connections) as disp:
            if options.processes == 1:
                from wsctl.bench.runner import run_plan

                start_wall = time.time() + 0.05
                watch.schedule_steady(start_wall + total - steady_lead, start_wall + total)
                result = run_plan(plan, start_wall=start_wall, on_progress=disp.update)
            else:
                from wsctl.bench.workers import run_workers

                result = run_workers(
                    plan, options.processes, on_progress=disp.update,
                    on_start=lambda at: watch.schedule_steady(at + total - steady_lead,
                                                              at + total),
                )
    watch.finish()
    held = result.metrics.gauges.get("connections.held")
    result.details["server"] = apply(result.metrics, watch, held.value if held else 0.0)
    result.details.setdefault("warnings", [])
    validate(result.to_dict())
    return result


def summary_table(result: Result) -> Table:
    return summary(result)


def check_reachable(result: Result) -> None:
    """Unreachable (exit 3) when not one connection opened: say what the attempts met."""
    counters = result.metrics.counters
    if counters.get("connections.opened", 0) > 0:
        return
    kinds = {k[len("errors."):]: v for k, v in counters.items()
             if k.startswith("errors.") and v}
    what = ", ".join(f"{k} x{v}" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1]))
    hint = " — is the server running?" if "refused" in kinds else ""
    raise Unreachable(f"could not connect to {result.target}: "
                      f"{what or 'no connection opened'}{hint}")
