"""``python -m server_stub``: the server's own command line, the same options as
``wsctl serve``, without wsctl's CLI."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from server_stub import ServerConfig
from server_stub.auth import check_token
from server_stub.command import main, parser
from server_stub.config import OPTIONS, config_from_options
from wsctl.cli.main import app
from wsctl.scenario.model import SERVICE_FIELDS, ServerSpec

ARGS = ["--port", "0", "--profile", "baseline", "--ping-interval", "250ms", "--origin",
        "https://a", "--origin", "https://b", "--replay-age", "2m", "--retry-hint", "1500ms",
        "--health-mode", "per-connection", "--log-format", "json", "--log-level", "WARNING"]
ENV = {"WSCTL_MAX_CONNECTIONS": "77", "WSCTL_JOB_RATE": "4", "WSCTL_SECRET": "k"}


@pytest.fixture
def started(monkeypatch):
    """The configs the server would have run with (it is never started)."""
    seen: list[ServerConfig] = []
    monkeypatch.setattr("server_stub.main.run", lambda config: seen.append(config) or 0)
    monkeypatch.setattr("server_stub.logs.setup_logging", lambda *args: None)
    return seen


def test_both_commands_build_the_same_config(started, monkeypatch):
    """The same flags and WSCTL_* variables give the same ServerConfig through
    ``python -m server_stub`` as through ``wsctl serve``."""
    result = CliRunner().invoke(app, ["serve", *ARGS], env=ENV)
    assert result.exit_code == 0, result.output
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    assert main(ARGS) == 0
    via_cli, via_module = started
    assert via_cli == via_module
    assert (via_module.profile, via_module.ping_interval, via_module.replay_age) == (
        "baseline", 0.25, 120.0)
    assert via_module.origins == ("https://a", "https://b")
    assert (via_module.max_connections, via_module.job_rate, via_module.secret) == (
        77, 4.0, "k")
    assert (via_module.retry_hint_ms, via_module.health_mode) == (1500, "per-connection")


def test_defaults_are_server_configs_own(started):
    """With no flags both commands run ServerConfig's defaults: one source of defaults."""
    assert CliRunner().invoke(app, ["serve"], env={}).exit_code == 0
    assert main([]) == 0
    assert started == [ServerConfig(), ServerConfig()]
    assert config_from_options() == ServerConfig()


def test_repeated_flag_replaces_the_variable(started, monkeypatch):
    """WSCTL_ORIGIN gives the origins unless --origin is given, as with wsctl serve."""
    monkeypatch.setenv("WSCTL_ORIGIN", "https://x https://y")
    assert main([]) == 0 and main(["--origin", "https://z"]) == 0
    assert [c.origins for c in started] == [("https://x", "https://y"), ("https://z",)]


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--port", "abc"], "--port"), (["--port", "70000"], "0<=x<=65535"),
     (["--profile", "fast"], "--profile"), (["--ping-timeout", "0"], "greater than zero"),
     (["--issue-token", "a"], "needs --secret"), (["--certfile", "c.pem"], "go together"),
     (["--log-level", "loud"], "--log-level"),
     (["--ping-interval", "1us"], "--ping-interval must be at least 10ms"),
     (["--retry-hint", "9" * 400], "--retry-hint: at most 87600h"),
     (["--replay-age", "1" * 400 + "s"], "--replay-age: at most 87600h"),
     (["--secret", "k", "--issue-token", "a", "--ttl", "99999999999h"], "--ttl: at most 87600h"),
     (["--secret", "k", "--issue-token", "a", "--ttl", "9" * 400], "--ttl: at most 87600h")],
)
def test_bad_input_is_one_line_exit_2(args, message, started, capsys):
    """Bad flags exit 2 with one line naming the option; nothing starts."""
    with pytest.raises(SystemExit) as stopped:
        sys.exit(main(args))
    assert stopped.value.code == 2
    out, err = capsys.readouterr()
    assert err.startswith("wsctl: error: ") and err.count("\n") == 1 and message in err
    assert started == [] and out == ""  # no token printed either


def test_runs_without_wsctls_cli():
    """``python -m server_stub`` imports neither typer, rich nor wsctl.cli (and issues a
    token the server accepts)."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "server_stub", "--secret", "k",
         "--issue-token", "alerts"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert check_token("k", "alerts", result.stdout.strip()) is None
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()}
    assert "server_stub.command" in imported
    assert not {m for m in imported if m.split(".")[0] in {"typer", "rich", "click"}
                or m.startswith("wsctl.cli")}


def test_every_scenario_server_option_is_a_server_flag():
    """What a scenario's ``server:`` sets becomes flags the server reads back as set."""
    spec = ServerSpec(ping_interval=0.5, replay_age=90, job_steps=7, retry_hint=0,
                      health_mode="per-connection")
    # not the embedded server's flags: another service's, or how many servers to run
    own = {"url", "profile", "command", "instances", *SERVICE_FIELDS}
    assert set(ServerSpec.model_fields) - own <= set(OPTIONS)
    parsed = vars(parser().parse_args(spec.args()))
    config = config_from_options(**{k: v for k, v in parsed.items()
                                    if k not in {"issue_token", "ttl"}})
    assert (config.ping_interval, config.replay_age, config.job_steps) == (0.5, 90.0, 7)
    assert (config.retry_hint_ms, config.health_mode) == (0, "per-connection")


FD_SCRIPT = """
import resource, sys
from server_stub.command import check_fd_room
soft, hard = int(sys.argv[1]), int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
print(check_fd_room(int(sys.argv[3])), *resource.getrlimit(resource.RLIMIT_NOFILE))
"""


@pytest.mark.parametrize(("soft", "hard", "max_connections", "warned"), [
    (256, 4096, 1000, False),   # the hard limit has room: the soft one is raised to it
    (256, 512, 10_000, True),   # even the hard limit is too few: say so, keep serving
    (256, 512, 0, False),       # no connection limit set: nothing to compare with
])
def test_server_raises_its_fd_limit(soft, hard, max_connections, warned):
    """The server raises its soft file-descriptor limit to the hard one (a 1024 default
    would cap it far below --max-connections) and warns, naming the fix, when even the hard
    limit cannot hold --max-connections."""
    result = subprocess.run([sys.executable, "-c", FD_SCRIPT, str(soft), str(hard),
                             str(max_connections)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(hard), str(hard), str(hard)]
    assert ("file descriptor limit 512 is below --max-connections 10000" in result.stderr
            and "ulimit -n" in result.stderr) is warned
