"""Server start-up time: python start to listening, for the two profiles.

    python benchmarks/server_startup.py [--runs 20]

A restart scenario's outage includes the time the server takes to start, so it is worth
measuring on its own. One run: spawn `python -m server_stub --port 0 --profile P` (what
`wsctl run` spawns) and time from the spawn to its first stdout line, which it prints
once it is listening; then SIGTERM it. The profiles and the reference points run
interleaved, N times each. Reference points: `python -c pass` (the interpreter's own
start-up, a floor no server change can go below) and `library` (the same server started
from Python without the CLI: `server_stub.run(ServerConfig(...))`, so the difference is
what the command line layer costs).

Printed: median, p10 and p90 per command, in milliseconds. Figures are printed, never
asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

LIBRARY = ("from server_stub import ServerConfig, run; "
           "run(ServerConfig(port=0, profile={profile!r}))")

COMMANDS = {
    "python -c pass": [sys.executable, "-c", "print('ready', flush=True)"],
    "reference": [sys.executable, "-m", "server_stub", "--port", "0", "--profile",
                  "reference"],
    "baseline": [sys.executable, "-m", "server_stub", "--port", "0", "--profile", "baseline"],
    "reference (library)": [sys.executable, "-c", LIBRARY.format(profile="reference")],
    "baseline (library)": [sys.executable, "-c", LIBRARY.format(profile="baseline")],
}


def one_start(command: list[str]) -> float:
    """Seconds from spawning ``command`` to its first line on stdout."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    elapsed = time.perf_counter() - started
    proc.terminate()
    proc.wait(15)
    proc.stdout.close()
    if not line:
        raise SystemExit(f"no output from {' '.join(command)}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}; {args.runs} interleaved runs of each; "
          f"{sys.executable}", flush=True)
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.runs):
        for name, command in COMMANDS.items():
            times[name].append(one_start(command))
    print(f"\n{'command':22} {'median ms':>9} {'p10':>7} {'p90':>7}")
    for name, values in times.items():
        ordered = sorted(values)
        p10, p90 = ordered[len(ordered) // 10], ordered[min(len(ordered) - 1,
                                                            len(ordered) * 9 // 10)]
        print(f"{name:22} {statistics.median(values) * 1e3:9.1f} {p10 * 1e3:7.1f} "
              f"{p90 * 1e3:7.1f}")
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
