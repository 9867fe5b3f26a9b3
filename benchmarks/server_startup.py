"""Server start-up time: python start to listening, for the two profiles.

    python benchmarks/server_startup.py [--runs 20] [--tree before=/path/to/other/checkout]

A restart scenario's outage includes the time the server takes to start, so it is worth
measuring on its own. One run: spawn `python -m server_stub --port 0 --profile P` (what
`wsctl run` spawns) and time from the spawn to its first stdout line, which it prints
once it is listening; then SIGTERM it. The profiles and the reference points run
interleaved, N times each. Reference points: `python -c pass` (the interpreter's own
start-up, a floor no server change can go below) and `library` (the same server started
from Python without the CLI: `server_stub.run(ServerConfig(...))`, so the difference is
what the command line layer costs).

`--tree NAME=PATH` adds the same server commands run from another checkout (with
PYTHONPATH=PATH), interleaved: before/after a change on one machine state.

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

FLOOR = {"python -c pass": [sys.executable, "-c", "print('ready', flush=True)"]}


def server_commands(suffix: str = "", tree: str | None = None) -> dict[str, list[str]]:
    """Both profiles through the CLI and as a library, optionally from another checkout."""
    env = ["env", "-C", tree, f"PYTHONPATH={tree}"] if tree else []
    commands = {}
    for profile in ("reference", "baseline"):
        commands[profile + suffix] = [*env, sys.executable, "-m", "server_stub", "--port",
                                      "0", "--profile", profile]
    for profile in ("reference", "baseline"):
        commands[f"{profile}{suffix} (library)"] = [
            *env, sys.executable, "-c", LIBRARY.format(profile=profile)]
    return commands


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
    parser.add_argument("--tree", action="append", default=[], metavar="NAME=PATH",
                        help="also start the server of another checkout (repeat)")
    args = parser.parse_args()
    commands = {**FLOOR, **server_commands()}
    for item in args.tree:
        name, _, path = item.partition("=")
        commands.update(server_commands(f"@{name}", path))
    print(f"load average {os.getloadavg()[0]:.2f}; {args.runs} interleaved runs of each; "
          f"{sys.executable}", flush=True)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.runs):
        for name, command in commands.items():
            times[name].append(one_start(command))
    width = max(len(name) for name in commands)
    print(f"\n{'command':{width}} {'median ms':>9} {'p10':>7} {'p90':>7}")
    for name, values in times.items():
        ordered = sorted(values)
        p10, p90 = ordered[len(ordered) // 10], ordered[min(len(ordered) - 1,
                                                            len(ordered) * 9 // 10)]
        print(f"{name:{width}} {statistics.median(values) * 1e3:9.1f} {p10 * 1e3:7.1f} "
              f"{p90 * 1e3:7.1f}")
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
