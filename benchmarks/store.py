"""Stream stores: append rate, replay latency, and the delivery latency each one adds.

    python benchmarks/store.py [--connections 5000] [--hold 20] [--skip-delivery]

Three measurements per store (memory; sqlite with synchronous=normal, the default;
sqlite with synchronous=full; and redis, a private redis-server on 127.0.0.1 with
persistence off, skipped with a reason when redis-server is not installed), each store
in a fresh temporary directory (and a fresh redis-server):

  appends         in process: 200 streams, events appended and committed in groups of
                  25 (what a 5 ms window gathers at 5,000 events/s): events per second,
                  and the time of one group commit (p50 / p99), which runs on the store's
                  writer thread, not the event loop
  replay          in process: 1,000 events per stream kept; the time to read a gap of 100
                  events (outside the 8-event hot window: from the file) and of 5 events
                  (inside it: from memory), p50 / p99 over 200 reads
  delivery        the real server (python -m server_stub --store X) at the default job
                  rate (1 event/s per stream), N connections, one stream each, read by a
                  client process: event ts -> received, p50 / p99 over the hold. The
                  client is the same for every store, so the difference from memory is
                  what the store adds (a group commit, up to 5 ms of batching).

Figures only; this machine is shared and noisy, so read them side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import _servers  # benchmarks/_servers.py: scripts here run from this folder's path

from server_stub.stores import StreamStore, store_maker

ROOT = Path(__file__).resolve().parents[1]

STORES = ("memory", "sqlite:{dir}/bench.db", "sqlite:{dir}/bench.db?synchronous=full",
          "{redis}")


@contextlib.contextmanager
def concrete(spec: str) -> Iterator[str]:
    """``spec`` made real for one measurement: a fresh scratch directory for a file, a
    fresh private redis-server (persistence off) for ``{redis}``."""
    from wsctl.scenario.redis_server import RedisServer

    with tempfile.TemporaryDirectory(prefix="store-bench-") as scratch:
        if spec != "{redis}":
            yield spec.format(dir=scratch)
            return
        redis = RedisServer(scratch)
        redis.start()
        try:
            yield redis.url
        finally:
            redis.stop()


def available(spec: str) -> bool:
    """Whether the store can be measured here (redis needs redis-server and redis-py)."""
    if spec != "{redis}":
        return True
    from wsctl.scenario.redis_server import missing

    reason = missing()
    if reason:
        print(f"redis: skipped: {reason}", flush=True)
    return reason is None


def label(spec: str) -> str:
    return "redis (local, no persistence)" if spec == "{redis}" else \
        spec.replace("{dir}/bench.db", "F")
DATA = {"step": 42, "total": 100, "status": "running", "message": "job 1: step 42/100 running"}


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def ms(values: list[float]) -> str:
    return f"{pct(values, 0.5) * 1000:7.2f} / {pct(values, 0.99) * 1000:7.2f} ms"


async def appends(spec: str, events: int = 50_000, streams: int = 200, group: int = 25
                  ) -> tuple[float, list[float]]:
    store: StreamStore = store_maker(spec)(1000, 60.0)
    await store.open()
    commits: list[float] = []
    began = time.perf_counter()
    for i in range(events):
        store.append(f"s{i % streams}", DATA, {"job": 1, "step": i})
        if i % group == group - 1:
            t = time.perf_counter()
            await store.commit()
            commits.append(time.perf_counter() - t)
    await store.commit()
    rate = events / (time.perf_counter() - began)
    await store.close()
    return rate, commits


async def replays(spec: str, streams: int = 20, per_stream: int = 1000, reads: int = 200
                  ) -> tuple[list[float], list[float]]:
    store: StreamStore = store_maker(spec)(1000, 3600.0)
    await store.open()
    for _ in range(per_stream):
        for s in range(streams):
            store.append(f"s{s}", DATA)
        await store.commit()
    cold: list[float] = []
    hot: list[float] = []
    for i in range(reads):
        stream = f"s{i % streams}"
        for gap, out in ((100, cold), (5, hot)):
            t = time.perf_counter()
            got = await store.read_history(stream, per_stream - gap)
            out.append(time.perf_counter() - t)
            assert len(got) == gap, (spec, gap, len(got))
    await store.close()
    return cold, hot


# -- delivery latency: the real server and a client process -------------------------


async def client(url: str, connections: int, hold: float) -> None:
    """Open ``connections`` streams, read for ``hold`` s, print latencies (s) as JSON."""
    from websockets.asyncio.client import connect

    latencies: list[float] = []
    sockets = []
    sem = asyncio.Semaphore(50)

    async def one(n: int) -> None:
        async with sem:
            ws = await connect(f"{url}/ws/lat-{n}", max_queue=None)
        sockets.append(ws)
        async for text in ws:
            received = time.time()
            message = json.loads(text)
            if message.get("type") == "event":
                latencies.append(received - message["ts"])

    tasks = [asyncio.create_task(one(n)) for n in range(connections)]
    while len(sockets) < connections and not any(t.done() for t in tasks):
        await asyncio.sleep(0.1)
    latencies.clear()  # count only once every connection is open
    await asyncio.sleep(hold)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    print(json.dumps({"open": len(sockets), "latencies": latencies}))


def delivery(spec: str, connections: int, hold: float) -> tuple[int, list[float]]:
    with concrete(spec) as store:
        server, url = _servers.start(
            [sys.executable, "-m", "server_stub", "--port", "0", "--log-level", "warning",
             "--max-connections", "0", "--max-streams-per-client", "0",
             "--store", store])
        try:
            out = subprocess.run(
                [sys.executable, __file__, "--client", url, "--connections", str(connections),
                 "--hold", str(hold)], capture_output=True, text=True, check=True, cwd=ROOT)
        finally:
            _servers.stop(server)
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    return int(figures["open"]), figures["latencies"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=5000)
    parser.add_argument("--hold", type=float, default=20.0)
    parser.add_argument("--skip-delivery", action="store_true")
    parser.add_argument("--client", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        asyncio.run(client(args.client, args.connections, args.hold))
        return
    stores = [spec for spec in STORES if available(spec)]
    for spec in stores:
        with concrete(spec) as store:
            rate, commits = asyncio.run(appends(store))
        with concrete(spec) as store:
            cold, hot = asyncio.run(replays(store))
        name = label(spec)
        print(f"{name:28s} appends {rate:9.0f}/s  commit of 25 {ms(commits)}  "
              f"replay 100 {ms(cold)}  replay 5 {ms(hot)}", flush=True)
    if args.skip_delivery:
        return
    print(f"\ndelivery latency, {args.connections} connections, 1 event/s each, "
          f"{args.hold:.0f} s hold (p50 / p99):")
    base: list[float] | None = None
    for spec in stores:
        opened, lat = delivery(spec, args.connections, args.hold)
        name = label(spec)
        extra = ""
        if base is None:
            base = lat
        else:
            extra = (f"  adds {(pct(lat, 0.5) - pct(base, 0.5)) * 1000:+.2f} / "
                     f"{(pct(lat, 0.99) - pct(base, 0.99)) * 1000:+.2f} ms")
        print(f"  {name:28s} open {opened:5d}  events {len(lat):7d}  {ms(lat)}{extra}",
              flush=True)


if __name__ == "__main__":
    main()
