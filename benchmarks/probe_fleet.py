"""Probe fleet cost: RSS per probe and CPU share of one process holding thousands of probes.

    python benchmarks/probe_fleet.py [--counts 2000 5000] [--window 10] [--job-rate 1]

The reference server runs in its own process (``python -m server_stub``, 1 s heartbeat).
For each count, a fresh probe process (this file with ``--child``) starts that many
resume-mode probes, one stream each, waits until every probe is open and welcomed,
lets things settle, then measures over ``--window`` seconds:

  rss/probe   (RSS at steady state - RSS after imports, before any probe) / count
  cpu share   probe-process CPU seconds / wall seconds (1.0 = one core busy)

Each probe sends an application ping every second (the server's welcome says 1 s) and
receives its stream's events (``--job-rate`` per second). Target: 5,000 probes in one
process at <= 30 KiB RSS per probe. One process may open at most 20,000 descriptors.
Not a test: it prints figures and never fails on them.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import resource
import subprocess
import sys
import time

import _servers  # benchmarks/_servers.py: scripts here run from this folder's path
import psutil


def child(url: str, count: int, window: float, settle: float, server_pid: int) -> None:
    """Hold ``count`` probes and print one JSON line of figures."""
    from wsctl.backoff import BackoffPolicy
    from wsctl.metrics import Histogram
    from wsctl.probe import Fleet, ProbeConfig, State

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, count + 1000), hard))
    proc = psutil.Process()
    server = psutil.Process(server_pid)

    async def main() -> dict[str, object]:
        gc.collect()
        rss0 = proc.memory_info().rss
        config = ProbeConfig(url + "/ws/bench-{n}", mode="resume", connect_timeout=30,
                             backoff=BackoffPolicy(base=0.5, cap=5))
        fleet = Fleet(config, count, seed=1, spawn_rate=1000, tune_gc=True)
        task = asyncio.create_task(fleet.run())
        t0 = time.monotonic()
        while True:
            await asyncio.sleep(0.25)
            welcomed = sum(1 for p in fleet.probes if p.machine.state is State.OPEN
                           and p.machine.epoch is not None)
            if welcomed == count:
                break
            if time.monotonic() - t0 > 120:
                raise SystemExit(f"only {welcomed} of {count} probes welcomed after 120 s")
        ramp = time.monotonic() - t0
        await asyncio.sleep(settle)
        gc.collect()
        cpu0, wall0 = proc.cpu_times(), time.monotonic()
        server_cpu0 = sum(server.cpu_times()[:2])
        fleet.loop_lag = Histogram("loop_lag")  # lag within the window only
        received0 = fleet.metrics.counters["messages.received"]
        rtt0 = fleet.metrics.histograms["rtt"].count
        await asyncio.sleep(window)
        cpu1, wall1 = proc.cpu_times(), time.monotonic()
        server_cpu = sum(server.cpu_times()[:2]) - server_cpu0
        lag = fleet.loop_lag.summary()
        rss1 = proc.memory_info().rss
        counters = dict(fleet.metrics.counters)
        rtt = fleet.metrics.histograms["rtt"].summary()
        open_now = fleet.states()["open"]
        fleet.stop()
        await task
        cpu = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
        return {
            "count": count,
            "open": open_now,
            "ramp_s": round(ramp, 2),
            "rss_before_mib": round(rss0 / 2**20, 1),
            "rss_held_mib": round(rss1 / 2**20, 1),
            "rss_per_probe_kib": round((rss1 - rss0) / count / 1024, 2),
            "cpu_share": round(cpu / (wall1 - wall0), 3),
            "server_cpu_share": round(server_cpu / (wall1 - wall0), 3),
            "loop_lag_p99_ms": round((lag["p99"] or 0) * 1000, 1),
            "events_per_s": round((counters["messages.received"] - received0)
                                  / (wall1 - wall0)),
            "pongs_per_s": round((fleet.metrics.histograms["rtt"].count - rtt0)
                                 / (wall1 - wall0)),
            "rtt_p50_ms": round((rtt["p50"] or 0) * 1000, 2),
            "rtt_p99_ms": round((rtt["p99"] or 0) * 1000, 2),
            "lost": counters["messages.lost"],
            "connections_lost": counters["connections.lost"],
        }

    print(json.dumps(asyncio.run(main())), flush=True)


def start_server(job_rate: float) -> tuple[subprocess.Popen[str], str]:
    return _servers.start(
        [sys.executable, "-m", "server_stub", "--port", "0", "--ping-interval", "1",
         "--ping-timeout", "2", "--job-rate", str(job_rate), "--job-steps", "1000000",
         "--max-connections", "20000", "--log-level", "warning"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[2000, 5000])
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--settle", type=float, default=3.0)
    parser.add_argument("--job-rate", type=float, default=1.0)
    parser.add_argument("--child", nargs=3, metavar=("URL", "COUNT", "PID"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), args.window, args.settle,
              int(args.child[2]))
        return
    rows = []
    for count in args.counts:
        server, url = start_server(args.job_rate)  # a fresh server per count
        try:
            out = subprocess.run(
                [sys.executable, __file__, "--child", url, str(count), str(server.pid), "--window",
                 str(args.window), "--settle", str(args.settle)],
                capture_output=True, text=True, timeout=600)
            if out.returncode != 0:
                raise SystemExit(f"probe process failed:\n{out.stderr[-2000:]}")
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        finally:
            _servers.stop(server)
    print(f"probe fleet, resume mode, 1 s app heartbeat, {args.job_rate:g} event/s per "
          f"stream, {args.window:g} s window, {psutil.cpu_count()} cores")
    header = ("probes", "open", "ramp s", "RSS/probe KiB", "RSS MiB", "CPU share",
              "server CPU", "loop lag p99", "events/s", "pongs/s", "rtt p50 ms", "rtt p99 ms",
              "conns lost", "msgs lost")
    print(f"load average before: {' '.join(f'{x:.1f}' for x in psutil.getloadavg())}")
    print("  ".join(f"{h:>13}" for h in header))
    for r in rows:
        cells = (r["count"], r["open"], r["ramp_s"], r["rss_per_probe_kib"],
                 r["rss_held_mib"], r["cpu_share"], r["server_cpu_share"],
                 r["loop_lag_p99_ms"], r["events_per_s"], r["pongs_per_s"], r["rtt_p50_ms"],
                 r["rtt_p99_ms"], r["connections_lost"], r["lost"])
        print("  ".join(f"{c:>13}" for c in cells))
    for r in rows:
        verdict = "meets" if r["rss_per_probe_kib"] <= 30 else "MISSES"
        print(f"{r['count']} probes: {r['rss_per_probe_kib']} KiB/probe {verdict} the "
              "30 KiB target")


if __name__ == "__main__":
    main()
