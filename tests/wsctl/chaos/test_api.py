"""The HTTP API against Toxiproxy's documented behaviour, over a real uvicorn socket."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import Server
from websockets.exceptions import ConnectionClosedError

from tests.wsctl.chaos.conftest import port_of, settle
from wsctl.chaos.server import ChaosServer
from wsctl.errors import PortInUse


@pytest.fixture
async def api() -> AsyncIterator[tuple[ChaosServer, httpx.AsyncClient]]:
    async with ChaosServer(api="127.0.0.1:0") as server:
        async with httpx.AsyncClient(base_url=server.url) as client:
            yield server, client


@pytest.fixture
async def client(api: tuple[ChaosServer, httpx.AsyncClient]) -> httpx.AsyncClient:
    return api[1]


def body_for(server: Server, name: str = "ws") -> dict[str, object]:
    return {"name": name, "listen": "127.0.0.1:0", "upstream": f"127.0.0.1:{port_of(server)}"}


async def test_version(client: httpx.AsyncClient) -> None:
    """GET /version answers with a JSON version, as Toxiproxy 2.x does."""
    response = await client.get("/version")
    assert response.status_code == 200 and "version" in response.json()


async def test_create_proxy_reports_real_port_and_duplicate_is_409(
    client: httpx.AsyncClient, ws_echo: Server
) -> None:
    """POST /proxies is 201 with Toxiproxy's shape and the real port; the same name is 409."""
    response = await client.post("/proxies", json=body_for(ws_echo))
    assert response.status_code == 201
    proxy = response.json()
    assert set(proxy) == {"name", "listen", "upstream", "enabled", "toxics"}
    assert proxy["enabled"] is True and proxy["toxics"] == []
    assert not proxy["listen"].endswith(":0")
    again = await client.post("/proxies", json=body_for(ws_echo))
    assert again.status_code == 409
    assert again.json() == {"error": "proxy already exists", "status": 409}
    listing = (await client.get("/proxies")).json()
    assert listing == {"ws": proxy}


async def test_create_proxy_missing_field_is_400(client: httpx.AsyncClient) -> None:
    """A proxy without upstream is a 400 naming the field."""
    response = await client.post("/proxies", json={"name": "x"})
    assert response.status_code == 400
    assert response.json()["error"] == "missing required field: upstream"


async def test_bad_json_is_400(client: httpx.AsyncClient) -> None:
    """A body that is not JSON is a 400 'bad request body'."""
    response = await client.post("/proxies", content=b"{nope")
    assert response.status_code == 400
    assert response.json()["error"].startswith("bad request body")


async def test_listen_address_taken_is_clear(client: httpx.AsyncClient, ws_echo: Server) -> None:
    """Listening on a taken address fails with a message naming the address."""
    taken = f"127.0.0.1:{port_of(ws_echo)}"
    response = await client.post("/proxies", json={**body_for(ws_echo), "listen": taken})
    assert response.status_code == 409
    assert response.json() == {
        "error": f"listen address {taken} is already in use",
        "status": 409,
        "kind": "port_in_use",
    }


async def test_unknown_proxy_and_toxic_are_404(client: httpx.AsyncClient, ws_echo: Server) -> None:
    """Unknown proxies and toxics are 404 with Toxiproxy's messages."""
    assert (await client.get("/proxies/nope")).json() == {"error": "proxy not found", "status": 404}
    await client.post("/proxies", json=body_for(ws_echo))
    response = await client.get("/proxies/ws/toxics/nope")
    assert response.status_code == 404 and response.json()["error"] == "toxic not found"
    assert (await client.delete("/proxies/ws/toxics/nope")).status_code == 404


async def test_toxic_defaults_update_and_delete(client: httpx.AsyncClient, ws_echo: Server) -> None:
    """Toxic defaults follow Toxiproxy; PATCH merges attributes; DELETE is 204 then 404."""
    await client.post("/proxies", json=body_for(ws_echo))
    created = await client.post(
        "/proxies/ws/toxics", json={"type": "latency", "attributes": {"latency": 100}}
    )
    assert created.status_code == 200
    assert created.json() == {
        "attributes": {"latency": 100, "jitter": 0},
        "name": "latency_downstream",
        "type": "latency",
        "stream": "downstream",
        "toxicity": 1.0,
    }
    duplicate = await client.post("/proxies/ws/toxics", json={"type": "latency"})
    assert duplicate.status_code == 409
    patched = await client.patch(
        "/proxies/ws/toxics/latency_downstream", json={"attributes": {"jitter": 5}}
    )
    assert patched.json()["attributes"] == {"latency": 100, "jitter": 5}
    posted = await client.post("/proxies/ws/toxics/latency_downstream", json={"toxicity": 0.5})
    assert posted.json()["toxicity"] == 0.5
    assert [t["name"] for t in (await client.get("/proxies/ws/toxics")).json()] == [
        "latency_downstream"
    ]
    assert (await client.get("/proxies/ws")).json()["toxics"][0]["attributes"]["jitter"] == 5
    assert (await client.delete("/proxies/ws/toxics/latency_downstream")).status_code == 204
    assert (await client.get("/proxies/ws/toxics/latency_downstream")).status_code == 404


async def test_unknown_toxic_type_names_valid_ones(
    client: httpx.AsyncClient, ws_echo: Server
) -> None:
    """An unknown toxic type is a 400 listing the valid types."""
    await client.post("/proxies", json=body_for(ws_echo))
    response = await client.post("/proxies/ws/toxics", json={"type": "lag"})
    assert response.status_code == 400
    message = response.json()["error"]
    assert "invalid toxic type" in message and "latency" in message and "drop_pongs" in message


@pytest.mark.parametrize(
    ("attributes", "field"),
    [({"latency": "slow"}, "latency"), ({"latency": -1}, "latency"), ({"latncy": 5}, "latncy")],
)
async def test_bad_attribute_names_the_field(
    client: httpx.AsyncClient, ws_echo: Server, attributes: dict[str, object], field: str
) -> None:
    """A wrong attribute type, value or name is a 400 naming the field."""
    await client.post("/proxies", json=body_for(ws_echo))
    response = await client.post(
        "/proxies/ws/toxics", json={"type": "latency", "attributes": attributes}
    )
    assert response.status_code == 400
    assert f"attributes.{field}" in response.json()["error"]


async def test_bad_stream_is_400(client: httpx.AsyncClient, ws_echo: Server) -> None:
    """A stream other than upstream/downstream is Toxiproxy's 400."""
    await client.post("/proxies", json=body_for(ws_echo))
    response = await client.post("/proxies/ws/toxics", json={"type": "latency", "stream": "up"})
    assert response.status_code == 400
    assert "upstream or downstream" in response.json()["error"]


async def test_toxic_applies_to_live_connection(client: httpx.AsyncClient, ws_echo: Server) -> None:
    """A toxic added through the API slows an already open WebSocket; deleting it restores it."""
    listen = (await client.post("/proxies", json=body_for(ws_echo))).json()["listen"]
    async with connect(f"ws://{listen}/", ping_interval=None) as ws:

        async def rtt() -> float:
            start = time.perf_counter()
            await ws.send("x")
            await ws.recv()
            return time.perf_counter() - start

        assert await rtt() < 0.1
        latency = {"type": "latency", "attributes": {"latency": 200}}
        await client.post("/proxies/ws/toxics", json=latency)
        assert await rtt() >= 0.2
        await client.delete("/proxies/ws/toxics/latency_downstream")
        assert await rtt() < 0.1


async def test_populate_is_idempotent(client: httpx.AsyncClient, ws_echo: Server) -> None:
    """POST /populate twice keeps matching proxies (same port, connections alive); 201."""
    config = [body_for(ws_echo, "a"), body_for(ws_echo, "b")]
    first = await client.post("/populate", json=config)
    assert first.status_code == 201
    proxies = first.json()["proxies"]
    assert [p["name"] for p in proxies] == ["a", "b"]
    async with connect(f"ws://{proxies[0]['listen']}/", ping_interval=None) as ws:
        second = await client.post("/populate", json=config)
        assert second.status_code == 201
        assert second.json()["proxies"] == proxies
        await ws.send("still")
        assert await ws.recv() == "still"


async def test_populate_replaces_changed_proxy(client: httpx.AsyncClient, ws_echo: Server) -> None:
    """A populated proxy whose upstream changed is replaced."""
    await client.post("/populate", json=[body_for(ws_echo, "a")])
    changed = {**body_for(ws_echo, "a"), "upstream": "127.0.0.1:9"}
    response = await client.post("/populate", json=[changed])
    assert response.json()["proxies"][0]["upstream"] == "127.0.0.1:9"


async def test_populate_rejects_bad_entry_before_changing_anything(
    client: httpx.AsyncClient, ws_echo: Server
) -> None:
    """A populate with an invalid entry is a 400 and creates none of the proxies."""
    response = await client.post("/populate", json=[body_for(ws_echo, "a"), {"name": "b"}])
    assert response.status_code == 400
    assert "upstream at proxy 2" in response.json()["error"]
    assert (await client.get("/proxies")).json() == {}


async def test_reset_enables_proxies_and_removes_toxics(
    client: httpx.AsyncClient, ws_echo: Server
) -> None:
    """POST /reset re-enables disabled proxies and removes every toxic; 204."""
    await client.post("/proxies", json=body_for(ws_echo))
    await client.post("/proxies/ws/toxics", json={"type": "timeout"})
    disabled = await client.patch("/proxies/ws", json={"enabled": False})
    assert disabled.json()["enabled"] is False
    response = await client.post("/reset")
    assert response.status_code == 204
    proxy = (await client.get("/proxies/ws")).json()
    assert proxy["enabled"] is True and proxy["toxics"] == []


async def test_update_to_a_taken_port_changes_nothing(
    client: httpx.AsyncClient, ws_echo: Server
) -> None:
    """Moving a proxy to a taken address is a 409 and leaves it listening, connections alive."""
    before = (await client.post("/proxies", json=body_for(ws_echo))).json()
    taken = f"127.0.0.1:{port_of(ws_echo)}"
    async with connect(f"ws://{before['listen']}/", ping_interval=None) as ws:
        response = await client.patch("/proxies/ws", json={"listen": taken})
        assert response.status_code == 409 and response.json()["kind"] == "port_in_use"
        assert (await client.get("/proxies/ws")).json() == before
        await ws.send("still")
        assert await ws.recv() == "still"


async def test_update_moves_a_proxy_to_a_free_port(
    client: httpx.AsyncClient, ws_echo: Server
) -> None:
    """Moving a proxy closes its connections, frees the old port and listens on the new one."""
    before = (await client.post("/proxies", json=body_for(ws_echo))).json()
    async with connect(f"ws://{before['listen']}/", ping_interval=None) as ws:
        after = (await client.patch("/proxies/ws", json={"listen": "127.0.0.1:0"})).json()
        assert after["enabled"] is True and after["listen"] != before["listen"]
        with pytest.raises(ConnectionClosedError):
            await ws.recv()
    async with connect(f"ws://{after['listen']}/", ping_interval=None) as moved:
        await moved.send("here")
        assert await moved.recv() == "here"
    host, port = before["listen"].split(":")
    with pytest.raises(OSError):
        await asyncio.open_connection(host, int(port))


async def test_populate_keeps_a_proxy_whose_new_address_is_taken(
    client: httpx.AsyncClient, ws_echo: Server
) -> None:
    """A populate that would move a proxy to a taken address is a 409 and keeps the old one."""
    before = (await client.post("/populate", json=[body_for(ws_echo, "a")])).json()["proxies"]
    await client.post("/proxies/a/toxics", json={"type": "latency"})
    taken = f"127.0.0.1:{port_of(ws_echo)}"
    response = await client.post("/populate", json=[{**body_for(ws_echo, "a"), "listen": taken}])
    assert response.status_code == 409 and response.json()["kind"] == "port_in_use"
    proxy = (await client.get("/proxies/a")).json()
    assert proxy["listen"] == before[0]["listen"] and proxy["enabled"] is True
    assert [t["name"] for t in proxy["toxics"]] == ["latency_downstream"]


async def test_reset_starts_every_proxy_it_can(client: httpx.AsyncClient, ws_echo: Server) -> None:
    """A proxy whose port was taken meanwhile stays down; reset still does all the rest (409)."""
    stuck = (await client.post("/proxies", json=body_for(ws_echo, "stuck"))).json()["listen"]
    await client.post("/proxies", json=body_for(ws_echo, "fine"))
    for name in ("stuck", "fine"):
        await client.post(f"/proxies/{name}/toxics", json={"type": "latency"})
        await client.patch(f"/proxies/{name}", json={"enabled": False})
    host, port = stuck.split(":")
    with socket.socket() as squatter:
        squatter.bind((host, int(port)))
        squatter.listen()
        response = await client.post("/reset")
    assert response.status_code == 409 and response.json()["kind"] == "port_in_use"
    assert stuck in response.json()["error"]
    proxies = (await client.get("/proxies")).json()
    assert proxies["fine"]["enabled"] is True and proxies["stuck"]["enabled"] is False
    assert proxies["fine"]["toxics"] == [] and proxies["stuck"]["toxics"] == []


async def test_delete_proxy_releases_its_port(client: httpx.AsyncClient, ws_echo: Server) -> None:
    """DELETE /proxies/{name} is 204; the proxy is gone and its port refuses connections."""
    listen = (await client.post("/proxies", json=body_for(ws_echo))).json()["listen"]
    assert (await client.delete("/proxies/ws")).status_code == 204
    assert (await client.get("/proxies/ws")).status_code == 404
    host, port = listen.split(":")
    with pytest.raises(OSError):
        await asyncio.open_connection(host, int(port))


async def test_list_and_cut_one_connection(client: httpx.AsyncClient, ws_echo: Server) -> None:
    """Connections are listed with ids; cutting one gives that client 1006, not the other."""
    listen = (await client.post("/proxies", json=body_for(ws_echo))).json()["listen"]
    async with (
        connect(f"ws://{listen}/", ping_interval=None) as first,
        connect(f"ws://{listen}/", ping_interval=None) as second,
    ):
        conns = (await client.get("/proxies/ws/connections")).json()
        assert len(conns) == 2
        assert {"id", "client", "upstream", "opened_at", "bytes", "toxics"} <= set(conns[0])
        mine = [c for c in conns if c["client"].endswith(f":{first.local_address[1]}")]
        response = await client.delete(f"/proxies/ws/connections/{mine[0]['id']}")
        assert response.status_code == 204
        with pytest.raises(ConnectionClosedError):
            await asyncio.wait_for(first.recv(), 2)
        assert first.close_code == 1006
        await second.send("fine")
        assert await second.recv() == "fine"
    assert (await client.delete("/proxies/ws/connections/999999")).status_code == 404


async def test_fault_one_connection(client: httpx.AsyncClient, ws_echo: Server) -> None:
    """A toxic posted to one connection applies to it alone."""
    listen = (await client.post("/proxies", json=body_for(ws_echo))).json()["listen"]
    async with (
        connect(f"ws://{listen}/", ping_interval=None) as slow,
        connect(f"ws://{listen}/", ping_interval=None) as fast,
    ):
        conns = (await client.get("/proxies/ws/connections")).json()
        slow_id = next(c["id"] for c in conns if c["client"].endswith(f":{slow.local_address[1]}"))
        response = await client.post(
            f"/proxies/ws/connections/{slow_id}/toxics",
            json={"type": "latency", "attributes": {"latency": 300}},
        )
        assert response.status_code == 200
        for ws, delayed in ((slow, True), (fast, False)):
            start = time.perf_counter()
            await ws.send("x")
            await ws.recv()
            assert (time.perf_counter() - start >= 0.3) is delayed


async def test_schedule_over_api(client: httpx.AsyncClient, ws_echo: Server) -> None:
    """A schedule with at/for switches its toxic on, then off again."""
    await client.post("/proxies", json=body_for(ws_echo))
    start = time.monotonic()
    created = await client.post(
        "/proxies/ws/schedules",
        json={"toxic": {"type": "latency"}, "at": "300ms", "for": "200ms"},
    )
    assert created.status_code == 201
    schedule_id = created.json()["id"]

    async def names() -> list[str]:
        return [t["name"] for t in (await client.get("/proxies/ws/toxics")).json()]

    seen: list[tuple[float, list[str]]] = []
    while time.monotonic() - start < 1.0:
        seen.append((time.monotonic() - start, await names()))
        await asyncio.sleep(0.02)
    on = [t for t, names_then in seen if names_then]
    assert on, "the toxic was never switched on"
    assert 0.28 <= min(on) and max(on) <= 0.3 + 0.2 + 0.15
    state = (await client.get(f"/proxies/ws/schedules/{schedule_id}")).json()
    assert state["state"] == "done" and state["activations"] == 1


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"toxic": {"type": "cut"}, "every": 3}, 400, "bad request body: every: needs a 'for'"),
        ({"toxic": {"type": "cut"}, "at": "soon"}, 400, "bad request body: at: cannot read"),
        ({"toxic": {"type": "lag"}}, 400, "invalid toxic type: 'lag'"),
        ({"toxic": {"type": "cut"}, "connection": "nope"}, 404, "connection not found"),
    ],
)
async def test_schedule_errors_name_the_field(
    client: httpx.AsyncClient, ws_echo: Server, body: dict[str, object], status: int, error: str
) -> None:
    """A bad schedule body is a 400 naming the field; an unknown connection a 404."""
    await client.post("/proxies", json=body_for(ws_echo))
    response = await client.post("/proxies/ws/schedules", json=body)
    assert response.status_code == status
    assert response.json()["error"].startswith(error)
    assert (await client.get("/proxies/ws/schedules")).json() == []


async def test_metrics_count_bytes_connections_and_faults(
    client: httpx.AsyncClient, ws_echo: Server
) -> None:
    """GET /metrics exposes bytes per direction, connections and faults applied."""
    listen = (await client.post("/proxies", json=body_for(ws_echo))).json()["listen"]
    await client.post("/proxies/ws/toxics", json={"type": "drop_pongs"})
    async with connect(f"ws://{listen}/", ping_interval=None) as ws:
        await ws.send(os.urandom(1000))  # incompressible
        await ws.recv()
    text = (await client.get("/metrics")).text

    def value(prefix: str) -> float:
        line = next(x for x in text.splitlines() if x.startswith(prefix))
        return float(line.rsplit(" ", 1)[1])

    assert value('wsctl_chaos_bytes_total{direction="upstream",proxy="ws"}') > 1000
    assert value('wsctl_chaos_bytes_total{direction="downstream",proxy="ws"}') > 1000
    assert value('wsctl_chaos_connections_total{proxy="ws"}') == 1
    assert value('wsctl_chaos_faults_applied_total{proxy="ws",type="drop_pongs"}') == 1


async def test_browsers_are_refused(client: httpx.AsyncClient) -> None:
    """Requests from browsers are refused (403), as Toxiproxy does against CSRF."""
    response = await client.get("/proxies", headers={"User-Agent": "Mozilla/5.0"})
    assert response.status_code == 403


async def test_api_token_required_when_set() -> None:
    """With a token, requests without the right bearer get 401, with it 200."""
    async with ChaosServer(api="127.0.0.1:0", token="s3cret") as server:
        async with httpx.AsyncClient(base_url=server.url) as client:
            assert (await client.get("/proxies")).status_code == 401
            wrong = {"Authorization": "Bearer nope"}
            assert (await client.get("/proxies", headers=wrong)).status_code == 401
            right = {"Authorization": "Bearer s3cret"}
            assert (await client.get("/proxies", headers=right)).status_code == 200


async def test_api_port_taken_is_port_in_use(api: tuple[ChaosServer, httpx.AsyncClient]) -> None:
    """Starting a second API on a taken address raises PortInUse naming it."""
    taken = api[0].address
    with pytest.raises(PortInUse, match=f"API address {taken} is already in use"):
        await ChaosServer(api=taken).start()


async def test_stop_closes_proxies(ws_echo: Server) -> None:
    """Stopping the server closes every proxy connection."""
    server = ChaosServer(api="127.0.0.1:0")
    await server.start()
    proxy = await server.chaos.create(name="ws", upstream=f"127.0.0.1:{port_of(ws_echo)}")
    async with connect(f"ws://{proxy.listen}/", ping_interval=None) as ws:
        await server.stop()
        with pytest.raises(ConnectionClosedError):
            await asyncio.wait_for(ws.recv(), 2)
    assert await settle(lambda: not proxy.connections)


async def test_openapi_lists_toxiproxy_routes(client: httpx.AsyncClient) -> None:
    """GET /openapi.json documents the Toxiproxy routes with their methods."""
    document = (await client.get("/openapi.json")).json()
    paths = document["paths"]
    assert set(paths["/proxies/{proxy}/toxics/{toxic}"]) == {"get", "post", "patch", "delete"}
    assert paths["/proxies"]["post"]["summary"].startswith("Create a proxy")


async def test_non_finite_toxicity_from_raw_json_is_400(
    client: httpx.AsyncClient, ws_echo: Server
) -> None:
    """NaN and Infinity (which JSON parsers accept) are refused, never stored."""
    await client.post("/proxies", json=body_for(ws_echo))
    for raw in ("NaN", "Infinity"):
        response = await client.post(
            "/proxies/ws/toxics",
            content=f'{{"type": "latency", "toxicity": {raw}}}',
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 400, raw
    assert (await client.get("/proxies/ws/toxics")).json() == []


def test_float_attributes_must_be_finite() -> None:
    """A float attribute of inf or nan names the field instead of being stored."""
    from wsctl.chaos.faults.base import InvalidAttribute, _coerce

    for value in (float("inf"), float("nan")):
        with pytest.raises(InvalidAttribute, match="rate"):
            _coerce("rate", value, "float")


async def test_api_connections_are_accepted_with_tcp_nodelay():
    """The API's listening socket says TCP, so asyncio sets TCP_NODELAY on what it
    accepts: uvicorn writes a response's head and body separately, and with Nagle on the
    body waited for the client's delayed ACK (44 ms per keep-alive request)."""
    from wsctl.chaos.server import bind

    listener = bind("127.0.0.1:0")
    accepted: list[int] = []

    def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        accepted.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    server = await asyncio.start_server(on_connect, sock=listener)
    async with server:
        port = listener.getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(100):
            if accepted:
                break
            await asyncio.sleep(0.01)
        writer.close()
    assert accepted == [1]
