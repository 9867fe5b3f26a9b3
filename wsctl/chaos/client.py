"""A small synchronous client for the chaos API (what the CLI's subcommands use).

Transport errors become ``Unreachable`` saying where it looked; API errors become
``PortInUse`` (a listen address is taken: the error's ``kind`` is ``port_in_use``),
``InvalidInput`` (other 4xx: the request was wrong) or ``RunFailed`` (5xx) with the
API's own message.
"""

from __future__ import annotations

from typing import Any

import httpx

from wsctl.errors import InvalidInput, PortInUse, RunFailed, Unreachable


def api_url(api: str) -> str:
    """``host:port`` or a URL, as a base URL; InvalidInput if it is neither."""
    api = api.strip().rstrip("/")
    url = api if "://" in api else f"http://{api}"
    try:
        parsed = httpx.URL(url)
        valid = (parsed.scheme in ("http", "https") and bool(parsed.host)
                 and (parsed.port is None or 0 < parsed.port <= 65535))
    except (httpx.InvalidURL, ValueError):
        valid = False
    if not valid:
        raise InvalidInput(f"--api {api!r} is not host:port or an http:// URL; "
                           "e.g. --api 127.0.0.1:8474")
    return url


class ChaosClient:
    def __init__(self, api: str, token: str | None = None, timeout: float = 10.0) -> None:
        self.url = api_url(api)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ChaosClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, body: Any = None) -> Any:
        try:
            response = self._http.request(method, path, json=body)
        except httpx.TransportError as exc:
            reason = str(exc) or type(exc).__name__
            raise Unreachable(
                f"could not reach the chaos API at {self.url}: {reason}"
                " — is `wsctl chaos serve` running? (set --api or WSCTL_CHAOS_API)"
            ) from None
        if response.status_code >= 400:
            try:
                error = response.json()
                message, kind = error.get("error") or response.text, error.get("kind")
            except (ValueError, AttributeError):
                message, kind = response.text.strip() or response.reason_phrase, None
            text = f"{method} {path}: {response.status_code} {message}"
            if kind == "port_in_use":
                raise PortInUse(text)
            raise (RunFailed if response.status_code >= 500 else InvalidInput)(text)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()
