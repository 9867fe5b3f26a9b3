"""Connection set-up, one at a time: EP-0001's "20% faster" for the two server profiles.

    python benchmarks/handshake.py [--connections 300] [--rounds 3] [--no-deflate]

`wsctl run`'s `after` scenario compares connect_time with 300 clients arriving within a
second, where queueing in the server and in the probe process dominates. This script
takes queueing out: against each profile (`wsctl serve --profile baseline|reference`, a
fresh process per round, the profiles interleaved), one client opens N connections in a
row — TCP connect and opening handshake, offering permessage-deflate as browsers do —
reads the welcome, closes, and opens the next. Printed per profile: the median and p90
handshake time over rounds (medians of each round's figure), and reference / baseline.

Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time

import _servers  # benchmarks/_servers.py: scripts here run from this folder's path
from websockets.asyncio.client import connect

PROFILES = ("baseline", "reference")


async def handshakes(url: str, count: int, deflate: bool) -> list[float]:
    """Seconds from the TCP connect to the end of the opening handshake, one after another."""
    times = []
    for i in range(count):
        started = time.perf_counter()
        ws = await connect(f"{url}/ws/hs-{i}", compression="deflate" if deflate else None,
                           open_timeout=10)
        times.append(time.perf_counter() - started)
        await ws.recv()  # the welcome: the server has attached the stream
        await ws.close()
    return times


def one_round(profile: str, count: int, deflate: bool) -> tuple[float, float]:
    server, url = _servers.start([sys.executable, "-m", "server_stub", "--port", "0",
                                  "--profile", profile, "--log-level", "warning"])
    try:
        times = sorted(asyncio.run(handshakes(url, count, deflate)))
    finally:
        _servers.stop(server)
    return statistics.median(times), times[int(len(times) * 0.9)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-deflate", action="store_true",
                        help="do not offer permessage-deflate")
    args = parser.parse_args()
    deflate = not args.no_deflate
    figures: dict[str, list[tuple[float, float]]] = {p: [] for p in PROFILES}
    print(f"load average {os.getloadavg()[0]:.2f}; {args.connections} handshakes in a row per "
          f"round, {args.rounds} rounds, deflate {'offered' if deflate else 'not offered'}",
          flush=True)
    for r in range(args.rounds):
        for profile in PROFILES:
            p50, p90 = one_round(profile, args.connections, deflate)
            figures[profile].append((p50, p90))
            print(f"  round {r + 1} {profile:9} p50 {p50 * 1e3:.3f} ms  p90 {p90 * 1e3:.3f} ms",
                  flush=True)
    print(f"\n{'profile':9} {'p50 ms':>8} {'p90 ms':>8}")
    med = {}
    for profile in PROFILES:
        p50 = statistics.median(f[0] for f in figures[profile])
        p90 = statistics.median(f[1] for f in figures[profile])
        med[profile] = p50
        print(f"{profile:9} {p50 * 1e3:8.3f} {p90 * 1e3:8.3f}")
    print(f"\nreference / baseline (p50): {med['reference'] / med['baseline']:.2f} "
          "(EP-0001's target: <= 0.80)")
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
