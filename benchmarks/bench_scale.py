"""Scale target of ``wsctl bench``: 5,000 connections from one process, then 10,000 with
``--processes 2``, against the reference server on this machine.

    python benchmarks/bench_scale.py                       # the target run
    python benchmarks/bench_scale.py --small               # 500 / 1,000: a quick check
    python benchmarks/bench_scale.py --memory              # generator bytes per connection
    python benchmarks/bench_scale.py --connections 10000 --processes 2 --mode resume \
        --server-workers 1,2                               # the server on 1 vs 2 workers
    python benchmarks/bench_scale.py --connections 10000 --processes 2 --mode resume \
        --server-gc cpython,paced --rounds 3               # CPython's collector vs paced

``--server-gc cpython,paced`` runs every step once per ``--gc`` mode of the server
(docs/server.md, Design: the paced collector), ``--rounds N`` repeats the whole set with
the variants alternating, and prints the medians. ``--server-workers 1,2`` runs every
step once per worker count (``wsctl serve --workers N``;
docs/server.md, 'Several worker processes'). Besides what ``wsctl bench`` reports, each step
prints the server's CPU in cores and RSS summed over its process tree (supervisor and
workers, sampled here with psutil around the bench run), and with ``--mode resume`` the
stream events delivered per second (the ``delivery_latency`` count over the measured
window), and from the server's ``/metrics`` its full collections and longest collection
pause (the paced collector's figures: nan with ``--gc cpython``), so that a tail can be
told from a collector's pause. With workers, ``--server-pid`` is not given to the bench
(it would read the supervisor alone) and its ``server.*`` figures come from one worker's
``/metrics``: read the tree figures.

``--memory``: what one held connection costs the *generator*, for ``wsctl bench`` (one
process, picows transport) and ``wsctl probe`` (its worker processes), against a picows echo
server in its own process (benchmarks/transports.py's; fd soft limit raised to the hard one,
20,000 here, in every process). Each tool runs twice, with a few connections and with
``--memory-connections`` (10,000), ramped at ``--rate`` and held ``--hold`` seconds at one
message per 5 s; the RSS of its whole process tree is sampled with psutil once a second
during the hold (the median is kept; the most connections the server held with it). Bytes per
held connection = (RSS at N - RSS at the few) / (held at N - held at the few): start-up,
imports and the worker processes' own base cancel out.

A fresh reference server runs for each step in its own process with --max-connections 12000
and --max-streams-per-client 0 (every client here is one address; its
RLIMIT_NOFILE soft limit raised to the hard limit). Each step runs ``wsctl bench`` as a
separate process with ``--json`` and prints connections held, connect_time p50/p99,
server.rss_per_connection and the generator's CPU. The machine's load average is printed
too: the figures depend on what else runs on its two cores.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _servers import stop, tree_cpu

WSCTL = str(Path(sys.executable).with_name("wsctl"))


def _raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


def server_gc_figures(url: str) -> tuple[float, float]:
    """(full collections, longest pause in ms over every generation) from the server's
    ``/metrics``; NaNs when the server does not pace its collector (``--gc cpython``) or
    does not answer."""
    try:
        with urllib.request.urlopen(url.replace("ws://", "http://", 1) + "/metrics",
                                    timeout=10) as reply:
            text = reply.read().decode()
    except OSError:
        return float("nan"), float("nan")
    full, pauses = float("nan"), []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "wsctl_server_gc_collections_total" and \
                    sample.labels.get("generation") == "2":
                full = float(sample.value)
            elif sample.name == "wsctl_server_gc_pause_max_seconds":
                pauses.append(float(sample.value) * 1000)
    return full, max(pauses, default=float("nan"))


def run_step(url: str, pid: int, connections: int, processes: int, rate: float,
             hold: float, message_rate: float, mode: str = "echo",
             workers: int = 1) -> dict:
    ramp = connections / rate
    server = psutil.Process(pid)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.json"
        cmd = [WSCTL, "bench", url + "/ws/scale-{n}", "--connections", str(connections),
               "--connect-rate", str(rate), "--message-rate", str(message_rate),
               "--duration", f"{ramp + hold:.0f}s", "--processes", str(processes),
               "--mode", mode, "--connect-timeout", "30s", "--json", str(out), "--quiet"]
        if workers == 1:  # with workers the bench would read the supervisor's figures
            cmd += ["--server-pid", str(pid)]
        print("$", " ".join(cmd), flush=True)
        started = time.monotonic()
        cpu_before = tree_cpu(server)
        bench = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True)
        rss: list[int] = []
        while bench.poll() is None:  # the server tree's RSS during the hold
            time.sleep(1.0)
            if ramp + 2 < time.monotonic() - started < ramp + hold:
                rss.append(_tree_rss(server))
        stdout, stderr = bench.communicate()
        wall = time.monotonic() - started
        server_cpu = (tree_cpu(server) - cpu_before) / wall
        gc_full, gc_pause_ms = server_gc_figures(url)
        done = subprocess.CompletedProcess(cmd, bench.returncode, stdout, stderr)
        if done.returncode not in (0, 1) or not out.exists():
            print(done.stdout[-2000:], done.stderr[-2000:], sep="\n")
            raise SystemExit(f"wsctl bench exited {done.returncode}")
        obj = json.loads(out.read_text())
    m = obj["metrics"]

    def value(name: str) -> float:
        return float(m[name]["value"]) if name in m else float("nan")

    # the measured window, from the sends in it and their rate
    measured = value("messages.sent") / value("messages.per_s") if value(
        "messages.per_s") else float("nan")
    events = (m.get("delivery_latency") or {}).get("count") or 0
    figures = {
        "connections": connections, "processes": processes, "server_workers": workers,
        "mode": mode, "wall_s": round(wall, 1),
        "events_per_s": round(events / measured, 1) if mode == "resume" else None,
        "server_tree_cpu_cores": round(server_cpu, 2),
        "server_tree_rss_mib": round(statistics.median(rss) / 2**20, 1) if rss else None,
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
        "server_gc_full": gc_full, "server_gc_pause_max_ms": round(gc_pause_ms, 1),
        "server_steady_sources": (obj["details"].get("server", {}).get("steady") or {}
                                  ).get("sources"),
        "warnings": obj["details"].get("warnings", []),
        "errors": {k: v["value"] for k, v in m.items()
                   if k.startswith("errors.") and v["value"]},
    }
    print(json.dumps(figures), flush=True)
    return figures


# --- --memory: the generator's bytes per held connection -----------------------------------


def _tree_rss(proc: psutil.Process) -> int:
    """RSS of ``proc`` and every descendant, in bytes (0 once it is gone)."""
    total = 0
    with contextlib.suppress(psutil.Error):
        for p in [proc, *proc.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
    return total


def _held(server: psutil.Process) -> int:
    """Connections the echo server holds (its ESTABLISHED TCP sockets)."""
    with contextlib.suppress(psutil.Error):
        return sum(1 for c in server.net_connections("tcp")
                   if c.status == psutil.CONN_ESTABLISHED)
    return 0


def memory_run(tool: str, url: str, server: psutil.Process, connections: int, rate: float,
               hold: float) -> dict[str, Any]:
    """One run of ``tool`` (bench or probe) holding ``connections``: peak tree RSS, held."""
    ramp = connections / rate
    duration = f"{ramp + hold:.0f}s"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.json"
        if tool == "bench":
            cmd = [WSCTL, "bench", url + "/m-{n}", "--connections", str(connections),
                   "--connect-rate", f"{rate:g}", "--message-rate", "0.2", "--duration",
                   duration, "--connect-timeout", "30s", "--transport", "picows",
                   "--json", str(out), "--quiet"]
        else:
            cmd = [WSCTL, "probe", url + "/m-{n}", "--count", str(connections), "--mode",
                   "echo", "--rate", "0.2", "--spawn-rate", f"{rate:g}", "--duration",
                   duration, "--view", "quiet", "--json", str(out)]
        print("$", " ".join(cmd), flush=True)
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True, preexec_fn=_raise_nofile)
        watch = psutil.Process(proc.pid)
        rss: list[int] = []
        peak_held = 0
        started = time.monotonic()
        while proc.poll() is None:
            time.sleep(1.0)
            # the hold: every connection due has had time to open, none is closing yet
            if ramp + 2 < time.monotonic() - started < ramp + hold:
                rss.append(_tree_rss(watch))
                peak_held = max(peak_held, _held(server))
        stderr = proc.stderr.read() if proc.stderr else ""
        if proc.returncode not in (0, 1) or not out.exists():
            print(stderr[-2000:])
            raise SystemExit(f"wsctl {tool} exited {proc.returncode}")
    return {"tool": tool, "connections": connections, "held": peak_held,
            "rss": int(statistics.median(rss)) if rss else 0}


def memory_main(args: argparse.Namespace) -> None:
    few = 400  # probes: 2 worker processes at both sizes (one per 200 probes, one per core)
    echo = [sys.executable, str(Path(__file__).resolve().parent / "transports.py"),
            "--serve-echo"]
    server_proc = subprocess.Popen(echo, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                   text=True, preexec_fn=_raise_nofile)
    assert server_proc.stdout is not None
    line = server_proc.stdout.readline()
    url = line[line.index("ws://"):].split()[0] if "ws://" in line else ""
    if not url:
        stop(server_proc)
        raise SystemExit(f"echo server did not start: {line!r}")
    server = psutil.Process(server_proc.pid)
    print(_load(), f"; picows echo server {url}", flush=True)
    rows = []
    try:
        for tool in args.memory_tools.split(","):
            small = memory_run(tool, url, server, few, args.rate, args.hold)
            big = memory_run(tool, url, server, args.memory_connections, args.rate, args.hold)
            per = ((big["rss"] - small["rss"]) / (big["held"] - small["held"])
                   if big["held"] > small["held"] else float("nan"))
            rows.append({"tool": tool, "small": small, "big": big, "bytes_per_conn": per})
            print(json.dumps(rows[-1]), _load(), flush=True)
    finally:
        stop(server_proc)
    print()
    print(f"{'tool':<12} {'held':>6} {'RSS MiB':>8} {'held':>6} {'RSS MiB':>8} "
          f"{'bytes/conn':>10} {'KiB/conn':>8}")
    for r in rows:
        s, b = r["small"], r["big"]
        print(f"wsctl {r['tool']:<6} {s['held']:>6} {s['rss'] / 2**20:>8.1f} {b['held']:>6} "
              f"{b['rss'] / 2**20:>8.1f} {r['bytes_per_conn']:>10,.0f} "
              f"{r['bytes_per_conn'] / 1024:>8.1f}")
    print(_load())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="500 and 1,000 connections")
    parser.add_argument("--rate", type=float, default=500.0, help="connections per second")
    parser.add_argument("--hold", type=float, default=15.0, help="seconds held after the ramp")
    parser.add_argument("--message-rate", type=float, default=0.2,
                        help="echo messages per second per connection")
    parser.add_argument("--job-rate", type=float, default=1.0,
                        help="the server's events per second per stream (its default: 1)")
    parser.add_argument("--connections", type=int, default=0,
                        help="one step of this many connections instead of the usual two")
    parser.add_argument("--processes", type=int, default=0,
                        help="--connections: bench processes (default: one per 5,000)")
    parser.add_argument("--mode", choices=("echo", "resume"), default="echo",
                        help="bench mode; resume also counts stream events delivered/s")
    parser.add_argument("--server-workers", default="1",
                        help="comma list of server --workers counts; each step runs once "
                             "per count (e.g. 1,2)")
    parser.add_argument("--server-gc", default="auto",
                        help="comma list of server --gc modes; each step runs once per mode "
                             "(e.g. cpython,paced: CPython's collector beside the paced one)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="repeat every step; the variants alternate within a round and "
                             "a table of medians over rounds follows")
    parser.add_argument("--server-arg", action="append", default=[],
                        help="extra option for the server, e.g. --server-arg=--ping-interval=20s")
    parser.add_argument("--memory", action="store_true",
                        help="generator bytes per held connection (bench and probe)")
    parser.add_argument("--memory-connections", type=int, default=10_000,
                        help="--memory: connections of the large run")
    parser.add_argument("--memory-tools", default="bench,probe",
                        help="--memory: which of bench,probe to measure")
    args = parser.parse_args()
    if args.memory:
        memory_main(args)
        return
    steps = [(500, 1), (1000, 2)] if args.small else [(5000, 1), (10000, 2)]
    if args.connections:
        steps = [(args.connections, args.processes or -(-args.connections // 5000))]
    counts = [int(n) for n in args.server_workers.split(",")]
    gcs = args.server_gc.split(",")
    print(_load(), f"; server --job-rate {args.job_rate}", *args.server_arg, flush=True)
    rows = []
    for _ in range(args.rounds):
        for connections, processes in steps:
            for workers in counts:
                for gc_mode in gcs:
                    # A fresh server per step: RSS rarely shrinks, so a reused one would
                    # under-report.
                    server, url = _start_server(args.job_rate,
                                                [*args.server_arg, "--gc", gc_mode], workers)
                    try:
                        row = run_step(url, server.pid, connections, processes, args.rate,
                                       args.hold, args.message_rate, args.mode, workers)
                    finally:
                        stop(server)
                    rows.append(row | {"server_gc": gc_mode})
                    print(_load(), flush=True)
    print()
    _table(rows)
    if args.rounds > 1:
        print(f"\nmedians over {args.rounds} rounds:")
        groups: dict[tuple[Any, ...], list[dict]] = {}
        for r in rows:
            groups.setdefault((r["connections"], r["processes"], r["server_workers"],
                               r["server_gc"]), []).append(r)
        _table([{k: (statistics.median(x[k] for x in group)
                     if isinstance(v, int | float) and not isinstance(v, bool) and
                     all(x[k] is not None for x in group) else v)
                 for k, v in group[0].items()} for group in groups.values()])


def _table(rows: list[dict]) -> None:
    print(f"{'conns':>6} {'procs':>5} {'wkrs':>4} {'gc':>7} {'held':>6} {'connect p50':>11} "
          f"{'p99':>9} {'rtt p99':>9} {'events/s':>9} {'srv cores':>9} {'RSS/conn':>9} "
          f"{'gen CPU':>8} {'sends/CPU-s':>11} {'srv GC full':>11} {'longest':>9}")
    for r in rows:
        events = "-" if r["events_per_s"] is None else f"{r['events_per_s']:.0f}"
        print(f"{r['connections']:>6.0f} {r['processes']:>5.0f} {r['server_workers']:>4.0f} "
              f"{r['server_gc']:>7} {r['held']:>6.0f} {r['connect_p50_ms']:>8.1f} ms "
              f"{r['connect_p99_ms']:>6.0f} ms {r['rtt_p99_ms']:>6.0f} ms {events:>9} "
              f"{r['server_tree_cpu_cores']:>9.2f} "
              f"{r['server_rss_per_connection_kib']:>5.1f} KiB {r['generator_cpu_cores']:>8.2f} "
              f"{r['generator_sends_per_cpu_s']:>11.0f} {r['server_gc_full']:>11.0f} "
              f"{r['server_gc_pause_max_ms']:>6.0f} ms")


def _start_server(job_rate: float, extra: list[str],
                  workers: int = 1) -> tuple[subprocess.Popen[str], str]:
    """The reference server in its own process (or a supervisor and ``workers`` processes),
    its fd soft limit raised to the hard one."""
    cmd = [sys.executable, "-m", "server_stub", "--port", "0", "--max-connections", "12000",
           "--max-streams-per-client", "0",  # every client here is 127.0.0.1
           "--log-level", "warning", "--job-rate", str(job_rate), "--workers", str(workers),
           *extra]
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
