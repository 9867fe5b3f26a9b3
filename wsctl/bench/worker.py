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
import sys
from typing import Any


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def main() -> int:
    from wsctl.bench.plan import BenchPlan
    from wsctl.bench.runner import run_plan
    from wsctl.errors import WsctlError
    from wsctl.fdlimit import raise_fd_limit

    try:
        plan = BenchPlan.from_dict(json.loads(sys.stdin.readline())["plan"])
        raise_fd_limit()
        _emit({"ready": __import__("os").getpid()})
        line = sys.stdin.readline()
        if not line:
            return 0  # the parent gave up before the start
        start_wall = float(json.loads(line)["start_wall"])
        result = run_plan(plan, start_wall=start_wall,
                          on_progress=lambda snap: _emit({"progress": snap}))
    except WsctlError as exc:
        _emit({"error": str(exc), "exit_code": exc.exit_code})
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        _emit({"error": f"{type(exc).__name__}: {exc}", "exit_code": 3})
        return 3
    _emit({"result": result.to_dict()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
