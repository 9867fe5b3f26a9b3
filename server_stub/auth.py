"""Optional HMAC tokens bound to a stream name and an expiry.

Token format: ``v1.<expiry unix seconds>.<signature>``, where the signature is the
URL-safe base64 of HMAC-SHA256(secret, "<stream>|<expiry>") cut to 128 bits. A token
for ``/metrics`` signs ``METRICS_SCOPE`` in place of a stream name, so no stream token
opens ``/metrics`` and a ``/metrics`` token opens no stream.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time

from server_stub.connection_pool import Refusal

METRICS_SCOPE = "/metrics"  # what a /metrics token signs: never a stream name (has a /)
_EXPIRY = re.compile(r"[0-9]{1,12}")  # ASCII digits only: str.isdigit() admits '²'


def _sign(secret: str, stream: str, expiry: int) -> str:
    mac = hmac.new(secret.encode(), f"{stream}|{expiry}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:16]).rstrip(b"=").decode()


def issue_token(secret: str, stream: str, ttl: float, now: float | None = None) -> str:
    """A token for ``stream`` valid for ``ttl`` seconds from ``now``."""
    expiry = int((time.time() if now is None else now) + ttl)
    return f"v1.{expiry}.{_sign(secret, stream, expiry)}"


def check_token(
    secret: str, stream: str, token: str | None, now: float | None = None
) -> Refusal | None:
    """None when ``token`` grants ``stream`` now; otherwise the refusal to send."""
    if not token:
        return Refusal(
            401, "missing token: connect with ?token=... (wsctl serve --issue-token)", "auth"
        )
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != "v1" or not _EXPIRY.fullmatch(parts[1]):
        return Refusal(403, "malformed token", "auth")
    expiry = int(parts[1])
    if not hmac.compare_digest(parts[2].encode(), _sign(secret, stream, expiry).encode()):
        return Refusal(403, f"token not valid for stream {stream!r}", "auth")
    if expiry < (time.time() if now is None else now):
        return Refusal(401, f"token expired at {expiry} (unix time); get a new one", "auth")
    return None


def metrics_refusal(secret: str, authorization: str | None, query_token: str | None,
                    now: float | None = None) -> Refusal | None:
    """None when a ``/metrics`` request carries a valid ``/metrics`` token, as
    ``Authorization: Bearer TOKEN`` (Prometheus' ``authorization`` scrape setting) or
    ``?token=TOKEN``; otherwise the refusal to send."""
    token = query_token
    if authorization is not None:
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() == "bearer":
            token = credentials.strip()
    refusal = check_token(secret, METRICS_SCOPE, token, now)
    if refusal is not None and refusal.status == 401 and not token:
        return Refusal(401, "missing token: /metrics needs Authorization: Bearer TOKEN "
                            "(wsctl serve --issue-token /metrics)", "auth")
    return refusal
