"""One bench process: run a plan on the chosen event loop and turn it into a Result.

``run_plan`` is what ``wsctl bench`` calls in-process (``--processes 1``) and what each
worker process calls (``python -m wsctl.bench.worker``).
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from wsctl.bench.engine import Engine, Progress, Recorder, to_metrics
from wsctl.bench.listen import unmeasured
from wsctl.bench.plan import BenchPlan
from wsctl.fdlimit import raise_fd_limit
from wsctl.metrics import MetricSet, Result
from wsctl.metrics.instrument import ProcessHealth
from wsctl.runtime import loop_factory


def process_cpu() -> tuple[float, float]:
    """CPU seconds this process has used, and wall seconds since it started."""
    import psutil

    cpu = time.process_time()
    wall = time.time() - psutil.Process().create_time()
    return cpu, max(wall, 1e-9)


def run_plan(
    plan: BenchPlan,
    *,
    start_wall: float | None = None,
    on_progress: Progress | None = None,
    progress_interval: float = 1.0,
) -> Result:
    """Run ``plan`` in this process on ``plan.loop`` and return its Result (kind "bench").

    ``start_wall``: Unix time at which connection 0 of the whole run is due (workers of one
    run share it, so their interleaved arrivals add up to the planned rate).
    """
    factory = loop_factory(plan.loop)
    raise_fd_limit(plan.connections + 64, f"{plan.connections} connections in one process",
                   "use --processes to spread them over several processes")
    started_at = time.time()

    async def main() -> tuple[Recorder, Engine]:
        engine = Engine(plan, on_progress=on_progress, progress_interval=progress_interval,
                        tune_gc=True)
        start = None
        if start_wall is not None:
            start = time.monotonic() + (start_wall - time.time())
        rec = await engine.run(start)
        return rec, engine

    with asyncio.Runner(loop_factory=factory) as runner:
        rec, engine = runner.run(main())
    cpu, wall = process_cpu()
    return build_result(plan, rec, engine, started_at=started_at, cpu=cpu, wall=wall)


def build_result(
    plan: BenchPlan, rec: Recorder, engine: Engine, *, started_at: float, cpu: float,
    wall: float,
) -> Result:
    """The Result of one process: metrics, generator figures and per-process details."""
    metrics = to_metrics(rec, mode=plan.mode, measured=plan.duration, dialect=engine.dialect)
    add_generator(metrics, cpu=cpu, wall=wall)
    lag = metrics.histograms["generator.loop_lag"].summary()
    proc = {
        "pid": os.getpid(), "connections": plan.connections, "held_max": rec.held_max,
        "opened": rec.opened, "failed": rec.failed, "sent": rec.sent,
        "received": rec.received, "unanswered": rec.unanswered, "cpu_s": round(cpu, 3),
        "wall_s": round(wall, 3), "cpu": round(cpu / wall, 3),
        "loop_lag_p99": lag["p99"], "loop_lag_max": lag["max"],
        "transport": plan.transport, "loop": plan.loop,
        "unreachable": engine.unreachable.is_set(),
        "never_finished": plan.connections - rec.opened - rec.failed,
    }
    details: dict[str, Any] = {
        "series": {"interval": engine.progress_interval, **engine.series},
        "processes": [proc],
        "warnings": bottleneck_warnings([proc]),
        "instrument": [instrument_entry(proc)],
        "ramp_seconds": round(engine.ramp_done_at - engine.start, 3)
        if engine.ramp_done_at is not None else None,
        "unmeasured": unmeasured(plan.mode, engine.dialect, rec.numbered),
    }
    if plan.mode == "listen":
        proc.update(invalid=rec.invalid, numbered=rec.numbered, timed=rec.timed)
        details["per_connection"] = rec.per_connection
    return Result(kind="bench", metrics=metrics, started_at=started_at,
                  duration=plan.warmup + plan.duration, target=plan.url,
                  config=plan.public_dict(), details=details)


def add_generator(metrics: MetricSet, *, cpu: float, wall: float) -> None:
    """generator.cpu (cores used) and generator.sends_per_cpu_s of one process."""
    metrics.set_gauge("generator.cpu", cpu / wall, "ratio")
    sent = metrics.counters.get("messages.sent")
    if sent is not None:  # listen mode sends nothing
        metrics.set_gauge("generator.sends_per_cpu_s", sent / cpu if cpu > 0 else 0.0,
                          "per_s")


def instrument_entry(proc: dict[str, Any]) -> dict[str, Any]:
    """A generator process (``details["processes"]``) as the instrument sees it
    (``wsctl.metrics.instrument.ProcessHealth.from_json``)."""
    return {"name": f"load generator (pid {proc.get('pid')})", "cpu": proc.get("cpu"),
            "loop_lag_p99": proc.get("loop_lag_p99"), "loop_lag_max": proc.get("loop_lag_max")}


def bottleneck_warnings(processes: list[dict[str, Any]]) -> list[str]:
    """A line for each process that was itself the bottleneck (past the instrument's
    bounds, ``wsctl.metrics.instrument``: loop lag or CPU), and one when connections
    were still being attempted when the run ended."""
    out = []
    unfinished = sum(int(p.get("never_finished") or 0) for p in processes)
    if unfinished:
        out.append(
            f"{unfinished} connection(s) had neither opened nor failed when the run ended "
            "(the ramp was longer than --duration, or handshakes were that slow); they are "
            "not in connect_time"
        )
    for proc in processes:
        problems = ProcessHealth.from_json(instrument_entry(proc)).problems()
        if problems:
            out.append(
                f"the load generator (pid {proc['pid']}) may be the bottleneck, not the "
                f"server: {'; '.join(problems)}; use --processes or fewer connections, "
                "and read latencies as upper bounds (timing criteria are inconclusive)"
            )
    return out
