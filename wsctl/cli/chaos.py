"""``wsctl chaos``: the fault-injection proxy and the commands that drive its API."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import math
import signal
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from wsctl.chaos.faults import FAULTS
from wsctl.chaos.model import DEFAULT_API, DEFAULT_MAX_CONNECTIONS
from wsctl.cli._common import fail_usage, reports_errors
from wsctl.runtime import loop_factory

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from wsctl.chaos.client import ChaosClient

app = typer.Typer(
    help="Fault-injection TCP proxy with Toxiproxy's HTTP API and WebSocket-aware faults.",
    no_args_is_help=True,
)
proxy_app = typer.Typer(
    help="Create, list, enable, disable and remove proxies.", no_args_is_help=True
)
toxic_app = typer.Typer(
    help="Add, list and remove toxics (faults) on a proxy.", no_args_is_help=True
)
app.add_typer(proxy_app, name="proxy")
app.add_typer(toxic_app, name="toxic")

Api = Annotated[
    str,
    typer.Option("--api", help="Chaos API address (host:port or URL).", envvar="WSCTL_CHAOS_API"),
]
Token = Annotated[
    str | None,
    typer.Option("--api-token", help="Bearer token for the API.", envvar="WSCTL_CHAOS_TOKEN"),
]


class LoopName(StrEnum):
    auto = "auto"
    asyncio = "asyncio"
    uvloop = "uvloop"


def register(parent: typer.Typer) -> None:
    parent.add_typer(app, name="chaos")


# rich and httpx (the API client) load only in the commands that print or call the API.
def _console() -> Console:
    from rich.console import Console

    return Console(soft_wrap=True)


def _table(*columns: str) -> Table:
    from rich.table import Table

    return Table(*columns)


def _client(api: str, token: str | None) -> ChaosClient:
    from wsctl.chaos.client import ChaosClient

    return ChaosClient(api, token)


@app.command(short_help="Run the proxy and its API until Ctrl-C or SIGTERM.")
@reports_errors
def serve(
    api: Annotated[
        str,
        typer.Option(
            help="Address for the HTTP API (loopback by default).", envvar="WSCTL_CHAOS_API"
        ),
    ] = DEFAULT_API,
    config: Annotated[
        Path | None,
        typer.Option(
            help="Toxiproxy-style JSON file of proxies to create at start.",
            envvar="WSCTL_CHAOS_CONFIG",
        ),
    ] = None,
    api_token: Token = None,
    max_connections: Annotated[
        int,
        typer.Option(
            help="Live connections each proxy may hold (0 = no cap); past it a new client "
            "connection is reset at once, so a relay loop cannot take every file descriptor.",
            envvar="WSCTL_CHAOS_MAX_CONNECTIONS", min=0,
        ),
    ] = DEFAULT_MAX_CONNECTIONS,
    loop: Annotated[
        LoopName,
        typer.Option(
            help="Event loop: auto = uvloop where installed (the lower relay latency), "
            "else asyncio's own.", envvar="WSCTL_CHAOS_LOOP",
        ),
    ] = LoopName.auto,
) -> None:
    """Run the proxy and its API until Ctrl-C (or SIGTERM), then close every connection."""
    from wsctl.chaos.server import load_config  # uvicorn only when serving

    factory = loop_factory(loop.value)
    proxies = load_config(config) if config is not None else []
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(_serve(api, proxies, api_token, max_connections))


async def _serve(api: str, proxies: list[Any], token: str | None,
                 max_connections: int = DEFAULT_MAX_CONNECTIONS) -> None:
    from wsctl.chaos.server import ChaosServer

    server = ChaosServer(api=api, token=token, max_connections=max_connections)
    await server.start()
    try:
        await server.populate(proxies)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        loop_name = "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
        print(
            f"wsctl chaos: API on {server.url}, proxies: {len(server.chaos.proxies)}, "
            f"loop: {loop_name}; Ctrl-C stops",
            file=sys.stderr,
        )
        for proxy in server.chaos.proxies.values():
            upstreams = ", ".join(proxy.upstreams)
            print(f"  {proxy.name}: {proxy.listen} -> {upstreams}", file=sys.stderr)
        if token is None and not _loopback(server.address):
            print(
                f"wsctl chaos: warning: the API on {server.address} is reachable from other"
                " machines and has no --api-token",
                file=sys.stderr,
            )
        waiter = asyncio.ensure_future(server.wait())
        stopper = asyncio.ensure_future(stop.wait())
        await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        for task in (waiter, stopper):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    finally:
        await server.stop()
        print("wsctl chaos: stopped", file=sys.stderr)


def _loopback(address: str) -> bool:
    host = address.rpartition(":")[0].strip("[]")
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


# -- proxies ---------------------------------------------------------------------------


def _proxy_table(proxies: list[dict[str, Any]]) -> Table:
    table = _table("name", "listen", "upstream", "enabled", "toxics")
    for p in proxies:
        toxics = ", ".join(t["name"] for t in p.get("toxics", [])) or "-"
        upstreams = ", ".join(p.get("upstreams") or [p["upstream"]])
        table.add_row(p["name"], p["listen"], upstreams, "yes" if p["enabled"] else "no", toxics)
    return table


@proxy_app.command("add")
@reports_errors
def proxy_add(
    name: Annotated[str, typer.Argument(help="Proxy name.")],
    upstream: Annotated[
        list[str],
        typer.Option(help="Where to relay to, host:port; repeat it to balance new "
                     "connections round robin over several."),
    ],
    listen: Annotated[
        str, typer.Option(help="Where to listen, host:port (port 0: any).")
    ] = "127.0.0.1:0",
    disabled: Annotated[bool, typer.Option("--disabled", help="Create without listening.")] = False,
    api: Api = DEFAULT_API,
    api_token: Token = None,
) -> None:
    """Create a proxy (Toxiproxy: POST /proxies)."""
    body: dict[str, Any] = {"name": name, "listen": listen, "enabled": not disabled}
    if len(upstream) == 1:
        body["upstream"] = upstream[0]  # exactly Toxiproxy's body
    else:
        body["upstreams"] = upstream
    with _client(api, api_token) as client:
        proxy = client.request("POST", "/proxies", body)
    _console().print(_proxy_table([proxy]))


@proxy_app.command("upstreams", short_help="Set the upstreams a proxy balances over.")
@reports_errors
def proxy_upstreams(
    name: Annotated[str, typer.Argument(help="Proxy name.")],
    upstreams: Annotated[list[str], typer.Argument(help="host:port of each upstream, in order.")],
    api: Api = DEFAULT_API,
    api_token: Token = None,
) -> None:
    """Replace a proxy's upstreams: new connections go round robin over these; the
    listener stays, and so do live connections to upstreams still listed."""
    with _client(api, api_token) as client:
        proxy = client.request("PATCH", f"/proxies/{name}", {"upstreams": upstreams})
    _console().print(_proxy_table([proxy]))


@proxy_app.command("list")
@reports_errors
def proxy_list(api: Api = DEFAULT_API, api_token: Token = None) -> None:
    """List proxies and their toxics."""
    with _client(api, api_token) as client:
        proxies = client.request("GET", "/proxies")
    _console().print(_proxy_table(list(proxies.values())))


@proxy_app.command("rm")
@reports_errors
def proxy_rm(
    name: Annotated[str, typer.Argument(help="Proxy name.")],
    api: Api = DEFAULT_API,
    api_token: Token = None,
) -> None:
    """Delete a proxy, closing its connections."""
    with _client(api, api_token) as client:
        client.request("DELETE", f"/proxies/{name}")
    _console().print(f"removed proxy {name}")


def _set_enabled(name: str, enabled: bool, api: str, token: str | None) -> None:
    with _client(api, token) as client:
        proxy = client.request("PATCH", f"/proxies/{name}", {"enabled": enabled})
    _console().print(_proxy_table([proxy]))


@proxy_app.command("enable")
@reports_errors
def proxy_enable(
    name: Annotated[str, typer.Argument(help="Proxy name.")],
    api: Api = DEFAULT_API,
    api_token: Token = None,
) -> None:
    """Start listening again."""
    _set_enabled(name, True, api, api_token)


@proxy_app.command("disable", short_help="Stop listening and close the proxy's connections.")
@reports_errors
def proxy_disable(
    name: Annotated[str, typer.Argument(help="Proxy name.")],
    api: Api = DEFAULT_API,
    api_token: Token = None,
) -> None:
    """Take the proxy down: stop listening and close its connections (Toxiproxy's 'down')."""
    _set_enabled(name, False, api, api_token)


# -- toxics ----------------------------------------------------------------------------


def _attribute(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise fail_usage(f"attribute {text!r} is not key=value")
    for convert in (int, float):
        try:
            value = convert(raw)
        except ValueError:
            continue
        if not math.isfinite(value):
            raise fail_usage(f"attribute {text!r} is not a finite number")
        return key, value
    return key, raw


def _toxic_table(toxics: list[dict[str, Any]]) -> Table:
    table = _table("name", "type", "stream", "toxicity", "attributes")
    for t in toxics:
        attrs = ", ".join(f"{k}={v}" for k, v in t["attributes"].items()) or "-"
        table.add_row(t["name"], t["type"], t["stream"], f"{t['toxicity']:g}", attrs)
    return table


@toxic_app.command("add", short_help="Add a toxic to a proxy now, or schedule it.")
@reports_errors
def toxic_add(
    proxy: Annotated[str, typer.Argument(help="Proxy name.")],
    type_: Annotated[str, typer.Option("--type", "-t", help=f"Toxic type: {', '.join(FAULTS)}.")],
    attribute: Annotated[
        list[str] | None,
        typer.Option(
            "--attribute", "-a", help="Attribute key=value (repeatable), e.g. latency=100."
        ),
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", "-n", help="Toxic name (default <type>_<stream>).")
    ] = None,
    stream: Annotated[
        str, typer.Option(help="upstream (client->server) or downstream.")
    ] = "downstream",
    toxicity: Annotated[float, typer.Option(help="Probability a connection gets it, 0..1.")] = 1.0,
    connection: Annotated[
        str | None,
        typer.Option(help="Only this connection (id from `wsctl chaos conns`)."),
    ] = None,
    at: Annotated[
        str | None, typer.Option(help="Schedule: switch on after this long, e.g. 5s.")
    ] = None,
    for_: Annotated[
        str | None, typer.Option("--for", help="Schedule: switch off after this long, e.g. 250ms.")
    ] = None,
    every: Annotated[
        str | None, typer.Option(help="Schedule: repeat with this period (needs --for).")
    ] = None,
    api: Api = DEFAULT_API,
    api_token: Token = None,
) -> None:
    """Add a toxic to a proxy (live connections get it at once), or schedule it."""
    body: dict[str, Any] = {
        "type": type_,
        "stream": stream,
        "toxicity": toxicity,
        "attributes": dict(_attribute(a) for a in attribute or []),
    }
    if name:
        body["name"] = name
    with _client(api, api_token) as client:
        if at is not None or for_ is not None or every is not None:
            timing = {"at": at or 0, "for": for_, "every": every, "connection": connection}
            schedule = client.request(
                "POST", f"/proxies/{proxy}/schedules", {"toxic": body, **timing}
            )
            _console().print(_schedule_table([schedule]))
            return
        path = f"/proxies/{proxy}" + (f"/connections/{connection}" if connection else "")
        toxic = client.request("POST", f"{path}/toxics", body)
    _console().print(_toxic_table([toxic]))


def _schedule_table(schedules: list[dict[str, Any]]) -> Table:
    table = _table("schedule", "toxic", "type", "at", "for", "every", "connection", "state")
    for s in schedules:

        def show(value: Any) -> str:
            return "-" if value is None else f"{value:g}s"

        table.add_row(
            s["id"],
            s["toxic"]["name"],
            s["toxic"]["type"],
            show(s["at"]),
            show(s["for"]),
            show(s["every"]),
            s["connection"] or "all",
            s["state"],
        )
    return table


@toxic_app.command("list")
@reports_errors
def toxic_list(
    proxy: Annotated[str, typer.Argument(help="Proxy name.")],
    api: Api = DEFAULT_API,
    api_token: Token = None,
) -> None:
    """List a proxy's toxics, and its schedules if it has any."""
    with _client(api, api_token) as client:
        toxics = client.request("GET", f"/proxies/{proxy}/toxics")
        schedules = client.request("GET", f"/proxies/{proxy}/schedules")
    console = _console()
    console.print(_toxic_table(toxics))
    if schedules:
        console.print(_schedule_table(schedules))


@toxic_app.command("rm")
@reports_errors
def toxic_rm(
    proxy: Annotated[str, typer.Argument(help="Proxy name.")],
    name: Annotated[str, typer.Argument(help="Toxic name.")],
    connection: Annotated[
        str | None, typer.Option(help="The toxic was added to this connection only.")
    ] = None,
    api: Api = DEFAULT_API,
    api_token: Token = None,
) -> None:
    """Remove a toxic; data it was holding is forwarded, not dropped."""
    path = f"/proxies/{proxy}" + (f"/connections/{connection}" if connection else "")
    with _client(api, api_token) as client:
        client.request("DELETE", f"{path}/toxics/{name}")
    _console().print(f"removed toxic {name} from {proxy}")


# -- connections -----------------------------------------------------------------------


@app.command("conns")
@reports_errors
def conns(
    proxy: Annotated[str, typer.Argument(help="Proxy name.")],
    api: Api = DEFAULT_API,
    api_token: Token = None,
) -> None:
    """List a proxy's live connections."""
    with _client(api, api_token) as client:
        listing = client.request("GET", f"/proxies/{proxy}/connections")
    table = _table("id", "client", "upstream", "bytes up", "bytes down", "toxics")
    for c in listing:
        toxics = ", ".join(t["name"] for t in c["toxics"]) or "-"
        b = c["bytes"]
        table.add_row(
            c["id"],
            c["client"],
            c["upstream"],
            str(b.get("upstream", 0)),
            str(b.get("downstream", 0)),
            toxics,
        )
    _console().print(table)


@app.command("cut")
@reports_errors
def cut(
    proxy: Annotated[str, typer.Argument(help="Proxy name.")],
    connection: Annotated[
        str | None, typer.Argument(help="Connection id (see `wsctl chaos conns`).")
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Cut every connection of the proxy.")] = False,
    api: Api = DEFAULT_API,
    api_token: Token = None,
) -> None:
    """Reset connections now (TCP RST): WebSocket clients see 1006."""
    if (connection is None) == (not all_):
        raise fail_usage("give a connection id or --all (not both)")
    path = f"/proxies/{proxy}/connections" + (f"/{connection}" if connection else "")
    with _client(api, api_token) as client:
        client.request("DELETE", path)
    _console().print(
        f"cut {'every connection' if all_ else 'connection ' + str(connection)} of {proxy}"
    )


@app.command("unschedule")
@reports_errors
def unschedule(
    proxy: Annotated[str, typer.Argument(help="Proxy name.")],
    schedule: Annotated[str, typer.Argument(help="Schedule id (see `wsctl chaos toxic list`).")],
    api: Api = DEFAULT_API,
    api_token: Token = None,
) -> None:
    """Cancel a schedule; a toxic it switched on is removed."""
    with _client(api, api_token) as client:
        client.request("DELETE", f"/proxies/{proxy}/schedules/{schedule}")
    _console().print(f"cancelled schedule {schedule} of {proxy}")


@app.command("reset", short_help="Enable every proxy; remove every toxic and schedule.")
@reports_errors
def reset(api: Api = DEFAULT_API, api_token: Token = None) -> None:
    """Enable every proxy and remove every toxic and schedule (Toxiproxy: POST /reset)."""
    with _client(api, api_token) as client:
        client.request("POST", "/reset")
    _console().print("reset: all proxies enabled, all toxics removed")
