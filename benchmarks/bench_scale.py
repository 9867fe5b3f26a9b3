"""Scale target of ``wsctl bench``: 5,000 connections from one process, then 10,000 with
``--processes 2``, against the reference server on this machine.

    python benchmarks/bench_scale.py                       # the target run
    python benchmarks/bench_scale.py --small               # 500 / 1,000: a quick check

A fresh reference server runs for each step in its own process with --max-connections 12000 (its
RLIMIT_NOFILE soft limit raised to the hard limit). Each step runs ``wsctl bench`` as a
separate process with ``--json`` and prints connections held, connect_time p50/p99,
server.rss_per_connection and the generator's CPU. The machine's load average is printed
too: the figures depend on what else runs on its two cores.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _servers import stop

WSCTL = str(Path(sys.executable).with_name("wsctl"))


def _raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


def run_step(url: str, pid: int, connections: int, processes: int, rate: float,
             hold: float, message_rate: float) -> dict:
    ramp = connections / rate
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.json"
        cmd = [WSCTL, "bench", url + "/ws/scale-{n}", "--connections", str(connections),
               "--connect-rate", str(rate), "--message-rate", str(message_rate),
               "--duration", f"{ramp + hold:.0f}s", "--processes", str(processes),
               "--server-pid", str(pid), "--connect-timeout", "30s", "--json", str(out),
               "--quiet"]
        print("$", " ".join(cmd), flush=True)
        started = time.monotonic()
        done = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.monotonic() - started
        if done.returncode not in (0, 1) or not out.exists():
            print(done.stdout[-2000:], done.stderr[-2000:], sep="\n")
            raise SystemExit(f"wsctl bench exited {done.returncode}")
        obj = json.loads(out.read_text())
    m = obj["metrics"]

    def value(name: str) -> float:
        return float(m[name]["value"]) if name in m else float("nan")

    figures = {
        "connections": connections, "processes": processes, "wall_s": round(wall, 1),
        "held": int(value("connections.held")),
        "failed": int(value("connections.failed")),
        "lost": int(value("connections.lost")),
        "connect_p50_ms": round(m["connect_time"]["p50"] * 1000, 2),
        "connect_p99_ms": round(m["connect_time"]["p99"] * 1000, 2),
        "rtt_p50_ms": round((m["rtt"]["p50"] or 0) * 1000, 2),
        "rtt_p99_ms": round((m["rtt"]["p99"] or 0) * 1000, 2),
        "server_rss_per_connection_kib": round(value("server.rss_per_connection") / 1024, 1),
        "server_connections": value("server.connections"),
        "server_cpu": round(value("server.cpu"), 2),
        "generator_cpu_cores": round(value("generator.cpu"), 2),
        "generator_sends_per_cpu_s": round(value("generator.sends_per_cpu_s"), 1),
        "loop_lag_p99_ms": round((m["generator.loop_lag"]["p99"] or 0) * 1000, 1),
        "server_steady_sources": (obj["details"].get("server", {}).get("steady") or {}
                                  ).get("sources"),
        "warnings": obj["details"].get("warnings", []),
        "errors": {k: v["value"] for k, v in m.items()
                   if k.startswith("errors.") and v["value"]},
    }
    print(json.dumps(figures), flush=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="500 and 1,000 connections")
    parser.add_argument("--rate", type=float, default=500.0, help="connections per second")
    parser.add_argument("--hold", type=float, default=15.0, help="seconds held after the ramp")
    parser.add_argument("--message-rate", type=float, default=0.2,
                        help="echo messages per second per connection")
    parser.add_argument("--job-rate", type=float, default=1.0,
                        help="the server's events per second per stream (its default: 1)")
    parser.add_argument("--server-arg", action="append", default=[],
                        help="extra option for the server, e.g. --server-arg=--ping-interval=20s")
    args = parser.parse_args()
    steps = [(500, 1), (1000, 2)] if args.small else [(5000, 1), (10000, 2)]
    print(_load(), f"; server --job-rate {args.job_rate}", *args.server_arg, flush=True)
    rows = []
    for connections, processes in steps:
        # A fresh server per step: RSS rarely shrinks, so a reused one would under-report.
        server, url = _start_server(args.job_rate, args.server_arg)
        try:
            rows.append(run_step(url, server.pid, connections, processes, args.rate,
                                 args.hold, args.message_rate))
        finally:
            stop(server)
        print(_load(), flush=True)
    print()
    print(f"{'conns':>6} {'procs':>5} {'held':>6} {'connect p50':>11} {'p99':>9} "
          f"{'RSS/conn':>9} {'gen CPU':>8} {'sends/CPU-s':>11}")
    for r in rows:
        print(f"{r['connections']:>6} {r['processes']:>5} {r['held']:>6} "
              f"{r['connect_p50_ms']:>8.1f} ms {r['connect_p99_ms']:>6.0f} ms "
              f"{r['server_rss_per_connection_kib']:>5.1f} KiB {r['generator_cpu_cores']:>8.2f} "
              f"{r['generator_sends_per_cpu_s']:>11.0f}")


def _start_server(job_rate: float, extra: list[str]) -> tuple[subprocess.Popen[str], str]:
    """The reference server in its own process, its fd soft limit raised to the hard one."""
    cmd = [sys.executable, "-m", "server_stub", "--port", "0", "--max-connections", "12000",
           "--log-level", "warning", "--job-rate", str(job_rate), *extra]
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True, preexec_fn=_raise_nofile)
    assert server.stdout is not None
    line = server.stdout.readline()
    if "ws://" not in line:
        stop(server)
        raise SystemExit(f"server did not start: {line!r}")
    url = line.split("listening on ", 1)[1].split()[0]
    return server, url


if __name__ == "__main__":
    main()
