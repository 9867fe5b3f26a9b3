"""Run a fleet the way the CLI does: views, records file, metrics endpoint, signals,
and the verdict on whether the target was reachable at all."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import signal
import socket
import ssl
import sys
from collections import Counter
from pathlib import Path
from typing import IO, Literal

from rich.console import Console

from wsctl.errors import InvalidInput, PortInUse, Unreachable
from wsctl.metrics import Result
from wsctl.probe.console import print_progress, show_live
from wsctl.probe.exporter import MetricsServer, fault_instant
from wsctl.probe.machine import Record
from wsctl.probe.workers import AnyFleet

View = Literal["auto", "live", "plain", "quiet"]


def read_fault_file(path: Path) -> float | None:
    """``--fault-file``: the fault instant a script wrote there before sending SIGUSR1
    (see ``fault_instant``); None, with a warning on stderr, if it cannot be read (the
    signal's arrival is then the instant)."""
    try:
        return fault_instant(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else str(exc)
        print(f"wsctl probe: warning: --fault-file {path}: {why}; the fault is taken to "
              "have happened when SIGUSR1 arrived", file=sys.stderr, flush=True)
        return None


def tls_context(cacert: Path | None, insecure: bool) -> ssl.SSLContext | None:
    """The client TLS context for ``--cacert`` / ``--insecure`` (None: system defaults)."""
    if cacert is None and not insecure:
        return None
    try:
        context = ssl.create_default_context(cafile=str(cacert) if cacert else None)
    except (OSError, ssl.SSLError) as exc:
        raise InvalidInput(f"--cacert {cacert}: cannot load CA certificates: {exc}") from exc
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class RecordsWriter:
    """``--records FILE``: one JSON line per state change, written as it happens."""

    def __init__(self, path: Path, fleet_ref: list[AnyFleet]) -> None:
        try:
            self._file: IO[str] = path.open("w", encoding="utf-8")
        except OSError as exc:
            raise InvalidInput(f"--records {path}: {exc.strerror}") from exc
        self._fleet_ref = fleet_ref

    def __call__(self, records: list[Record]) -> None:
        offset = self._fleet_ref[0].wall_offset if self._fleet_ref else 0.0
        for record in records:
            self._file.write(json.dumps(record.to_json(offset)) + "\n")

    def close(self) -> None:
        self._file.close()


async def run_fleet(
    fleet: AnyFleet,
    *,
    view: View = "auto",
    report_interval: float = 5.0,
    metrics_port: int | None = None,
    metrics_host: str = "127.0.0.1",
    console: Console | None = None,
    out: IO[str] | None = None,
    fault_file: Path | None = None,
) -> Result:
    """Run ``fleet`` to its end with the chosen view; SIGINT/SIGTERM stop it politely.
    SIGUSR1 marks a fault: now, or at the instant written in ``fault_file``."""
    loop = asyncio.get_running_loop()
    out = out or sys.stdout
    console = console or Console(file=out)
    installed: list[signal.Signals] = []

    def on_signal() -> None:
        fleet.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):  # a second Ctrl-C interrupts for real
            if sig in installed:
                loop.remove_signal_handler(sig)
                installed.remove(sig)

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, on_signal)
            installed.append(sig)
    def on_fault() -> None:
        fleet.inject_fault(read_fault_file(fault_file) if fault_file is not None else None)

    # SIGUSR1 = "a fault was injected (now, or at the instant in the fault file)": probes
    # open then measure detect_time from it, also those that noticed before the signal.
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError, AttributeError):
        loop.add_signal_handler(signal.SIGUSR1, on_fault)
        installed.append(signal.SIGUSR1)
    exporter = None
    ui: asyncio.Task[None] | None = None
    try:
        if metrics_port is not None:
            exporter = MetricsServer(fleet, metrics_host, metrics_port)
            try:
                port = await exporter.start()
            except OSError as exc:
                if isinstance(exc, socket.gaierror) or exc.errno == errno.EADDRNOTAVAIL:
                    raise InvalidInput(f"--metrics-host {metrics_host}: {exc.strerror}; use an "
                                       "address of this machine (127.0.0.1 by default)") from exc
                raise PortInUse(f"--metrics-port {metrics_port} on {metrics_host}: "
                                f"{exc.strerror}") from exc
            print(f"wsctl probe: metrics at http://{metrics_host}:{port}/metrics",
                  file=sys.stderr, flush=True)
        if view == "auto":
            view = "live" if console.is_terminal else "plain"
        if view == "live":
            ui = asyncio.create_task(show_live(fleet, console))
        elif view == "plain":
            ui = asyncio.create_task(print_progress(fleet, out, report_interval))
        return await fleet.run()
    finally:
        if ui is not None:
            ui.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ui
        if exporter is not None:
            await exporter.close()
        for installed_sig in installed:
            loop.remove_signal_handler(installed_sig)


def check_reachable(result: Result) -> None:
    """Raise ``Unreachable`` when a probe gave up or no probe ever got a connection."""
    details = result.details
    count = details.get("probes", 0)
    gave_up = result.metrics.counters.get("probes.gave_up", 0)
    never = details.get("never_opened", 0)
    if not gave_up and not (count and never == count):
        return
    errors: Counter[str] = Counter(details.get("errors") or {})
    reason = errors.most_common(1)[0][0] if errors else "no connection could be opened"
    hint = " (is the server running?)" if reason == "connection refused" else ""
    if gave_up:
        what = f"could not connect to {result.target}" if never else \
            f"{result.target} kept dropping connections"
        raise Unreachable(f"{what}: {reason}{hint}; {gave_up} of {count} probes gave up "
                          "retrying")
    raise Unreachable(f"could not connect to {result.target} within {result.duration:.1f}s: "
                      f"{reason}{hint}")
