"""Server capacity: memory per connection and handshake rate, reference vs baseline vs bare.

    python benchmarks/server_capacity.py [--connections 5000] [--rounds 2] [--hold 20]

Each target runs as its own process; the clients run in another process
(benchmarks/_clients.py), one connection per stream, each reading its stream at the
server's default job rate (1 event/s). Targets, in the same run:

  reference       wsctl serve --profile reference (one health scheduler)
  reference/pc    the same with --health-mode per-connection (websockets' keepalive task
                  per connection), to measure the scheduler choice
  ref/no-replay   reference with --replay-size 0: what the connection costs without the
                  stream's replay history (which grows for --replay-age, 60 s by default:
                  use --hold 70 or more to see the full steady state)
  ref/sqlite      reference with --store sqlite:FILE (a fresh file in a temporary
                  directory per run): history in the file, a hot window of 8 events per
                  stream in memory, replay working (issue 14's memory target)
  ref/redis       reference with --store redis://... on a private redis-server started
                  for the run (persistence off; skipped with the reason when redis-server
                  or redis-py is missing): the hot window in memory, history in Redis
  baseline        wsctl serve --profile baseline (EP-0001's "before")
  bare            a bare websockets echo server, compression off; its clients send one
                  message a second and read the echo

Figures per target (medians over rounds): server RSS growth per connection at steady
state, handshakes per second seen by the clients, handshakes per server CPU-second,
server CPU share while holding. Then the ratios the issue sets targets on:
reference <= 1.25x bare memory/conn, <= 0.5x baseline memory/conn, handshake rate >=
0.9x bare; ref/sqlite and ref/redis <= 1.25x bare memory/conn (issue 14). This machine is shared
and noisy: read the ratios and medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import _servers  # benchmarks/_servers.py: scripts here run from this folder's path
import psutil

HERE = Path(__file__).resolve().parent
SCRATCH = "{scratch}"  # in a command: a temporary directory made for that run
REDIS = "{redis}"  # in a command: the URL of a private redis-server started for that run


@dataclass
class Target:
    name: str
    command: list[str]
    path: str
    echo: bool = False


def targets() -> list[Target]:
    serve = [sys.executable, "-m", "server_stub", "--port", "0", "--log-level", "warning",
             "--max-connections", "0", "--max-streams-per-client", "0"]
    return [
        Target("reference", serve, "/ws/bench-{n}"),
        Target("reference/pc", [*serve, "--health-mode", "per-connection"], "/ws/bench-{n}"),
        Target("ref/no-replay", [*serve, "--replay-size", "0"], "/ws/bench-{n}"),
        Target("ref/sqlite", [*serve, "--store", f"sqlite:{SCRATCH}/capacity.db"],
               "/ws/bench-{n}"),
        Target("ref/redis", [*serve, "--store", REDIS], "/ws/bench-{n}"),
        Target("baseline", [*serve, "--profile", "baseline"], "/ws/bench-{n}"),
        Target("bare", [sys.executable, str(HERE / "_bare_echo.py")], "/c{n}", echo=True),
    ]


def rss(proc: psutil.Process) -> int:
    return int(proc.memory_info().rss)


def cpu(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


def median_rss(proc: psutil.Process, samples: int, gap: float) -> float:
    values = []
    for _ in range(samples):
        values.append(rss(proc))
        time.sleep(gap)
    return statistics.median(values)


def run_one(target: Target, connections: int, hold: float, concurrency: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="capacity-") as scratch:
        command = [part.replace(SCRATCH, scratch) for part in target.command]
        if REDIS not in command:
            return _measure(target, command, connections, hold, concurrency)
        from wsctl.scenario.redis_server import RedisServer

        redis = RedisServer(scratch)
        redis.start()
        try:
            command = [redis.url if part == REDIS else part for part in command]
            return _measure(target, command, connections, hold, concurrency)
        finally:
            redis.stop()


def runnable(target: Target) -> bool:
    """Whether the target can run here (ref/redis needs redis-server and redis-py)."""
    if REDIS not in target.command:
        return True
    from wsctl.scenario.redis_server import missing

    reason = missing()
    if reason:
        print(f"{target.name}: skipped: {reason}", flush=True)
    return reason is None


def _measure(target: Target, command: list[str], connections: int, hold: float,
             concurrency: int) -> dict[str, float]:
    server, url = _servers.start(command)
    url += target.path
    try:
        proc = psutil.Process(server.pid)
        time.sleep(1.0)
        rss0 = median_rss(proc, 3, 0.2)
        cpu0 = cpu(proc)
        client_cmd = [sys.executable, str(HERE / "_clients.py"), url, str(connections),
                      "--concurrency", str(concurrency), "--hold", str(hold)]
        if target.echo:
            client_cmd.append("--echo")
        client = subprocess.Popen(client_cmd, stdout=subprocess.PIPE, text=True)
        assert client.stdout is not None
        opened = json.loads(client.stdout.readline())
        cpu_open = cpu(proc) - cpu0
        time.sleep(hold / 2)
        cpu1, t1 = cpu(proc), time.monotonic()
        steady = median_rss(proc, max(3, int(hold / 2) - 2), 1.0)
        cpu_hold = (cpu(proc) - cpu1) / (time.monotonic() - t1)
        done = json.loads(client.stdout.readline())
        client.wait(60)
        client.stdout.close()
        n = opened["open"]
        if n != connections or opened["errors"]:
            print(f"  ! {target.name}: {n}/{connections} open, errors {opened['errors']}")
        return {
            "open": n,
            "rss_idle_mib": rss0 / 2**20,
            "rss_per_conn_kib": (steady - rss0) / max(n, 1) / 1024,
            "handshakes_per_s": opened["rate"],
            "handshakes_per_cpu_s": n / cpu_open if cpu_open else 0.0,
            "cpu_share_holding": cpu_hold,
            "messages_per_s": done["messages"] / hold,
        }
    finally:
        _servers.stop(server)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--hold", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--only", action="append", help="run only these targets")
    args = parser.parse_args()

    chosen = [t for t in targets() if (not args.only or t.name in args.only) and runnable(t)]
    results: dict[str, list[dict[str, float]]] = {t.name: [] for t in chosen}
    for r in range(args.rounds):
        for target in chosen:  # interleaved, so drift on the machine hits every target
            figures = run_one(target, args.connections, args.hold, args.concurrency)
            results[target.name].append(figures)
            print(f"round {r + 1} {target.name:14s} " + " ".join(
                f"{k}={v:.1f}" for k, v in figures.items()), flush=True)

    med = {name: {k: statistics.median(f[k] for f in runs) for k in runs[0]}
           for name, runs in results.items()}
    print(f"\nmedians over {args.rounds} round(s), {args.connections} connections each\n")
    header = (f"{'target':14s} {'open':>6s} {'KiB/conn':>9s} {'idle MiB':>9s} "
              f"{'hs/s':>8s} {'hs/cpu-s':>9s} {'cpu hold':>9s} {'msg/s':>8s}")
    print(header)
    print("-" * len(header))
    for name, m in med.items():
        print(f"{name:14s} {m['open']:6.0f} {m['rss_per_conn_kib']:9.1f} "
              f"{m['rss_idle_mib']:9.1f} {m['handshakes_per_s']:8.0f} "
              f"{m['handshakes_per_cpu_s']:9.0f} {m['cpu_share_holding']:9.1%} "
              f"{m['messages_per_s']:8.0f}")
    if {"reference", "baseline", "bare"} <= med.keys():
        ref, base, bare = med["reference"], med["baseline"], med["bare"]
        print("\nratios (targets from issue 2):")
        print(f"  memory/conn reference / bare     = "
              f"{ref['rss_per_conn_kib'] / bare['rss_per_conn_kib']:.2f}  (target <= 1.25)")
        print(f"  memory/conn reference / baseline = "
              f"{ref['rss_per_conn_kib'] / base['rss_per_conn_kib']:.2f}  (target <= 0.50)")
        print(f"  handshakes/s reference / bare    = "
              f"{ref['handshakes_per_s'] / bare['handshakes_per_s']:.2f}  (target >= 0.90)")
        print(f"  handshakes/cpu-s reference / bare = "
              f"{ref['handshakes_per_cpu_s'] / bare['handshakes_per_cpu_s']:.2f}")
    for store in ("ref/sqlite", "ref/redis"):
        if {store, "bare"} <= med.keys():
            print(f"  memory/conn {store} / bare {' ' * (10 - len(store))}= "
                  f"{med[store]['rss_per_conn_kib'] / med['bare']['rss_per_conn_kib']:.2f}"
                  "  (target <= 1.25, issue 14)")
    if {"reference", "reference/pc"} <= med.keys():
        ref, pc = med["reference"], med["reference/pc"]
        print(f"  health scheduler vs per-connection: memory/conn "
              f"{ref['rss_per_conn_kib']:.1f} vs {pc['rss_per_conn_kib']:.1f} KiB, "
              f"cpu while holding {ref['cpu_share_holding']:.1%} vs "
              f"{pc['cpu_share_holding']:.1%}")


if __name__ == "__main__":
    main()
