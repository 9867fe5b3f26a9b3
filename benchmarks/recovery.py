"""Recovery after a server SIGKILL: wsctl's default reconnect policy vs websockets' own loop.

    python benchmarks/recovery.py [--probes 1000] [--workers 5] [--rounds 3] [--down 1.0]
                                  [--also-fast 0.25 0.5] [--server-arg=--loop ...]
                                  [--tree before=/path/to/other/checkout]

One run: start the reference server (`python -m server_stub --port P`), spread the
clients over worker processes (this file with `--worker`), wait until every client is
open, SIGKILL the server, start it again on the same port `--down` seconds later, and
wait until every client is open again. The clients are either

- `wsctl`: a `wsctl.probe.Fleet` per worker (resume mode, the default `BackoffPolicy`,
  records kept), or
- `websockets`: `async for ws in websockets.asyncio.client.connect(url)`, websockets'
  own reconnect loop with its default backoff (the peer baseline),

(`--also-fast S` adds `wsctl:S`, wsctl with a fast-retry ceiling of S seconds; `--tree
NAME=PATH` adds `wsctl@NAME`, wsctl's clients against the server of another checkout,
started with PYTHONPATH=PATH: a server change before/after in the same rounds), and the
kinds alternate within each round (their order alternates by round), each on
a fresh server.

Per run, from instants every process takes with `time.monotonic()` (one clock for all
processes on Linux):

- reconnect: each client's first open after the kill minus the instant the new server
  was listening (the parent reads its announcement line, printed once it listens); mean
  and p99 over all clients. `early` counts opens seen before that line was read (the
  parent read it late): they count as negative times, not clipped.
- gave up: clients that gave up, or were not open again `--timeout` s after the restart.
- attempts/s: the most connection attempts (counted when their outcome is known) in any
  one-second window from the kill on; `all` and `reached` (attempts that reached a
  process on the port: not refused by the kernel).
- worker health: each worker's event-loop lag (a 50 ms sleep's lateness; p99 and max)
  and CPU share of a core, over the kill -> last reconnect window, judged with the
  bounds of `wsctl.metrics.instrument` (the ones `wsctl run` uses).
- server start-up: spawn -> listening of the restarted server.
- slow attempts (wsctl only, from its records): attempts that took >= 0.9 s: a SYN the
  kernel dropped and the client resent after 1 s, or a long queue at a CPU-starved
  server; and the kernel's machine-wide ListenOverflows (SYNs dropped at a full listen
  queue) and TCPSynRetrans (SYN and SYN-ACK resends) over the run (other processes on the
  machine count too).

Printed: one line per run, then per kind the median over rounds of each figure and the
ratio websockets / wsctl. The targets (issue 13): wsctl mean <= 0.5 s, p99 <= 2 s, 0 gave
up, and websockets' mean / wsctl's mean >= 3. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import os
import resource
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import _servers  # benchmarks/_servers.py: scripts here run from this folder's path
import psutil

from wsctl.metrics.instrument import ProcessHealth

KINDS = ("wsctl", "websockets")
LAG_PERIOD = 0.05
STALL = 0.9  # s: an attempt this long waited for a resent SYN (1 s) or a long queue


# -- worker side ---------------------------------------------------------------------


class Watch:
    """What a worker reports: each client's first open after the kill, attempt outcomes,
    and loop-lag / CPU samples, all as monotonic instants."""

    def __init__(self, count: int) -> None:
        self.kill_at: float | None = None
        self.opens: list[float | None] = [None] * count
        self.ever_open = [False] * count
        self.gave_up = 0
        self.stalls = 0  # attempts (wsctl only) that took >= STALL
        self.attempts: list[tuple[float, bool]] = []  # (instant, reached the server)
        self.failures: Counter[str] = Counter()  # after the kill: how attempts failed
        self.samples: list[tuple[float, float, float]] = []  # (instant, lag, cpu seconds)

    def opened(self, client: int, at: float) -> None:
        self.attempt(at, True)
        self.ever_open[client] = True
        if self.kill_at is not None and at >= self.kill_at and self.opens[client] is None:
            self.opens[client] = at

    def attempt(self, at: float, reached: bool, failure: str | None = None) -> None:
        self.attempts.append((at, reached))
        if failure is not None and self.kill_at is not None and at >= self.kill_at:
            self.failures[failure] += 1

    def recovered(self) -> bool:
        return self.kill_at is not None and \
            sum(1 for t in self.opens if t is not None) + self.gave_up >= len(self.opens)

    async def lag(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(LAG_PERIOD)
            lag = max(0.0, loop.time() - before - LAG_PERIOD)
            self.samples.append((time.monotonic(), lag, time.process_time()))

    def report(self) -> dict[str, Any]:
        since = (self.kill_at or 0.0) - 0.2
        return {
            "opens": self.opens,
            "gave_up": self.gave_up,
            "failures": self.failures,
            "stalls": self.stalls,
            "attempts": [a for a in self.attempts if a[0] >= since],
            "samples": [s for s in self.samples if s[0] >= since],
        }


async def wsctl_clients(url: str, count: int, seed: int, watch: Watch, fast: float | None
                        ) -> tuple[Any, asyncio.Task[Any]]:
    """A Fleet with records kept; its records feed ``watch``."""
    from wsctl.backoff import BackoffPolicy
    from wsctl.errors import FREE_KINDS
    from wsctl.probe import Fleet, ProbeConfig, Record, State

    began: dict[int, float] = {}  # probe -> when its attempt in progress began

    def sink(records: list[Record]) -> None:
        for r in records:
            if r.state is State.CONNECTING:
                began[r.probe] = r.at
                continue
            outcome = r.state is State.OPEN and r.previous is not State.OPEN  # not a note
            if outcome or r.kind is not None:
                start = began.pop(r.probe, None)
                if start is not None and r.at - start >= STALL and watch.kill_at is not None \
                        and start >= watch.kill_at:
                    watch.stalls += 1
            if outcome:
                watch.opened(r.probe, r.at)
            elif r.kind is not None:  # the outcome of a failed attempt
                watch.attempt(r.at, r.kind not in FREE_KINDS, r.kind)
                if r.state is State.GAVE_UP and watch.kill_at is not None:
                    watch.gave_up += 1

    policy = BackoffPolicy() if fast is None else BackoffPolicy(fast=fast)
    config = ProbeConfig(url + "/ws/recovery-{n}", mode="resume", backoff=policy)
    fleet = Fleet(config, count, seed=seed, sink=sink, tune_gc=True)
    return fleet, asyncio.create_task(fleet.run())


async def websockets_clients(url: str, count: int, watch: Watch) -> list[asyncio.Task[None]]:
    """``count`` clients on websockets' own reconnect loop, default backoff."""
    from websockets.asyncio.client import connect, process_exception
    from websockets.exceptions import ConnectionClosed

    async def client(index: int) -> None:
        def failed(exc: Exception) -> Exception | None:
            refused = isinstance(exc, OSError) and exc.errno == errno.ECONNREFUSED
            watch.attempt(time.monotonic(), not refused,
                          "refused" if refused else type(exc).__name__)
            return process_exception(exc)

        async for ws in connect(f"{url}/ws/recovery-{index}", process_exception=failed):
            watch.opened(index, time.monotonic())
            try:
                async for _ in ws:
                    pass
            except ConnectionClosed:
                continue

    return [asyncio.create_task(client(i)) for i in range(count)]


async def worker(kind: str, url: str, count: int, seed: int) -> None:
    """Run ``count`` clients; stdin: ``kill T`` (the kill instant), ``report`` (stop and
    print the JSON report); stdout: ``ready`` once all are open, ``recovered``."""
    watch = Watch(count)
    lag = asyncio.create_task(watch.lag())
    if kind.startswith("wsctl"):
        fast = float(kind.partition(":")[2]) if ":" in kind else None
        fleet, run = await wsctl_clients(url, count, seed, watch, fast)

        def all_open() -> bool:
            return len(fleet.probes) == count and all(
                p.machine.state.value == "open" and p.machine.epoch is not None
                for p in fleet.probes)
    else:
        tasks = await websockets_clients(url, count, watch)

        def all_open() -> bool:
            return all(watch.ever_open)

    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str] = asyncio.Queue()

    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)

    async def pump() -> None:
        while line := await stdin.readline():
            lines.put_nowait(line.decode().strip())
        lines.put_nowait("report")

    reading = asyncio.create_task(pump())
    while not all_open():
        await asyncio.sleep(0.05)
    print("ready", flush=True)
    said_recovered = False
    while True:
        try:
            line = await asyncio.wait_for(lines.get(), 0.05)
        except TimeoutError:
            line = ""
        if line.startswith("kill "):
            watch.kill_at = float(line.split()[1])
        elif line == "report":
            break
        if not said_recovered and watch.recovered():
            said_recovered = True
            print("recovered", flush=True)
    lag.cancel()
    reading.cancel()
    if kind.startswith("wsctl"):
        fleet.stop()
        await run
    else:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    print(json.dumps(watch.report()), flush=True)


# -- parent side ---------------------------------------------------------------------


@dataclass
class Run:
    """One kill-and-restart with one kind of client: the figures of docs above."""

    kind: str
    reconnect: list[float]
    gave_up: int
    early: int
    peak_all: int
    peak_reached: int
    attempts: int
    startup: float
    failures: Counter[str]
    stalls: int
    netstat: dict[str, int]
    server_cpu: float  # share of a core from listening to the last reconnect (about)
    down: float  # kill -> listening again
    health: list[ProcessHealth] = field(default_factory=list)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.reconnect) if self.reconnect else float("nan")

    @property
    def p99(self) -> float:
        return percentile(self.reconnect, 0.99)

    @property
    def p50(self) -> float:
        return percentile(self.reconnect, 0.50)

    @property
    def from_kill(self) -> float:
        """Mean outage as a user sees it: kill -> open again."""
        return self.down + self.mean

    @property
    def lag_p99(self) -> float:
        return max(h.lag_p99 or 0.0 for h in self.health)

    @property
    def lag_max(self) -> float:
        return max(h.lag_max or 0.0 for h in self.health)

    @property
    def cpu(self) -> float:
        return max(h.cpu or 0.0 for h in self.health)

    def saturation(self) -> str | None:
        """Which workers were past the instrument's bounds, and the worst figures."""
        over = [h for h in self.health if h.problems()]
        if not over:
            return None
        return (f"{self.kind}: {len(over)} of {len(self.health)} workers; worst loop lag p99 "
                f"{self.lag_p99 * 1000:.0f} ms, max {self.lag_max * 1000:.0f} ms, CPU "
                f"{self.cpu:.2f} of a core")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (nan for no values)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.999999) - 1))]


def peak_per_second(instants: list[float]) -> int:
    """The most instants in any one-second window."""
    ordered = sorted(instants)
    best = start = 0
    for end, t in enumerate(ordered):
        while t - ordered[start] > 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


def health_of(name: str, samples: list[list[float]], start: float, end: float
              ) -> ProcessHealth:
    """Loop lag p99/max and CPU share of one worker over [start, end]."""
    inside = [s for s in samples if start <= s[0] <= end + LAG_PERIOD]
    if len(inside) < 2:
        return ProcessHealth(name, None, None, None)
    lags = [s[1] for s in inside]
    cpu = (inside[-1][2] - inside[0][2]) / max(1e-9, inside[-1][0] - inside[0][0])
    return ProcessHealth(name, round(cpu, 3), percentile(lags, 0.99), max(lags))


NETSTAT = ("ListenOverflows", "ListenDrops", "TCPSynRetrans")


def tcp_counters() -> dict[str, int]:
    """The kernel's machine-wide TCP counters of interest (Linux /proc/net/netstat):
    SYNs dropped because a listen queue was full, and SYNs the clients had to resend."""
    try:
        with open("/proc/net/netstat") as file:
            lines = [line.split() for line in file if line.startswith("TcpExt:")]
    except OSError:
        return {}
    values = dict(zip(lines[0][1:], lines[1][1:], strict=True))
    return {name: int(values.get(name, 0)) for name in NETSTAT}


async def start_server(command: list[str]) -> tuple[asyncio.subprocess.Process, str, float,
                                                    float]:
    """Spawn the server; return it, its URL, the spawn instant and the listening instant."""
    spawned = time.monotonic()
    proc = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.DEVNULL)
    assert proc.stdout is not None
    line = (await proc.stdout.readline()).decode()
    listening = time.monotonic()
    match = _servers.URL.search(line)
    if not match:
        proc.kill()
        await proc.wait()
        raise SystemExit(f"server did not start ({' '.join(command)}): {line!r}")
    return proc, match.group(0), spawned, listening


async def stop_server(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def expect(proc: asyncio.subprocess.Process, word: str, timeout: float) -> bool:
    """Wait for the line ``word`` from a worker; False on timeout."""
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(timeout):
            while True:
                line = (await proc.stdout.readline()).decode().strip()
                if not line:
                    raise SystemExit(f"a worker exited before saying {word!r}")
                if line == word:
                    return True
    except TimeoutError:
        return False


async def one_run(kind: str, port: int, args: argparse.Namespace) -> tuple[Run, int]:
    """Start a server, the workers, kill, restart, measure. Returns the run and the port."""
    tree = args.trees.get(kind.partition("@")[2]) if "@" in kind else None
    env = ["env", "-C", tree, f"PYTHONPATH={tree}"] if tree else []  # execs: same pid

    def server_cmd_for(port: int) -> list[str]:
        return [*env, sys.executable, "-m", "server_stub", "--port", str(port),
                "--log-level", "warning", *args.server_arg]

    server, url, _, _ = await start_server(server_cmd_for(port))
    port = int(url.rsplit(":", 1)[1])
    server_cmd = server_cmd_for(port)
    counts = [args.probes // args.workers + (i < args.probes % args.workers)
              for i in range(args.workers)]
    workers = []
    for index, count in enumerate(counts):
        cmd = [sys.executable, __file__, "--worker", kind, url, str(count), str(index)]
        workers.append(await asyncio.create_subprocess_exec(  # a report line can pass 64 KiB
            *cmd, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=2**26))
    try:
        ready = await asyncio.gather(*(expect(w, "ready", 120) for w in workers))
        if not all(ready):
            raise SystemExit(f"{kind}: not every client opened within 120 s")
        await asyncio.sleep(args.settle)
        netstat = tcp_counters()
        killed = time.monotonic()
        for w in workers:
            assert w.stdin is not None
            w.stdin.write(f"kill {killed}\n".encode())
        server.kill()
        await server.wait()
        await asyncio.sleep(max(0.0, killed + args.down - time.monotonic()))
        server, _, spawned, listening = await start_server(server_cmd)
        server_cpu = psutil.Process(server.pid).cpu_times()
        await asyncio.gather(*(expect(w, "recovered", args.timeout) for w in workers))
        netstat = {k: v - netstat[k] for k, v in tcp_counters().items()}
        now_cpu = psutil.Process(server.pid).cpu_times()
        server_busy = (now_cpu.user + now_cpu.system - server_cpu.user - server_cpu.system)
        server_window = time.monotonic() - listening
        for w in workers:
            assert w.stdin is not None
            w.stdin.write(b"report\n")
            w.stdin.close()
        reports = [json.loads(line) for line in
                   await asyncio.gather(*(_last_line(w) for w in workers))]
        await asyncio.gather(*(w.wait() for w in workers))
    finally:
        for w in workers:
            if w.returncode is None:
                w.kill()
                await w.wait()
        await stop_server(server)
    opens = [t for r in reports for t in r["opens"] if t is not None]
    missing = sum(1 for r in reports for t in r["opens"] if t is None)
    end = max(opens) if opens else listening + args.timeout
    attempts = [a for r in reports for a in r["attempts"] if a[0] >= killed]
    run = Run(
        kind=kind,
        reconnect=[t - listening for t in opens],
        gave_up=missing,
        early=sum(1 for t in opens if t < listening),
        peak_all=peak_per_second([a[0] for a in attempts]),
        peak_reached=peak_per_second([a[0] for a in attempts if a[1]]),
        attempts=len(attempts),
        startup=listening - spawned,
        netstat=netstat,
        server_cpu=server_busy / max(1e-9, server_window),
        down=listening - killed,
        stalls=sum(r["stalls"] for r in reports),
        failures=sum((Counter(r["failures"]) for r in reports), Counter()),
        health=[health_of(f"{kind} worker {i}", r["samples"], killed, end)
                for i, r in enumerate(reports)],
    )
    return run, port


async def _last_line(proc: asyncio.subprocess.Process) -> str:
    assert proc.stdout is not None
    last = ""
    while line := (await proc.stdout.readline()).decode().strip():
        last = line
    return last


def row(run: Run, round_no: int) -> str:
    return (f"{round_no:>5}  {run.kind:<10} {run.mean:7.3f} {run.p50:7.3f} {run.p99:7.3f} "
            f"{max(run.reconnect, default=float('nan')):7.3f} {run.gave_up:>6} "
            f"{run.early:>5} {run.attempts:>8} {run.peak_all:>8} {run.peak_reached:>8} "
            f"{run.startup * 1000:8.0f} {run.lag_p99 * 1000:8.1f} {run.lag_max * 1000:8.1f} "
            f"{run.cpu:6.2f} {run.server_cpu:6.2f} {run.from_kill:7.3f}")


async def parent(args: argparse.Namespace) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    print(f"recovery: {args.probes} clients in {args.workers} worker processes, server "
          f"down {args.down:g} s, {args.rounds} interleaved rounds, "
          f"{psutil.cpu_count()} cores, load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}, fd limit {soft}", flush=True)
    print(f"{'round':>5}  {'kind':<10} {'mean s':>7} {'p50 s':>7} {'p99 s':>7} {'max s':>7} "
          f"{'gaveup':>6} {'early':>5} {'attempts':>8} {'peak/s':>8} {'reach/s':>8} "
          f"{'start ms':>8} {'lag p99':>8} {'lag max':>8} {'cpu':>6} {'server':>6} "
          f"{'kill->open':>7}", flush=True)
    kinds = KINDS + tuple(f"wsctl:{fast:g}" for fast in args.also_fast) + tuple(
        f"wsctl@{name}" for name in args.trees)
    runs: dict[str, list[Run]] = {kind: [] for kind in kinds}
    port = 0
    saturated: list[str] = []
    for round_no in range(1, args.rounds + 1):
        order = kinds if round_no % 2 else kinds[::-1]
        for kind in order:
            run, port = await one_run(kind, port, args)
            runs[kind].append(run)
            print(row(run, round_no), flush=True)
            print(f"{'':17}failed attempts: " + (", ".join(
                f"{k} {n}" for k, n in run.failures.most_common()) or "none") +
                  f"; attempts >= {STALL:g} s: " +
                  (str(run.stalls) if run.kind.startswith("wsctl") else "n/a") +
                  "; kernel (machine-wide): " +
                  ", ".join(f"{k} {n}" for k, n in run.netstat.items()),
                  flush=True)
            problem = run.saturation()
            if problem is not None:
                saturated.append(f"round {round_no} {problem}")
    summarize(runs, saturated)
    print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


def summarize(runs: dict[str, list[Run]], saturated: list[str]) -> None:
    def med(kind: str, figure: str) -> float:
        return statistics.median(getattr(r, figure) for r in runs[kind])

    figures = [  # label, Run attribute, scale, decimals
        ("reconnect mean s", "mean", 1, 3), ("reconnect p50 s", "p50", 1, 3),
        ("reconnect p99 s", "p99", 1, 3), ("kill -> open mean s", "from_kill", 1, 3),
        ("gave up", "gave_up", 1, 0), ("attempts", "attempts", 1, 0),
        ("peak attempts/s, all", "peak_all", 1, 0),
        ("peak attempts/s, reached server", "peak_reached", 1, 0),
        ("server start-up ms", "startup", 1000, 0),
        ("worker loop lag p99 ms (worst)", "lag_p99", 1000, 1),
        ("worker loop lag max ms (worst)", "lag_max", 1000, 1),
        ("worker CPU share (worst)", "cpu", 1, 2),
        ("server CPU share after restart", "server_cpu", 1, 2)]
    print(f"\n{'median over rounds':<36}" + "".join(f"{kind:>12} " for kind in runs) +
          f"{'websockets/wsctl':>17}")
    for label, name, scale, digits in figures:
        ours, peer = med("wsctl", name), med("websockets", name)
        ratio = f"{peer / ours:.1f}x" if ours else "-"
        cells = "".join(f"{med(kind, name) * scale:>12.{digits}f} " for kind in runs)
        print(f"{label:<36}{cells}{ratio:>17}")
    mean, p99, gave = med("wsctl", "mean"), med("wsctl", "p99"), med("wsctl", "gave_up")
    ratios = [p.mean / o.mean for o, p in zip(runs["wsctl"], runs["websockets"], strict=True)]
    ratio = statistics.median(ratios)
    print("\ntargets (wsctl, medians): "
          f"mean {mean:.3f} s {'<=' if mean <= 0.5 else 'MISSES'} 0.5 s; "
          f"p99 {p99:.3f} s {'<=' if p99 <= 2 else 'MISSES'} 2 s; "
          f"gave up {gave:.0f} {'== 0' if gave == 0 else 'MISSES 0'}; "
          f"websockets/wsctl mean {ratio:.1f}x (per round: "
          f"{', '.join(f'{r:.1f}' for r in ratios)}) {'>=' if ratio >= 3 else 'MISSES'} 3x")
    if saturated:
        print("client workers SATURATED (past wsctl's instrument bounds: loop lag p99 20 ms, "
              "max 250 ms, CPU 90%; their instants may be late by up to their lag):")
        for line in saturated:
            print("  " + line)
    else:
        print("client workers within wsctl's instrument bounds in every run "
              "(loop lag p99 <= 20 ms, max <= 250 ms, CPU <= 90% of a core)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probes", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--down", type=float, default=1.0,
                        help="seconds from the SIGKILL to the restart")
    parser.add_argument("--settle", type=float, default=2.0,
                        help="seconds all open before the kill")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="seconds after the restart before a client counts as gave up")
    parser.add_argument("--also-fast", type=float, nargs="*", default=[], metavar="S",
                        help="also run wsctl with these fast-retry ceilings (kind wsctl:S)")
    parser.add_argument("--server-arg", action="append", default=[],
                        help="extra argument for the server (repeat)")
    parser.add_argument("--tree", action="append", default=[], metavar="NAME=PATH",
                        help="also run wsctl's clients against the server of another "
                             "checkout (kind wsctl@NAME; repeat): before/after a server "
                             "change in the same rounds")
    parser.add_argument("--worker", nargs=4, metavar=("KIND", "URL", "COUNT", "INDEX"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.trees = dict(item.partition("=")[::2] for item in args.tree)
    if args.worker:
        kind, url, count, index = args.worker
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, int(count) + 1000), hard))
        asyncio.run(worker(kind, url, int(count), int(index) + 1))
        return
    asyncio.run(parent(args))


if __name__ == "__main__":
    main()
