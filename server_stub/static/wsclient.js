/*
 * wsclient.js: a reconnecting browser client for wsctl's resume protocol v1
 * (docs/protocol.md). No dependencies and no build step: load it with a <script> tag and
 * use the global `WsctlClient` (or require() it in a CommonJS bundle).
 *
 *   const client = new WsctlClient("ws://127.0.0.1:8765/ws/alert-1", {
 *     onevent: (event) => render(event.data),          // each offset exactly once
 *     onresync: (info) => reset(info.snapshot),        // history lost: start over
 *     onstate: (state, info) => showStatus(state, info),
 *   });
 *   client.start();
 *
 * What it promises (docs/browser-client.md has the details):
 * - Events reach `onevent` in offset order, each offset once per epoch: frames at or
 *   below the last offset are dropped (de-duplication), and a hole makes the client
 *   reconnect and resume from the last offset it has instead of skipping events.
 * - Every close but 1000 is followed by a reconnect that resumes with `epoch` and
 *   `offset`, after a full-jitter backoff delay, or after the server's `retry_ms=N`
 *   hint (1001/1013). After `maxAttempts` failed reconnects in a row the client is
 *   `offline` until `retryNow()`, the browser's `online` event, or the page becoming
 *   visible again.
 * - With `healthUrl`, an attempt that fails before opening is followed by one fetch of
 *   the server's health URL: a network error means nothing listens (a restart in
 *   progress, which costs the server nothing), so the client retries within `fastDelay`
 *   for the first `fastFor` ms of the outage; an HTTP answer means the server is up and
 *   refusing, so the backoff goes on, honouring a readable `Retry-After`.
 * - A heartbeat (`{"type":"ping","t":...}`, since browsers cannot send protocol pings)
 *   declares a connection dead when nothing arrives within `heartbeatTimeout` of a ping,
 *   so a silent, half-open connection is replaced within interval + timeout.
 * - A `recovered: false` welcome after a resume calls `onresync`: the stream's history
 *   was lost and the application must rebuild its view from `snapshot`.
 */
(function (global) {
  "use strict";

  /** Client-side close code for connections the client gives up on (timeouts, gaps). */
  const CLOSE_CLIENT_ABANDON = 4000;

  const DEFAULTS = Object.freeze({
    baseDelay: 500, // ms: backoff ceiling of the first reconnect; doubles each attempt
    maxDelay: 15000, // ms: backoff ceiling cap
    maxAttempts: 10, // reconnects in a row before "offline"; Infinity never gives up
    heartbeatInterval: null, // ms between pings; null: the welcome's heartbeat.interval
    heartbeatTimeout: null, // ms to wait for any frame after a ping; null: the welcome's
    connectTimeout: 10000, // ms from opening a socket to its welcome
    healthUrl: null, // fetched after a failed attempt; true: /ws/health of the stream's host
    fastDelay: 250, // ms: retry ceiling when the health fetch finds nothing listening
    fastFor: 30000, // ms from an outage's start that the fast retry lasts
    ack: false, // send {"type":"ack"} with each ping so the server may trim history
    epoch: null, // resume from a stored position: the epoch and the last offset seen
    offset: 0, // (ignored without an epoch)
    token: null, // HMAC token when the server has --secret
    random: Math.random, // injectable for tests: returns [0, 1)
    now: () => (global.performance ? global.performance.now() : Date.now()),
    WebSocket: null, // defaults to the global WebSocket
    fetch: null, // defaults to the global fetch (used only with healthUrl)
    onstate: null, // (state, info): connecting, open, reconnecting, offline, closed
    onwelcome: null, // (welcome): every welcome frame, including its snapshot
    onevent: null, // ({offset, ts, data}): each event once, in order
    onresync: null, // ({epoch, offset, previousEpoch, previousOffset, snapshot, welcome})
    onservererror: null, // ({code, message}): the server's error frame before a close
  });

  /** Full-jitter backoff: a uniform delay in [0, min(cap, base * 2^(attempt-1))). */
  function backoffDelay(attempt, baseDelay, maxDelay, random) {
    const ceiling = Math.min(maxDelay, baseDelay * Math.pow(2, Math.max(0, attempt - 1)));
    return Math.floor((random || Math.random)() * ceiling);
  }

  /** The server's retry hint (`retry_ms=N` in a 1001 or 1013 close reason), or null. */
  function retryHintMs(code, reason) {
    if (code !== 1001 && code !== 1013) return null;
    const match = /retry_ms=(\d+)/.exec(reason || "");
    return match ? Number(match[1]) : null;
  }

  /** The health URL the `healthUrl` option names: `true` means `/ws/health` on the stream
   * URL's host and port (ws -> http, wss -> https); a string is used as it is; null: none. */
  function healthUrlFor(url, option) {
    if (option == null || option === false) return null;
    if (option !== true) return String(option);
    const target = new URL(url);
    target.protocol = target.protocol === "wss:" ? "https:" : "http:";
    target.pathname = "/ws/health";
    target.search = "";
    target.hash = "";
    return target.toString();
  }

  /** Milliseconds a `Retry-After` header value asks for (seconds or an HTTP date), or null. */
  function retryAfterMs(value, nowMs) {
    if (value == null || value === "") return null;
    const text = String(value).trim();
    if (/^\d+$/.test(text)) return Number(text) * 1000;
    const at = Date.parse(text);
    if (Number.isNaN(at)) return null;
    return Math.max(0, at - (nowMs == null ? Date.now() : nowMs));
  }

  /**
   * One health check after a failed attempt. Resolves to {listening, status, hint}:
   * `listening: false` when the fetch failed with a network error (nothing answered on
   * that port), `true` when any HTTP answer came back (`status` 0 when it was cross-origin
   * and opaque; `hint` the Retry-After in ms when readable) or the check timed out.
   */
  function checkHealth(url, timeoutMs, fetchImpl) {
    const doFetch = fetchImpl || global.fetch;
    const controller = typeof AbortController === "function" ? new AbortController() : null;
    const timer = controller ? setTimeout(() => controller.abort(), timeoutMs) : null;
    const page = global.location && global.location.origin;
    const init = { cache: "no-store", credentials: "omit" };
    // Cross-origin without CORS headers, a "cors" fetch fails like a refused one would:
    // ask for an opaque answer instead, which still proves the server answered.
    if (!page || new URL(url).origin !== page) init.mode = "no-cors";
    if (controller) init.signal = controller.signal;
    return Promise.resolve()
      .then(() => doFetch(url, init))
      .then(
        (response) => ({
          listening: true,
          status: response.status,
          hint: retryAfterMs(response.headers && response.headers.get("Retry-After")),
        }),
        (err) => ({
          // Our own timeout: something accepted the connection but is slow; that costs it.
          listening: Boolean(err && err.name === "AbortError"),
          status: null,
          hint: null,
        }),
      )
      .finally(() => {
        if (timer != null) clearTimeout(timer);
      });
  }

  /** The URL of one connection: `url` plus `?epoch=E&offset=N` when resuming, and token. */
  function connectUrl(url, epoch, offset, token) {
    const target = new URL(url);
    target.searchParams.delete("epoch");
    target.searchParams.delete("offset");
    if (epoch != null) {
      target.searchParams.set("epoch", epoch);
      target.searchParams.set("offset", String(offset));
    }
    if (token != null) target.searchParams.set("token", token);
    return target.toString();
  }

  class WsctlClient {
    /**
     * @param {string} url ws:// or wss:// URL of one stream, e.g. ws://host:8765/ws/alert-1
     * @param {object} options see DEFAULTS above and docs/browser-client.md
     */
    constructor(url, options) {
      this.url = url;
      this.options = Object.assign({}, DEFAULTS, options || {});
      const start = Number(this.options.offset || 0);
      if (!Number.isInteger(start) || start < 0) {
        throw new TypeError("offset must be a non-negative integer");
      }
      /** connecting | open | reconnecting | offline | closed ("idle" before start()) */
      this.state = "idle";
      this.stateInfo = {};
      /** Position in the stream: the epoch and the last offset delivered to onevent. */
      this.epoch = this.options.epoch;
      this.offset = this.options.epoch == null ? 0 : start;
      /** Failed reconnects in a row; 0 once a welcome arrives. */
      this.attempt = 0;
      this.stats = {
        connects: 0, duplicates: 0, gaps: 0, resyncs: 0, deadDetected: 0,
        healthChecks: 0, fastRetries: 0,
      };
      this.lastRtt = null;
      this.retryAt = null;
      this._ws = null;
      this._timers = {};
      this._acked = 0;
      this._check = null; // the health check in flight, if any
      this._outageStart = null; // now() when the current outage began (fast-retry window)
      this._lastFound = null; // the previous health check's answer in this outage
      this._onOnline = () => this._wake("online");
      this._onVisible = () => {
        if (global.document && global.document.visibilityState === "visible") {
          this._wake("visible");
        }
      };
    }

    /** Connect, and keep connected until close(). Calling it again does nothing. */
    start() {
      if (this.state !== "idle") return this;
      if (typeof global.addEventListener === "function") {
        global.addEventListener("online", this._onOnline);
      }
      if (global.document) {
        global.document.addEventListener("visibilitychange", this._onVisible);
      }
      this._connect();
      return this;
    }

    /** Reconnect now, with a fresh set of attempts (the "Retry now" button). */
    retryNow() {
      if (this.state === "closed" || this.state === "idle") return;
      if (this.state === "open") return;
      this.attempt = 0;
      this._outageStart = null; // a fresh set of attempts gets a fresh fast-retry window
      this._lastFound = null;
      this._connect();
    }

    /** Close for good (code 1000 by default); no reconnect follows. */
    close(code, reason) {
      if (this.state === "closed") return;
      const ws = this._ws;
      this._detach();
      if (ws) {
        try {
          ws.close(code || 1000, reason || "client closed");
        } catch (err) {
          ws.close();
        }
      }
      if (typeof global.removeEventListener === "function") {
        global.removeEventListener("online", this._onOnline);
      }
      if (global.document) {
        global.document.removeEventListener("visibilitychange", this._onVisible);
      }
      this._setState("closed", { code: code || 1000, reason: reason || "client closed", by: "client" });
    }

    // -- internals ----------------------------------------------------------------

    _setState(state, info) {
      this.state = state;
      this.stateInfo = info;
      this._call("onstate", state, info);
    }

    _call(name, ...args) {
      const callback = this.options[name];
      if (typeof callback !== "function") return;
      try {
        callback.apply(this, args);
      } catch (err) {
        // An application bug must not stop the connection machinery.
        if (global.console) global.console.error("WsctlClient " + name + " callback failed", err);
      }
    }

    _clearTimer(name) {
      if (this._timers[name] != null) {
        clearTimeout(this._timers[name]);
        clearInterval(this._timers[name]);
        this._timers[name] = null;
      }
    }

    _detach() {
      for (const name of Object.keys(this._timers)) this._clearTimer(name);
      const ws = this._ws;
      this._ws = null;
      this._check = null; // a health check still in flight is ignored when it ends
      this.retryAt = null;
      if (ws) {
        ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
      }
      return ws;
    }

    _connect() {
      const previous = this._detach();
      if (previous) {
        // retryNow() during an attempt: never leave the old socket open behind us. One
        // still CONNECTING cannot send 4000: the browser aborts it (Chromium tells the
        // server 1001), which also frees the one-CONNECTING-per-host slot (RFC 6455 4.1).
        try {
          previous.close(CLOSE_CLIENT_ABANDON, "replaced by a new attempt");
        } catch (err) {
          /* already closing */
        }
      }
      const resuming = this.epoch != null;
      this._setState("connecting", {
        attempt: this.attempt,
        resume: resuming ? { epoch: this.epoch, offset: this.offset } : null,
      });
      const Socket = this.options.WebSocket || global.WebSocket;
      let ws;
      try {
        ws = new Socket(connectUrl(this.url, this.epoch, this.offset, this.options.token));
      } catch (err) {
        // A malformed URL will never work: that is final, not a reason to retry.
        this._setState("closed", { code: 0, reason: String(err && err.message), by: "client" });
        return;
      }
      this._ws = ws;
      this._resuming = resuming;
      this._welcomed = false;
      this._opened = false;
      if (this._outageStart == null) this._outageStart = this.options.now();
      ws.onopen = () => {
        this._opened = true;
      };
      ws.onmessage = (message) => this._onMessage(ws, message.data);
      ws.onclose = (close) => this._onClose(ws, close.code, close.reason);
      ws.onerror = () => {}; // a close event always follows, with the code
      this._timers.connect = setTimeout(
        () => this._abandon(ws, "no welcome within " + this.options.connectTimeout + " ms"),
        this.options.connectTimeout,
      );
    }

    /** Give up on a connection without waiting for the browser (a dead peer never answers a close). */
    _abandon(ws, reason) {
      if (ws !== this._ws) return;
      this._detach();
      try {
        ws.close(CLOSE_CLIENT_ABANDON, reason.slice(0, 120));
      } catch (err) {
        /* already closing */
      }
      this._reconnect(CLOSE_CLIENT_ABANDON, reason);
    }

    _onClose(ws, code, reason) {
      if (ws !== this._ws) return;
      this._detach();
      if (code === 1000) {
        this._setState("closed", { code, reason, by: "server" });
        return;
      }
      const health = healthUrlFor(this.url, this.options.healthUrl);
      if (!this._opened && health != null) {
        this._checkThenReconnect(health, code, reason);
        return;
      }
      this._reconnect(code, reason);
    }

    /** The attempt failed before opening: a browser shows 1006 alike for a refused port
     * and for an HTTP 503, so ask the health URL which one it was. */
    _checkThenReconnect(url, code, reason) {
      const check = {};
      this._check = check;
      this.stats.healthChecks += 1;
      const timeout = Math.min(2000, this.options.connectTimeout);
      checkHealth(url, timeout, this.options.fetch).then((found) => {
        if (this._check !== check) return; // closed, or retried meanwhile
        this._check = null;
        this._reconnect(code, reason, found);
      });
    }

    _reconnect(code, reason, found) {
      const nav = global.navigator;
      if (nav && nav.onLine === false) {
        // No network at all: burning attempts is pointless; the online event wakes us.
        this._setState("offline", { attempts: this.attempt, code, reason, network: false });
        return;
      }
      const o = this.options;
      // A server that started listening between the refused attempt and its health
      // check answers the check: it just came back, so the attempt failed only because
      // it was early. Retry that one fast too (once: if it refuses again, the next check
      // also finds it listening, and the backoff applies), unless it asked for a delay.
      const cameBack = Boolean(found && found.listening && found.hint == null &&
        this._lastFound && !this._lastFound.listening);
      if (found) this._lastFound = found;
      if (found && (!found.listening || cameBack) && o.now() - this._outageStart < o.fastFor) {
        // Nothing listens: retrying costs the server nothing, and finds a restarted one
        // within fastDelay. Neither the backoff nor maxAttempts advances.
        const fast = o.fastDelay / 2 + Math.floor((o.random() * o.fastDelay) / 2);
        this.stats.fastRetries += 1;
        this.retryAt = o.now() + fast;
        this._setState("reconnecting", {
          attempt: this.attempt, delay: fast, code, reason, hint: null, fast: true,
        });
        this._timers.retry = setTimeout(() => this._connect(), fast);
        return;
      }
      this.attempt += 1;
      if (this.attempt > o.maxAttempts) {
        this.attempt -= 1;
        this._setState("offline", { attempts: this.attempt, code, reason, network: true });
        return;
      }
      const hint = found && found.hint != null ? found.hint : retryHintMs(code, reason);
      const delay =
        hint != null
          ? hint + Math.floor(o.random() * o.baseDelay) // spread a restart's returning clients
          : backoffDelay(this.attempt, o.baseDelay, o.maxDelay, o.random);
      this.retryAt = o.now() + delay;
      this._setState("reconnecting", {
        attempt: this.attempt, delay, code, reason, hint, fast: false,
        status: found ? found.status : undefined,
      });
      this._timers.retry = setTimeout(() => this._connect(), delay);
    }

    _wake(why) {
      if (this.state === "reconnecting" || this.state === "offline") {
        this.attempt = 0;
        this._outageStart = null;
        this._lastFound = null;
        this._connect();
      } else if (this.state === "open" && why === "visible") {
        this._ping(this._ws); // timers were throttled while hidden: check liveness now
      }
    }

    _onMessage(ws, raw) {
      if (ws !== this._ws) return;
      this._clearTimer("dead"); // any frame proves the connection is alive
      let message;
      try {
        message = JSON.parse(raw);
      } catch (err) {
        return; // not protocol v1; the server never sends this
      }
      switch (message.type) {
        case "welcome":
          this._onWelcome(ws, message);
          break;
        case "event":
          if (this._welcomed) this._onEvent(ws, message);
          break;
        case "pong":
          if (typeof message.t === "number") this.lastRtt = this.options.now() - message.t;
          break;
        case "error":
          this._call("onservererror", message);
          break;
        default:
          break;
      }
    }

    _onWelcome(ws, welcome) {
      this._clearTimer("connect");
      this._welcomed = true;
      const previousEpoch = this.epoch;
      const previousOffset = this.offset;
      const resync = this._resuming && !welcome.recovered;
      // Fresh or resync: events follow from the head. Recovered: from our own offset.
      if (!this._resuming || !welcome.recovered) this.offset = welcome.offset;
      this.epoch = welcome.epoch;
      this._acked = 0;
      this.attempt = 0;
      this._outageStart = null;
      this._lastFound = null;
      this.stats.connects += 1;
      const heartbeat = welcome.heartbeat || {};
      const interval = this.options.heartbeatInterval || (heartbeat.interval || 5) * 1000;
      this._heartbeatTimeout = this.options.heartbeatTimeout || (heartbeat.timeout || 5) * 1000;
      this._timers.ping = setInterval(() => this._ping(ws), interval);
      this._call("onwelcome", welcome);
      if (resync) {
        this.stats.resyncs += 1;
        this._call("onresync", {
          epoch: welcome.epoch,
          offset: welcome.offset,
          previousEpoch,
          previousOffset,
          snapshot: welcome.snapshot || null,
          welcome,
        });
      }
      if (ws !== this._ws) return; // a callback closed us
      this._setState("open", {
        epoch: welcome.epoch,
        offset: this.offset,
        resumed: this._resuming,
        recovered: Boolean(welcome.recovered),
        resync,
        replayed: welcome.replayed || 0,
        heartbeat: { interval, timeout: this._heartbeatTimeout },
      });
    }

    _onEvent(ws, event) {
      const offset = event.offset;
      if (typeof offset !== "number" || offset <= this.offset) {
        this.stats.duplicates += 1;
        return;
      }
      if (offset !== this.offset + 1) {
        this.stats.gaps += 1;
        this._abandon(ws, "gap: expected offset " + (this.offset + 1) + ", got " + offset);
        return;
      }
      this.offset = offset;
      this._call("onevent", event);
    }

    _ping(ws) {
      if (!ws || ws !== this._ws || ws.readyState !== 1) return;
      try {
        ws.send(JSON.stringify({ type: "ping", t: this.options.now() }));
        if (this.options.ack && this.offset > this._acked) {
          ws.send(JSON.stringify({ type: "ack", offset: this.offset }));
          this._acked = this.offset;
        }
      } catch (err) {
        return; // the close event follows
      }
      if (this._timers.dead == null) {
        const timeout = this._heartbeatTimeout;
        this._timers.dead = setTimeout(() => {
          this.stats.deadDetected += 1;
          this._abandon(ws, "heartbeat timeout: nothing received for " + timeout + " ms after a ping");
        }, timeout);
      }
    }
  }

  WsctlClient.DEFAULTS = DEFAULTS;
  WsctlClient.CLOSE_CLIENT_ABANDON = CLOSE_CLIENT_ABANDON;
  WsctlClient.backoffDelay = backoffDelay;
  WsctlClient.retryHintMs = retryHintMs;
  WsctlClient.connectUrl = connectUrl;
  WsctlClient.healthUrlFor = healthUrlFor;
  WsctlClient.retryAfterMs = retryAfterMs;

  global.WsctlClient = WsctlClient;
  if (typeof module === "object" && module && module.exports) module.exports = WsctlClient;
})(typeof globalThis !== "undefined" ? globalThis : this);
