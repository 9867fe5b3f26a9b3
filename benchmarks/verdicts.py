"""One verdict per build: does `wsctl run` give the same verdicts run after run, and
with one core kept busy by another process?

    python benchmarks/verdicts.py [--runs 3] [--busy-runs 3] [FILE ...] [-- RUN_ARGS ...]

Runs `wsctl run --json` (the bundled EP-0001 suite unless FILEs are given) `--runs`
times on the machine as it is, then `--busy-runs` times while a separate process spins
one core (a `while True: pass` loop), alternating quiet and busy runs so that a drift of
the machine's state over the hour does not look like the busy core's effect. Prints
each run's exit code, load, CPU steal (Linux: time the hypervisor gave this machine's
CPUs to others) and verdict line (with the reason of each INCONCLUSIVE criterion, and
each relative criterion's ratio and interval), then one row per criterion with its status in
every run and its measured figure's range, and flags:

- FLIP — the criterion PASSed in one run and FAILed in another (issue 13: never allowed);
- unsettled — INCONCLUSIVE in some runs (allowed: the report says why).

Exit 0 when no criterion flipped, 1 otherwise. Nothing is asserted on the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SPIN = "while True: pass"
WSCTL = str(Path(sys.executable).with_name("wsctl"))  # the console script beside this python


def run_once(files: list[str], extra: list[str], out: Path) -> tuple[int, str, float]:
    """One `wsctl run`; its exit code, last verdict line and wall time."""
    start = time.monotonic()
    proc = subprocess.run([WSCTL, "run", *files, "--json", str(out),
                           "--quiet", *extra],
                          capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    last = next((line for line in reversed(lines) if ": suite " in line), lines[-1] if lines
                else proc.stderr.strip()[-200:])
    return proc.returncode, last, time.monotonic() - start


def cpu_ticks() -> tuple[int, int] | None:
    """(steal, total) jiffies of all CPUs from /proc/stat (Linux), else None: the time
    the hypervisor gave this machine's CPUs to others, which no load average shows."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    return (fields[7] if len(fields) > 7 else 0), sum(fields[:8])


def steal_share(before: tuple[int, int] | None, after: tuple[int, int] | None) -> str:
    if before is None or after is None or after[1] <= before[1]:
        return ""
    return f", steal {100 * (after[0] - before[0]) / (after[1] - before[1]):.1f}%"


def criteria_of(path: Path) -> dict[str, tuple[str, float | None]]:
    """``scenario/metric -> (status, measured)`` from a run report."""
    return {name: (status, measured)
            for name, (status, measured, _) in criteria_with_reasons(path).items()}


def criteria_with_reasons(path: Path) -> dict[str, tuple[str, float | None, str]]:
    """``scenario/metric -> (status, measured, message)`` from a run report."""
    if not path.exists():
        return {}
    report = json.loads(path.read_text())
    out = {}
    for scenario in report["scenarios"]:
        for criterion in scenario["criteria"]:
            out[f"{scenario['name']}/{criterion['metric']}"] = (
                criterion["status"], criterion["measured"], criterion.get("message") or "")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="*", help="scenario files (default: the EP-0001 suite)")
    parser.add_argument("--runs", type=int, default=3, help="runs on the machine as it is")
    parser.add_argument("--busy-runs", type=int, default=3,
                        help="runs with one core kept busy by another process")
    args, extra = parser.parse_known_args()
    extra = [a for a in extra if a != "--"]
    plan = []
    for i in range(max(args.runs, args.busy_runs)):
        if i < args.runs:
            plan.append(False)
        if i < args.busy_runs:
            plan.append(True)
    results: list[tuple[bool, int, str, dict[str, tuple[str, float | None]]]] = []
    with tempfile.TemporaryDirectory(prefix="wsctl-verdicts-") as tmp:
        for n, busy in enumerate(plan, 1):
            spinner = subprocess.Popen([sys.executable, "-c", SPIN]) if busy else None
            try:
                out = Path(tmp) / f"run{n}.json"
                ticks = cpu_ticks()
                code, line, took = run_once(args.files, extra, out)
                stolen = steal_share(ticks, cpu_ticks())
            finally:
                if spinner is not None:
                    spinner.kill()
                    spinner.wait()
            label = "busy " if busy else "quiet"
            print(f"run {n:2d} {label} exit {code} ({took:.0f} s, load {os.getloadavg()[0]:.2f}"
                  f"{stolen}): {line}", flush=True)
            results.append((busy, code, line, criteria_of(out)))
            for name, (status, _, message) in criteria_with_reasons(out).items():
                # INCONCLUSIVE says why; a relative criterion's line carries its ratio and
                # interval (the table below shows only its measured figure, not the ratio).
                if status == "inconclusive" or "% interval" in message:
                    print(f"    {name}: {' '.join(message.split())}", flush=True)
    names = sorted({name for *_, crit in results for name in crit})
    print()
    print("criterion".ljust(48), " ".join(("B" if busy else "Q") + str(i + 1)
                                          for i, (busy, *_) in enumerate(results)))
    short = {"pass": "P", "fail": "F", "error": "E", "inconclusive": "I"}
    flips = 0
    for name in names:
        statuses = [crit.get(name, ("-", None))[0] for *_, crit in results]
        figures = [crit[name][1] for *_, crit in results
                   if name in crit and crit[name][1] is not None]
        flag = ""
        if "pass" in statuses and "fail" in statuses:
            flag, flips = "FLIP", flips + 1
        elif "inconclusive" in statuses:
            flag = "unsettled"
        spread = f"{min(figures):.4g}..{max(figures):.4g}" if figures else ""
        print(name[:48].ljust(48), "  ".join(short.get(s, s) for s in statuses), " ",
              spread, flag)
    print(f"\n{len(results)} runs, {flips} criteria flipped between PASS and FAIL")
    return 1 if flips else 0


if __name__ == "__main__":
    sys.exit(main())
