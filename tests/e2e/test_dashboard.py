"""The dashboard at GET / in real Chromium, against a real server process that is killed,
paused and restarted under it."""

from __future__ import annotations

import signal
import time
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.e2e.conftest import HEARTBEAT_S, ServerProcess, screenshot

# Time to notice a dead server: the heartbeat's interval plus its timeout, plus a margin
# for a loaded CI machine.
DETECT_S = 2 * HEARTBEAT_S + 1.0


def open_dashboard(page: Any, server: ServerProcess, stream: str, **params: object) -> None:
    """Open the dashboard on ``stream`` with client tuning ``params`` (ms)."""
    query = urlencode({"stream": stream, **params})
    page.goto(f"{server.http}/?{query}")


def status(page: Any) -> str:
    return str(page.get_attribute("#status", "data-status"))


def wait_status(page: Any, wanted: str, timeout_s: float = 10.0) -> float:
    """Wait until #status shows ``wanted``; returns the seconds it took."""
    t0 = time.monotonic()
    page.wait_for_function(
        "s => document.querySelector('#status').dataset.status === s",
        arg=wanted, timeout=timeout_s * 1000,
    )
    return time.monotonic() - t0


def wait_offsets(page: Any, count: int, timeout_s: float = 10.0) -> None:
    page.wait_for_function("n => wsctlDashboard.offsets.length >= n", arg=count,
                           timeout=timeout_s * 1000)


def received(page: Any) -> list[tuple[str, int]]:
    """(epoch, offset) of every event the page delivered, in order."""
    return [(r["epoch"], r["offset"]) for r in page.evaluate("wsctlDashboard.received")]


def by_epoch(events: list[tuple[str, int]]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for epoch, offset in events:
        out.setdefault(epoch, []).append(offset)
    return out


def assert_no_gap_no_duplicate(offsets: list[int], first: int) -> None:
    assert offsets, "no events received"
    assert offsets == list(range(first, first + len(offsets))), offsets


def test_page_loads_connected_and_progress_advances(page, start_server):
    """GET / shows Connected (text, colour, live region), the bar advances, health is live."""
    server = start_server()
    open_dashboard(page, server, "e2e-load")
    wait_status(page, "connected")
    assert page.inner_text("#status-text") == "Connected"
    assert page.inner_text("#status-live") == "Connected to e2e-load"
    assert page.get_attribute("#status-live", "role") == "status"
    wait_offsets(page, 3)
    first_step = int(page.get_attribute("#progress", "data-step") or 0)
    page.wait_for_function(
        "s => Number(document.querySelector('#progress').dataset.step) >= s + 2",
        arg=first_step,
    )
    assert page.eval_on_selector("#progress", "bar => bar.value") >= first_step + 2
    assert "/ 100" in page.inner_text("#step")
    assert page.inner_text("#job-status") == "running"
    # The health feed is itself a connection: the stream's plus the feed's.
    page.wait_for_function(
        "() => document.querySelector('#health-state').dataset.live === 'true'"
        " && Number(document.querySelector('#health-connections').dataset.value) === 2"
    )
    assert page.inner_text("#health-status") == "ok"
    assert page.is_hidden("#retry") and page.is_hidden("#resynced")
    assert_no_gap_no_duplicate(page.evaluate("wsctlDashboard.offsets"), 1)
    screenshot(page, "dashboard-connected")


def test_stream_chosen_in_the_page_switches_and_updates_url(page, start_server):
    """Typing a stream name and pressing Watch follows that stream and puts it in the URL."""
    server = start_server()
    open_dashboard(page, server, "e2e-first")
    wait_status(page, "connected")
    page.fill("#stream-input", "e2e-second")
    page.click("#stream-form button[type=submit]")
    page.wait_for_function("() => wsctlDashboard.stream === 'e2e-second'"
                           " && document.querySelector('#status').dataset.status === 'connected'")
    assert "stream=e2e-second" in page.url
    wait_offsets(page, 2)
    assert page.evaluate("wsctlDashboard.client.url").endswith("/ws/e2e-second")
    page.fill("#stream-input", "not a stream!")
    page.click("#stream-form button[type=submit]")
    assert page.is_visible("#stream-error")
    assert page.evaluate("wsctlDashboard.stream") == "e2e-second"


def test_kill_then_restart_on_same_port_reconnects_and_resyncs(page, start_server):
    """SIGKILL: Reconnecting within the heartbeat timeout; a new server on the same port:
    Connected again, a Resynced notice (new epoch), and no gap or duplicate in either epoch."""
    server = start_server()
    open_dashboard(page, server, "e2e-restart", base=400, cap=1500, fast=0)
    wait_status(page, "connected")
    wait_offsets(page, 5)
    server.kill()
    took = wait_status(page, "reconnecting", timeout_s=DETECT_S)
    assert took <= DETECT_S
    # Catch the indicator during a backoff wait, with a countdown, for the screenshot.
    page.wait_for_function(
        "() => /^Reconnecting in \\d+s, attempt [2-9]$/"
        ".test(document.querySelector('#status-text').textContent)"
    )
    assert page.is_hidden("#retry")
    page.wait_for_selector("#health-state[data-live=false]")
    screenshot(page, "dashboard-reconnecting")
    assert page.inner_text("#status-live").startswith("Reconnecting, attempt ")
    before = received(page)

    restarted = start_server(port=server.port)
    assert restarted.port == server.port
    wait_status(page, "connected", timeout_s=5)
    page.wait_for_selector("#resynced", state="visible")
    assert page.inner_text("#resynced").startswith("Resynced:")
    wait_offsets(page, len(before) + 3)
    page.wait_for_selector("#health-state[data-live=true]", timeout=3000)
    screenshot(page, "dashboard-resynced")

    epochs = by_epoch(received(page))
    assert len(epochs) == 2, epochs.keys()
    old_epoch, new_epoch = epochs
    assert_no_gap_no_duplicate(epochs[old_epoch], 1)
    assert epochs[old_epoch] == [offset for _, offset in before]
    resyncs = page.evaluate("wsctlDashboard.resyncs")
    assert resyncs == [{"previousEpoch": old_epoch, "previousOffset": before[-1][1],
                        "epoch": new_epoch, "offset": resyncs[0]["offset"]}]
    assert_no_gap_no_duplicate(epochs[new_epoch], resyncs[0]["offset"] + 1)
    assert page.get_attribute("#status", "data-how") == "Resynced"


def test_restart_is_met_by_fast_retries_while_nothing_listens(page, start_server):
    """By default the page asks /ws/health after a failed attempt: while nothing listens
    it retries every fastDelay (attempts do not advance, the status says why) and is
    Connected again within a fast retry of the server listening, far inside its backoff."""
    server = start_server()
    open_dashboard(page, server, "e2e-fast", base=2000, cap=8000)
    wait_status(page, "connected")
    server.kill()
    page.wait_for_function(
        "() => wsctlDashboard.states.some(s => s.state === 'reconnecting' && s.fast)",
        timeout=DETECT_S * 1000)
    # Between fast retries (the status alternates with "Reconnecting now" while a
    # socket is opening) the status says why it retries so soon.
    page.wait_for_function(
        "() => document.querySelector('#status-text').textContent.includes('nothing listens')",
        timeout=2000)
    time.sleep(1.5)  # the server stays away for several fast retries
    fast = page.evaluate("wsctlDashboard.states.filter(s => s.fast).length")
    assert fast >= 3
    assert "fast retry" in page.inner_text("#log")
    restarted = start_server(port=server.port)
    t0 = time.monotonic()
    wait_status(page, "connected", timeout_s=5)
    # a fast retry is at most fastDelay (250 ms) away; the backoff would be up to 2-8 s
    assert time.monotonic() - t0 < 1.5
    assert page.evaluate("wsctlDashboard.client.stats.fastRetries") >= 3
    restarted.kill()


def test_pause_and_continue_resumes_recovered_without_gap(page, start_server):
    """SIGSTOP for 3 s: the heartbeat declares the connection dead (Reconnecting); after
    SIGCONT the same server resumes the stream: recovered, no resync, no gap, no duplicate."""
    server = start_server()
    open_dashboard(page, server, "e2e-pause", base=300, cap=1000, connect_timeout=800)
    wait_status(page, "connected")
    wait_offsets(page, 5)
    server.signal(signal.SIGSTOP)
    paused_at = time.monotonic()
    took = wait_status(page, "reconnecting", timeout_s=DETECT_S)
    assert took <= DETECT_S
    time.sleep(max(0.0, 3.0 - (time.monotonic() - paused_at)))
    before = len(page.evaluate("wsctlDashboard.offsets"))
    server.signal(signal.SIGCONT)
    wait_status(page, "connected", timeout_s=5)
    wait_offsets(page, before + 5)

    epochs = by_epoch(received(page))
    assert len(epochs) == 1
    (offsets,) = epochs.values()
    assert_no_gap_no_duplicate(offsets, 1)
    assert page.evaluate("wsctlDashboard.resyncs") == []
    assert page.is_hidden("#resynced")
    assert page.get_attribute("#status", "data-how") == "resumed"
    log = page.inner_text("#log")
    assert "heartbeat timeout" in log and "connected: resumed after offset" in log
    assert page.evaluate("wsctlDashboard.client.stats.deadDetected") >= 1


def test_retries_exhausted_show_offline_and_retry_now_reconnects(page, start_server):
    """With the server gone and max attempts used up: Offline with a Retry now button;
    once the server is back, pressing it connects."""
    server = start_server()
    open_dashboard(page, server, "e2e-offline", base=100, cap=200, attempts=2, fast=0)
    wait_status(page, "connected")
    server.kill()
    wait_status(page, "offline", timeout_s=DETECT_S)
    assert page.inner_text("#status-text") == "Offline"
    assert "gave up after 2 attempts" in page.inner_text("#status-detail")
    assert page.inner_text("#status-live").startswith("Offline: gave up after 2 attempts")
    retry = page.locator("#retry")
    assert retry.is_visible() and retry.inner_text() == "Retry now"
    screenshot(page, "dashboard-offline")

    start_server(port=server.port)
    time.sleep(0.5)
    assert status(page) == "offline"  # nothing retries on its own once offline
    retry.click()
    wait_status(page, "connected", timeout_s=5)
    assert page.is_hidden("#retry")
    assert "retry now (button)" in page.inner_text("#log")


@pytest.mark.parametrize("wake", ["online", "visible"])
def test_online_or_visible_page_reconnects_at_once(page, start_server, wake):
    """When offline, the browser's online event or the page becoming visible reconnects."""
    server = start_server()
    open_dashboard(page, server, f"e2e-{wake}", base=100, cap=200, attempts=1, fast=0)
    wait_status(page, "connected")
    server.kill()
    wait_status(page, "offline", timeout_s=DETECT_S)
    start_server(port=server.port)
    time.sleep(0.3)
    assert status(page) == "offline"
    if wake == "online":
        page.context.set_offline(True)
        page.context.set_offline(False)
    else:
        assert page.evaluate("document.visibilityState") == "visible"
        page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
    wait_status(page, "connected", timeout_s=3)


def test_1001_retry_hint_sets_the_reconnect_delay(page, start_server):
    """SIGTERM closes with 1001 and retry_ms=1500: the page waits the hint, not its backoff."""
    server = start_server("--retry-hint", "1500ms")
    open_dashboard(page, server, "e2e-hint", base=100, cap=200)
    wait_status(page, "connected")
    server.signal(signal.SIGTERM)
    wait_status(page, "reconnecting", timeout_s=DETECT_S)
    first = page.evaluate("wsctlDashboard.states.find(s => s.state === 'reconnecting')")
    assert first["code"] == 1001
    assert 1500 <= first["delay"] < 1500 + 100
    assert "server hint retry_ms=1500" in page.inner_text("#log")
