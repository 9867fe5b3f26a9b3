"""The runner against real processes: the server child, restarts on one port, storms,
url servers behind the proxy, runtime errors, and the checks made before anything runs."""

import asyncio
import gc

import psutil
import pytest

from tests import serverproc
from tests.verdicts import settled
from wsctl.errors import InvalidInput, RunFailed
from wsctl.metrics import MetricSet, Result
from wsctl.scenario import server_process
from wsctl.scenario.model import loads
from wsctl.scenario.runner import check_baselines, run_suite, select
from wsctl.scenario.server_process import ServerProcess

pytestmark = pytest.mark.timeout(60)

FAST_SERVER = "server: {ping_interval: 1s, ping_timeout: 1s, job_rate: 20}"


def no_server_left() -> bool:
    return not server_process.LIVE and not [
        p for p in psutil.Process().children(recursive=True) if "server_stub" in
        " ".join(p.cmdline())]


async def test_server_restarts_on_its_port_and_refuses_impossible_actions(tmp_path):
    """start -> kill -> start reuses the port; killing a stopped server or resuming a
    running one is an error; a paused server is still reaped by close()."""
    server = ServerProcess("reference", [], tmp_path)
    try:
        await server.start()
        port, first = server.port, server.pid()
        assert await server.scrape() is not None
        await server.kill()
        assert server.state == "stopped"
        with pytest.raises(RunFailed, match="not running"):
            await server.kill()
        await server.start()
        assert server.port == port and server.pid() != first
        assert server.incarnations == 2 and len(server.scrapes) == 1
        with pytest.raises(RunFailed, match="not paused"):
            await server.resume()
        await server.pause()
        assert psutil.Process(server.pid()).status() == psutil.STATUS_STOPPED
        pid = server.pid()
    finally:
        server.close()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not server_process.LIVE


async def test_a_server_that_will_not_start_is_run_failed_quoting_its_log(tmp_path):
    """The error names the exit status and quotes the server's last log line."""
    server = ServerProcess("reference", ["--ping-interval", "nonsense"], tmp_path)
    with pytest.raises(RunFailed) as info:
        await server.start()
    message = str(info.value)
    assert "would not start (exit 2" in message
    assert "cannot read 'nonsense' as a duration" in message
    assert not server_process.LIVE


async def test_a_second_kill_is_a_runtime_error_of_the_scenario():
    """Killing a server that is not running: the entry has the error, the outcome is
    an error naming file and line, the exit code is 3, and no server is left."""
    suite = loads(f"""
name: twice
duration: 3s
{FAST_SERVER}
probes: {{count: 2, stream: "twice-{{n}}"}}
timeline:
  - {{at: 500ms, do: server.kill}}
  - {{at: 1s, do: server.kill}}
criteria:
  messages.lost: "== 0"
""", "twice.yaml")
    report = await run_suite(suite)
    outcome = report.scenarios[0]
    assert [(e.do, e.error) for e in outcome.timeline] == [
        ("server.kill", None), ("server.kill", "cannot kill: the server is not running")]
    assert outcome.error is not None
    assert outcome.error.startswith("twice.yaml:8: server.kill at 1.")
    assert outcome.error.endswith("s: cannot kill: the server is not running")
    assert outcome.verdicts == [] and report.exit_code == 3
    assert outcome.timeline[1].at < 2.0  # stopped at the failure, not at the duration
    assert no_server_left()


async def test_term_and_pause_with_for_are_undone_on_the_same_server():
    """term for 1 s -> the server drains, exits and starts again on its port; pause for
    0.5 s -> SIGSTOP then SIGCONT; probes recover from both."""
    suite = loads(f"""
name: signals
duration: 4500ms
{FAST_SERVER}
probes: {{count: 3, stream: "signals-{{n}}", backoff: {{base: 100ms, cap: 300ms}}}}
timeline:
  - {{at: 500ms, do: server.term, for: 1s}}
  - {{at: 3s, do: server.pause, for: 500ms}}
criteria:
  closes.1001: ">= 3"
  probes.open: "== 3"
""", "signals.yaml")
    report = await run_suite(suite)
    outcome = report.scenarios[0]
    assert outcome.error is None, outcome.error
    assert [(e.do, e.error) for e in outcome.timeline] == [
        ("server.term", None), ("server.start", None), ("server.pause", None),
        ("server.resume", None)]
    assert outcome.timeline[1].at == pytest.approx(1.5, abs=0.3)
    assert outcome.result is not None
    assert outcome.result.details["server"]["incarnations"] == 2
    assert report.exit_code == 0, [v.to_json() for v in outcome.verdicts]
    assert no_server_left()


async def test_probes_add_is_a_storm_in_the_same_fleet_and_metrics():
    """probes.add starts N more probes (at spawn_rate 1000/s: all within one second):
    they count in probes, in the attempts of one second, and every one is open at the end."""
    suite = loads(f"""
name: storm
duration: 3500ms
{FAST_SERVER}
probes: {{count: 5, stream: "storm-{{n}}"}}
timeline:
  - {{at: 1s, do: probes.add, count: 120}}
criteria:
  probes.open: "== 125"
  reconnect.peak_attempts_per_s: ">= 120"
""", "storm.yaml")
    report = await run_suite(suite)
    outcome = report.scenarios[0]
    assert outcome.error is None, outcome.error
    result = outcome.result
    assert result is not None and result.details["probes"] == 125
    assert result.metrics.counters["connections.opened"] >= 125
    assert [settled(v) for v in outcome.verdicts] == ["pass", "pass"], outcome.verdicts
    assert max(outcome.series.columns["connections"]) == 125
    assert result.metrics.gauges["server.rss_per_connection"].unit == "bytes"
    assert outcome.timeline[0].detail == "120 probes added at 1000/s (125 in all)"
    assert no_server_left()


async def test_a_url_server_behind_the_proxy_is_cut_and_reconnected():
    """With server.url the runner owns no process: probes go through the proxy to the
    url, a cut resets them, they reconnect; no server.* figures are claimed."""
    server = serverproc.ServerProcess("--ping-interval", "1s", "--ping-timeout", "1s")
    try:
        suite = loads(f"""
name: url-cut
duration: 2500ms
server: {{url: "{server.url}/ws/{{stream}}"}}
proxy: true
probes: {{count: 3, stream: "url-{{n}}", backoff: {{base: 50ms, cap: 200ms}}}}
timeline:
  - {{at: 1s, do: cut}}
criteria:
  connections.lost: ">= 3"
  reconnect_time.count: ">= 3"
""", "url.yaml")
        report = await run_suite(suite)
    finally:
        server.close()
    outcome = report.scenarios[0]
    assert outcome.error is None, outcome.error
    assert outcome.timeline[0].detail == "3 connections reset (RST)"
    assert report.exit_code == 0, [v.to_json() for v in outcome.verdicts]
    result = outcome.result
    assert result is not None and result.target == f"{server.url}/ws/{{stream}}"
    assert result.duration == pytest.approx(2.5, abs=0.4)
    assert not [name for name in result.metrics.gauges if name.startswith("server.")]
    assert "server_rss" not in outcome.series.columns


def test_select_runs_named_scenarios_and_rejects_unknown_names():
    """--scenario picks scenarios in file order; an unknown name lists the known ones."""
    suite = loads("""
name: s
scenarios:
  - {name: a, duration: 1s}
  - {name: b, duration: 1s}
""", "s.yaml")
    assert [sc.name for _, sc in select([suite], ["b", "a"])] == ["a", "b"]
    with pytest.raises(InvalidInput, match=r"no scenario named 'c'; the files have: a, b"):
        select([suite], ["c"])


def test_baseline_criteria_need_a_baseline_before_anything_runs():
    """A 'k * baseline' criterion with no earlier scenario selected and no --baseline is
    bad input naming the criterion; an earlier scenario, one --baseline result, or a
    report holding the named baseline scenario is fine."""
    suite = loads("""
name: s
scenarios:
  - {name: before, duration: 1s, server: {profile: baseline}}
  - name: after
    duration: 1s
    baseline: before
    criteria: {connect_time.p50: "<= 0.8 * baseline"}
""", "s.yaml")
    check_baselines(select([suite]), None)
    only_after = select([suite], ["after"])
    with pytest.raises(InvalidInput, match=r"s.yaml:\d+: scenario after: criterion "
                       r"connect_time.p50: \"<= 0.8 \* baseline\""):
        check_baselines(only_after, None)
    check_baselines(only_after, Result(kind="probe", metrics=MetricSet()))
    check_baselines(only_after, {"before": Result(kind="run", metrics=MetricSet())})
    with pytest.raises(InvalidInput, match="has no result for it"):
        check_baselines(only_after, {"after": Result(kind="run", metrics=MetricSet())})


async def test_the_heap_is_frozen_while_a_scenario_measures_and_restored_after():
    """During a scenario the runner's own heap is collected and frozen (no full
    collection stalls the loop its in-process probes stamp in); after it, the
    interpreter's collection thresholds and freeze count are as they were."""
    suite = loads(f"""
name: gc
duration: 1500ms
{FAST_SERVER}
probes: {{count: 1, processes: 1, stream: "gc-{{n}}"}}
criteria:
  connections.opened: ">= 1"
""", "gc.yaml")
    thresholds, frozen = gc.get_threshold(), gc.get_freeze_count()
    seen: list[tuple[int, tuple[int, int, int]]] = []
    asyncio.get_running_loop().call_later(
        1.0, lambda: seen.append((gc.get_freeze_count(), gc.get_threshold())))
    report = await run_suite(suite)
    assert report.scenarios[0].error is None, report.scenarios[0].error
    assert seen and seen[0][0] > frozen and seen[0][1] != thresholds
    assert (gc.get_freeze_count(), gc.get_threshold()) == (frozen, thresholds)
