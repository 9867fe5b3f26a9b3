/*
 * The dashboard at GET /: one stream's live progress through WsctlClient, the server's
 * health from the /ws/health live feed, and a log of every connection event.
 *
 * URL parameters (all optional): stream (default alert-1), token, and client tuning in
 * ms: base, cap, attempts, heartbeat, timeout, connect_timeout.
 *
 * For tests and curious people, window.wsctlDashboard holds the client, the offsets
 * received (`offsets`, and `received` with their epochs), the state history and the last
 * health document; #status carries data-status, data-attempt and data-delay.
 */
(function () {
  "use strict";

  const STREAM_NAME = /^[A-Za-z0-9._-]{1,128}$/;
  const LOG_LIMIT = 200;
  const params = new URLSearchParams(location.search);
  const $ = (id) => document.getElementById(id);

  function numberParam(name, fallback) {
    const raw = params.get(name);
    if (raw === null || raw === "") return fallback;
    if (raw === "inf" || raw === "Infinity") return Infinity;
    const value = Number(raw);
    return Number.isFinite(value) && value >= 0 ? value : fallback;
  }

  const clientOptions = {
    baseDelay: numberParam("base", 500),
    maxDelay: numberParam("cap", 10000),
    maxAttempts: numberParam("attempts", 10),
    heartbeatInterval: numberParam("heartbeat", null),
    heartbeatTimeout: numberParam("timeout", null),
    connectTimeout: numberParam("connect_timeout", 5000),
    token: params.get("token"),
    ack: true,
    // The page comes from the server it watches, so /ws/health is same-origin: after a
    // failed attempt one fetch tells a restart (nothing listens: retry fast) from a
    // refusal (an HTTP answer: keep backing off). ?fast=0 turns it off.
    healthUrl: params.get("fast") === "0" ? null : true,
  };

  const wsBase = (location.protocol === "https:" ? "wss://" : "ws://") + location.host;

  const dashboard = {
    client: null,
    stream: null,
    offsets: [],
    received: [],
    states: [],
    resyncs: [],
    health: null,
  };
  window.wsctlDashboard = dashboard;

  // -- the log ------------------------------------------------------------------------

  function log(kind, text) {
    const item = document.createElement("li");
    item.dataset.kind = kind;
    const time = document.createElement("time");
    const now = new Date();
    time.dateTime = now.toISOString();
    time.textContent = now.toISOString().slice(11, 23);
    item.append(time, " ", text);
    const list = $("log");
    list.prepend(item);
    while (list.children.length > LOG_LIMIT) list.lastElementChild.remove();
  }

  function describeClose(info) {
    if (info.code === WsctlClient.CLOSE_CLIENT_ABANDON) return info.reason;
    const reason = info.reason ? " " + JSON.stringify(info.reason) : "";
    const meaning = {
      1001: "server going away",
      1006: "connection lost",
      1008: "policy",
      1009: "message too big",
      1011: "server error or keepalive timeout",
      1013: "server busy",
    }[info.code];
    return "closed " + info.code + (meaning ? " (" + meaning + ")" : "") + reason;
  }

  // -- status indicator ---------------------------------------------------------------

  let countdown = null;

  function showStatus(status, text, detail, announce) {
    const box = $("status");
    box.dataset.status = status;
    $("status-text").textContent = text;
    $("status-detail").textContent = detail || "";
    $("retry").hidden = status !== "offline";
    if (announce) $("status-live").textContent = announce;
  }

  function reconnectingText(info, client) {
    const left = Math.max(0, (client.retryAt || 0) - client.options.now());
    if (info.fast) return "Reconnecting: nothing listens (server restarting?), retrying every " +
        (client.options.fastDelay / 1000).toFixed(2) + " s";
    const seconds = Math.ceil(left / 1000);
    const when = seconds > 0 ? "in " + seconds + "s" : "now";
    return "Reconnecting " + when + ", attempt " + info.attempt;
  }

  function onState(client, state, info) {
    if (client !== dashboard.client) return;
    clearInterval(countdown);
    countdown = null;
    const box = $("status");
    box.dataset.attempt = String(info.attempt != null ? info.attempt : client.attempt);
    box.dataset.delay = info.delay != null ? String(info.delay) : "";
    let shown = state;
    if (state === "connecting") {
      if (info.attempt > 0) {
        shown = "reconnecting";
        showStatus(shown, "Reconnecting now, attempt " + info.attempt, "", null);
      } else {
        showStatus(shown, "Connecting…", "", "Connecting");
      }
      const from = info.resume ? " resuming after offset " + info.resume.offset : " (fresh)";
      log("connecting", "connecting to /ws/" + dashboard.stream + from +
          (info.attempt > 0 ? ", attempt " + info.attempt : ""));
    } else if (state === "open") {
      const how = info.resync ? "Resynced" : info.resumed ? "resumed" : "fresh";
      showStatus("connected", "Connected", "", "Connected to " + dashboard.stream);
      $("epoch").textContent = info.epoch;
      let text;
      if (info.resync) {
        text = "connected: resync, history lost; now at offset " + info.offset + " of epoch " + info.epoch;
      } else if (info.resumed) {
        text = "connected: resumed after offset " + info.offset + ", " + info.replayed + " replayed";
      } else {
        text = "connected: fresh at offset " + info.offset + " of epoch " + info.epoch;
      }
      log(info.resync ? "resync" : "open", text);
      box.dataset.how = how;
      // The server is back: don't leave the health feed waiting out its own backoff.
      if (healthRetry !== null) connectHealth();
    } else if (state === "reconnecting") {
      const tick = () => showStatus("reconnecting", reconnectingText(info, client), "", null);
      tick();
      $("status-live").textContent = "Reconnecting, attempt " + info.attempt;
      countdown = setInterval(tick, 200);
      const hint = info.hint != null ? " (server hint retry_ms=" + info.hint + ")"
        : info.fast ? " (nothing listens: fast retry)" : "";
      log("reconnecting", describeClose(info) + " at offset " + client.offset +
          "; reconnecting in " + (info.delay / 1000).toFixed(1) + " s" + hint +
          ", attempt " + info.attempt);
    } else if (state === "offline") {
      const why = info.network ? "gave up after " + info.attempts + " attempts" : "the browser has no network";
      showStatus("offline", "Offline", "(" + why + ")", "Offline: " + why + ". Retry now button available.");
      log("offline", "offline: " + why + "; last: " + describeClose(info) + " at offset " + client.offset);
    } else if (state === "closed") {
      const by = info.by === "server" ? "by the server" : "by this page";
      showStatus("closed", "Closed", "(" + by + ", code " + info.code + ")", "Connection closed " + by);
      log("closed", "closed " + by + ": code " + info.code + (info.reason ? " " + JSON.stringify(info.reason) : ""));
    }
    dashboard.states.push({
      state: shown,
      attempt: info.attempt != null ? info.attempt : null,
      delay: info.delay != null ? info.delay : null,
      code: info.code != null ? info.code : null,
      fast: Boolean(info.fast),
      at: Date.now(),
    });
  }

  // -- progress -----------------------------------------------------------------------

  function showProgress(data, offset) {
    if (data && typeof data === "object") {
      const total = Number(data.total) || 0;
      const step = Number(data.step) || 0;
      const bar = $("progress");
      if (total > 0) bar.max = total;
      bar.value = step;
      bar.dataset.step = String(step);
      $("step").textContent = total ? step + " / " + total : String(step);
      $("job-status").textContent = data.status || "–";
      $("job-message").textContent = data.message || "–";
    }
    if (offset != null) $("offset").textContent = String(offset);
  }

  function onResync(info) {
    dashboard.resyncs.push({
      previousEpoch: info.previousEpoch,
      previousOffset: info.previousOffset,
      epoch: info.epoch,
      offset: info.offset,
    });
    const notice = $("resynced");
    notice.hidden = false;
    notice.dataset.count = String(dashboard.resyncs.length);
    notice.textContent =
      "Resynced: the server no longer had this stream's history after offset " +
      info.previousOffset + " (epoch " + info.previousEpoch + " is gone, e.g. it restarted). " +
      "Showing its current state from offset " + info.offset + " of epoch " + info.epoch + ".";
    showProgress(info.snapshot && info.snapshot.data, info.offset);
  }

  // -- the stream ---------------------------------------------------------------------

  function watch(stream) {
    if (dashboard.client) dashboard.client.close(1000, "switching stream");
    dashboard.stream = stream;
    dashboard.offsets = [];
    dashboard.received = [];
    dashboard.resyncs = [];
    $("resynced").hidden = true;
    $("stream-input").value = stream;
    $("stream-error").hidden = true;
    document.title = stream + " · wsctl";
    showProgress({ step: 0, total: 0, status: "–", message: "–" }, null);
    const url = wsBase + "/ws/" + encodeURIComponent(stream);
    const client = new WsctlClient(url, Object.assign({}, clientOptions, {
      onstate: (state, info) => onState(client, state, info),
      onwelcome: (welcome) => {
        if (welcome.snapshot) showProgress(welcome.snapshot.data, welcome.offset);
      },
      onresync: onResync,
      onevent: (event) => {
        dashboard.offsets.push(event.offset);
        dashboard.received.push({ epoch: client.epoch, offset: event.offset });
        showProgress(event.data, event.offset);
      },
      onservererror: (error) => log("error", "server error " + error.code + ": " + error.message),
    }));
    dashboard.client = client;
    client.start();
  }

  $("stream-form").addEventListener("submit", (submit) => {
    submit.preventDefault();
    const stream = $("stream-input").value.trim();
    $("stream-input").setAttribute("aria-invalid", String(!STREAM_NAME.test(stream)));
    if (!STREAM_NAME.test(stream)) {
      const error = $("stream-error");
      error.hidden = false;
      error.textContent = "A stream name is 1 to 128 of A-Z a-z 0-9 . _ -";
      return;
    }
    const next = new URL(location.href);
    next.searchParams.set("stream", stream);
    history.replaceState(null, "", next);
    watch(stream);
  });

  $("retry").addEventListener("click", () => {
    log("retry", "retry now (button)");
    if (dashboard.client) dashboard.client.retryNow();
    connectHealth();
  });

  // -- health feed --------------------------------------------------------------------

  let health = null;
  let healthAttempt = 0;
  let healthRetry = null;
  let healthStale = null;

  function healthLost(text) {
    const state = $("health-state");
    state.dataset.live = "false";
    state.textContent = text + (dashboard.health ? " (figures below are the last known)" : "");
  }

  function connectHealth() {
    clearTimeout(healthRetry);
    healthRetry = null;
    if (health) {
      health.onclose = health.onmessage = null;
      health.close();
    }
    const ws = new WebSocket(wsBase + "/ws/health");
    health = ws;
    ws.onmessage = (message) => {
      healthAttempt = 0;
      let doc;
      try {
        doc = JSON.parse(message.data);
      } catch (err) {
        return;
      }
      dashboard.health = doc;
      const state = $("health-state");
      state.dataset.live = "true";
      state.textContent = "Live: updated " + new Date().toISOString().slice(11, 19) + " UTC";
      $("health-status").textContent = doc.status;
      $("health-connections").textContent = doc.connections + " / " + doc.max_connections;
      $("health-connections").dataset.value = String(doc.connections);
      $("health-refused").textContent = String(doc.refused);
      $("health-dead").textContent = String(doc.dead_detected);
      $("health-streams").textContent = String(doc.streams);
      $("health-uptime").textContent = Math.round(doc.uptime) + " s";
      clearTimeout(healthStale);
      // The feed sends once a second: three silent seconds mean it is gone.
      healthStale = setTimeout(() => {
        healthLost("Health feed silent: reconnecting…");
        connectHealth();
      }, 3000);
    };
    ws.onclose = () => {
      if (ws !== health) return;
      clearTimeout(healthStale);
      healthAttempt += 1;
      const delay = 500 + WsctlClient.backoffDelay(healthAttempt, 1000, 10000);
      healthLost("Health feed unavailable: retrying in " + (delay / 1000).toFixed(1) + " s");
      healthRetry = setTimeout(connectHealth, delay);
    };
  }

  // -- start --------------------------------------------------------------------------

  const requested = params.get("stream") || "alert-1";
  if (STREAM_NAME.test(requested)) {
    watch(requested);
  } else {
    $("stream-input").value = requested;
    $("stream-error").hidden = false;
    $("stream-error").textContent = "Invalid stream name in the URL: use 1 to 128 of A-Z a-z 0-9 . _ -";
    showStatus("closed", "Not connected", "(choose a stream)", null);
  }
  connectHealth();
})();
