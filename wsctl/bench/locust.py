"""``wsctl bench --engine locust``: a real Locust master and K workers, converted to a result.

Locust runs on gevent and monkey-patches the standard library, so it only ever runs in its
own processes: this module never imports locust or gevent. It builds the command lines,
spawns ``python -m locust -f scenarios/locustfile.py`` as a headless master and K workers on
127.0.0.1, waits, reaps every child (on errors and Ctrl-C too), and reads the wsctl result
the master wrote (the locustfile merges the workers' HDR histograms; percentiles are never
averaged).

The pure parts the locustfile shares — one process's measurements, a worker's report,
merging reports into a :class:`~wsctl.metrics.Result` — live here too, so they are tested
without Locust (its clients are in ``wsctl.bench.locust_client``, its messages in
``wsctl.bench.messages``, failures are named by ``wsctl.errors.classify_connect_error``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import wsctl
from wsctl.bench.samples import Samples
from wsctl.errors import CONNECT_KINDS, InvalidInput, RunFailed
from wsctl.metrics import MetricSet, Result, validate
from wsctl.metrics.histogram import Unit

__all__ = [
    "LOCUSTFILE",
    "MODES",
    "LocustPlan",
    "Measurements",
    "WorkerReport",
    "locust_commands",
    "merge_reports",
    "run_locust",
    "stream_url",
]

LOCUSTFILE = Path(wsctl.__file__).resolve().parents[1] / "scenarios" / "locustfile.py"
MODES = ("echo", "resume")

# Seconds allowed beyond the run itself: interpreter and Locust start-up, workers joining,
# the master collecting the workers' histograms, shutdown.
STARTUP_ALLOWANCE = 60.0
WORKER_EXIT_TIMEOUT = 15.0


@dataclass(frozen=True, slots=True)
class LocustPlan:
    """One Locust run: ``users`` WebSocket users started at ``spawn_rate`` per second,
    spread over ``workers`` worker processes (0 = one standalone Locust process), for
    ``duration`` seconds (Locust counts the ramp inside it). ``mode`` is ``echo`` (send
    ``message_rate`` timestamped messages per user per second and time each echo) or
    ``resume`` (read protocol v1 events from the reference server; ``message_rate`` unused).
    ``{n}`` in ``url`` becomes each user's number; in resume mode a URL without a ``/ws/``
    path gets ``/ws/`` + ``stream`` (``{n}`` likewise).
    """

    url: str
    users: int
    spawn_rate: float
    workers: int = 2
    duration: float = 30.0
    mode: str = "echo"
    message_rate: float = 1.0
    stream: str = "alert-{n}"
    payload_size: int = 64

    def check(self) -> None:
        """Raise ``InvalidInput`` naming the first bad field."""
        if not self.url.startswith(("ws://", "wss://")):
            raise InvalidInput(f"URL must start with ws:// or wss://, not {self.url!r}")
        if self.users < 1:
            raise InvalidInput(f"--users must be at least 1, not {self.users}")
        if not (self.spawn_rate > 0 and math.isfinite(self.spawn_rate)):
            raise InvalidInput(f"--spawn-rate must be a positive number, not {self.spawn_rate}")
        if self.workers < 0:
            raise InvalidInput(f"--workers must be 0 (one process) or more, not {self.workers}")
        if not (self.duration >= 1 and math.isfinite(self.duration)):
            raise InvalidInput(f"--duration must be at least 1s for Locust, not {self.duration}")
        if self.mode not in MODES:
            raise InvalidInput(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if not (self.message_rate >= 0 and math.isfinite(self.message_rate)):
            raise InvalidInput(f"--message-rate must be 0 or more, not {self.message_rate}")
        if self.payload_size < 0:
            raise InvalidInput(f"--payload-size must be 0 or more, not {self.payload_size}")
        try:
            self.stream.format(n=0)
        except (KeyError, IndexError, ValueError) as exc:
            raise InvalidInput(f"stream template {self.stream!r} may only use {{n}}") from exc

    @property
    def run_time(self) -> int:
        """Locust's ``-t`` takes whole seconds: the duration rounded up."""
        return math.ceil(self.duration)

    def env(self, result_path: Path) -> dict[str, str]:
        """The locustfile's settings, as the environment variables it reads."""
        return {
            "WSCTL_MODE": self.mode,
            "WSCTL_MESSAGE_RATE": repr(float(self.message_rate)),
            "WSCTL_STREAM": self.stream,
            "WSCTL_PAYLOAD_SIZE": str(self.payload_size),
            "WSCTL_LOCUST_RESULT": str(result_path),
        }


def locust_commands(
    plan: LocustPlan, port: int, stats_json: Path, locustfile: Path | None = None
) -> tuple[list[str], list[str]]:
    """The master's command line (a standalone run when ``plan.workers`` is 0) and one
    worker's. Locust's own failure counts must not make its exit code 1
    (``--exit-code-on-error 0``): failed connections are results, not a failed run."""
    base = [sys.executable, "-m", "locust", "-f", str(locustfile or LOCUSTFILE)]
    master = [
        *base, "--headless", "--only-summary",
        "-u", str(plan.users), "-r", f"{plan.spawn_rate:g}", "-t", f"{plan.run_time}s",
        "--host", plan.url, "--json-file", str(stats_json.with_suffix("")),
        "--exit-code-on-error", "0", "--stop-timeout", "0",
    ]
    if plan.workers:
        master += [
            "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
            "--expect-workers", str(plan.workers),
            "--expect-workers-max-wait", str(int(STARTUP_ALLOWANCE / 2)),
        ]
    worker = [*base, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)]
    return master, worker


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _last_line(path: Path) -> str:
    """The last line of a Locust log worth showing (not its 'Shutting down' epilogue)."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    for line in reversed(lines):
        line = line.strip()
        if line and "Shutting down" not in line and not line.startswith("Aggregated"):
            return line
    return ""


def _reap(procs: list[subprocess.Popen[bytes]], grace: float, *, patience: float = 0.0) -> None:
    """Let each child end by itself for up to ``patience`` seconds, then SIGTERM what still
    runs (Locust shuts down cleanly on it), wait ``grace`` seconds, kill the rest; always
    reaps."""
    deadline = time.monotonic() + patience
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(max(0.0, deadline - time.monotonic()))
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in procs:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()


def run_locust(plan: LocustPlan, *, out: IO[str] | None = None) -> Result:
    """Run ``plan`` with a real headless Locust master and workers on this machine; block
    until it ends and return the wsctl result (kind ``bench``, ``details.engine`` locust).

    ``out`` gets a few plain progress lines. Raises ``InvalidInput`` for a bad plan or when
    Locust is not installed, ``RunFailed`` when Locust fails (with its last log line).
    """
    plan.check()
    if importlib.util.find_spec("locust") is None:
        raise InvalidInput("Locust is not installed: pip install 'wsctl[locust]'")
    if not LOCUSTFILE.is_file():
        raise InvalidInput(f"the locustfile is missing: {LOCUSTFILE}")
    with tempfile.TemporaryDirectory(prefix="wsctl-locust-") as tmp:
        work = Path(tmp)
        result_path = work / "result.json"
        stats_json = work / "locust_stats.json"
        port = _free_port()
        master_cmd, worker_cmd = locust_commands(plan, port, stats_json)
        env = {**os.environ, **plan.env(result_path), "PYTHONUNBUFFERED": "1"}
        procs: list[subprocess.Popen[bytes]] = []
        logs: list[Path] = []

        def spawn(cmd: list[str], name: str) -> subprocess.Popen[bytes]:
            log = work / f"{name}.log"
            logs.append(log)
            with log.open("wb") as sink:
                proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=sink,
                                        stderr=subprocess.STDOUT, env=env,
                                        start_new_session=True)
            procs.append(proc)
            return proc

        if out is not None:
            where = f"master on 127.0.0.1:{port}, {plan.workers} workers" if plan.workers \
                else "one standalone process"
            print(f"locust: {where}; {plan.users} users at {plan.spawn_rate:g}/s for "
                  f"{plan.run_time}s against {plan.url}", file=out, flush=True)
        started = time.monotonic()
        try:
            master = spawn(master_cmd, "master")
            for index in range(plan.workers):
                spawn(worker_cmd, f"worker{index}")
            try:
                code = master.wait(plan.run_time + STARTUP_ALLOWANCE)
            except subprocess.TimeoutExpired:
                raise RunFailed(
                    f"Locust did not finish within {plan.run_time + STARTUP_ALLOWANCE:g}s "
                    f"of a {plan.run_time}s run: {_last_line(logs[0]) or 'no log line'}"
                ) from None
            # Workers quit when the master tells them; give them a moment, then end them.
            _reap(procs[1:], 5.0, patience=WORKER_EXIT_TIMEOUT)
        finally:
            _reap(procs, 5.0)
        if code != 0 or not result_path.is_file():
            why = _last_line(logs[0]) or f"exit code {code}"
            raise RunFailed(f"Locust master failed (exit code {code}): {why}")
        try:
            result = Result.from_dict(json.loads(result_path.read_text()))
        except (ValueError, InvalidInput) as exc:
            raise RunFailed(f"the Locust master wrote no valid wsctl result: {exc}") from None
        result.config = {**result.config, **_plan_config(plan)}
        result.details = {**result.details, "engine": "locust", "workers": plan.workers,
                          "locust_requests": _locust_requests(stats_json),
                          "wall_s": round(time.monotonic() - started, 3)}
        busy = _cpu_warnings(logs)
        if busy:
            result.details["locust_warnings"] = busy
            if out is not None:
                print(f"locust: {busy[0]} — the generator, not the server, may be the limit; "
                      "add --workers", file=out, flush=True)
        if out is not None:
            print(f"locust: done; {result.metrics.counters.get('messages.sent', 0)} messages "
                  f"sent, {result.metrics.counters.get('connections.opened', 0)} connections "
                  "opened", file=out, flush=True)
        return result


def _cpu_warnings(logs: list[Path]) -> list[str]:
    """Locust's own 'CPU usage above 90%' warnings from every process's log."""
    found = []
    for log in logs:
        with contextlib.suppress(OSError):
            for line in log.read_text(errors="replace").splitlines():
                if "cpu threshold" in line.lower() or "cpu usage above" in line.lower():
                    found.append(line.split(": ", 1)[-1].strip()[:120])
    return found


def _plan_config(plan: LocustPlan) -> dict[str, Any]:
    return {"engine": "locust", "users": plan.users, "spawn_rate": plan.spawn_rate,
            "workers": plan.workers, "duration": plan.duration, "mode": plan.mode,
            "message_rate": plan.message_rate, "stream": plan.stream,
            "payload_size": plan.payload_size}


def _locust_requests(stats_json: Path) -> dict[str, dict[str, int]]:
    """Locust's own request and failure counts by name ("WS connect": {...}), so a reader
    can check them against wsctl's counters."""
    try:
        rows = json.loads(stats_json.read_text())
    except (OSError, ValueError):
        return {}
    out: dict[str, dict[str, int]] = {}
    for row in rows if isinstance(rows, list) else []:
        if isinstance(row, dict) and "name" in row:
            out[f"{row.get('method', '')} {row['name']}".strip()] = {
                "requests": int(row.get("num_requests", 0)),
                "failures": int(row.get("num_failures", 0)),
            }
    return out


# --- shared with the locustfile (pure: no I/O, no locust) ------------------------------------


@dataclass(slots=True)
class WorkerReport:
    """What one Locust process measured: HDR histograms (encoded), counters, the most
    connections it held at once, and its own CPU seconds over the run."""

    histograms: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (unit, hdr)
    counters: dict[str, int] = field(default_factory=dict)
    held: int = 0
    cpu_s: float = 0.0
    node: str = ""

    @classmethod
    def of(cls, metrics: MetricSet, held: int, cpu_s: float, node: str) -> WorkerReport:
        """Snapshot a process's metric set for sending to the master."""
        return cls({n: (h.unit, h.encode()) for n, h in metrics.histograms.items()},
                   dict(metrics.counters), held, cpu_s, node)

    def to_message(self) -> dict[str, Any]:
        """A plain dict Locust's messaging (msgpack) can carry."""
        return {"histograms": {n: list(v) for n, v in self.histograms.items()},
                "counters": self.counters, "held": self.held, "cpu_s": self.cpu_s,
                "node": self.node}

    @classmethod
    def from_message(cls, data: dict[str, Any]) -> WorkerReport:
        return cls({n: (str(v[0]), str(v[1])) for n, v in data["histograms"].items()},
                   {str(k): int(v) for k, v in data["counters"].items()},
                   int(data["held"]), float(data["cpu_s"]), str(data.get("node", "")))

    def metrics(self) -> MetricSet:
        """The report's histograms and counters as a metric set."""
        from wsctl.metrics import Histogram

        metrics = MetricSet()
        for name, (unit, encoded) in self.histograms.items():
            if unit not in ("s", "count"):
                raise ValueError(f"histogram {name} has unit {unit!r}")
            metrics.histograms[name] = Histogram.decode(
                name, "s" if unit == "s" else "count", encoded)
        metrics.counters.update(self.counters)
        return metrics


def merge_reports(
    reports: list[WorkerReport],
    *,
    started_at: float,
    duration: float,
    target: str,
    master_cpu_s: float = 0.0,
    expected: int | None = None,
) -> Result:
    """One ``bench`` result from every process's report: histograms merged exactly,
    counters added; ``connections.held`` is the sum of each process's peak (they hold at
    the same time), ``generator.cpu`` and ``generator.sends_per_cpu_s`` count every
    process of the cluster, the master's included."""
    metrics = MetricSet()
    for report in reports:
        metrics.merge(report.metrics())
    cpu_s = master_cpu_s + sum(r.cpu_s for r in reports)
    sent = metrics.counters.get("messages.sent", 0)
    metrics.set_gauge("connections.held", sum(r.held for r in reports), "count")
    if duration > 0:
        metrics.set_gauge("generator.cpu", cpu_s / duration, "ratio")
        metrics.set_gauge("messages.per_s", sent / duration, "per_s")
    if cpu_s > 0:
        metrics.set_gauge("generator.sends_per_cpu_s", sent / cpu_s, "per_s")
    details: dict[str, Any] = {
        "engine": "locust",
        "processes": [{"node": r.node, "cpu_s": round(r.cpu_s, 3), "held": r.held,
                       "sent": r.counters.get("messages.sent", 0)} for r in reports],
        "master_cpu_s": round(master_cpu_s, 3),
        "cpu_s": round(cpu_s, 3),
    }
    if expected is not None and expected > len(reports):
        details["missing_reports"] = expected - len(reports)
    result = Result(kind="bench", metrics=metrics, started_at=started_at, duration=duration,
                    target=target, details=details)
    validate(result.to_dict())
    return result


class Measurements:
    """One Locust process's share of the measurements: histograms fed through
    :class:`~wsctl.bench.samples.Samples`, counters (every fixed ``errors.<kind>`` at zero,
    so a criterion on one is measured), the most connections held, CPU and start times.
    Greenlets are cooperative, so plain attribute updates need no lock."""

    def __init__(self) -> None:
        self.reset("echo")

    def reset(self, mode: str) -> None:
        """Start over for a run in ``mode`` (echo: rtt; resume: delivery_latency)."""
        latency: list[tuple[str, Unit]] = [("rtt", "s"), ("rtt.uncorrected", "s")] \
            if mode == "echo" else [("delivery_latency", "s")]
        self.metrics = MetricSet(
            [("connect_time", "s"), *latency],
            ["messages.sent", "messages.received", "connections.opened",
             "connections.failed", "connections.lost",
             *(f"errors.{kind}" for kind in CONNECT_KINDS)],
        )
        self.samples = {name: Samples(h) for name, h in self.metrics.histograms.items()}
        self.open = 0
        self.held = 0
        self.cpu0 = time.process_time()
        self.wall0 = time.time()
        self.mono0 = time.monotonic()
        self.reports: list[WorkerReport] = []
        self.written = False

    def opened(self) -> None:
        self.open += 1
        self.held = max(self.held, self.open)

    def report(self, node: str) -> WorkerReport:
        """Flush every buffer and snapshot this process for the master."""
        for samples in self.samples.values():
            samples.flush()
        return WorkerReport.of(self.metrics, self.held, time.process_time() - self.cpu0, node)


def stream_url(host: str, template: str, n: int) -> str:
    """The reference server's stream URL: HOST/ws/<stream>, unless HOST names one already."""
    if urlsplit(host).path.startswith("/ws/"):
        return host
    return f"{host.rstrip('/')}/ws/{template.format(n=n)}"
