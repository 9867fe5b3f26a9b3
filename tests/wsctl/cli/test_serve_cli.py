"""``wsctl serve`` and the top-level CLI, through typer's CliRunner."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from server_stub.auth import check_token
from wsctl import __version__
from wsctl.cli.main import app

runner = CliRunner()


def test_version_and_help():
    """--version prints the version; --help lists serve and the exit codes."""
    assert runner.invoke(app, ["--version"]).output.strip() == f"wsctl {__version__}"
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "serve" in result.output and "Exit codes" in result.output


def test_serve_help_documents_every_option_with_env_var():
    """Every serve option has help text and a WSCTL_* variable (except one-shot token ones)."""
    import typer.main

    command = typer.main.get_command(app).commands["serve"]  # type: ignore[attr-defined]
    for param in command.params:
        assert param.help, param.name
        if param.name not in {"issue_token", "ttl"}:
            assert str(param.envvar).startswith("WSCTL_"), param.name


def test_issue_token_prints_a_valid_token():
    """--issue-token prints a token the server accepts for that stream."""
    args = ["serve", "--secret", "k", "--issue-token", "alerts", "--ttl", "1h"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0
    assert check_token("k", "alerts", result.output.strip()) is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--issue-token", "a"], "needs --secret"),
        (["--ping-interval", "5x"], "--ping-interval"),
        (["--ping-timeout", "0s"], "greater than zero"),
        (["--certfile", "c.pem"], "go together"),
        (["--log-level", "loud"], "--log-level"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_starts_nothing(args, message, monkeypatch):
    """Bad values exit 2 with one line naming the option; the server is never started."""
    started = []
    monkeypatch.setattr("server_stub.main.run", lambda config: started.append(config) or 0)
    result = runner.invoke(app, ["serve", *args])
    assert result.exit_code == 2
    assert message in result.output
    assert result.output.strip().count("\n") == 0
    assert started == []


def test_options_reach_the_server_config(monkeypatch):
    """Flags and env vars become the ServerConfig passed to run."""
    seen = []
    monkeypatch.setattr("server_stub.main.run", lambda config: seen.append(config) or 0)
    result = runner.invoke(
        app,
        ["serve", "--port", "0", "--profile", "baseline", "--ping-interval", "250ms",
         "--origin", "https://a", "--origin", "https://b", "--replay-age", "1m"],
        env={"WSCTL_MAX_CONNECTIONS": "77", "WSCTL_JOB_RATE": "4"},
    )
    assert result.exit_code == 0, result.output
    (config,) = seen
    assert (config.port, config.profile, config.ping_interval, config.replay_age) == (
        0, "baseline", 0.25, 60.0)
    assert config.origins == ("https://a", "https://b")
    assert (config.max_connections, config.job_rate) == (77, 4.0)


def test_usage_errors_from_the_console_script_are_one_line():
    """The installed entry point reports parse errors in one line with exit 2."""
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", "from wsctl.cli.main import run; run()", "serve", "--port", "abc"],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "--port" in result.stderr
    assert "Traceback" not in result.stderr
