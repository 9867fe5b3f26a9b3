"""A scenario run's ``Result`` (kind ``run``), assembled once everything has stopped.

The probes' Result (one process's fleet or the merge of its workers', ``fleet.result()``)
with what the run adds to it: the peak of connection attempts per
second and closes by code (from the sampler), the connections open at the end, and —
when wsctl owned the server — its RSS (of its whole process tree; of every instance's,
summed, with ``server.instances``) at steady state and
``server.rss_per_connection``, and for the reference server, whose ``/metrics`` is
scraped, its connections then and its refusals and dead connections summed over every
incarnation (a team's command server may have no ``/metrics``: those are not emitted,
never zeros that look measured).
Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from wsctl.metrics import Result
from wsctl.probe.workers import AnyFleet
from wsctl.scenario.model import Scenario
from wsctl.scenario.monitor import Monitor
from wsctl.scenario.sampler import Sampler
from wsctl.scenario.server_process import Scraped, ServerGroup
from wsctl.scenario.service import ServiceProcess
from wsctl.scenario.stage import Stage


def run_result(scenario: Scenario, stage: Stage, fleet: AnyFleet, sampler: Sampler,
               monitor: Monitor, *, start: float, end: float) -> Result:
    """The run from ``start`` to ``end`` (the scenario's time, even when every probe
    finished early) as a Result. ``details["instrument"]`` is the measuring processes'
    health (loop lag, CPU), which the runner judges timing criteria by."""
    probes = fleet.result()
    metrics = probes.metrics
    metrics.set_gauge("reconnect.peak_attempts_per_s", sampler.peak_attempts_per_s,
                      "per_s")
    metrics.set_gauge("reconnect.peak_server_attempts_per_s",
                      sampler.peak_server_attempts_per_s, "per_s")
    metrics.set_gauge("probes.open", monitor.open_at_end, "count")
    for code, n in sorted(sampler.closes.items()):
        metrics.counters[f"closes.{code}"] = n
    details: dict[str, Any] = {
        key: probes.details.get(key) for key in
        ("probes", "states", "never_opened", "errors", "loop_lag", "instrument")}
    details["added"] = fleet.added
    details["unmeasured"] = fleet.config.unmeasured  # quoted by a criterion on one
    server = stage.server
    if server is not None:
        scraped = isinstance(server, Scraped)
        if isinstance(server, Scraped):
            totals = server.totals()
            metrics.add("server.refused", int(totals.refused))
            metrics.add("server.dead_detected", int(totals.dead_detected))
        steady = monitor.steady
        if steady is not None and stage.rss_before is not None:
            metrics.set_gauge("server.rss", steady.rss, "bytes")
            if scraped:  # else it is the probes' count, not the server's
                metrics.set_gauge("server.connections", steady.connections, "count")
            if steady.connections > 0:
                metrics.set_gauge("server.rss_per_connection",
                                  (steady.rss - stage.rss_before) / steady.connections,
                                  "bytes")
            details["steady_state"] = {
                "at": round(steady.at, 3), "reached": steady.reached,
                "rss_before": stage.rss_before, "rss": steady.rss,
                "connections": steady.connections,
            }
        details["server"] = {"url": server.url, "incarnations": server.incarnations}
        if isinstance(server, ServerGroup):
            details["server"]["instances"] = [
                {"url": member.url, "incarnations": member.incarnations,
                 "last_exit": member.last_exit} for member in server.members]
        if scraped:
            details["server"]["profile"] = scenario.server.profile
        elif isinstance(server, ServiceProcess):
            details["server"].update(command=server.command, log=str(server.log_path),
                                     last_exit=server.last_exit)
    config: dict[str, Any] = {
        "scenario": scenario.name,
        "server": _server_text(scenario),
        "server_args": scenario.server.args(),
        "proxy": scenario.proxy,
        "count": scenario.probes.count,
        "seed": fleet.seed,
        "processes": probes.config.get("processes", 1),
        "probe": fleet.config.to_json(),
    }
    return Result(kind="run", metrics=metrics, started_at=fleet.started_at,
                  duration=max(0.0, end - start), target=stage.target or None,
                  config=config, details=details)


def _server_text(scenario: Scenario) -> str:
    spec = scenario.server
    if spec.embedded:
        return f"embedded ({spec.profile})"
    if spec.command is not None:
        return f"command: {spec.service().display}"
    return spec.url or ""


def unreachable(result: Result) -> str | None:
    """Why the run could not happen when no probe ever got a connection, else None."""
    details = result.details
    if not details.get("probes") or details.get("never_opened") != details.get("probes"):
        return None
    errors = Counter(details.get("errors") or {})
    reason = errors.most_common(1)[0][0] if errors else "no connection could be opened"
    return f"could not connect to {result.target}: {reason}; no probe ever connected"
