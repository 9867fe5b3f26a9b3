"""The HTTP control API: Toxiproxy's routes, JSON and status codes, plus wsctl's extras.

Toxiproxy's dialect (clients written for it work unchanged)::

    GET  /proxies                      POST /proxies (201, 409 if the name exists)
    POST /populate (201)               POST /reset (204)          GET /version
    GET|POST|PATCH|DELETE /proxies/{proxy}
    GET|POST /proxies/{proxy}/toxics   GET|POST|PATCH|DELETE /proxies/{proxy}/toxics/{toxic}

Extras (new routes only): ``/proxies/{proxy}/connections`` (list, cut one or all, faults
for one connection), ``/proxies/{proxy}/schedules``, ``/toxics`` (the types known) and
``/metrics`` (Prometheus). Extra field (clients that don't send it see Toxiproxy's JSON):
a proxy object may carry ``"upstreams": ["host:port", ...]`` to balance new connections
round robin over several upstreams; ``upstream`` is then the first, and ``upstreams`` is
shown only while there are several. Errors are ``{"error": message, "status": code}``, plus
``"kind": "port_in_use"`` when a listen address is taken, ``"kind": "proxy_loop"`` when an
upstream leads back to the proxy's own listen address (400).

This module is the only place where JSON becomes the core's typed arguments (a field
that can't be read is Toxiproxy's ``bad request body: ...``) and where the core's
errors become statuses: InvalidInput 400, NotFound 404, Conflict 409, PortInUse 409.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hmac
import json
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from wsctl import __version__
from wsctl.chaos.faults import FAULTS
from wsctl.chaos.model import (
    DEFAULT_LISTEN,
    ProxySpec,
    Toxic,
    check_toxicity,
    toxic_from_mapping,
    upstreams_after,
)
from wsctl.chaos.proxy import Chaos, Proxy
from wsctl.chaos.schedule import Timing
from wsctl.errors import Conflict, InvalidInput, NotFound, PortInUse, ProxyLoop, WsctlError
from wsctl.units import parse_duration

Handler = Callable[[Request], Awaitable[Response]]


def _error(message: str, status: int, kind: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": message, "status": status}
    if kind is not None:
        body["kind"] = kind
    return JSONResponse(body, status_code=status)


def _status(exc: WsctlError) -> int:
    if isinstance(exc, BodyTooLarge):
        return 413
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, Conflict | PortInUse):
        return 409
    return 400


# -- JSON -> typed arguments ---------------------------------------------------------


@contextlib.contextmanager
def _bad_body() -> Iterator[None]:
    """A field that can't be read is Toxiproxy's ``bad request body: ...`` (400)."""
    try:
        yield
    except (ValueError, InvalidInput) as exc:
        raise InvalidInput(f"bad request body: {exc}") from None


MAX_BODY = 1024 * 1024  # bytes of a request body


class BodyTooLarge(InvalidInput):
    """A request body over ``MAX_BODY`` (413)."""


async def _body(request: Request) -> Any:
    """The JSON body, read no further than ``MAX_BODY`` bytes."""
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            raise BodyTooLarge(f"request body larger than {MAX_BODY // (1024 * 1024)} MiB")
    with _bad_body():
        try:
            return json.loads(raw)
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidInput("bad request body: expected a JSON object")
    return body


def proxy_spec(body: Any) -> ProxySpec:
    """A proxy to create, from Toxiproxy's JSON ``{name, listen, upstream, enabled}`` (or
    wsctl's ``upstreams`` list in place of, or beside, ``upstream``)."""
    body = _object(body)
    name, upstream, upstreams = body.get("name"), body.get("upstream"), body.get("upstreams")
    for field, value in (("name", name), ("upstream", upstream)):
        if field == "upstream" and upstreams is not None and not value:
            continue
        if not value or not isinstance(value, str):
            raise InvalidInput(f"missing required field: {field}")
    enabled = body.get("enabled")
    with _bad_body():
        return ProxySpec(
            name=name,
            upstream=upstream or "",
            listen=body.get("listen") or DEFAULT_LISTEN,
            enabled=True if enabled is None else enabled,
            upstreams=_upstream_list(upstreams),
        )


def _upstream_list(value: Any) -> Any:
    """A JSON ``upstreams`` array as a tuple for ``ProxySpec`` (which checks it)."""
    if value is None:
        return ()
    if not isinstance(value, list | tuple):
        raise InvalidInput("upstreams must be a list of host:port strings")
    return tuple(value)


def proxy_specs(body: Any) -> list[ProxySpec]:
    """The proxies of a ``/populate`` body or a config file: a JSON array, all checked."""
    if not isinstance(body, list):
        raise InvalidInput("bad request body: expected a JSON array of proxies")
    specs: list[ProxySpec] = []
    for i, item in enumerate(body, 1):
        try:
            spec = proxy_spec(item)
        except InvalidInput as exc:
            raise InvalidInput(f"{exc} at proxy {i}") from None
        if any(spec.name == seen.name for seen in specs):
            raise InvalidInput(f"duplicate proxy name {spec.name!r}")
        specs.append(spec)
    return specs


def _proxy_change(proxy: Proxy, body: Any) -> ProxySpec:
    """A proxy's new settings from an update body; missing or empty fields keep theirs."""
    body = _object(body)
    with _bad_body():
        upstream = body.get("upstream") or None
        if upstream is not None and not isinstance(upstream, str):
            raise InvalidInput("upstream must be a string")
        upstreams = body.get("upstreams")
        return ProxySpec(
            name=proxy.name,
            upstream=upstream if upstreams is not None and upstream else "",
            listen=body.get("listen", proxy.listen) or proxy.listen,
            enabled=body.get("enabled", proxy.enabled),
            upstreams=_upstream_list(upstreams_after(
                proxy.upstreams, upstream, None if upstreams is None else upstreams)),
        )


def _toxic(body: Any) -> Toxic:
    try:
        return toxic_from_mapping(_object(body))
    except ValueError as exc:  # a malformed field; InvalidInput (type, stream) goes as it is
        raise InvalidInput(f"bad request body: {exc}") from None


def _toxic_change(toxic: Toxic, body: Any) -> tuple[Any, float | None]:
    """A PATCH body's config (attributes merged over the toxic's) and toxicity (or None)."""
    body = _object(body)
    with _bad_body():
        config = toxic.spec.parse(body.get("attributes"), base=toxic.config)
        toxicity = check_toxicity(body["toxicity"]) if "toxicity" in body else None
    return config, toxicity


def _timing(body: dict[str, Any]) -> Timing:
    def duration(field: str) -> float | None:
        value = body.get(field)
        return None if value is None else parse_duration(value, field)

    with _bad_body():
        return Timing(parse_duration(body.get("at", 0), "at"), duration("for"), duration("every"))


class _Metrics:
    """Prometheus collector reading the proxies' counters at scrape time."""

    def __init__(self, chaos: Chaos) -> None:
        self.chaos = chaos

    def collect(self) -> Iterator[Metric]:
        sent = CounterMetricFamily(
            "wsctl_chaos_bytes",
            "Bytes forwarded, per proxy and direction.",
            labels=["proxy", "direction"],
        )
        opened = CounterMetricFamily(
            "wsctl_chaos_connections", "Connections accepted, per proxy.", labels=["proxy"]
        )
        active = GaugeMetricFamily(
            "wsctl_chaos_connections_active", "Connections open now, per proxy.", labels=["proxy"]
        )
        applied = CounterMetricFamily(
            "wsctl_chaos_faults_applied",
            "Faults applied: activations on connections plus frames dropped or injected.",
            labels=["proxy", "type"],
        )
        enabled = GaugeMetricFamily(
            "wsctl_chaos_proxy_enabled", "1 if the proxy is listening.", labels=["proxy"]
        )
        refused = CounterMetricFamily(
            "wsctl_chaos_connections_refused",
            "Client connections reset because the proxy was at its connection cap.",
            labels=["proxy"],
        )
        reached = CounterMetricFamily(
            "wsctl_chaos_upstream_connections",
            "Connections opened to each upstream of a proxy.",
            labels=["proxy", "upstream"],
        )
        failed = CounterMetricFamily(
            "wsctl_chaos_upstream_failures",
            "Connects to an upstream that failed (refused, unreachable); the next was tried.",
            labels=["proxy", "upstream"],
        )
        for proxy in self.chaos.proxies.values():
            for family, counts in ((reached, proxy.stats.upstream_connections),
                                   (failed, proxy.stats.upstream_failures)):
                for address, count in sorted(counts.items()):
                    family.add_metric([proxy.name, address], count)
            refused.add_metric([proxy.name], proxy.stats.refused_total)
            for direction in ("upstream", "downstream"):
                sent.add_metric([proxy.name, direction], proxy.bytes_total(direction))
            opened.add_metric([proxy.name], proxy.stats.connections_total)
            active.add_metric([proxy.name], len(proxy.connections))
            enabled.add_metric([proxy.name], 1 if proxy.enabled else 0)
            for kind, count in sorted(proxy.stats.applied.items()):
                applied.add_metric([proxy.name, kind], count)
        yield from (sent, opened, active, applied, enabled, refused, reached, failed)


def _openapi(routes: list[Route]) -> dict[str, Any]:
    """A minimal OpenAPI document from the routes and their handlers' docstrings."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        params = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in route.param_convertors
        ]
        for method in sorted((route.methods or set()) - {"HEAD"}):
            paths.setdefault(route.path, {})[method.lower()] = {
                "summary": (route.endpoint.__doc__ or "").strip(),
                "operationId": f"{route.name}_{method.lower()}",
                "parameters": params,
                "responses": {"default": {"description": "JSON, or {error, status}"}},
            }
    return {
        "openapi": "3.1.0",
        "info": {"title": "wsctl chaos (Toxiproxy-compatible)", "version": __version__},
        "paths": paths,
    }


def build_app(chaos: Chaos, token: str | None = None) -> Starlette:
    """The ASGI app for ``chaos``; with ``token`` every request needs ``Bearer <token>``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Metrics(chaos))

    async def proxy_index(request: Request) -> Response:
        """List every proxy with its toxics, keyed by name."""
        return JSONResponse({name: p.to_json() for name, p in chaos.proxies.items()})

    async def proxy_create(request: Request) -> Response:
        """Create a proxy (201; 409 if the name exists)."""
        spec = proxy_spec(await _body(request))
        proxy = await chaos.create(
            name=spec.name, upstreams=spec.upstreams, listen=spec.listen, enabled=spec.enabled
        )
        return JSONResponse(proxy.to_json(), status_code=201)

    async def populate(request: Request) -> Response:
        """Create or replace proxies from a list; matching ones are kept (201)."""
        proxies = await chaos.populate(proxy_specs(await _body(request)))
        return JSONResponse({"proxies": [p.to_json() for p in proxies]}, status_code=201)

    async def reset(request: Request) -> Response:
        """Enable every proxy and remove every toxic and schedule (204)."""
        await chaos.reset()
        return Response(status_code=204)

    async def version(request: Request) -> Response:
        """The server's version."""
        return JSONResponse({"version": __version__})

    async def proxy_show(request: Request) -> Response:
        """One proxy with its toxics."""
        return JSONResponse(chaos.get(request.path_params["proxy"]).to_json())

    async def proxy_update(request: Request) -> Response:
        """Change listen, upstream(s) or enabled; disabling closes connections."""
        body = await _body(request)
        proxy = chaos.get(request.path_params["proxy"])
        change = _proxy_change(proxy, body)
        await chaos.update(
            proxy.name, listen=change.listen, upstreams=change.upstreams, enabled=change.enabled
        )
        return JSONResponse(proxy.to_json())

    async def proxy_delete(request: Request) -> Response:
        """Delete a proxy and close its connections (204)."""
        await chaos.delete(request.path_params["proxy"])
        return Response(status_code=204)

    async def toxic_index(request: Request) -> Response:
        """A proxy's toxics."""
        proxy = chaos.get(request.path_params["proxy"])
        return JSONResponse([t.to_json() for t in proxy.toxics.values()])

    async def toxic_create(request: Request) -> Response:
        """Add a toxic; live connections get it at once (409 if the name exists)."""
        proxy = chaos.get(request.path_params["proxy"])
        toxic = proxy.add_toxic(_toxic(await _body(request)))
        return JSONResponse(toxic.to_json())

    async def toxic_show(request: Request) -> Response:
        """One toxic."""
        proxy = chaos.get(request.path_params["proxy"])
        return JSONResponse(proxy.toxic(request.path_params["toxic"]).to_json())

    async def toxic_update(request: Request) -> Response:
        """Merge attributes and replace toxicity of a toxic."""
        proxy = chaos.get(request.path_params["proxy"])
        toxic = proxy.toxic(request.path_params["toxic"])
        config, toxicity = _toxic_change(toxic, await _body(request))
        toxic = await proxy.update_toxic(toxic.name, config=config, toxicity=toxicity)
        return JSONResponse(toxic.to_json())

    async def toxic_delete(request: Request) -> Response:
        """Remove a toxic; data it holds is forwarded (204)."""
        proxy = chaos.get(request.path_params["proxy"])
        await proxy.remove_toxic(request.path_params["toxic"])
        return Response(status_code=204)

    # -- extras ------------------------------------------------------------------------

    async def toxic_types(request: Request) -> Response:
        """Every toxic type with its layer and attribute defaults."""
        return JSONResponse(
            {
                name: {
                    "layer": spec.layer,
                    "summary": spec.summary,
                    "attributes": {f.name: f.default for f in dataclasses.fields(spec.config)},
                }
                for name, spec in FAULTS.items()
            }
        )

    async def connection_index(request: Request) -> Response:
        """A proxy's live connections."""
        proxy = chaos.get(request.path_params["proxy"])
        return JSONResponse([c.to_json() for c in proxy.connections.values()])

    async def connection_cut_all(request: Request) -> Response:
        """Reset (RST) every connection of a proxy (204)."""
        proxy = chaos.get(request.path_params["proxy"])
        for conn in list(proxy.connections.values()):
            conn.reset()
        return Response(status_code=204)

    async def connection_show(request: Request) -> Response:
        """One live connection."""
        proxy = chaos.get(request.path_params["proxy"])
        return JSONResponse(proxy.connection(request.path_params["conn"]).to_json())

    async def connection_cut(request: Request) -> Response:
        """Reset (RST) one connection: WebSocket clients see 1006 (204)."""
        proxy = chaos.get(request.path_params["proxy"])
        proxy.connection(request.path_params["conn"]).reset()
        return Response(status_code=204)

    async def connection_toxic_index(request: Request) -> Response:
        """Toxics applied to one connection only."""
        proxy = chaos.get(request.path_params["proxy"])
        conn = proxy.connection(request.path_params["conn"])
        return JSONResponse([t.to_json() for t in conn.toxics.values()])

    async def connection_toxic_create(request: Request) -> Response:
        """Add a toxic to one connection only."""
        proxy = chaos.get(request.path_params["proxy"])
        toxic = _toxic(await _body(request))
        proxy.add_connection_toxic(request.path_params["conn"], toxic)
        return JSONResponse(toxic.to_json())

    async def connection_toxic_delete(request: Request) -> Response:
        """Remove a toxic from one connection (204)."""
        proxy = chaos.get(request.path_params["proxy"])
        await proxy.remove_connection_toxic(
            request.path_params["conn"], request.path_params["toxic"]
        )
        return Response(status_code=204)

    async def schedule_index(request: Request) -> Response:
        """A proxy's schedules."""
        proxy = chaos.get(request.path_params["proxy"])
        return JSONResponse([s.to_json() for s in proxy.schedules.values()])

    async def schedule_create(request: Request) -> Response:
        """Schedule a toxic: at, for, every, optionally one connection (201)."""
        proxy = chaos.get(request.path_params["proxy"])
        body = _object(await _body(request))
        toxic, timing = _toxic(body.get("toxic")), _timing(body)
        connection = body.get("connection")
        connection = None if connection is None else str(connection)
        schedule = proxy.add_schedule(toxic, timing, connection)
        return JSONResponse(schedule.to_json(), status_code=201)

    async def schedule_show(request: Request) -> Response:
        """One schedule and its state."""
        proxy = chaos.get(request.path_params["proxy"])
        return JSONResponse(proxy.schedule(request.path_params["schedule"]).to_json())

    async def schedule_delete(request: Request) -> Response:
        """Cancel a schedule; a toxic it switched on is removed (204)."""
        proxy = chaos.get(request.path_params["proxy"])
        await proxy.remove_schedule(request.path_params["schedule"])
        return Response(status_code=204)

    async def metrics(request: Request) -> Response:
        """Prometheus metrics: bytes, connections, faults applied."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    async def openapi(request: Request) -> Response:
        """This document (OpenAPI 3.1)."""
        return JSONResponse(_openapi(routes))

    async def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, WsctlError)
        kind = ("port_in_use" if isinstance(exc, PortInUse)
                else "proxy_loop" if isinstance(exc, ProxyLoop) else None)
        return _error(exc.message, _status(exc), kind)

    class Guard(BaseHTTPMiddleware):
        """Bearer token (when configured); browsers refused, as Toxiproxy does (CSRF)."""

        async def dispatch(self, request: Request, call_next: Handler) -> Response:
            if request.headers.get("user-agent", "").startswith("Mozilla/"):
                return _error("User agent not allowed", 403)
            if token is not None:
                given = request.headers.get("authorization", "")
                if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                    response = _error("missing or wrong bearer token", 401)
                    response.headers["WWW-Authenticate"] = "Bearer"
                    return response
            return await call_next(request)

    p, t = "/proxies/{proxy}", "/proxies/{proxy}/toxics/{toxic}"
    c = "/proxies/{proxy}/connections/{conn}"
    routes = [
        Route("/proxies", proxy_index, methods=["GET"]),
        Route("/proxies", proxy_create, methods=["POST"]),
        Route("/populate", populate, methods=["POST"]),
        Route("/reset", reset, methods=["POST"]),
        Route("/version", version, methods=["GET"]),
        Route(p, proxy_show, methods=["GET"]),
        Route(p, proxy_update, methods=["POST", "PATCH"]),
        Route(p, proxy_delete, methods=["DELETE"]),
        Route(p + "/toxics", toxic_index, methods=["GET"]),
        Route(p + "/toxics", toxic_create, methods=["POST"]),
        Route(t, toxic_show, methods=["GET"]),
        Route(t, toxic_update, methods=["POST", "PATCH"]),
        Route(t, toxic_delete, methods=["DELETE"]),
        Route("/toxics", toxic_types, methods=["GET"]),
        Route(p + "/connections", connection_index, methods=["GET"]),
        Route(p + "/connections", connection_cut_all, methods=["DELETE"]),
        Route(c, connection_show, methods=["GET"]),
        Route(c, connection_cut, methods=["DELETE"]),
        Route(c + "/toxics", connection_toxic_index, methods=["GET"]),
        Route(c + "/toxics", connection_toxic_create, methods=["POST"]),
        Route(c + "/toxics/{toxic}", connection_toxic_delete, methods=["DELETE"]),
        Route(p + "/schedules", schedule_index, methods=["GET"]),
        Route(p + "/schedules", schedule_create, methods=["POST"]),
        Route(p + "/schedules/{schedule}", schedule_show, methods=["GET"]),
        Route(p + "/schedules/{schedule}", schedule_delete, methods=["DELETE"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(Guard)],
        exception_handlers={InvalidInput: refused, PortInUse: refused},
    )
