"""``--processes K``: the plan split over K worker processes, their results merged.

Each worker is ``python -m wsctl.bench.worker`` (see its docstring for the line protocol).
Connections are interleaved (worker i takes i, i+K, …) and every worker is given the same
start instant once all of them are ready, so together they arrive at ``--connect-rate``.
Histograms are merged from their HDR encodings (never averaged); counters and shares
(connections held, generator CPU) are added; ratios are computed again after merging.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import IO, Any

from wsctl.bench.engine import Progress
from wsctl.bench.listen import merge_per_connection
from wsctl.bench.plan import BenchPlan
from wsctl.bench.runner import bottleneck_warnings, instrument_entry, process_cpu
from wsctl.errors import InvalidInput, RunFailed
from wsctl.metrics import Result, merge

READY_TIMEOUT = 60.0
START_MARGIN = 0.3


class Worker:
    """One worker process and what it has said so far."""

    def __init__(self, plan: BenchPlan) -> None:
        self.plan = plan
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "wsctl.bench.worker"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.ready = threading.Event()
        self.result: dict[str, Any] | None = None
        self.error: tuple[str, int] | None = None
        self.progress: dict[str, Any] = {}
        self.reader: threading.Thread | None = None
        self.stderr_tail: list[str] = []
        self._send({"plan": plan.to_dict()})

    def _send(self, obj: dict[str, Any]) -> None:
        stdin = self.proc.stdin
        assert stdin is not None
        try:
            stdin.write(json.dumps(obj) + "\n")
            stdin.flush()
        except (BrokenPipeError, OSError):
            pass

    def start(self, start_wall: float) -> None:
        self._send({"start_wall": start_wall})

    def read(self, on_line: Callable[[], None]) -> None:
        """Read the worker's stdout until it ends (runs in a thread)."""
        stdout = self.proc.stdout
        assert stdout is not None
        for line in stdout:
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue
            if "ready" in obj:
                self.ready.set()
            elif "progress" in obj:
                self.progress = obj["progress"]
                on_line()
            elif "result" in obj:
                self.result = obj["result"]
            elif "error" in obj:
                self.error = (str(obj["error"]), int(obj.get("exit_code", 3)))
        self.ready.set()  # ended: nobody waits for a dead worker

    def drain_stderr(self) -> None:
        stderr = self.proc.stderr
        assert stderr is not None
        for line in stderr:
            self.stderr_tail = (self.stderr_tail + [line.rstrip()])[-20:]

    def stop(self) -> None:
        """End and reap the process in any state."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass


def run_workers(
    plan: BenchPlan,
    processes: int,
    *,
    on_progress: Progress | None = None,
    on_start: Callable[[float], None] | None = None,
    out: IO[str] | None = None,
) -> Result:
    """Run ``plan`` over ``processes`` workers and return the merged Result."""
    shares = plan.split(processes)
    workers: list[Worker] = []
    threads: list[threading.Thread] = []
    lock = threading.Lock()

    def progressed() -> None:
        if on_progress is None:
            return
        with lock:
            snaps = [w.progress for w in workers if w.progress]
            on_progress(sum_progress(snaps))

    try:
        for share in shares:
            workers.append(Worker(share))
        for w in workers:
            for target in (lambda w=w: w.read(progressed), w.drain_stderr):
                t = threading.Thread(target=target, daemon=True)
                t.start()
                threads.append(t)
        deadline = time.monotonic() + READY_TIMEOUT
        for w in workers:
            w.ready.wait(max(0.0, deadline - time.monotonic()))
        failed = [w for w in workers if w.error is not None or w.proc.poll() is not None]
        if failed or not all(w.ready.is_set() for w in workers):
            raise _worker_failure(failed or workers)
        start_wall = time.time() + START_MARGIN
        if on_start is not None:
            on_start(start_wall)
        for w in workers:
            w.start(start_wall)
        limit = plan.warmup + plan.duration + plan.drain + plan.ramp + 60.0
        for w in workers:
            try:
                w.proc.wait(timeout=max(1.0, start_wall + limit - time.time()))
            except subprocess.TimeoutExpired:
                raise RunFailed(f"bench worker pid {w.proc.pid} did not finish in time; "
                                "it was killed") from None
        for t in threads:
            t.join(5)
        errors = [w for w in workers if w.result is None]
        if errors:
            raise _worker_failure(errors)
    finally:
        for w in workers:
            w.stop()
    results = [Result.from_dict(w.result) for w in workers if w.result is not None]
    return merge_results(plan, results)


def _worker_failure(workers: list[Worker]) -> Exception:
    w = workers[0]
    if w.error is not None:
        message, code = w.error
        if code == 2:
            return InvalidInput(message)
        return RunFailed(f"bench worker pid {w.proc.pid} failed: {message}")
    tail = " | ".join(w.stderr_tail[-3:]) or "no output"
    return RunFailed(f"bench worker pid {w.proc.pid} exited with {w.proc.poll()}: {tail}")


def sum_progress(snaps: list[dict[str, Any]]) -> dict[str, Any]:
    """One live snapshot from the workers' latest ones (counts added)."""
    out: dict[str, Any] = {"t": max((s.get("t", 0.0) for s in snaps), default=0.0)}
    for key in ("held", "opened", "failed", "sent", "received", "rate"):
        out[key] = sum(s.get(key, 0) for s in snaps)
    out["processes"] = len(snaps)
    return out


def merge_results(plan: BenchPlan, results: list[Result]) -> Result:
    """The whole run's Result from the workers' ones; the parent's CPU counts too."""
    merged = merge(results)
    processes: list[dict[str, Any]] = []
    for r in results:
        processes.extend(r.details.get("processes", []))
    cpu, wall = process_cpu()
    parent = {"pid": "parent", "role": "parent", "cpu_s": round(cpu, 3),
              "wall_s": round(wall, 3), "cpu": round(cpu / wall, 3), "loop_lag_p99": None}
    # Cores used: each process's CPU / its wall time, added; sends per CPU-second of all
    # of them together (the parent included).
    cores = sum(float(p.get("cpu", 0.0)) for p in processes) + cpu / wall
    total_cpu_s = sum(float(p.get("cpu_s", 0.0)) for p in processes) + cpu
    merged.metrics.set_gauge("generator.cpu", cores, "ratio")
    sent = merged.metrics.counters.get("messages.sent")
    if sent is not None:  # listen mode sends nothing
        merged.metrics.set_gauge("generator.sends_per_cpu_s",
                                 sent / total_cpu_s if total_cpu_s > 0 else 0.0, "per_s")
        merged.metrics.set_gauge("messages.per_s", sent / plan.duration, "per_s")
    merged.config = plan.public_dict()
    merged.config["processes"] = len(results)
    m = merged.metrics
    measured = {*m.histograms, *m.counters, *m.gauges}
    merged.details = {
        "series": sum_series([r.details.get("series", {}) for r in results]),
        "processes": [*processes, parent],
        "warnings": bottleneck_warnings(processes),
        "instrument": [instrument_entry(p) for p in processes],
        "merged_from": len(results),
        "ramp_seconds": max((r.details.get("ramp_seconds") or 0.0) for r in results),
        "unmeasured": {name: why for r in results
                       for name, why in (r.details.get("unmeasured") or {}).items()
                       if name not in measured},
    }
    if plan.mode == "listen":
        merged.details["per_connection"] = merge_per_connection(
            [r.details.get("per_connection") or {} for r in results])
    return merged


def sum_series(series: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-second series of several processes added sample by sample (shortest wins)."""
    series = [s for s in series if s.get("t")]
    if not series:
        return {"interval": 1.0, "t": [], "connections_held": [], "messages_per_s": []}
    n = min(len(s["t"]) for s in series)
    out: dict[str, Any] = {"interval": series[0].get("interval", 1.0), "t": series[0]["t"][:n]}
    for key in ("connections_held", "messages_per_s"):
        out[key] = [round(sum(s[key][i] for s in series), 1) for i in range(n)]
    return out
