"""Admission, limits, auth, origin, /ws/health and /metrics on a real socket."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.http11 import Response

from server_stub.auth import check_token, issue_token
from tests.server_stub.helpers import recv_message
from wsctl import protocol as p


def http_url(server: object) -> str:
    return server.url.replace("ws", "http", 1)  # type: ignore[attr-defined]


async def metrics(server: object) -> dict[str, float]:
    """Scrape /metrics and parse it with prometheus_client's own parser."""
    async with httpx.AsyncClient() as client:
        response = await client.get(http_url(server) + "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


async def refusal(url: str, **kwargs: object) -> Response:
    """The HTTP response refusing a WebSocket handshake to ``url``."""
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url, **kwargs):  # type: ignore[arg-type]
            pass
    return refused.value.response


async def test_over_the_limit_is_503_with_retry_after_and_counted(make_server):
    """Past max_connections a handshake gets 503 + Retry-After, counted in /metrics."""
    server = await make_server(max_connections=2)
    async with connect(f"{server.url}/ws/a"), connect(f"{server.url}/ws/b"):
        response = await refusal(f"{server.url}/ws/c")
        assert response.status_code == 503
        assert int(response.headers["Retry-After"]) >= 1
        assert b"capacity" in response.body
        async with httpx.AsyncClient() as client:
            health = await client.get(http_url(server) + "/ws/health")
        assert health.status_code == 503 and health.json()["status"] == "at_capacity"
        m = await metrics(server)
    assert m["wsctl_server_refused_total{reason=capacity}"] == 1
    assert m["wsctl_server_connections"] == 2


async def test_per_client_address_limit(make_server):
    """max_per_client refuses a third connection from the same address."""
    server = await make_server(max_per_client=2)
    async with connect(f"{server.url}/ws/a"), connect(f"{server.url}/ws/a"):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(f"{server.url}/ws/b"):
                pass
    assert refused.value.response.status_code == 503
    assert b"127.0.0.1" in refused.value.response.body


async def test_health_document_fields_and_live_feed(make_server):
    """/ws/health has every documented field; as a WebSocket it streams the same JSON."""
    server = await make_server(max_connections=50)
    async with connect(f"{server.url}/ws/a") as ws:
        await recv_message(ws)
        async with httpx.AsyncClient() as client:
            response = await client.get(http_url(server) + "/ws/health")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        health = response.json()
        assert {"status", "uptime", "connections", "max_connections", "refused",
                "dead_detected", "streams", "store_size"} <= health.keys()
        assert (health["status"], health["connections"], health["max_connections"],
                health["streams"]) == ("ok", 1, 50, 1)
        async with connect(f"{server.url}/ws/health") as feed:
            t0 = time.monotonic()
            first = json.loads(await feed.recv())
            second = json.loads(await feed.recv())
            elapsed = time.monotonic() - t0
        assert first["connections"] == 2 and second["uptime"] > first["uptime"]
        assert 0.7 < elapsed < 2.0


async def test_metrics_parse_and_count_traffic(make_server):
    """/metrics parses with prometheus_client and counts opens, closes and messages."""
    server = await make_server(job_rate=50.0)
    async with connect(f"{server.url}/ws/a") as ws:
        await recv_message(ws)
        await ws.send(p.encode(p.Ping(1.0)))
        for _ in range(5):
            await ws.recv()
    await asyncio.sleep(0.1)
    m = await metrics(server)
    assert m["wsctl_server_connections_opened_total"] == 1
    assert m["wsctl_server_connections_closed_total{code=1000}"] == 1
    assert m["wsctl_server_messages_total{direction=in}"] == 1
    assert m["wsctl_server_messages_total{direction=out}"] >= 5
    assert m["wsctl_server_resumes_total{outcome=fresh}"] == 1
    assert "process_resident_memory_bytes" in m
    assert m["wsctl_server_connection_age_seconds_count"] == 0  # the connection is closed


async def test_connection_ages_are_a_histogram(make_server):
    """/metrics reports the age of open connections in cumulative buckets."""
    server = await make_server()
    async with connect(f"{server.url}/ws/a") as ws:
        await recv_message(ws)
        m = await metrics(server)
    assert m["wsctl_server_connection_age_seconds_count"] == 1
    assert m["wsctl_server_connection_age_seconds_bucket{le=1.0}"] == 1
    assert m["wsctl_server_connection_age_seconds_bucket{le=+Inf}"] == 1
    assert 0 < m["wsctl_server_connection_age_seconds_sum"] < 1


async def test_tokens_missing_bad_expired_and_good(make_server):
    """With a secret: no token 401, wrong stream 403, expired 401, valid token accepted."""
    server = await make_server(secret="s3cret")
    cases = {
        "": 401,
        f"?token={issue_token('s3cret', 'other', 60)}": 403,
        f"?token={issue_token('s3cret', 'a', -10)}": 401,
        "?token=garbage": 403,
        "?token=v1.%C2%B2.abc": 403,
        "?token=v1.9999999999.%C3%A9": 403,
    }
    for query, status in cases.items():
        with pytest.raises(InvalidStatus) as refused:
            async with connect(f"{server.url}/ws/a{query}"):
                pass
        assert refused.value.response.status_code == status, query
        assert len(refused.value.response.body.strip().splitlines()) == 1
    async with connect(f"{server.url}/ws/a?token={issue_token('s3cret', 'a', 60)}") as ws:
        assert isinstance(await recv_message(ws), p.Welcome)
    assert server.pool.counters.refused_by_kind["auth"] == 6


def test_token_check_is_bound_to_stream_and_expiry():
    """A token verifies only for its stream and before its expiry."""
    token = issue_token("k", "s", 10, now=1000)
    assert check_token("k", "s", token, now=1005) is None
    assert check_token("k", "t", token, now=1005).status == 403
    assert check_token("k", "s", token, now=1011).status == 401
    assert check_token("other", "s", token, now=1005).status == 403


async def test_origin_allowlist_refuses_cross_site_with_403(make_server):
    """With --origin set, a browser from another origin gets 403; the allowed one connects."""
    server = await make_server(origins=("https://app.example",))
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"{server.url}/ws/a", origin="https://evil.example"):
            pass
    assert refused.value.response.status_code == 403
    async with connect(f"{server.url}/ws/a", origin="https://app.example") as ws:
        assert isinstance(await recv_message(ws), p.Welcome)


async def test_plain_get_on_a_stream_is_426(make_server):
    """A plain HTTP GET on a stream path says it needs a WebSocket upgrade."""
    server = await make_server()
    async with httpx.AsyncClient() as client:
        response = await client.get(http_url(server) + "/ws/a")
    assert response.status_code == 426


async def test_origin_allowlist_admits_the_servers_own_pages(make_server):
    """The dashboard served by this server (Origin = its own host) is never refused."""
    server = await make_server(origins=("https://app.example",))
    own = f"http://127.0.0.1:{server.port}"
    async with connect(f"{server.url}/ws/a", origin=own) as ws:
        assert isinstance(await recv_message(ws), p.Welcome)
    with pytest.raises(InvalidStatus):
        async with connect(f"{server.url}/ws/a", origin="http://127.0.0.1:1"):
            pass


async def test_origin_equal_to_host_is_not_enough(make_server):
    """DNS rebinding: an Origin naming the Host header it sent is refused unless listed."""
    server = await make_server(origins=("https://app.example",))
    rebound = f"http://evil.example:{server.port}"
    # The URI names the rebound host (so the Host header does), the socket goes to ours.
    response = await refusal(f"ws://evil.example:{server.port}/ws/a", origin=rebound,
                             host="127.0.0.1", port=server.port)
    assert response.status_code == 403 and b"origin" in response.body.lower()


async def test_metrics_needs_a_metrics_token_when_a_secret_is_set(make_server):
    """With --secret, /metrics is 401 without a token, 403 with a stream's token, 200 with
    a /metrics token (Bearer or ?token=); /ws/health stays open to load balancers."""
    from server_stub.auth import METRICS_SCOPE

    server = await make_server(secret="s3cret")
    base = http_url(server)
    good = issue_token("s3cret", METRICS_SCOPE, 60)
    async with httpx.AsyncClient() as client:
        assert (await client.get(base + "/metrics")).status_code == 401
        stream_token = issue_token("s3cret", "a", 60)
        wrong = await client.get(base + "/metrics",
                                 headers={"Authorization": f"Bearer {stream_token}"})
        assert wrong.status_code == 403
        bearer = await client.get(base + "/metrics", headers={"Authorization": f"Bearer {good}"})
        assert bearer.status_code == 200 and "wsctl_server_" in bearer.text
        assert (await client.get(base + f"/metrics?token={good}")).status_code == 200
        assert (await client.get(base + "/ws/health")).status_code == 200
    assert (await refusal(f"{server.url}/ws/a?token={good}")).status_code == 403


async def test_one_client_cannot_take_every_stream(make_server):
    """Past --max-streams-per-client a client's new stream is 503 with no false
    Retry-After (none of its streams is idle); its own streams and others' still open."""
    server = await make_server(max_streams_per_client=2)
    async with connect(f"{server.url}/ws/a"), connect(f"{server.url}/ws/b"):
        response = await refusal(f"{server.url}/ws/c")
        assert response.status_code == 503 and b"maximum of 2 streams" in response.body
        assert "Retry-After" not in response.headers
        async with connect(f"{server.url}/ws/a") as again:  # an existing stream is fine
            assert isinstance(await recv_message(again), p.Welcome)
        m = await metrics(server)
    assert m["wsctl_server_refused_total{reason=streams_per_client}"] == 1


async def test_a_full_server_says_when_the_oldest_idle_stream_expires(make_server):
    """At --max-streams, Retry-After is the time until the oldest idle stream is reaped,
    and a stream whose handshake never attached is reaped like an idle one."""
    server = await make_server(max_streams=1, replay_age=30.0)
    async with connect(f"{server.url}/ws/a") as ws:
        await recv_message(ws)
    while "a" in server.manager.subscribers:  # the server's side of the close
        await asyncio.sleep(0.01)
    server.manager.clock = clock = type("C", (), {})()  # a fake clock from here on
    clock.now = lambda: time.monotonic() + 10.0  # type: ignore[attr-defined]
    retry = int((await refusal(f"{server.url}/ws/b")).headers["Retry-After"])
    assert 20 <= retry <= 22  # 30 s idle age - 10 s gone + the reaper's second
    clock.now = lambda: time.monotonic() + 31.0  # type: ignore[attr-defined]
    assert server.manager.reap_idle() == ["a"]
    async with connect(f"{server.url}/ws/b") as ws:
        assert isinstance(await recv_message(ws), p.Welcome)


async def test_a_server_owning_its_process_paces_the_collector_and_shows_its_pauses():
    """owns_process (python -m server_stub, a worker): the reference profile takes the
    process's collector over while it runs, shows collections and their longest pause in
    /metrics, and gives the collector back at stop. Embedded servers leave it alone."""
    import gc

    from server_stub import ReferenceServer, ServerConfig

    before = gc.get_threshold()
    embedded = ReferenceServer(ServerConfig(port=0))
    await embedded.start()
    try:
        assert gc.get_threshold() == before
        assert "wsctl_server_gc_collections_total{generation=0}" not in await metrics(embedded)
    finally:
        await embedded.stop()
    server = ReferenceServer(ServerConfig(port=0), owns_process=True)
    await server.start()
    try:
        assert gc.get_threshold()[1:] == (2**31 - 1, 2**31 - 1)
        async with connect(server.url + "/ws/gc-1") as ws:
            await recv_message(ws)
        await asyncio.sleep(0.1)  # young passes every 20 ms
        m = await metrics(server)
        assert m["wsctl_server_gc_collections_total{generation=0}"] >= 2
        assert m["wsctl_server_gc_pause_max_seconds{generation=0}"] > 0
    finally:
        await server.stop()
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
    def paced(**config: object) -> bool:
        return ReferenceServer(ServerConfig(port=0, **config),  # type: ignore[arg-type]
                               owns_process=True).collector is not None

    assert not paced(profile="baseline")  # "before" keeps CPython's collector, as stock
    assert not paced(gc="cpython") and paced(profile="baseline", gc="paced")
