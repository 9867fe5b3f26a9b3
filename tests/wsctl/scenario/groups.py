"""What tests of services ask the OS: which processes of a group still run."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

import psutil


def group_alive(pgid: int) -> list[int]:
    """Pids of processes of group ``pgid`` that are still running (zombies excluded)."""
    alive = []
    for proc in psutil.process_iter(["pid", "status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                alive.append(proc.pid)
        except (ProcessLookupError, psutil.Error, OSError):
            continue
    return alive


def running(pids: Iterable[int]) -> list[int]:
    """Those of ``pids`` that still run (zombies excluded)."""
    out = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.Error:
            continue
    return out


def pids_in(log: Path) -> list[int]:
    """The pids tests/services/seq_server.py announced in its log ("… pid N")."""
    return [int(pid) for pid in re.findall(r"pid (\d+)", log.read_text())]
