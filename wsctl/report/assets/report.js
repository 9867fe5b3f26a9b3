(() => {
  "use strict";
  const report = JSON.parse(document.getElementById("wsctl-report").textContent);
  const extra = JSON.parse(document.getElementById("wsctl-charts").textContent);
  // The HTML parser puts <svg> in the SVG namespace: no namespace URL is spelled here.
  const NS = (() => {
    const probe = document.createElement("div");
    probe.innerHTML = "<svg></svg>";
    return probe.firstChild.namespaceURI;
  })();
  const W = 760, H = 290, M = { l: 66, r: 22, t: 14, b: 48 };

  function el(tag, attrs, parent) {
    const node = document.createElementNS(NS, tag);
    for (const key of Object.keys(attrs || {})) node.setAttribute(key, String(attrs[key]));
    if (parent) parent.appendChild(node);
    return node;
  }
  function text(attrs, content, parent) {
    const node = el("text", attrs, parent);
    node.textContent = content;
    return node;
  }
  function html(tag, cls, content, parent) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (content !== undefined && content !== null) node.textContent = content;
    if (parent) parent.appendChild(node);
    return node;
  }
  const sig = (v) => String(Number(v.toPrecision(3)));
  function fmtSeconds(v) {
    if (v === null || v === undefined || !isFinite(v)) return "—";
    return Math.abs(v) < 1 ? sig(v * 1000) + " ms" : sig(v) + " s";
  }
  function fmtNumber(v) {
    if (v === null || v === undefined || !isFinite(v)) return "—";
    if (Math.abs(v) >= 1e6) return sig(v / 1e6) + "M";
    if (Math.abs(v) >= 1e4) return sig(v / 1e3) + "k";
    return Number.isInteger(v) ? String(v) : sig(v);
  }
  function niceStep(range, count) {
    const raw = range / count;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const norm = raw / mag;
    return (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
  }
  function linearTicks(lo, hi, count) {
    const step = niceStep(hi - lo, count);
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) {
      out.push(Number(v.toPrecision(12)));
    }
    return out;
  }
  function logTicks(lo, hi) {
    const out = [];
    for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
      for (const m of [1, 2, 5]) {
        const v = m * Math.pow(10, e);
        if (v >= lo * 0.999 && v <= hi * 1.001) out.push(Number(v.toPrecision(12)));
      }
    }
    return out;
  }

  function figure(parent, title, sub) {
    const fig = html("figure", "chart", null, parent);
    const cap = html("figcaption", null, null, fig);
    html("span", null, title, cap);
    if (sub) html("span", "sub", sub, cap);
    return fig;
  }
  function legend(fig, items) {
    const box = html("div", "legend", null, fig);
    for (const item of items) {
      const span = html("span", null, null, box);
      html("span", "swatch " + item.cls, null, span);
      span.appendChild(document.createTextNode(item.name));
    }
  }
  function plotArea(fig, label) {
    return el("svg", { viewBox: `0 0 ${W} ${H}`, class: "plot", role: "img",
                       "aria-label": label }, fig);
  }
  function axes(svg, xs, ys, xTicks, yTicks, xFmt, yFmt, xLabel, yLabel) {
    const g = el("g", {}, svg);
    for (const v of yTicks) {
      const y = ys(v);
      el("line", { class: "grid", x1: M.l, x2: W - M.r, y1: y, y2: y }, g);
      text({ class: "tick", x: M.l - 8, y: y + 4, "text-anchor": "end" }, yFmt(v), g);
    }
    for (const v of xTicks) {
      const x = xs(v);
      el("line", { class: "axis", x1: x, x2: x, y1: H - M.b, y2: H - M.b + 5 }, g);
      text({ class: "tick", x: x, y: H - M.b + 18, "text-anchor": "middle" }, xFmt(v), g);
    }
    el("line", { class: "axis", x1: M.l, x2: W - M.r, y1: H - M.b, y2: H - M.b }, g);
    el("line", { class: "axis", x1: M.l, x2: M.l, y1: M.t, y2: H - M.b }, g);
    text({ class: "axis-label", x: (M.l + W - M.r) / 2, y: H - 8, "text-anchor": "middle" },
         xLabel, g);
    const cy = (M.t + H - M.b) / 2;
    text({ class: "axis-label", x: 16, y: cy, "text-anchor": "middle",
           transform: `rotate(-90 16 ${cy})` }, yLabel, g);
  }
  function tooltip(svg) {
    const g = el("g", { class: "tip", visibility: "hidden", "pointer-events": "none" }, svg);
    const box = el("rect", { rx: 4, ry: 4 }, g);
    return {
      show(x, y, lines) {
        while (g.childNodes.length > 1) g.removeChild(g.lastChild);
        const width = 16 + 6.6 * Math.max(...lines.map((l) => l.length));
        const height = 8 + 15 * lines.length;
        const left = x + 12 + width > W - M.r ? x - 12 - width : x + 12;
        const top = Math.min(Math.max(M.t, y - height / 2), H - M.b - height);
        box.setAttribute("x", left); box.setAttribute("y", top);
        box.setAttribute("width", width); box.setAttribute("height", height);
        lines.forEach((line, i) => text({ x: left + 8, y: top + 16 + 15 * i }, line, g));
        g.setAttribute("visibility", "visible");
      },
      hide() { g.setAttribute("visibility", "hidden"); },
    };
  }
  function pointerX(svg, event) {
    const point = svg.createSVGPoint();
    point.x = event.clientX; point.y = event.clientY;
    const ctm = svg.getScreenCTM();
    return ctm ? point.matrixTransform(ctm.inverse()) : { x: 0, y: 0 };
  }

  // -- time charts ----------------------------------------------------------------------
  const COLUMNS = {
    connections: { chart: "connections", name: "connections open", cls: "c1", rate: false },
    attempts: { chart: "connections", name: "connection attempts per second", cls: "c2",
                rate: true },
    messages: { chart: "messages", name: "messages received per second", cls: "c1",
                rate: true },
    lost: { chart: "connections", name: "connections lost per second", cls: "c3",
            rate: true },
    server_rss: { chart: "memory", name: "server resident memory (MiB)", cls: "c4",
                  rate: false, scale: 1 / 1048576 },
  };
  const CHARTS = {
    connections: { title: "Connections",
                   sub: "open connections, attempts and losses over time",
                   y: "connections · per second" },
    messages: { title: "Message rate", sub: "events the probes received per second",
                y: "messages per second" },
    memory: { title: "Server memory", sub: "resident set size of the server process",
              y: "MiB" },
  };

  function timeChart(parent, spec, t, lines, marks, duration) {
    const fig = figure(parent, spec.title, spec.sub);
    const svg = plotArea(fig, spec.title + ": " + spec.sub);
    const xMax = Math.max(duration || 0, t[t.length - 1] || 0,
                          ...marks.map((m) => m.at), 1);
    let yMax = 0;
    for (const line of lines) {
      for (const v of line.values) if (v !== null && isFinite(v)) yMax = Math.max(yMax, v);
    }
    yMax = yMax > 0 ? yMax * 1.08 : 1;
    const yTicks = linearTicks(0, yMax, 5);
    yMax = Math.max(yMax, yTicks[yTicks.length - 1]);
    const xs = (v) => M.l + (v / xMax) * (W - M.l - M.r);
    const ys = (v) => H - M.b - (v / yMax) * (H - M.t - M.b);
    axes(svg, xs, ys, linearTicks(0, xMax, 10), yTicks, (v) => sig(v) + " s", fmtNumber,
         "seconds since the scenario started", spec.y);
    marks.forEach((mark, i) => {
      const x = xs(mark.at);
      const cls = mark.error ? " failed" : "";
      const group = el("g", { class: "action" }, svg);
      const title = el("title", {}, group);  // the whole action, on hover
      title.textContent = `${sig(mark.at)} s ${mark.do}` +
                          (mark.detail ? ` — ${mark.detail}` : "") +
                          (mark.error ? ` — failed: ${mark.error}` : "");
      el("line", { class: "mark" + cls, x1: x, x2: x, y1: M.t, y2: H - M.b }, group);
      const right = x > W - M.r - 130;
      text({ class: "mark-label" + cls, x: right ? x - 4 : x + 4, y: M.t + 12 + (i % 3) * 14,
             "text-anchor": right ? "end" : "start" },
           mark.do + (mark.error ? " (failed)" : ""), group);
    });
    for (const line of lines) {
      let d = "", pen = false;
      line.values.forEach((v, i) => {
        if (v === null || v === undefined || !isFinite(v)) { pen = false; return; }
        d += (pen ? "L" : "M") + xs(t[i]).toFixed(1) + " " + ys(v).toFixed(1);
        pen = true;
      });
      if (d) el("path", { class: "line " + line.cls, d: d }, svg);
      if (line.dots || line.values.length === 1) {
        line.values.forEach((v, i) => {
          if (isFinite(v) && (v > 0 || line.values.length === 1)) {
            el("circle", { class: line.cls, cx: xs(t[i]), cy: ys(v), r: 3 }, svg);
          }
        });
      }
    }
    const guide = el("line", { class: "guide", y1: M.t, y2: H - M.b, visibility: "hidden" }, svg);
    const tip = tooltip(svg);
    const overlay = el("rect", { class: "overlay", x: M.l, y: M.t, width: W - M.l - M.r,
                                 height: H - M.t - M.b }, svg);
    overlay.addEventListener("mousemove", (event) => {
      const p = pointerX(svg, event);
      let best = 0;
      t.forEach((v, i) => { if (Math.abs(xs(v) - p.x) < Math.abs(xs(t[best]) - p.x)) best = i; });
      const x = xs(t[best]);
      guide.setAttribute("x1", x); guide.setAttribute("x2", x);
      guide.setAttribute("visibility", "visible");
      const rows = [`t = ${sig(t[best])} s`];
      for (const line of lines) rows.push(`${line.name}: ${fmtNumber(line.values[best])}`);
      for (const mark of marks) {
        if (Math.abs(xs(mark.at) - x) < 6) rows.push(`▸ ${mark.do}`);
      }
      tip.show(x, p.y, rows);
    });
    overlay.addEventListener("mouseleave", () => {
      guide.setAttribute("visibility", "hidden"); tip.hide();
    });
    const items = lines.map((l) => ({ name: l.name, cls: l.cls }));
    if (marks.length) items.push({ name: "timeline action", cls: "mark" });
    legend(fig, items);
    return fig;
  }

  function drawSeries(parent, scenario) {
    const series = scenario.series || {};
    const t = Array.isArray(series.t) ? series.t : [];
    const interval = series.interval > 0 ? series.interval : 1;
    const marks = scenario.timeline || [];
    const duration = scenario.result ? scenario.result.duration : 0;
    if (!t.length) {
      html("p", "empty", "No time series was recorded for this scenario.", parent);
      return;
    }
    const groups = {};
    const order = [];
    for (const key of Object.keys(series)) {
      if (key === "t" || key === "interval" || !Array.isArray(series[key])) continue;
      const known = COLUMNS[key];
      const spec = known || { chart: "col:" + key, name: key, cls: "c1", rate: false };
      const scale = (spec.rate ? 1 / interval : 1) * (spec.scale || 1);
      const values = series[key].map((v) => (v === null || !isFinite(v) ? null : v * scale));
      if (!groups[spec.chart]) { groups[spec.chart] = []; order.push(spec.chart); }
      groups[spec.chart].push({ name: spec.name, cls: spec.cls, values: values,
                                dots: key === "lost" });
    }
    const rank = (name) => { const i = Object.keys(CHARTS).indexOf(name); return i < 0 ? 99 : i; };
    order.sort((a, b) => rank(a) - rank(b));
    for (const name of order) {
      const spec = CHARTS[name] || { title: name.slice(4), sub: "as sampled", y: name.slice(4) };
      timeChart(parent, spec, t, groups[name], marks, duration);
    }
  }

  // -- distributions --------------------------------------------------------------------
  function distChart(parent, distributions) {
    const names = Object.keys(distributions);
    const fig = figure(parent, "Distribution", null);
    const cap = fig.querySelector("figcaption");
    const select = html("select", null, null, cap);
    select.setAttribute("aria-label", "metric");
    for (const name of names) {
      const option = html("option", null, name, select);
      option.value = name;
    }
    const sub = html("span", "sub", null, cap);
    let svg = null, foot = null;
    function draw(name) {
      const d = distributions[name];
      if (svg) svg.remove();
      if (foot) foot.remove();
      sub.textContent = d.description;
      svg = plotArea(fig, "distribution of " + name);
      foot = html("div", "legend", null, fig);
      const s = d.summary;
      const fmt = d.unit === "s" ? fmtSeconds : fmtNumber;
      foot.textContent = `${s.count} samples · mean ${fmt(s.mean)} · p50 ${fmt(s.p50)} · ` +
                         `p90 ${fmt(s.p90)} · p99 ${fmt(s.p99)} · max ${fmt(s.max)}`;
      const buckets = d.buckets;
      let lo = buckets[0][0], hi = buckets[buckets.length - 1][1];
      if (d.unit === "count") { lo -= 0.5; hi += 0.5; }
      if (!(hi > lo)) hi = lo + Math.max(Math.abs(lo) * 0.1, 1e-6);
      const limits = (d.thresholds || []).map((x) => x.value).filter((v) => isFinite(v));
      if (limits.length) hi = Math.max(hi, Math.max(...limits) * 1.04);
      const log = lo > 0 && hi / lo > 30;
      if (!log && d.unit === "s" && lo < hi / 3) lo = 0;
      const N = d.unit === "count" ? Math.min(40, Math.round(hi - lo)) : 40;
      const edges = [];
      for (let i = 0; i <= N; i++) {
        edges.push(log ? lo * Math.pow(hi / lo, i / N) : lo + (hi - lo) * i / N);
      }
      const bins = new Array(N).fill(0);
      const pos = (v) => (log ? Math.log(v / lo) / Math.log(hi / lo) : (v - lo) / (hi - lo));
      for (const [a, b, n] of buckets) {
        const mid = d.unit === "count" ? a : (a + b) / 2;
        bins[Math.min(N - 1, Math.max(0, Math.floor(pos(mid) * N)))] += n;
      }
      const xs = (v) => M.l + Math.min(1, Math.max(0, pos(v))) * (W - M.l - M.r);
      let yMax = Math.max(...bins) * 1.12;
      const yTicks = linearTicks(0, yMax, 5).filter((v) => Number.isInteger(v));
      yMax = Math.max(yMax, yTicks[yTicks.length - 1] || 1);
      const ys = (v) => H - M.b - (v / yMax) * (H - M.t - M.b);
      let xTicks = log ? logTicks(lo, hi) : linearTicks(lo, hi, 8);
      if (d.unit === "count") xTicks = xTicks.filter((v) => Number.isInteger(v));
      const unitName = d.unit === "s" ? "time" : "count";
      axes(svg, xs, ys, xTicks, yTicks, fmt, fmtNumber,
           `${name} (${unitName}${log ? ", log scale" : ""})`, d.y_label);
      bins.forEach((n, i) => {
        if (!n) return;
        const x0 = xs(edges[i]), x1 = xs(edges[i + 1]);
        const bar = el("rect", { class: "bar", x: x0 + 0.5, width: Math.max(1, x1 - x0 - 1),
                                 y: ys(n), height: H - M.b - ys(n) }, svg);
        const title = el("title", {}, bar);
        title.textContent = `${fmt(edges[i])} – ${fmt(edges[i + 1])}: ${n} ${d.y_label}`;
      });
      const stats = [["p50", s.p50], ["p99", s.p99]];
      if (s.mean !== null) stats.push(["mean", s.mean]);
      stats.forEach(([label, value], i) => {
        if (value === null || value === undefined) return;
        const x = xs(value);
        el("line", { class: "stat", x1: x, x2: x, y1: M.t, y2: H - M.b }, svg);
        const right = x > W - M.r - 110;
        text({ class: "stat-label", x: right ? x - 4 : x + 4, y: M.t + 12 + i * 14,
               "text-anchor": right ? "end" : "start" }, `${label} ${fmt(value)}`, svg);
      });
      (d.thresholds || []).forEach((limit, i) => {
        if (!isFinite(limit.value) || limit.value < lo) return;
        const x = xs(limit.value);
        const cls = "limit " + limit.status;
        el("line", { class: cls, x1: x, x2: x, y1: M.t, y2: H - M.b }, svg);
        const right = x > W - M.r - 150;
        text({ class: "limit-label " + limit.status, x: right ? x - 4 : x + 4,
               y: M.t + 54 + i * 14, "text-anchor": right ? "end" : "start" },
             `criterion: ${limit.label}`, svg);
      });
    }
    select.addEventListener("change", () => draw(select.value));
    const first = names.includes("reconnect_time") ? "reconnect_time" : names[0];
    select.value = first;
    draw(first);
  }

  function drawScenario(container) {
    const index = Number(container.getAttribute("data-scenario"));
    const scenario = report.scenarios[index];
    const data = (extra.scenarios || [])[index] || { distributions: {} };
    const distributions = data.distributions || {};
    if (Object.keys(distributions).length) {
      distChart(container, distributions);
    } else {
      html("p", "empty", "No reconnections were measured: nothing to draw a distribution of.",
           container);
    }
    drawSeries(container, scenario);
  }

  for (const container of document.querySelectorAll(".charts[data-scenario]")) {
    try {
      drawScenario(container);
    } catch (err) {
      html("p", "empty", "Could not draw these charts: " + err, container);
      throw err;
    }
  }
  document.documentElement.setAttribute("data-charts", "drawn");
})();
