"""EP-0001's reliability checks for the FastAPI service of app.py, as pytest tests.

    pip install wsctl           # the fixtures come with it (pytest plugin "wsctl")
    pytest examples/fastapi/test_reliability.py

Copy it next to your app and change ``command``, ``url``, ``ready`` and the field paths
of ``PROTOCOL``; docs/pytest.md explains every fixture.
"""

import time
from pathlib import Path

import pytest

HERE = Path(__file__).parent
PROTOCOL = {
    "sequence": "seq",                     # -> messages.lost / duplicated / reordered
    "timestamp": "ts",                     # -> delivery_latency
    "resume": {"query": "since={last_seq}"},  # app.py replays what it still holds
}
# Probe pings every 0.5 s, 0.5 s to answer: a frozen server is noticed within ~1 s.
HEARTBEAT = {"kind": "protocol", "interval": 0.5, "timeout": 0.5}


@pytest.fixture
def service(wsctl_service):
    """The app under uvicorn on a free port, ready once /ws/health answers 2xx."""
    return wsctl_service(
        command=["uvicorn", "app:app", "--host", "127.0.0.1", "--port", "{port}"],
        url="ws://127.0.0.1:{port}/ws/{stream}",
        ready="http://127.0.0.1:{port}/ws/health",
        cwd=HERE,
        stop_timeout=5,
    )


def probes_for(wsctl_probes, target):
    return wsctl_probes(target, count=5, mode="listen", stream="client-{n}",
                        protocol=PROTOCOL, heartbeat=HEARTBEAT)


def test_a_crash_and_restart_loses_nothing(service, wsctl_probes):
    """Killed (no close frames) and started again: every client is back within 5 s and,
    asking for what it missed, loses nothing (the restart is a resync, not a loss)."""
    probes = probes_for(wsctl_probes, service)
    time.sleep(1)
    service.kill()
    time.sleep(0.5)
    service.start()
    probes.wait_recovered(timeout=10)
    time.sleep(1)
    result = probes.result()
    assert result.reconnect_time.mean < 5       # EP-0001: reconnection within 5 s
    assert result.messages.lost == 0
    assert result.probes.gave_up == 0


def test_latency_delays_but_does_not_disconnect(service, wsctl_chaos, wsctl_probes):
    """300 ms of added latency on the way to the client shows in delivery latency and
    breaks no connection."""
    proxy = wsctl_chaos(service)
    probes = probes_for(wsctl_probes, proxy)
    time.sleep(0.5)
    with proxy.toxic("latency", latency=300):
        time.sleep(2)
    time.sleep(0.5)
    result = probes.result()
    assert result.delivery_latency.max >= 0.3
    assert result.connections.lost == 0
    assert result.messages.lost == 0


def test_a_frozen_server_is_detected_and_survived(service, wsctl_probes):
    """SIGSTOP for 2 s (the peer sees a half-open connection): the probes' pings notice
    within 2 s, reconnect once it is back, and lose nothing."""
    probes = probes_for(wsctl_probes, service)
    time.sleep(1)
    with service.pause():
        time.sleep(2)
    probes.wait_recovered(timeout=10)
    time.sleep(1)
    result = probes.result()
    assert result.detect_time.max < 2
    assert result.reconnect_time.mean < 5
    assert result.messages.lost == 0
