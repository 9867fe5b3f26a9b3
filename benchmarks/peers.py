"""Side by side: wsctl bench, Artillery and Locust driving the same echo load.

    python benchmarks/peers.py [--connections 100] [--round-trips 4000] [--duration 20]
                               [--unpaced | --both] [--echo picows|websockets]
                               [--held-cap 5000] [--held-rate 500] [--tools wsctl,artillery,locust]
                               [--rounds 3]

Installs the peers itself when missing: Artillery 2 with npm into benchmarks/.peers/
(``PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1``, telemetry off when it runs), Locust with pip. Starts
one echo server in its own process, then runs
each tool in turn against it, each in its own process:

1. Efficiency: C connections, each sending ``round-trips / duration`` echo messages a second
   (a ~64-byte JSON ping, one in flight, the next one waiting for the echo) for the
   duration. Per tool: messages sent, CPU seconds of the whole generator process tree
   (user + system from the kernel's rusage when it is reaped, children included; start-up
   counts, which is why the load is large), messages per CPU-second and its ratio to
   Artillery's and Locust's.
   - wsctl: ``wsctl bench URL --connections C --message-rate M --duration D --json F``
   - Artillery: ``engine: ws``; each virtual user sends, waits for the echo (``match``),
     thinks 1/M s, ``round-trips`` times (so it sends at most M/s)
   - Locust: scenarios/locustfile.py (echo mode), one standalone headless process
   With ``--both`` the phase runs twice, paced then unpaced, and a table is printed for each.
   With ``--unpaced`` nothing paces the sends: each connection sends its next message as soon
   as the echo of the last arrives (a closed loop at full speed: every generator is then
   as busy as it can be). Artillery does ``round-trips`` per connection without think
   time; wsctl bench and Locust run for the duration with a rate they cannot reach.
2. Connections held: each tool ramps to ``held-cap`` connections at ``held-rate`` per second
   with one message per connection every 5 s, then holds; the figure is the most
   connections the echo server saw open at once (sampled from its sockets).

The echo server is picows on uvloop (``--echo picows``, benchmarks/transports.py's; about
100,000 round trips a second on one core, so the generators rather than the server are
what gets measured) or a bare websockets server (``--echo websockets``,
benchmarks/_bare_echo.py).

The efficiency phase runs ``--rounds`` times (default 3), the tools' order rotating from
round to round, so that a drift of the machine hits every tool alike. The table shows each
tool's median over the rounds (sent, CPU, messages per CPU-second) and its ratios to
Artillery's and Locust's medians; beside them, wsctl's ratio to Artillery in each round
(the same round's figures): one round of a CPU-efficiency ratio on a shared machine moved
from 2.7x to 4.5x between two runs minutes apart, so read the medians and the spread.

Not a test: figures depend on the machine and on whatever else runs on it (the load
average is printed with the table). ``--json FILE`` keeps every figure.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib.util
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import _servers  # benchmarks/_servers.py: scripts here run from this folder's path
import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PEERS = HERE / ".peers"
ARTILLERY = PEERS / "node_modules" / ".bin" / "artillery"
PAYLOAD = '{"type":"ping","t":1,"p":"' + "x" * 29 + '"}'  # 64 bytes, like wsctl bench's


@dataclass
class Run:
    """One tool's run: what it sent and what it cost."""

    tool: str
    phase: str
    status: str = "ok"  # ok | failed: … | pending: …
    sent: int = 0
    received: int = 0
    errors: int = 0
    cpu_s: float = 0.0  # rusage of the reaped process tree
    cpu_s_psutil: float = 0.0  # the same, sampled with psutil while it ran (cross-check)
    wall_s: float = 0.0
    held: int = 0  # most connections the server saw open at once
    own: dict[str, Any] = field(default_factory=dict)  # the tool's own figures

    @property
    def per_cpu_s(self) -> float | None:
        return self.sent / self.cpu_s if self.cpu_s > 0 and self.status == "ok" else None


# --- installing the peers ---------------------------------------------------------------------


def install_peers(tools: list[str]) -> None:
    """npm install artillery@2 into benchmarks/.peers/, pip install locust: when missing."""
    if "artillery" in tools and not ARTILLERY.exists():
        if shutil.which("npm") is None:
            raise SystemExit("Artillery needs Node.js and npm (apt-get install nodejs npm)")
        PEERS.mkdir(exist_ok=True)
        print("installing Artillery 2 into benchmarks/.peers/ (npm; a few minutes)...",
              flush=True)
        env = {**os.environ, "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD": "1"}
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", str(PEERS),
                        "artillery@2"], check=True, env=env, stdout=subprocess.DEVNULL)
    if "locust" in tools and importlib.util.find_spec("locust") is None:
        print("installing Locust (pip)...", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "locust>=2.20"],
                       check=True)


# --- running one generator and measuring it ---------------------------------------------------


class ServerWatch:
    """Samples how many client connections the echo server holds (its ESTABLISHED TCP
    sockets), in a thread, so every tool's 'held' is measured the same way."""

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        self.proc = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def count(self) -> int:
        return sum(1 for c in self.proc.net_connections("tcp")
                   if c.status == psutil.CONN_ESTABLISHED)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with contextlib.suppress(psutil.Error):
                self.peak = max(self.peak, self.count())

    def __enter__(self) -> ServerWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def drain(self, timeout: float = 30.0) -> None:
        """Wait until the previous tool's connections are gone."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.count() > 0:
            time.sleep(0.25)


def measure(cmd: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
            log: Path, timeout: float) -> tuple[int, float, float, float]:
    """Run ``cmd`` to its end; return exit code, rusage CPU seconds of its whole tree,
    psutil-sampled tree CPU seconds and wall seconds. Always reaped."""
    start = time.monotonic()
    cpu0 = _children_cpu()
    with log.open("wb") as sink:
        proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    seen: dict[int, float] = {}
    try:
        root = psutil.Process(proc.pid)
        while proc.poll() is None:
            if time.monotonic() - start > timeout:
                raise TimeoutError(f"{cmd[0]} ran past {timeout:.0f}s")
            with contextlib.suppress(psutil.Error):
                for p in [root, *root.children(recursive=True)]:
                    with contextlib.suppress(psutil.Error):
                        t = p.cpu_times()
                        seen[p.pid] = t.user + t.system
            time.sleep(0.2)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 15)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)
        proc.wait()
        raise
    # The kernel's figure: poll() reaped the child, so this process's children's rusage
    # grew by the child's CPU and that of every descendant it waited for.
    wall = time.monotonic() - start
    return proc.returncode, _children_cpu() - cpu0, sum(seen.values()), wall


def _children_cpu() -> float:
    t = os.times()
    return t.children_user + t.children_system


def _wsctl_command() -> list[str]:
    exe = Path(sys.executable).with_name("wsctl")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "wsctl.cli.main"]


def run_wsctl(url: str, c: int, rate: float, duration: float, msg_rate: float, work: Path,
              phase: str, timeout: float) -> Run:
    out = work / f"wsctl-{phase}.json"
    cmd = [*_wsctl_command(), "bench", url, "--connections", str(c), "--connect-rate",
           f"{rate:g}", "--message-rate", f"{msg_rate or UNPACED:g}",
           "--duration", f"{duration:g}s", "--json", str(out), "--quiet"]
    run = Run("wsctl bench", phase)
    code, run.cpu_s, run.cpu_s_psutil, run.wall_s = measure(
        cmd, log=work / f"wsctl-{phase}.log", timeout=timeout)
    log = (work / f"wsctl-{phase}.log").read_text(errors="replace")
    if not out.exists():
        if "No such command" in log or "no such option" in log.lower():
            run.status = "pending: wsctl bench is not there yet"
        else:
            run.status = f"failed (exit {code}): {_last(log)}"
        return run
    result = json.loads(out.read_text())
    metrics = result["metrics"]
    return _from_result(run, metrics)


def run_artillery(url: str, c: int, rate: float, duration: float, msg_rate: float,
                  work: Path, phase: str, timeout: float, round_trips: int = 4000) -> Run:
    """``msg_rate`` 0: ``round_trips`` per virtual user, no think time (unpaced)."""
    loops = max(1, round(duration * msg_rate)) if msg_rate else round_trips
    ramp = max(1, math.ceil(c / rate))
    script = work / f"artillery-{phase}.yml"
    think = f'\n          - think: "{1000.0 / msg_rate:g}ms"' if msg_rate else ""
    script.write_text(ARTILLERY_SCRIPT.format(
        url=url, ramp=ramp, count=c, payload=PAYLOAD, think=think, loops=loops))
    report = work / f"artillery-{phase}.json"
    env = {**os.environ, "ARTILLERY_DISABLE_TELEMETRY": "true", "NO_UPDATE_NOTIFIER": "1"}
    run = Run("Artillery", phase)
    code, run.cpu_s, run.cpu_s_psutil, run.wall_s = measure(
        [str(ARTILLERY), "run", "--output", str(report), str(script)], env=env,
        log=work / f"artillery-{phase}.log", timeout=timeout)
    if not report.exists():
        log = (work / f"artillery-{phase}.log").read_text(errors="replace")
        run.status = f"failed (exit {code}): {_last(log)}"
        return run
    counters = json.loads(report.read_text())["aggregate"]["counters"]
    run.sent = int(counters.get("websocket.messages_sent", 0))
    run.received = int(counters.get("websocket.messages_received", 0))
    run.errors = sum(int(v) for k, v in counters.items() if k.startswith("errors."))
    run.own = {k: v for k, v in counters.items() if k.startswith(("errors.", "vusers."))}
    return run


ARTILLERY_SCRIPT = """\
config:
  target: "{url}"
  phases:
    - duration: {ramp}
      arrivalCount: {count}
  ws:
    timeout: 30
scenarios:
  - engine: ws
    flow:
      - loop:
          - send:
              payload: '{payload}'
              match:
                json: "$.type"
                value: "ping"{think}
        count: {loops}
"""


def run_locust(url: str, c: int, rate: float, duration: float, msg_rate: float, work: Path,
               phase: str, timeout: float) -> Run:
    from wsctl.bench.locust import LocustPlan, locust_commands

    plan = LocustPlan(url, users=c, spawn_rate=rate, workers=0, duration=duration,
                      mode="echo", message_rate=msg_rate or UNPACED)
    result_path = work / f"locust-{phase}.json"
    master, _ = locust_commands(plan, 0, work / f"locust-{phase}-stats.json")
    env = {**os.environ, **plan.env(result_path)}
    run = Run("Locust", phase)
    code, run.cpu_s, run.cpu_s_psutil, run.wall_s = measure(
        master, env=env, cwd=ROOT, log=work / f"locust-{phase}.log", timeout=timeout)
    if not result_path.exists():
        log = (work / f"locust-{phase}.log").read_text(errors="replace")
        run.status = f"failed (exit {code}): {_last(log)}"
        return run
    metrics = json.loads(result_path.read_text())["metrics"]
    return _from_result(run, metrics)


UNPACED = 1_000_000.0  # messages a second per connection asked for by --unpaced: never reached,
# so with one message in flight each connection sends its next one when the echo arrives

RUNNERS = {"wsctl": run_wsctl, "artillery": run_artillery, "locust": run_locust}


def _from_result(run: Run, metrics: dict[str, Any]) -> Run:
    """Fill ``run`` from a wsctl result's metrics (wsctl bench's, or the locustfile's)."""
    run.sent = _value(metrics, "messages.sent")
    run.received = _value(metrics, "messages.received")
    run.errors = sum(int(v["value"]) for k, v in metrics.items() if k.startswith("errors."))
    run.own = {k: metrics[k]["value"] for k in
               ("generator.cpu", "generator.sends_per_cpu_s", "connections.held")
               if k in metrics}
    return run


def _value(metrics: dict[str, Any], name: str) -> int:
    return int(metrics.get(name, {}).get("value", 0))


def _last(log: str) -> str:
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    return lines[-1][:160] if lines else "no output"


# --- the table ------------------------------------------------------------------------------


def median_run(runs: list[Run]) -> Run:
    """One tool's rounds as one row: the median of each figure over its ok rounds (a
    failed round is left out; no ok round: the first failure)."""
    ok = [r for r in runs if r.status == "ok"]
    if not ok:
        return runs[0]

    def mid(values: list[float]) -> float:
        return statistics.median(values)

    return Run(ok[0].tool, ok[0].phase, sent=round(mid([r.sent for r in ok])),
               received=round(mid([r.received for r in ok])),
               errors=round(mid([r.errors for r in ok])),
               cpu_s=mid([r.cpu_s for r in ok]),
               cpu_s_psutil=mid([r.cpu_s_psutil for r in ok]),
               wall_s=mid([r.wall_s for r in ok]),
               own={"per_cpu_s_median": mid([r.sent / r.cpu_s for r in ok if r.cpu_s > 0]),
                    "rounds_ok": len(ok), "rounds": len(runs)})


def per_round_ratios(rounds: list[dict[str, Run]], tool: str, peer: str) -> list[float]:
    """``tool``'s messages per CPU-second over ``peer``'s, round by round (rounds where
    either failed are left out)."""
    out = []
    for by_tool in rounds:
        mine, theirs = by_tool.get(tool), by_tool.get(peer)
        if mine and theirs and mine.per_cpu_s and theirs.per_cpu_s:
            out.append(mine.per_cpu_s / theirs.per_cpu_s)
    return out


def table(rounds: list[dict[str, Run]], held: list[Run]) -> str:
    tools = list(dict.fromkeys(t for by_tool in rounds for t in by_tool))
    medians = [median_run([by_tool[t] for by_tool in rounds if t in by_tool]) for t in tools]
    by_tool = {r.tool: r for r in medians}

    def per(run: Run | None) -> float | None:
        if run is None or run.status != "ok":
            return None
        return float(run.own.get("per_cpu_s_median") or 0.0) or None

    art = per(by_tool.get("Artillery"))
    loc = per(by_tool.get("Locust"))
    held_by = {r.tool: r for r in held}
    rows = [("tool", "rounds", "sent", "received", "cpu s", "msgs/cpu-s", "x Artillery",
             "each round", "x Locust", "held")]
    for run in medians or [Run(h.tool, "efficiency", status="(skipped)") for h in held]:
        h = held_by.get(run.tool)
        held_cell = (str(h.held) if h and h.status == "ok" else (h.status.split(":")[0]
                                                                  if h else "-"))
        if run.status != "ok":
            rows.append((run.tool, "0", run.status[:40], "", "", "", "", "", "", held_cell))
            continue
        mine = per(run)
        each = per_round_ratios(rounds, run.tool, "Artillery") \
            if run.tool != "Artillery" else []
        rows.append((
            run.tool, f"{run.own.get('rounds_ok', 1)}/{run.own.get('rounds', 1)}",
            f"{run.sent:,}", f"{run.received:,}", f"{run.cpu_s:.1f}",
            f"{mine:,.0f}" if mine else "-",
            _ratio(mine, art), " ".join(f"{r:.2f}" for r in each) or "-",
            _ratio(mine, loc), held_cell,
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.rjust(w) if i else cell.ljust(w)
                       for i, (cell, w) in enumerate(zip(row, widths, strict=True)))
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _ratio(mine: float | None, theirs: float | None) -> str:
    return f"{mine / theirs:.2f}x" if mine and theirs else "-"


def _pace(msg_rate: float, args: argparse.Namespace) -> str:
    if not msg_rate:
        return (f"unpaced (closed loop at full speed; Artillery {args.round_trips} round trips "
                f"each, the others {args.duration:g}s)")
    return f"{msg_rate:g} msg/s for {args.duration:g}s ({args.round_trips} round trips each)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--round-trips", type=int, default=4000,
                        help="echo round trips per connection (efficiency phase)")
    parser.add_argument("--duration", type=float, default=20.0,
                        help="seconds of the efficiency phase; rate = round trips / this")
    parser.add_argument("--unpaced", action="store_true",
                        help="efficiency phase as a closed loop at full speed (no pacing)")
    parser.add_argument("--both", action="store_true",
                        help="efficiency phase paced and then unpaced: two tables")
    parser.add_argument("--echo", choices=("picows", "websockets"), default="picows",
                        help="the echo server: picows on uvloop, or a bare websockets one")
    parser.add_argument("--held-cap", type=int, default=5000,
                        help="connections each tool ramps to in the held phase (0 = skip)")
    parser.add_argument("--held-rate", type=float, default=500.0,
                        help="new connections per second in the held phase")
    parser.add_argument("--held-hold", type=float, default=5.0,
                        help="seconds to hold after the ramp")
    parser.add_argument("--held-only", action="store_true",
                        help="skip the efficiency phase")
    parser.add_argument("--tools", default="wsctl,artillery,locust")
    parser.add_argument("--no-install", action="store_true")
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--rounds", type=int, default=3,
                        help="efficiency rounds per phase, the tools' order rotating")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    unknown = [t for t in tools if t not in RUNNERS]
    if unknown:
        parser.error(f"unknown tool(s) {', '.join(unknown)}; choose from {', '.join(RUNNERS)}")
    if not args.no_install:
        install_peers(tools)

    runners = {**RUNNERS, "artillery": functools.partial(run_artillery,
                                                         round_trips=args.round_trips)}
    paced_rate = args.round_trips / args.duration
    phases = ([("paced", paced_rate), ("unpaced", 0.0)] if args.both else
              [("unpaced", 0.0)] if args.unpaced else [("paced", paced_rate)])
    echo = ([sys.executable, str(HERE / "transports.py"), "--serve-echo"]
            if args.echo == "picows" else [sys.executable, str(HERE / "_bare_echo.py")])
    server, url = _servers.start(echo)
    efficiency: dict[str, list[dict[str, Run]]] = {}
    held: list[Run] = []
    try:
        with tempfile.TemporaryDirectory(prefix="wsctl-peers-") as tmp:
            work = Path(tmp)
            watch = ServerWatch(server.pid)
            for name, msg_rate in [] if args.held_only else phases:
                print(f"{args.echo} echo server {url}; efficiency, {args.connections} "
                      f"connections x {_pace(msg_rate, args)}, {args.rounds} round(s)",
                      flush=True)
                for number in range(args.rounds):
                    this_round: dict[str, Run] = {}
                    efficiency.setdefault(name, []).append(this_round)
                    shift = number % len(tools)
                    for tool in tools[shift:] + tools[:shift]:
                        watch.drain()
                        with ServerWatch(server.pid) as peak:
                            run = runners[tool](url, args.connections, float(args.connections),
                                                args.duration, msg_rate, work,
                                                f"efficiency-{name}-{number + 1}",
                                                args.duration * 4 + 120)
                        run.held = peak.peak
                        this_round[run.tool] = run
                        print(f"  round {number + 1} {run.tool}: {run.status}, sent "
                              f"{run.sent:,} in {run.wall_s:.1f}s, cpu {run.cpu_s:.1f}s "
                              f"(psutil {run.cpu_s_psutil:.1f}s)", flush=True)
            if args.held_cap > 0:
                ramp = args.held_cap / args.held_rate
                print(f"held: ramp to {args.held_cap} connections at {args.held_rate:g}/s, "
                      f"hold {args.held_hold:g}s, one message per 5 s", flush=True)
                for tool in tools:
                    watch.drain(60)
                    with ServerWatch(server.pid) as peak:
                        run = runners[tool](url, args.held_cap, args.held_rate,
                                            ramp + args.held_hold, 0.2, work, "held",
                                            (ramp + args.held_hold) * 4 + 120)
                    run.held = peak.peak
                    held.append(run)
                    print(f"  {run.tool}: {run.status}, held {run.held}, errors {run.errors}",
                          flush=True)
    finally:
        _servers.stop(server)

    load = os.getloadavg()
    for name, msg_rate in phases if efficiency else [("held", 0.0)]:
        print(f"\n{name}: {args.connections} connections x {_pace(msg_rate, args)}"
              if efficiency else "")
        print(table(efficiency.get(name, []), held))
    print(f"\nload average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} "
          "cores; cpu s = user + system of the generator's whole process tree "
          "(start-up included)")
    if args.json:
        args.json.write_text(json.dumps({
            "url": url, "echo": args.echo, "phases": dict(phases),
            "connections": args.connections, "duration": args.duration, "load_average": load,
            "rounds": args.rounds,
            "efficiency": {name: [{tool: asdict(r) for tool, r in by_tool.items()}
                                  for by_tool in rounds]
                           for name, rounds in efficiency.items()},
            "held": [asdict(r) for r in held],
        }, indent=1))


if __name__ == "__main__":
    main()
