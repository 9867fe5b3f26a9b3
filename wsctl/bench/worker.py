"""``python -m wsctl.bench.worker``: one worker process of ``wsctl bench --processes K``.

Line protocol (JSON, one object a line):

    parent -> worker (stdin):  {"plan": {...}}           then  {"start_wall": 1764140000.5}
    worker -> parent (stdout): {"ready": PID}            after imports, before connecting
                               {"progress": {...}}       about once a second
                               {"result": {...}}         the worker's Result, at the end
                               {"error": "...", "exit_code": N}   instead, when it failed

A worker raises its RLIMIT_NOFILE soft limit to the hard limit before connecting.
"""

from __future__ import annotations

import json
import os
import sys

from wsctl.workerproc import emit, report_failures


def main() -> int:
    return report_failures(_work)


def _work() -> int:
    from wsctl.bench.plan import BenchPlan
    from wsctl.bench.runner import run_plan
    from wsctl.fdlimit import raise_fd_limit

    plan = BenchPlan.from_dict(json.loads(sys.stdin.readline())["plan"])
    raise_fd_limit()
    emit({"ready": os.getpid()})
    line = sys.stdin.readline()
    if not line:
        return 0  # the parent gave up before the start
    start_wall = float(json.loads(line)["start_wall"])
    result = run_plan(plan, start_wall=start_wall,
                      on_progress=lambda snap: emit({"progress": snap}))
    emit({"result": result.to_dict()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
