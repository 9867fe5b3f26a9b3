"""``wsctl probe``: a fault instant given after the probes noticed it (real signal, HTTP)."""

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest
from websockets.sync.server import serve

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def cuttable():
    """A stock websockets server that holds every connection; ``cut()`` drops the live
    ones at once (FIN, no close frame) and returns the Unix time it did."""
    live: list = []
    opened = threading.Semaphore(0)

    def hold(ws):
        live.append(ws)
        opened.release()
        with contextlib.suppress(Exception):  # the cut ends it without a closing handshake
            for _ in ws:
                pass

    def cut() -> float:
        at = time.time()
        for ws in live:
            ws.socket.shutdown(socket.SHUT_RDWR)
        live.clear()
        return at

    with serve(hold, "127.0.0.1", 0) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield f"ws://127.0.0.1:{server.socket.getsockname()[1]}/", opened, cut
        server.shutdown()
        thread.join(5)


def wait_opens(opened: threading.Semaphore, n: int) -> None:
    for _ in range(n):
        assert opened.acquire(timeout=10), "probes did not (re)connect"


def test_fault_instant_after_the_fact_by_file_and_signal_and_by_http(cuttable, tmp_path):
    """Probes that already noticed and recovered from an instantaneous fault still get a
    detect_time from the instant given afterwards: in --fault-file on SIGUSR1, then by
    POST /fault?at= on the metrics port; a bad instant is a 400."""
    url, opened, cut = cuttable
    fault_file, result = tmp_path / "fault", tmp_path / "result.json"
    code = "import sys; from wsctl.cli.main import run; sys.argv[0] = 'wsctl'; run()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "probe", url, "--mode", "listen", "-n", "2", "--forever",
         "--heartbeat", "off", "--backoff-base", "50ms", "--backoff-cap", "50ms",
         "--fault-file", str(fault_file), "--metrics-port", "0", "--view", "quiet",
         "--json", str(result)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "NO_PROXY": "*"})
    try:
        match = re.search(r"http://127\.0\.0\.1:\d+/metrics", proc.stderr.readline())
        assert match
        fault_url = match.group(0).replace("/metrics", "/fault")
        wait_opens(opened, 2)
        fault_file.write_text(f"{cut():.6f}\n")
        wait_opens(opened, 2)  # both noticed the loss and are back: now say when it was
        proc.send_signal(signal.SIGUSR1)
        time.sleep(0.3)
        with httpx.Client(trust_env=False) as client:
            at = cut()
            wait_opens(opened, 2)
            assert client.post(f"{fault_url}?at={at:.6f}").status_code == 200
            assert client.post(f"{fault_url}?at=soon").status_code == 400
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    detect = json.loads(result.read_text())["metrics"]["detect_time"]
    assert detect["count"] == 4, err
    assert 0 <= detect["max"] < 1.0


def test_fault_instants_are_read_as_unix_or_monotonic_time():
    """A Unix time becomes this process's monotonic time; 'monotonic S' is taken as is;
    anything else is a ValueError."""
    from wsctl.probe.exporter import fault_instant

    assert fault_instant("monotonic 12.5\n") == 12.5
    assert fault_instant("monotonic=12.5") == 12.5
    assert fault_instant(f"{time.time() - 2:.6f}\n") == pytest.approx(time.monotonic() - 2,
                                                                       abs=0.05)
    for bad in ("", "soon", "1 2", "nan", "-5", "monotonic"):
        with pytest.raises(ValueError):
            fault_instant(bad)


def test_unreadable_fault_file_warns_and_means_now(tmp_path, capsys):
    """A missing or garbled --fault-file is a warning, and the signal's arrival counts."""
    from wsctl.probe.runner import read_fault_file

    assert read_fault_file(tmp_path / "absent") is None
    (tmp_path / "bad").write_text("yesterday")
    assert read_fault_file(tmp_path / "bad") is None
    err = capsys.readouterr().err
    assert err.count("warning: --fault-file") == 2 and "yesterday" in err
