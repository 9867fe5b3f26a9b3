"""wsclient.js on its own, in real Chromium: its pure functions, and its handling of a
scripted server that sends duplicates, a hole and a final 1000."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.sync.server import Server, ServerConnection, serve

from server_stub.static_files import STATIC_DIR

HEARTBEAT = {"interval": 5.0, "timeout": 5.0}


@pytest.fixture
def client_page(page: Any) -> Any:
    """A blank page with wsclient.js loaded and nothing else."""
    page.set_content("<!doctype html><title>wsclient</title>")
    page.add_script_tag(path=str(STATIC_DIR / "wsclient.js"))
    return page


Script = Callable[[ServerConnection], None]
Respond = Callable[[ServerConnection, Request], Response | None]


class ScriptedServer:
    """A WebSocket server in a thread that plays one script per connection, in order.

    With ``hold_first_handshake`` the first opening handshake gets no answer until
    ``close()`` (``held`` is set once its request has arrived): that socket stays
    CONNECTING in the browser, and it never reaches a script. ``respond`` may answer any
    request (plain HTTP or an upgrade) before the handshake; ``requests`` lists every
    request's path and whether it asked for an upgrade.
    """

    def __init__(self, scripts: list[Script], hold_first_handshake: bool = False, *,
                 respond: Respond | None = None, port: int = 0) -> None:
        self.scripts = scripts
        self.respond = respond
        self.requests: list[tuple[str, bool]] = []
        self.paths: list[str] = []
        self.failures: list[BaseException] = []
        self.held = threading.Event()
        self._hold = hold_first_handshake
        self._release = threading.Event()
        self._lock = threading.Lock()  # handlers run in one thread per connection
        self.server: Server = serve(self._handle, "127.0.0.1", port,
                                    process_request=self._process_request)
        self.port = self.server.socket.getsockname()[1]
        self.url = f"ws://127.0.0.1:{self.port}/ws/scripted"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        upgrade = request.headers.get("Upgrade", "").lower() == "websocket"
        with self._lock:
            hold, self._hold = self._hold, False
            self.requests.append((request.path, upgrade))
        if hold:
            self.held.set()
            self._release.wait(10)
        return self.respond(ws, request) if self.respond is not None else None

    def _handle(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        with self._lock:  # so two connections never both take the same script
            self.paths.append(ws.request.path)
            script = self.scripts[min(len(self.paths), len(self.scripts)) - 1]
        try:
            script(ws)
        except ConnectionClosed:
            pass
        except Exception as exc:  # reported by the test, not lost in the thread
            self.failures.append(exc)

    def close(self) -> None:
        self._release.set()
        self.server.shutdown()
        self.thread.join(5)


@pytest.fixture
def scripted() -> Iterator[Callable[..., ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def start(scripts: list[Script], hold_first_handshake: bool = False, **kwargs: Any
              ) -> ScriptedServer:
        servers.append(ScriptedServer(scripts, hold_first_handshake, **kwargs))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def welcome(offset: int, recovered: bool = True, replayed: int = 0, epoch: str = "E1") -> str:
    return json.dumps({"type": "welcome", "stream": "scripted", "epoch": epoch, "offset": offset,
                       "recovered": recovered, "replayed": replayed, "heartbeat": HEARTBEAT})


def event(offset: int) -> str:
    return json.dumps({"type": "event", "offset": offset, "ts": 0.0,
                       "data": {"step": offset, "total": 10, "status": "running", "message": ""}})


def drain(ws: ServerConnection) -> None:
    """Read until the client closes."""
    while True:
        ws.recv()


# `sockets` holds every WebSocket the client made, so a test can wait for what the page
# itself sees: the server's side of a handshake finishes before the browser's does.
START_CLIENT = """url => {
  window.delivered = [];
  window.states = [];
  window.resyncs = [];
  window.sockets = [];
  window.client = new WsctlClient(url, {
    baseDelay: 50, maxDelay: 100,
    WebSocket: class extends WebSocket {
      constructor(url) { super(url); sockets.push(this); }
    },
    onevent: (e) => delivered.push(e.offset),
    onresync: (r) => resyncs.push(r),
    onstate: (state, info) => states.push([state, info.code ?? null]),
  }).start();
}"""


def test_backoff_is_full_jitter_between_zero_and_the_capped_ceiling(client_page):
    """backoffDelay spans [0, min(cap, base*2^(attempt-1))): random 0 gives 0, ~1 the ceiling."""
    delays = client_page.evaluate("""() => [1, 2, 3, 4, 5, 10].map(a => [
        WsctlClient.backoffDelay(a, 500, 5000, () => 0),
        WsctlClient.backoffDelay(a, 500, 5000, () => 0.999999),
        WsctlClient.backoffDelay(a, 500, 5000, () => 0.5)])""")
    assert [low for low, _, _ in delays] == [0] * 6
    assert [high for _, high, _ in delays] == [499, 999, 1999, 3999, 4999, 4999]
    assert [mid for _, _, mid in delays] == [250, 500, 1000, 2000, 2500, 2500]


def test_retry_hint_is_read_only_from_1001_and_1013(client_page):
    """retryHintMs reads retry_ms=N from 1001/1013 reasons and ignores other codes."""
    hints = client_page.evaluate("""() => [
        WsctlClient.retryHintMs(1001, 'server shutting down; retry_ms=1500'),
        WsctlClient.retryHintMs(1013, 'over capacity retry_ms=250'),
        WsctlClient.retryHintMs(1011, 'retry_ms=99'),
        WsctlClient.retryHintMs(1001, 'no hint')]""")
    assert hints == [1500, 250, None, None]


def test_connect_url_adds_epoch_and_offset_only_when_resuming(client_page):
    """connectUrl adds epoch+offset together (and the token), replacing stale ones."""
    urls = client_page.evaluate("""() => [
        WsctlClient.connectUrl('ws://h:1/ws/a', null, 0, null),
        WsctlClient.connectUrl('ws://h:1/ws/a?epoch=old&offset=1', 'E', 42, 't'),
    ]""")
    assert urls == ["ws://h:1/ws/a", "ws://h:1/ws/a?epoch=E&offset=42&token=t"]


def test_duplicates_dropped_hole_resumed_and_1000_final(client_page, scripted):
    """Each offset reaches onevent once and in order: a duplicate is dropped, a hole makes
    the client resume from its last offset, and the server's 1000 ends it for good."""
    def first(ws: ServerConnection) -> None:
        ws.send(welcome(0))
        for offset in (1, 2, 2, 3, 5, 6):
            ws.send(event(offset))
        drain(ws)

    def second(ws: ServerConnection) -> None:
        ws.send(welcome(6, replayed=3))
        for offset in (4, 5, 6, 7):
            ws.send(event(offset))
        ws.close(1000, "done")

    server = scripted([first, second, second])
    client_page.evaluate(START_CLIENT, server.url)
    client_page.wait_for_function("() => client.state === 'closed'", timeout=5000)
    client_page.wait_for_timeout(300)  # a wrong client would reconnect in <= 100 ms
    assert not server.failures
    assert client_page.evaluate("delivered") == [1, 2, 3, 4, 5, 6, 7]
    stats = client_page.evaluate("client.stats")
    assert (stats["duplicates"], stats["gaps"]) == (1, 1)
    assert len(server.paths) == 2
    assert urlsplit(server.paths[0]).query == ""
    assert parse_qs(urlsplit(server.paths[1]).query) == {"epoch": ["E1"], "offset": ["3"]}
    states = client_page.evaluate("states")
    assert states[-1] == ["closed", 1000]
    assert [s for s, _ in states].count("reconnecting") == 1


def test_recovered_false_calls_onresync_and_restarts_from_the_head(client_page, scripted):
    """A recovered:false welcome after a resume calls onresync with the snapshot, and events
    continue from the new head without being taken for duplicates."""

    def first(ws: ServerConnection) -> None:
        ws.send(welcome(0))
        for offset in (1, 2, 3):
            ws.send(event(offset))
        ws.close(1012, "restart")

    def second(ws: ServerConnection) -> None:
        ws.send(json.dumps({**json.loads(welcome(1, recovered=False, epoch="E2")),
                            "snapshot": {"offset": 1, "data": {"step": 1}}}))
        ws.send(event(2))
        ws.close(1000, "done")

    server = scripted([first, second])
    client_page.evaluate(START_CLIENT, server.url)
    client_page.wait_for_function("() => client.state === 'closed'", timeout=5000)
    assert not server.failures
    assert client_page.evaluate("delivered") == [1, 2, 3, 2]
    resync = client_page.evaluate("resyncs[0]")
    assert (resync["previousEpoch"], resync["previousOffset"]) == ("E1", 3)
    assert (resync["epoch"], resync["offset"]) == ("E2", 1)
    assert resync["snapshot"] == {"offset": 1, "data": {"step": 1}}
    assert parse_qs(urlsplit(server.paths[1]).query) == {"epoch": ["E1"], "offset": ["3"]}


def test_retry_now_during_an_attempt_closes_the_abandoned_socket(client_page, scripted):
    """retryNow() while an open socket awaits its welcome closes that socket (4000) and
    connects anew."""
    closed: list[int | None] = []

    def silent(ws: ServerConnection) -> None:
        try:
            drain(ws)
        finally:
            closed.append(ws.close_code)

    def answer(ws: ServerConnection) -> None:
        ws.send(welcome(0))
        drain(ws)

    server = scripted([silent, answer])
    client_page.evaluate(START_CLIENT, server.url)
    # Wait for the page's own socket to open, not for the server's handler to start: the
    # server runs its handler once it has sent the 101, before Chromium has read it, and
    # a socket closed while still CONNECTING in the page never sends 4000 (Chromium
    # aborts it and the server sees 1001), which made this test flaky under load.
    client_page.wait_for_function("() => sockets.length === 1"
                                  " && sockets[0].readyState === WebSocket.OPEN")
    assert client_page.evaluate("client.state") == "connecting"  # open, but no welcome
    client_page.evaluate("client.retryNow()")
    client_page.wait_for_function("() => client.state === 'open'", timeout=5000)
    deadline = time.monotonic() + 5
    while not closed and time.monotonic() < deadline:
        time.sleep(0.05)
    assert closed == [4000]
    assert len(server.paths) == 2
    assert client_page.evaluate("sockets.length") == 2
    client_page.evaluate("client.close()")


def test_retry_now_during_an_unanswered_handshake_aborts_that_socket(client_page, scripted):
    """retryNow() while the server has not answered the opening handshake drops that
    still-CONNECTING socket (no close frame can be sent yet) and connects anew."""

    def answer(ws: ServerConnection) -> None:
        ws.send(welcome(0))
        drain(ws)

    server = scripted([answer], hold_first_handshake=True)
    client_page.evaluate(START_CLIENT, server.url)
    assert server.held.wait(5)
    assert client_page.evaluate("[client.state, sockets[0].readyState]") == ["connecting", 0]
    client_page.evaluate("client.retryNow()")
    client_page.wait_for_function("() => client.state === 'open'", timeout=5000)
    client_page.wait_for_function("() => sockets[0].readyState === WebSocket.CLOSED")
    assert client_page.evaluate("sockets.length") == 2
    assert len(server.paths) == 1  # only the answered socket reached a script
    assert not server.failures
    client_page.evaluate("client.close()")


# -- healthUrl: fast retry where nothing listens, backoff where the server answers -----

# `reconnects` collects [delay, fast, hint, status] of every reconnecting state; `jitter`
# (when not null) is what the client's random() returns.
START_HEALTH_CLIENT = """([url, options, jitter]) => {
  if (jitter != null) options.random = () => jitter;
  window.reconnects = [];
  window.sockets = [];
  window.client = new WsctlClient(url, Object.assign({
    WebSocket: class extends WebSocket {
      constructor(url) { super(url); sockets.push(this); }
    },
    onstate: (state, info) => {
      if (state === 'reconnecting') {
        reconnects.push([info.delay, info.fast, info.hint, info.status ?? null]);
      }
    },
  }, options)).start();
}"""


def free_port() -> int:
    """A port nothing listens on (the kernel refuses connects to it)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answer_welcome(ws: ServerConnection) -> None:
    ws.send(welcome(0))
    drain(ws)


def test_health_url_and_retry_after_helpers(client_page):
    """healthUrlFor derives /ws/health on the stream's host (ws->http, wss->https) or takes
    a given URL; retryAfterMs reads seconds and HTTP dates and ignores garbage."""
    out = client_page.evaluate("""() => [
        WsctlClient.healthUrlFor('ws://h:1/ws/a?epoch=E&offset=3', true),
        WsctlClient.healthUrlFor('wss://h/ws/a', true),
        WsctlClient.healthUrlFor('ws://h:1/ws/a', 'https://x/health'),
        WsctlClient.healthUrlFor('ws://h:1/ws/a', null),
        WsctlClient.retryAfterMs('2'),
        WsctlClient.retryAfterMs(new Date(10000).toUTCString(), 4000),
        WsctlClient.retryAfterMs('soon'),
        WsctlClient.retryAfterMs(null)]""")
    assert out == ["http://h:1/ws/health", "https://h/ws/health", "https://x/health", None,
                   2000, 6000, None, None]


def test_refused_connects_retry_fast_and_find_a_restarted_server(client_page, scripted):
    """With healthUrl, a refused connect (health fetch: network error) is retried within
    fastDelay without advancing the backoff, so a server that starts listening is found
    within a fraction of a second although the backoff would wait ~5 s."""
    port = free_port()
    options = {"healthUrl": True, "baseDelay": 5000, "maxDelay": 5000, "fastDelay": 100}
    client_page.evaluate(START_HEALTH_CLIENT,
                         [f"ws://127.0.0.1:{port}/ws/scripted", options, 0.999])
    client_page.wait_for_function("() => sockets.length >= 4", timeout=3000)
    reconnects = client_page.evaluate("reconnects")
    assert reconnects and all(fast and 50 <= delay <= 100 for delay, fast, _, _ in reconnects)
    stats = client_page.evaluate("[client.attempt, client.stats.healthChecks, "
                                 "client.stats.fastRetries]")
    assert stats[0] == 0 and stats[1] >= 3 and stats[2] >= 3
    server = scripted([answer_welcome], port=port)
    listening = time.monotonic()
    client_page.wait_for_function("() => client.state === 'open'", timeout=3000)
    assert time.monotonic() - listening < 2.0  # the backoff alone would take 4.995 s
    # A health check may meet the server if it started between an attempt and its check
    # (then that attempt is retried fast once: the test above); never more than that one.
    assert len([path for path, upgrade in server.requests if not upgrade]) <= 1
    client_page.evaluate("client.close()")


def test_a_server_that_comes_back_between_attempt_and_check_gets_one_fast_retry(client_page):
    """The race of a restart: the attempt was refused, but by the health check the server
    listens (it answers). That attempt was merely early, so it is retried fast once; when
    the next attempt fails too and the server still answers, the backoff applies."""
    port = free_port()
    client_page.evaluate("""(url) => {
      window.fetches = 0;
      const answers = (u, init) => {
        fetches += 1;
        if (fetches <= 2) return Promise.reject(new TypeError("Failed to fetch"));
        return Promise.resolve(new Response("", {status: 426}));
      };
      window.reconnects = [];
      window.client = new WsctlClient(url, {
        healthUrl: true, baseDelay: 5000, maxDelay: 5000, fastDelay: 100,
        random: () => 0.999, fetch: answers,
        onstate: (state, info) => {
          if (state !== 'reconnecting') return;
          reconnects.push([info.delay, info.fast, info.status ?? null]);
        },
      }).start();
    }""", f"ws://127.0.0.1:{port}/ws/scripted")
    client_page.wait_for_function("() => reconnects.length >= 4", timeout=3000)
    reconnects = client_page.evaluate("reconnects")
    assert [fast for _, fast, _ in reconnects] == [True, True, True, False]
    assert reconnects[3][0] >= 4000 and reconnects[3][2] == 426
    client_page.evaluate("client.close()")


def test_without_health_url_a_refused_connect_backs_off(client_page):
    """healthUrl is opt-in: without it a refused connect waits the full backoff delay and
    no health request is made."""
    port = free_port()
    client_page.evaluate(START_HEALTH_CLIENT,
                         [f"ws://127.0.0.1:{port}/ws/scripted",
                          {"baseDelay": 5000, "maxDelay": 5000}, 0.999])
    client_page.wait_for_function("() => reconnects.length === 1", timeout=3000)
    assert client_page.evaluate("reconnects") == [[4995, False, None, None]]
    assert client_page.evaluate("client.stats.healthChecks") == 0
    client_page.evaluate("client.close()")


def refuse_all(status: int, retry_after: str | None) -> Respond:
    """Refuse every upgrade and every GET /ws/health with ``status`` (and Retry-After);
    serve a blank page at / so a page can be same-origin with the health URL."""

    def respond(ws: ServerConnection, request: Request) -> Response | None:
        if request.path == "/":
            response = ws.respond(200, "<!doctype html><title>same origin</title>")
            del response.headers["Content-Type"]
            response.headers["Content-Type"] = "text/html"
            return response
        response = ws.respond(status, "refused\n")
        if retry_after is not None:
            response.headers["Retry-After"] = retry_after
        return response

    return respond


def test_a_503_keeps_backing_off_and_honours_retry_after(client_page, scripted):
    """With healthUrl, a 503-refused handshake whose health URL answers 503 with
    Retry-After: 1 waits at least 1 s (no fast retry), read same-origin."""
    server = scripted([answer_welcome], respond=refuse_all(503, "1"))
    client_page.goto(f"http://127.0.0.1:{server.port}/")
    client_page.add_script_tag(path=str(STATIC_DIR / "wsclient.js"))
    client_page.evaluate(START_HEALTH_CLIENT, [server.url, {
        "healthUrl": True, "baseDelay": 50, "maxDelay": 50, "fastDelay": 50}, 0.5])
    client_page.wait_for_function("() => reconnects.length === 1", timeout=3000)
    delay, fast, hint, status = client_page.evaluate("reconnects[0]")
    assert (fast, hint, status) == (False, 1000, 503)
    assert 1000 <= delay < 1050
    client_page.wait_for_timeout(800)  # a fast retry would have made ~15 more attempts
    upgrades = [path for path, upgrade in server.requests if upgrade]
    checks = [path for path, upgrade in server.requests if path == "/ws/health"]
    assert (len(upgrades), len(checks)) == (1, 1)
    client_page.evaluate("client.close()")


def test_any_http_answer_keeps_exponential_backoff(client_page, scripted):
    """A health URL that answers at all (here 200, cross-origin so opaque) means the server
    is up: the delays follow the exponential backoff, never the fast path."""
    server = scripted([answer_welcome], respond=refuse_all(200, None))
    client_page.evaluate(START_HEALTH_CLIENT,
                         [server.url, {"healthUrl": True, "baseDelay": 100, "maxDelay": 1000,
                                       "fastDelay": 20}, 0.999])
    client_page.wait_for_function("() => reconnects.length >= 3", timeout=5000)
    assert client_page.evaluate("reconnects.slice(0, 3)") == [
        [99, False, None, 0], [199, False, None, 0], [399, False, None, 0]]
    client_page.evaluate("client.close()")
