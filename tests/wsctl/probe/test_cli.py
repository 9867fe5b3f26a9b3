"""``wsctl probe`` end to end: parsing, exit codes, JSON result, records, monitor mode."""

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
from typer.testing import CliRunner
from websockets.sync.server import serve

from wsctl.cli.main import app
from wsctl.metrics import validate

pytestmark = pytest.mark.timeout(30)
runner = CliRunner()


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def echo_url():
    """A stock websockets (sync) echo server in a thread."""

    def echo(ws):
        for message in ws:
            ws.send(message)

    with serve(echo, "127.0.0.1", 0) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield f"ws://127.0.0.1:{server.socket.getsockname()[1]}/"
        server.shutdown()
        thread.join(5)


@pytest.mark.parametrize("url", ["http://127.0.0.1:1/", "ws://", "127.0.0.1:8765",
                                 "ws://127.0.0.1:99999/"])
def test_invalid_url_is_one_line_and_exit_2(url):
    """A bad URL fails before anything starts: one line on stderr, exit 2."""
    result = runner.invoke(app, ["probe", url])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wsctl: error: invalid URL")
    assert "Traceback" not in result.output


@pytest.mark.parametrize("args, message", [
    (["--duration", "soon"], "--duration"),
    (["--heartbeat-timeout", "0"], "--heartbeat-timeout must be greater than zero"),
    (["--backoff-factor", "0.5"], "--backoff-factor"),
    (["--insecure"], "wss://"),
])
def test_invalid_options_exit_2(args, message):
    """Nonsense option values are reported in one line with exit code 2."""
    result = runner.invoke(app, ["probe", "ws://127.0.0.1:1/", *args])
    assert result.exit_code == 2
    assert message in result.stderr


@pytest.mark.parametrize("args, message", [
    (["--duration", "1" * 400 + "s"], "--duration: at most 87600h"),
    (["--heartbeat-interval", "1us"], "--heartbeat-interval must be at least 10ms"),
    (["--report-interval", "1us"], "--report-interval must be at least 10ms"),
    (["--json", "."], "--json .: is a directory"),
])
def test_out_of_bounds_options_exit_2_before_the_run(args, message):
    """An endless duration, a busy-loop interval or a --json that cannot be written: one
    line, exit 2, before any connection (the target here would be exit 3)."""
    result = runner.invoke(app, ["probe", "ws://127.0.0.1:1/", "--max-attempts", "1", *args])
    assert result.exit_code == 2, result.output
    assert message in result.stderr and result.stderr.count("\n") == 1, result.stderr


def test_unreachable_target_retries_then_exit_3_saying_refused():
    """A closed port: retries within --max-attempts, then 'connection refused', exit 3."""
    url = f"ws://127.0.0.1:{free_port()}/ws/a"
    result = runner.invoke(app, ["probe", url, "--max-attempts", "3", "--backoff-base",
                                 "10ms", "--retry-fast", "0", "--view", "quiet"])
    assert result.exit_code == 3
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"wsctl: error: could not connect to {url}: connection refused")
    assert "1 of 1 probes gave up" in last
    assert "connections.failed=3" in result.stdout


def test_echo_mode_json_result_validates_and_counts_round_trips(echo_url, tmp_path):
    """Echo mode against a plain server writes a schema-valid result with round trips."""
    out = tmp_path / "result.json"
    records = tmp_path / "records.jsonl"
    result = runner.invoke(app, ["probe", echo_url, "--mode", "echo", "-n", "2", "--rate",
                                 "20", "--duration", "1s", "--json", str(out), "--records",
                                 str(records), "--view", "quiet", "--seed", "5"])
    assert result.exit_code == 0, result.output
    obj = json.loads(out.read_text())
    validate(obj)
    assert obj["kind"] == "probe" and obj["config"]["mode"] == "echo"
    assert obj["config"]["seed"] == 5 and obj["config"]["count"] == 2
    assert obj["metrics"]["messages.received"]["value"] >= 20  # 2 x 20/s x 1 s, loaded
    assert obj["metrics"]["rtt"]["count"] >= 20
    assert obj["metrics"]["messages.lost"]["value"] == 0
    lines = [json.loads(line) for line in records.read_text().splitlines()]
    assert {(r["probe"], r["to"]) for r in lines} >= {(0, "open"), (1, "open"),
                                                      (0, "closed"), (1, "closed")}


def test_json_to_stdout_is_pure_json(echo_url):
    """--json - prints only the result on stdout (people's output goes to stderr)."""
    # 2 s, not less: on a busy machine the probes must have time to connect at all
    result = runner.invoke(app, ["probe", echo_url, "--mode", "listen", "--duration",
                                 "2s", "--json", "-", "--view", "plain"])
    assert result.exit_code == 0, result.output
    validate(json.loads(result.stdout))


def test_environment_variables_set_options(echo_url, tmp_path):
    """WSCTL_PROBE_* variables stand in for flags."""
    out = tmp_path / "r.json"
    env = {"WSCTL_PROBE_COUNT": "3", "WSCTL_PROBE_MODE": "listen",
           "WSCTL_PROBE_DURATION": "2s", "WSCTL_PROBE_VIEW": "quiet"}
    result = runner.invoke(app, ["probe", echo_url, "--json", str(out)], env=env)
    assert result.exit_code == 0, result.output
    obj = json.loads(out.read_text())
    assert obj["config"]["count"] == 3 and obj["config"]["mode"] == "listen"
    assert obj["metrics"]["connections.opened"]["value"] == 3


def test_forever_monitor_serves_prometheus_and_stops_on_sigint(echo_url):
    """--forever --metrics-port serves /metrics until SIGINT, then exits 0 with a summary."""
    code = "import sys; from wsctl.cli.main import run; sys.argv[0] = 'wsctl'; run()"
    env = {**os.environ, "NO_PROXY": "*"}
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "probe", echo_url, "--mode", "echo", "-n", "2",
         "--forever", "--metrics-port", "0", "--view", "plain", "--heartbeat-interval",
         "100ms"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stderr.readline()
        match = re.search(r"http://127\.0\.0\.1:\d+/metrics", line)
        assert match, line
        with httpx.Client(trust_env=False) as client:
            body = ""
            for _ in range(50):
                body = client.get(match.group(0)).text
                if 'wsctl_probe_probes{state="open"} 2.0' in body and \
                        "wsctl_probe_rtt_seconds_count" in body:
                    break
                time.sleep(0.1)
            assert 'wsctl_probe_probes{state="open"} 2.0' in body
            assert "wsctl_probe_up 1.0" in body
            assert re.search(r'wsctl_probe_rtt_seconds_bucket\{le="\+Inf"\} [1-9]', body)
            assert "wsctl_probe_messages_lost_total 0.0" in body
            assert client.get(match.group(0).replace("/metrics", "/x")).status_code == 404
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "probes: closed=2" in out


@pytest.fixture
def wss_url(tmp_path):
    """A stock websockets echo server over TLS with a throwaway self-signed certificate."""
    import shutil
    import ssl

    if shutil.which("openssl") is None:
        pytest.skip("openssl command not found: cannot make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)

    def echo(ws):
        for message in ws:
            ws.send(message)

    with serve(echo, "127.0.0.1", 0, ssl=context) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield f"wss://127.0.0.1:{server.socket.getsockname()[1]}/", cert
        server.shutdown()
        thread.join(5)


def test_wss_needs_a_trusted_certificate(wss_url):
    """wss:// works with --cacert or --insecure; an untrusted cert is a TLS failure, exit 3."""
    url, cert = wss_url
    # Long enough for a TLS handshake on a loaded machine; the untrusted probe gives up
    # after its one attempt, whatever the duration.
    common = ["--mode", "echo", "--duration", "1500ms", "--view", "quiet"]
    trusted = runner.invoke(app, ["probe", url, "--cacert", str(cert), *common])
    assert trusted.exit_code == 0, trusted.output
    assert "connections.opened=1" in trusted.stdout
    insecure = runner.invoke(app, ["probe", url, "--insecure", *common])
    assert insecure.exit_code == 0, insecure.output
    untrusted = runner.invoke(app, ["probe", url, "--max-attempts", "1", *common])
    assert untrusted.exit_code == 3
    assert "TLS certificate verification failed" in untrusted.stderr


def test_metrics_host_of_no_local_address_is_bad_input(echo_url):
    """--metrics-host that names no address of this machine is exit 2, in one line."""
    result = runner.invoke(app, ["probe", echo_url, "--mode", "listen", "--duration", "300ms",
                                 "--metrics-port", "0", "--metrics-host", "256.1.1.1",
                                 "--view", "quiet"])
    assert result.exit_code == 2, result.output
    assert "--metrics-host" in result.output
