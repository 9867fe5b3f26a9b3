"""``wsctl chaos`` commands: exact exit codes and one-line errors, against a real API."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from wsctl.chaos.server import ChaosServer
from wsctl.cli.main import app

runner = CliRunner()


@pytest.fixture
def api() -> Iterator[str]:
    """A chaos API on port 0, served from its own thread and loop."""
    loop = asyncio.new_event_loop()
    server = ChaosServer(api="127.0.0.1:0")
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(server.start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10)
    yield server.address
    asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def wsctl(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.stdout, result.stderr


def test_proxy_and_toxic_round_trip(api: str) -> None:
    """add, list and rm proxies and toxics through the API, with tables on stdout."""
    code, out, _ = wsctl("chaos", "proxy", "add", "web", "--upstream", "127.0.0.1:9", "--api", api)
    assert code == 0 and "web" in out and "127.0.0.1:9" in out
    code, out, _ = wsctl(
        "chaos",
        "toxic",
        "add",
        "web",
        "-t",
        "latency",
        "-a",
        "latency=100",
        "-a",
        "jitter=5",
        "--api",
        api,
    )
    assert code == 0 and "latency_downstream" in out and "latency=100, jitter=5" in out
    code, out, _ = wsctl("chaos", "toxic", "list", "web", "--api", api)
    assert code == 0 and "latency_downstream" in out
    code, out, _ = wsctl("chaos", "proxy", "list", "--api", api)
    assert code == 0 and "latency_downstream" in out
    assert wsctl("chaos", "toxic", "rm", "web", "latency_downstream", "--api", api)[0] == 0
    assert wsctl("chaos", "proxy", "rm", "web", "--api", api)[0] == 0
    code, out, _ = wsctl("chaos", "proxy", "list", "--api", api)
    assert code == 0 and "web" not in out


def test_bad_attribute_is_exit_2_naming_field(api: str) -> None:
    """A bad attribute is one line on stderr naming the field, exit 2."""
    wsctl("chaos", "proxy", "add", "web", "--upstream", "127.0.0.1:9", "--api", api)
    code, _, err = wsctl(
        "chaos", "toxic", "add", "web", "-t", "latency", "-a", "latency=soon", "--api", api
    )
    assert code == 2
    assert err.count("\n") == 1 and "attributes.latency" in err


def test_unknown_proxy_is_exit_2(api: str) -> None:
    """Removing a proxy that does not exist says so in one line, exit 2."""
    code, _, err = wsctl("chaos", "proxy", "rm", "ghost", "--api", api)
    assert code == 2 and "proxy not found" in err and err.count("\n") == 1


def test_unreachable_api_is_exit_3_saying_where() -> None:
    """With no API listening: exit 3 and one line naming the address it tried."""
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{placeholder.getsockname()[1]}"
    code, _, err = wsctl("chaos", "proxy", "list", "--api", address)
    assert code == 3
    assert err.count("\n") == 1 and f"http://{address}" in err and "Traceback" not in err


@pytest.mark.parametrize("address", ["http://[::1", "ftp://127.0.0.1:8474", "http://:99",
                                     "127.0.0.1:99999"])
def test_malformed_api_address_is_exit_2(address: str) -> None:
    """An --api that is not host:port or an http URL: one line, exit 2, no traceback."""
    code, _, err = wsctl("chaos", "proxy", "list", "--api", address)
    assert code == 2, err
    assert err.count("\n") == 1 and "is not host:port or an http:// URL" in err, err


def test_api_address_from_environment(api: str) -> None:
    """WSCTL_CHAOS_API sets the API address."""
    result = runner.invoke(
        app, ["chaos", "proxy", "list"], env={"WSCTL_CHAOS_API": api, "COLUMNS": "200"}
    )
    assert result.exit_code == 0 and "name" in result.stdout


def test_cut_needs_an_id_or_all(api: str) -> None:
    """``cut`` without an id or --all is a usage error (exit 2)."""
    code, _, err = wsctl("chaos", "cut", "web", "--api", api)
    assert code == 2 and "--all" in err


def test_serve_with_taken_port_is_exit_3(api: str) -> None:
    """``serve`` on a taken API address: one line naming it, exit 3."""
    code, _, err = wsctl("chaos", "serve", "--api", api)
    assert code == 3 and f"{api} is already in use" in err


def test_serve_with_bad_config_is_exit_2(tmp_path: object) -> None:
    """``serve --config`` with a file that is not a JSON array: exit 2 naming the file."""
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    config = tmp_path / "proxies.json"
    config.write_text('{"name": "x"}')
    code, _, err = wsctl("chaos", "serve", "--api", "127.0.0.1:0", "--config", str(config))
    assert code == 2 and "proxies.json" in err and "JSON array" in err


def test_toxic_add_with_timing_creates_a_schedule(api: str) -> None:
    """--at/--for/--every turn ``toxic add`` into a schedule, listed by ``toxic list``."""
    wsctl("chaos", "proxy", "add", "web", "--upstream", "127.0.0.1:9", "--api", api)
    code, out, err = wsctl(
        "chaos",
        "toxic",
        "add",
        "web",
        "-t",
        "cut",
        "--at",
        "1h",
        "--for",
        "1s",
        "--every",
        "2h",
        "--api",
        api,
    )
    assert code == 0, err
    assert "3600s" in out and "7200s" in out and "pending" in out
    code, out, _ = wsctl("chaos", "toxic", "list", "web", "--api", api)
    assert code == 0 and "cut_downstream" in out and "pending" in out
    code, _, err = wsctl("chaos", "unschedule", "web", "999", "--api", api)
    assert code == 2 and "schedule not found" in err


def test_bad_schedule_is_exit_2(api: str) -> None:
    """--every without --for is refused by the API: one line, exit 2."""
    wsctl("chaos", "proxy", "add", "web", "--upstream", "127.0.0.1:9", "--api", api)
    code, _, err = wsctl("chaos", "toxic", "add", "web", "-t", "cut", "--every", "5s", "--api", api)
    assert code == 2 and "needs a 'for'" in err


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e400"])
def test_non_finite_attribute_is_exit_2(api: str, value: str) -> None:
    """An attribute that is not a finite number is bad input: one line naming it, exit 2."""
    wsctl("chaos", "proxy", "add", "web", "--upstream", "127.0.0.1:9", "--api", api)
    code, _, err = wsctl(
        "chaos", "toxic", "add", "web", "-t", "latency", "-a", f"latency={value}", "--api", api
    )
    assert code == 2
    assert err.count("\n") == 1 and f"latency={value}" in err and "finite" in err


def test_taken_listen_port_is_exit_3(api: str) -> None:
    """A proxy listen address already in use: one line naming it, exit 3 (as documented)."""
    code, _, err = wsctl(
        "chaos", "proxy", "add", "web", "--upstream", "127.0.0.1:9", "--listen", api, "--api", api
    )
    assert code == 3
    assert err.count("\n") == 1 and f"listen address {api} is already in use" in err


def test_proxy_with_several_upstreams_and_changing_them(api: str) -> None:
    """``proxy add`` with --upstream twice makes a balancing proxy; ``proxy upstreams``
    replaces the list; ``proxy list`` shows the list."""
    code, out, err = wsctl("chaos", "proxy", "add", "lb", "--upstream", "127.0.0.1:9",
                           "--upstream", "127.0.0.1:10", "--api", api)
    assert code == 0 and "127.0.0.1:9, 127.0.0.1:10" in out, err
    code, out, err = wsctl("chaos", "proxy", "upstreams", "lb", "127.0.0.1:11", "127.0.0.1:9",
                           "--api", api)
    assert code == 0 and "127.0.0.1:11, 127.0.0.1:9" in out, err
    code, out, _ = wsctl("chaos", "proxy", "list", "--api", api)
    assert code == 0 and "127.0.0.1:11, 127.0.0.1:9" in out
    code, _, err = wsctl("chaos", "proxy", "upstreams", "lb", "127.0.0.1:9", "127.0.0.1:9",
                         "--api", api)
    assert code == 2 and "twice" in err
