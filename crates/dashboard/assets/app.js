// NTA dashboard: a small single-page app without a build step.
// Every piece of data is inserted with textContent / createTextNode (never innerHTML), so
// attacker-controlled strings (DNS names, HTTP paths and hosts, TLS server names, MAC strings)
// stay text.
"use strict";

const S = {
  csrf: null,
  via: null,
  range: { kind: localStorage.getItem("nta.range") || "1h", from: null, to: null },
  charts: [],
  timer: null,
  page: null,
  es: null,
  alertsView: null, // {filters, tbody} while the alerts list is shown
};

// ------------------------------------------------------------------ DOM helpers

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "text") e.textContent = String(v);
      else if (k === "onclick") e.addEventListener("click", v);
      else if (k === "onchange") e.addEventListener("change", v);
      else if (k === "onsubmit") e.addEventListener("submit", v);
      else e.setAttribute(k, String(v));
    }
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    e.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
  }
  return e;
}
function clear(e) { while (e.firstChild) e.removeChild(e.firstChild); return e; }
function hashLink(path, text) { return el("a", { href: "#" + path, text: text }); }
function hostLink(ip) { return ip ? hashLink("/hosts/" + encodeURIComponent(ip), ip) : el("span", { class: "muted", text: "—" }); }
function sevBadge(s) { return el("span", { class: "sev sev-" + (["LOW", "MEDIUM", "HIGH", "CRITICAL"].includes(s) ? s : "LOW"), text: s }); }

function fmtTime(t) {
  if (t === null || t === undefined) return "—";
  const d = new Date(t * 1000);
  const p = (n, w) => String(n).padStart(w || 2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}
function fmtNum(n, digits) {
  if (n === null || n === undefined || Number.isNaN(n)) return "—";
  if (typeof n !== "number") return String(n);
  return n.toLocaleString(undefined, { maximumFractionDigits: digits === undefined ? 2 : digits });
}
function fmtUnit(n, unit) {
  if (n === null || n === undefined) return "—";
  const steps = [[1e9, "G"], [1e6, "M"], [1e3, "k"]];
  for (const [f, p] of steps) if (Math.abs(n) >= f) return (n / f).toFixed(2) + " " + p + unit;
  return n.toFixed(n < 10 ? 2 : 0) + " " + unit;
}
function fmtBytes(n) {
  if (n === null || n === undefined) return "—";
  const u = ["B", "KiB", "MiB", "GiB", "TiB"]; let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return n.toFixed(i ? 1 : 0) + " " + u[i];
}

function table(headers, rows, opts) {
  const t = el("table", opts && opts.id ? { id: opts.id } : null);
  t.appendChild(el("thead", null, el("tr", null, headers.map(h => el("th", { class: h.num ? "num" : null, text: h.label || h })))));
  const tb = el("tbody");
  for (const r of rows) tb.appendChild(r);
  t.appendChild(tb);
  if (!rows.length) tb.appendChild(el("tr", null, el("td", { colspan: headers.length, class: "muted", text: (opts && opts.empty) || "No data in this range." })));
  return t;
}
function td(v, cls) { return el("td", { class: cls || null }, v instanceof Node ? v : document.createTextNode(v === null || v === undefined ? "—" : String(v))); }
function card(title, ...children) { return el("section", { class: "card" }, el("h2", { text: title }), ...children); }
function statusNote(d) {
  if (d && d.status === "missing_table") return el("p", { class: "warn", text: "No data yet: " + d.detail });
  return null;
}
function toast(text, cls) {
  const t = el("div", { class: "toast " + (cls || ""), text: text });
  document.getElementById("toasts").appendChild(t);
  setTimeout(() => t.remove(), 8000);
}

// ------------------------------------------------------------------ API

class ApiError extends Error {}
async function api(path, params, opts) {
  const url = params ? path + "?" + params.toString() : path;
  const init = Object.assign({ credentials: "same-origin", headers: {} }, opts || {});
  if (init.method && init.method !== "GET" && S.csrf) init.headers["X-CSRF-Token"] = S.csrf;
  const r = await fetch(url, init);
  if (r.status === 401) { location.href = "/login"; throw new ApiError("signed out"); }
  let body = null;
  try { body = await r.json(); } catch (e) { /* not JSON */ }
  if (!r.ok) throw new ApiError((body && body.message) || ("HTTP " + r.status));
  return body;
}
function errorBox(e) { return el("p", { class: "error", text: "Error: " + e.message }); }

// ------------------------------------------------------------------ time range

function rangeParams(extra) {
  const p = new URLSearchParams();
  if (fixedRange()) {
    p.set("from", String(S.range.from)); p.set("to", String(S.range.to));
  } else {
    p.set("range", RANGE_SECS[S.range.kind] ? S.range.kind : "1h");
  }
  if (extra) for (const [k, v] of Object.entries(extra)) if (v !== "" && v !== null && v !== undefined) p.set(k, String(v));
  return p;
}
// "Download pcap" links: the frames kept on NTA_FRAMES (/api/pcap), served as an attachment.
const RANGE_SECS = { "15m": 900, "1h": 3600, "24h": 86400 };
function pcapLink(params, id) {
  return el("a", { href: "/api/pcap?" + new URLSearchParams(params).toString(), id: id, download: "", text: "Download pcap" });
}
// Custom and "around the latest data" ranges are absolute; the others end now.
function fixedRange() { return (S.range.kind === "custom" || S.range.kind === "latest") && S.range.from && S.range.to; }
function pcapRange() {
  if (fixedRange()) return { from: String(S.range.from), to: String(S.range.to) };
  const now = Math.floor(Date.now() / 1000);
  return { from: String(now - (RANGE_SECS[S.range.kind] || 3600)), to: String(now) };
}
// What of the packet search a BPF filter can say; the text filters (DNS, HTTP, TLS names,
// application protocol) and protocol OTHER cannot, and are left out.
const PCAP_PROTOCOLS = { TCP: "tcp", UDP: "udp", ICMP: "icmp", ICMPv6: "icmp6", ARP: "arp" };
function pcapSearchParams(q) {
  const p = pcapRange();
  if (q.get("ip")) p.host = q.get("ip");
  if (q.get("port")) p.port = q.get("port");
  const terms = [];
  if (q.get("src")) terms.push("src host " + q.get("src"));
  if (q.get("dst")) terms.push("dst host " + q.get("dst"));
  if (PCAP_PROTOCOLS[q.get("protocol")]) terms.push(PCAP_PROTOCOLS[q.get("protocol")]);
  if (terms.length) { const t = terms.join(" and "); p.bpf = `(${t}) or (vlan and ${t})`; }
  return p;
}
function toLocalInput(t) {
  const d = new Date(t * 1000 - new Date().getTimezoneOffset() * 60000);
  return d.toISOString().slice(0, 19);
}
function setupRange() {
  const sel = document.getElementById("range-select");
  const custom = document.getElementById("custom-range");
  sel.value = S.range.kind === "custom" ? "1h" : S.range.kind;
  sel.addEventListener("change", () => {
    if (sel.value === "custom") {
      custom.hidden = false;
      const now = Date.now() / 1000;
      document.getElementById("range-from").value = toLocalInput(now - 3600);
      document.getElementById("range-to").value = toLocalInput(now);
      return;
    }
    custom.hidden = true;
    S.range = { kind: sel.value, from: null, to: null, chosen: true };
    localStorage.setItem("nta.range", sel.value);
    route();
  });
  document.getElementById("range-apply").addEventListener("click", () => {
    const f = new Date(document.getElementById("range-from").value).getTime() / 1000;
    const t = new Date(document.getElementById("range-to").value).getTime() / 1000;
    if (!(f < t)) { toast("The custom range must start before it ends.", "error"); return; }
    setCustomRange(f, t);
    route();
  });
}
function setCustomRange(f, t) {
  S.range = { kind: "custom", from: f, to: t, chosen: true };
  document.getElementById("range-note").hidden = true;
  document.getElementById("range-select").value = "custom";
  document.getElementById("custom-range").hidden = false;
  document.getElementById("range-from").value = toLocalInput(f);
  document.getElementById("range-to").value = toLocalInput(t);
}

// "Around the latest data": the range ending at the newest packet or window stored
// (/api/data-extent), resolved again on every page load so that it follows new data. Chosen
// by itself when the relative range in effect is empty but older data exists (a replayed
// capture), unless the user picked a range in this session; the page says so (#range-note).
async function resolveRange() {
  const note = document.getElementById("range-note");
  if (S.range.kind === "custom" || (S.range.kind !== "latest" && S.range.chosen)) { note.hidden = true; return; }
  let ext;
  try { ext = await api("/api/data-extent"); } catch (e) { return; }
  const secs = RANGE_SECS[S.range.kind];
  if (secs && !(ext.newest !== null && ext.newest < Date.now() / 1000 - secs)) { note.hidden = true; return; }
  if (secs) S.range = { kind: "latest", auto: RANGE_LABELS[S.range.kind], from: null, to: null };
  document.getElementById("range-select").value = "latest";
  if (!ext.range) { S.range.from = S.range.to = null; note.hidden = false; note.textContent = "Nothing is stored yet."; return; }
  S.range.from = ext.range.from; S.range.to = ext.range.to;
  clear(note).append(`Around the latest data: ${fmtTime(ext.range.from)} to ${fmtTime(ext.range.to)} (newest record ${fmtTime(ext.newest)})`);
  if (S.range.auto) note.append(`. There is nothing in the ${S.range.auto}.`);
  note.hidden = false;
}
const RANGE_LABELS = { "15m": "last 15 minutes", "1h": "last hour", "24h": "last 24 hours" };

// ------------------------------------------------------------------ charts

function destroyCharts() { for (const c of S.charts) c.destroy(); S.charts = []; }
function chartBox() { return el("div", { class: "chart-box" }, el("canvas")); }
function newChart(box, config) {
  if (typeof Chart === "undefined") { box.appendChild(el("p", { class: "muted", text: "Chart library not loaded." })); return null; }
  config.options = Object.assign({ responsive: true, maintainAspectRatio: false, animation: false,
    plugins: { legend: { labels: { color: "#e2e8f0" } } } }, config.options || {});
  const c = new Chart(box.querySelector("canvas"), config);
  S.charts.push(c);
  return c;
}
const timeAxis = { type: "linear", ticks: { color: "#94a3b8", maxTicksLimit: 8, callback: v => fmtTime(v).slice(11) }, grid: { color: "#334155" } };
const palette = ["#38bdf8", "#f97316", "#22c55e", "#eab308", "#a855f7", "#ef4444", "#14b8a6", "#64748b"];

// ------------------------------------------------------------------ pages

async function pageOverview(main) {
  const kpis = el("div", { class: "kpis" });
  const traffic = chartBox(), proto = chartBox();
  const src = el("div"), dst = el("div"), ports = el("div"), sev = el("div"), pipe = el("div");
  const trafficNote = el("p", { class: "muted" });
  main.append(el("h1", { text: "Overview" }),
    el("div", { class: "grid" },
      el("section", { class: "card wide" }, el("h2", { text: "Traffic" }), kpis, trafficNote, traffic),
      card("Protocol mix", proto),
      card("Open alerts by severity", sev),
      card("Top sources", src), card("Top destinations", dst), card("Top ports", ports),
      el("section", { class: "card wide" }, el("h2", { text: "Pipeline health" }), pipe)));
  const rp = rangeParams();
  const [tr, pr, ts, tdst, tp, summ, pl] = await Promise.allSettled([
    api("/api/traffic", rp), api("/api/protocols", rp), api("/api/top-sources", rangeParams({ limit: 10 })),
    api("/api/top-destinations", rangeParams({ limit: 10 })), api("/api/top-ports", rangeParams({ limit: 10 })),
    api("/api/alerts/summary"), api("/api/pipeline")]);

  if (tr.status === "fulfilled") {
    const d = tr.value, secs = d.range.to - d.range.from;
    kpis.append(
      el("div", { class: "kpi" }, el("div", { class: "v", text: fmtUnit(d.totals.packets / secs, "pkt/s") }), el("div", { class: "l", text: "average packets/s over the range" })),
      el("div", { class: "kpi" }, el("div", { class: "v", text: fmtUnit(d.totals.bytes * 8 / secs, "bit/s") }), el("div", { class: "l", text: "average bits/s over the range" })),
      el("div", { class: "kpi" }, el("div", { class: "v", text: fmtUnit(Math.max(0, ...d.points.map(p => p.pps)), "pkt/s") }), el("div", { class: "l", text: `busiest ${d.bucket_seconds} s bucket` })),
      el("div", { class: "kpi" }, el("div", { class: "v", text: fmtNum(d.totals.packets, 0) }), el("div", { class: "l", text: "packets" })));
    trafficNote.textContent = `Sum of the 5 s source windows in ${d.bucket_seconds} s buckets (${d.points.length} buckets with traffic).`;
    const n = statusNote(d); if (n) trafficNote.replaceWith(n);
    newChart(traffic, { type: "line", data: { datasets: [
      { label: "packets/s", data: d.points.map(p => ({ x: p.t, y: p.pps })), borderColor: palette[0], yAxisID: "y", pointRadius: 0 },
      { label: "bits/s", data: d.points.map(p => ({ x: p.t, y: p.bps })), borderColor: palette[1], yAxisID: "y1", pointRadius: 0 }] },
      options: { scales: { x: Object.assign({ min: d.range.from, max: d.range.to }, timeAxis),
        y: { position: "left", ticks: { color: "#94a3b8" }, title: { display: true, text: "packets/s", color: "#94a3b8" } },
        y1: { position: "right", ticks: { color: "#94a3b8", callback: v => fmtUnit(v, "b/s") }, grid: { drawOnChartArea: false } } } } });
  } else traffic.replaceWith(errorBox(tr.reason));

  if (pr.status === "fulfilled") {
    const d = pr.value;
    if (!d.labels.length) proto.replaceWith(statusNote(d) || el("p", { class: "muted", text: "No packets in this range." }));
    else newChart(proto, { type: "doughnut", data: { labels: d.labels, datasets: [{ data: d.values, backgroundColor: palette }] } });
  } else proto.replaceWith(errorBox(pr.reason));

  const topTable = (box, res, isPort) => {
    if (res.status !== "fulfilled") { box.appendChild(errorBox(res.reason)); return; }
    const d = res.value, note = statusNote(d); if (note) box.appendChild(note);
    box.appendChild(table(isPort ? ["Port", "Service", { label: "Packets", num: 1 }, { label: "%", num: 1 }] : ["Address", { label: "Packets", num: 1 }, { label: "Bytes", num: 1 }, { label: "%", num: 1 }],
      d.items.map(i => el("tr", null, isPort
        ? [td(i.port), td(i.service), td(fmtNum(i.packet_count, 0), "num"), td(i.percentage.toFixed(1), "num")]
        : [td(hostLink(i.ip)), td(fmtNum(i.packet_count, 0), "num"), td(fmtBytes(i.bytes), "num"), td(i.percentage.toFixed(1), "num")]))));
  };
  topTable(src, ts); topTable(dst, tdst); topTable(ports, tp, true);

  if (summ.status === "fulfilled") {
    const d = summ.value, n = statusNote(d); if (n) sev.appendChild(n);
    sev.appendChild(el("div", { class: "kpis" }, ["CRITICAL", "HIGH", "MEDIUM", "LOW"].map(s =>
      el("div", { class: "kpi" }, el("div", { class: "v", text: fmtNum(d.open_by_severity[s] || 0, 0) }), el("div", { class: "l" }, sevBadge(s))))));
  } else sev.appendChild(errorBox(summ.reason));

  if (pl.status === "fulfilled") {
    const d = pl.value;
    pipe.append(el("div", { class: "kpis" },
      el("div", { class: "kpi" }, el("div", { class: "v", text: d.ingestor && d.ingestor.packets_per_s !== null && d.ingestor.packets_per_s !== undefined ? fmtUnit(d.ingestor.packets_per_s, "pkt/s") : "—" }), el("div", { class: "l", text: "stored (last 60 s)" })),
      el("div", { class: "kpi" }, el("div", { class: "v", text: d.dead_letters === null || d.dead_letters === undefined ? "—" : fmtNum(d.dead_letters, 0) }), el("div", { class: "l", text: "dead letters" })),
      el("div", { class: "kpi" }, el("div", { class: "v", text: d.model_version || "—" }), el("div", { class: "l", text: "model version (latest prediction)" })),
      el("div", { class: "kpi" }, el("div", { class: "v", text: d.windows && d.windows.newest_window_start ? fmtTime(d.windows.newest_window_start) : "—" }), el("div", { class: "l", text: "newest window" })),
      el("div", { class: "kpi" }, el("div", { class: "v", text: d.nats_connected ? "connected" : "down" }), el("div", { class: "l", text: "NATS" }))));
    pipe.appendChild(table(["Stage", "Stream", "Consumer", { label: "Pending", num: 1 }, { label: "Unacked", num: 1 }, { label: "Redelivered", num: 1 }, { label: "Acked msgs/s", num: 1 }, "Note"],
      (d.consumers || []).map(c => el("tr", null, td(c.role), td(c.stream), td(c.consumer), td(fmtNum(c.num_pending, 0), "num"),
        td(fmtNum(c.num_ack_pending, 0), "num"), td(fmtNum(c.num_redelivered, 0), "num"), td(fmtNum(c.acked_per_s, 1), "num"), td(c.error || ""))),
      { empty: d.sampled_at ? "NATS not connected." : "Not sampled yet (every 5 s)." }));
    for (const note of d.notes || []) pipe.appendChild(el("p", { class: "muted", text: note }));
  } else pipe.appendChild(errorBox(pl.reason));
}

function alertRow(a) {
  const resolve = a.state === "open" ? el("button", { type: "button", class: "resolve", "data-id": a.id, text: "Resolve", onclick: () => resolveAlert(a.id) }) : null;
  return el("tr", { "data-alert-id": a.id },
    td(hashLink("/alerts/" + encodeURIComponent(a.id), "#" + a.id)), td(sevBadge(a.severity)), td(a.class), td(hostLink(a.key)), td(a.view),
    td(a.state), td(fmtTime(a.first_seen)), td(fmtTime(a.last_seen)), td(fmtNum(a.window_count, 0), "num"),
    td(fmtNum(a.peak_confidence * 100, 1) + "%", "num"), td(a.summary), td(resolve || ""));
}
const alertHeaders = ["Id", "Severity", "Class", "Key", "View", "State", "First seen", "Last seen", { label: "Windows", num: 1 }, { label: "Peak conf.", num: 1 }, "Summary", ""];

async function resolveAlert(id) {
  try {
    await api("/api/alerts/" + encodeURIComponent(id) + "/resolve", null, { method: "POST" });
    toast("Alert #" + id + " resolved.");
    route();
  } catch (e) { toast("Could not resolve #" + id + ": " + e.message, "error"); }
}

async function pageAlerts(main) {
  const f = Object.assign({ severity: "", class: "", state: "open", inRange: false }, S.alertFilters || {});
  const sevSel = el("select", { id: "f-severity" }, el("option", { value: "", text: "any" }), ["CRITICAL", "HIGH", "MEDIUM", "LOW"].map(s => el("option", { value: s, text: s })));
  const classSel = el("select", { id: "f-class" }, el("option", { value: "", text: "any" }));
  const stateSel = el("select", { id: "f-state" }, el("option", { value: "", text: "any" }), ["open", "resolved", "closed"].map(s => el("option", { value: s, text: s })));
  const inRange = el("input", { type: "checkbox", id: "f-inrange" });
  const box = el("div");
  main.append(el("h1", { text: "Alerts" }),
    el("div", { class: "filters" }, el("label", null, "Severity", sevSel), el("label", null, "Class", classSel), el("label", null, "State", stateSel),
      el("label", null, "Active in the selected time range", inRange)),
    el("p", { class: "muted", text: "New and updated alerts appear here as soon as the predictor raises them (live over Server-Sent Events)." }),
    box);
  try {
    const s = await api("/api/alerts/summary");
    for (const c of s.classes) classSel.appendChild(el("option", { value: c, text: c }));
  } catch (e) { /* the list below shows the error */ }
  sevSel.value = f.severity; classSel.value = f.class; stateSel.value = f.state; inRange.checked = f.inRange;
  const onChange = () => { S.alertFilters = { severity: sevSel.value, class: classSel.value, state: stateSel.value, inRange: inRange.checked }; route(); };
  for (const s of [sevSel, classSel, stateSel, inRange]) s.addEventListener("change", onChange);

  const params = f.inRange ? rangeParams() : new URLSearchParams();
  if (f.severity) params.set("severity", f.severity);
  if (f.class) params.set("class", f.class);
  if (f.state) params.set("state", f.state);
  params.set("limit", "200");
  try {
    const d = await api("/api/alerts", params);
    const n = statusNote(d); if (n) box.appendChild(n);
    box.appendChild(el("p", { class: "muted", text: `${d.total} alert(s) match.` }));
    const t = table(alertHeaders, d.alerts.map(alertRow), { id: "alerts-table", empty: "No alerts match." });
    box.appendChild(t);
    S.alertsView = { filters: f, tbody: t.querySelector("tbody") };
    for (const ev of S.alertsPending.splice(0)) applyAlertEvent(ev);
  } catch (e) { box.appendChild(errorBox(e)); }
}

// A live event: update the list in place when it is shown (no reload), always toast.
function onAlertEvent(ev) {
  if (ev.event === "opened") toast(`${ev.severity} ${ev.class}: ${ev.summary}`, "alert");
  refreshBadge();
  if (S.page !== "alerts") return;
  // The list is still loading, perhaps from a snapshot older than this event: applied once shown.
  if (!S.alertsView) { S.alertsPending.push(ev); return; }
  applyAlertEvent(ev);
}

function applyAlertEvent(ev) {
  const v = S.alertsView;
  const f = v.filters;
  const existing = v.tbody.querySelector(`tr[data-alert-id="${CSS.escape(String(ev.id))}"]`);
  const matches = (!f.severity || f.severity === ev.severity) && (!f.class || f.class === ev.class) && (!f.state || f.state === ev.state);
  if (existing) existing.remove();
  if (!matches) return;
  const empty = v.tbody.querySelector("td[colspan]"); if (empty) empty.parentNode.remove();
  const row = alertRow(ev);
  row.classList.add("new");
  v.tbody.insertBefore(row, v.tbody.firstChild);
}

async function pageAlertDetail(main, id) {
  main.appendChild(el("p", null, hashLink("/alerts", "← all alerts")));
  let d;
  try { d = await api("/api/alerts/" + encodeURIComponent(id)); } catch (e) { main.appendChild(errorBox(e)); return; }
  const a = d.alert;
  const q = d.links.packets_query;
  const packetsHref = "/packets?" + new URLSearchParams({ ip: q.ip, from: q.from, to: q.to }).toString();
  const fields = [["Severity", sevBadge(a.severity)], ["Class", a.class], ["State", a.state], ["View", a.view], ["Key", hostLink(a.key)],
    ["Detected by", a.detected_by], ["First seen", fmtTime(a.first_seen)], ["Last seen", fmtTime(a.last_seen)], ["Windows", fmtNum(a.window_count, 0)],
    ["Peak confidence", fmtNum(a.peak_confidence * 100, 1) + "%"], ["Packets", fmtNum(a.packets, 0)], ["Bytes", fmtBytes(a.bytes)],
    ["Distinct sources", a.distinct_sources === null ? "—" : fmtNum(a.distinct_sources, 0)], ["Model version", a.model_version || "—"],
    ["Resolved at", fmtTime(a.resolved_at)]];
  const info = el("table", { id: "alert-fields" }, el("tbody", null, fields.map(([k, v]) => el("tr", null, el("th", { text: k }), td(v)))));
  // The host page over the alert's span: a replayed capture's alert is rarely in the range in effect.
  const hostHref = "/hosts/" + encodeURIComponent(a.key) + "?" + new URLSearchParams({ from: q.from, to: q.to }).toString();
  const actions = el("p", null, hashLink(hostHref, "Host page of " + a.key + " while the alert was active"), " · ", hashLink(packetsHref, "Packets of " + a.key + " while the alert was active"),
    " · ", pcapLink({ alert: String(a.id) }, "alert-pcap"), " ",
    a.state === "open" ? el("button", { type: "button", id: "resolve-btn", text: "Resolve", onclick: () => resolveAlert(a.id) }) : null);
  const wins = el("div");
  if (d.windows_note) wins.appendChild(el("p", { class: "warn", text: d.windows_note }));
  for (const w of d.windows) {
    const feats = w.features ? Object.entries(w.features).filter(([k, v]) => v !== null && k !== "extra") : [];
    const extra = w.features && w.features.extra ? Object.entries(w.features.extra) : [];
    const probs = w.probabilities ? Object.entries(w.probabilities).sort((x, y) => y[1] - x[1]).slice(0, 4).map(([k, v]) => `${k} ${(v * 100).toFixed(1)}%`).join(", ") : "";
    wins.appendChild(el("details", { class: "card window" },
      el("summary", { text: `${fmtTime(w.window_start)} · ${w.window_size} s · ${w.view} ${w.key} · ${w.label || "no verdict"}${w.confidence !== null && w.confidence !== undefined ? " (" + (w.confidence * 100).toFixed(1) + "%)" : ""}` }),
      probs ? el("p", { class: "muted", text: "Probabilities: " + probs }) : null,
      w.rules && w.rules.length ? el("p", { text: "Rules fired: " + w.rules.join(", ") }) : null,
      w.features ? table(["Feature", { label: "Value", num: 1 }], feats.concat(extra).map(([k, v]) => el("tr", null, td(k), td(fmtNum(v, 4), "num")))) : el("p", { class: "muted", text: "Window not stored (or retention removed it)." })));
  }
  if (!d.windows.length && !d.windows_note) wins.appendChild(el("p", { class: "muted", text: "No windows recorded for this alert." }));
  main.append(el("h1", { id: "alert-title", text: `Alert #${a.id}: ${a.class} (${a.key})` }),
    el("div", { class: "grid", id: "alert-detail" },
      card("Alert", el("p", { id: "alert-summary", text: a.summary }), info, actions),
      card("Rule evidence", el("pre", { id: "alert-evidence", text: JSON.stringify(a.evidence, null, 2) })),
      el("section", { class: "card wide" }, el("h2", { text: `Windows that raised it (${d.windows.length})` }), wins)));
}

async function pageHosts(main, ip) {
  const input = el("input", { id: "host-ip", placeholder: "IP address", value: ip || "" });
  const go = el("form", { class: "filters", onsubmit: e => { e.preventDefault(); location.hash = "#/hosts/" + encodeURIComponent(input.value.trim()); } },
    el("label", null, "Address", input), el("button", { type: "submit", text: "Show" }));
  main.append(el("h1", { text: ip ? "Host " + ip : "Hosts" }), go);
  if (!ip) { main.appendChild(el("p", { class: "muted", text: "Enter an address, or follow a link from the overview, an alert or a packet." })); return; }
  let d;
  try { d = await api("/api/hosts/" + encodeURIComponent(ip), rangeParams()); } catch (e) { main.appendChild(errorBox(e)); return; }
  const chart = chartBox();
  const src = d.windows.filter(w => w.view === "source"), dst = d.windows.filter(w => w.view === "destination");
  const attack = src.filter(w => w.label && w.label !== "Normal");
  const peerTable = rows => table(["Peer", { label: "Packets", num: 1 }, { label: "Bytes", num: 1 }], rows.map(r => el("tr", null, td(hostLink(r.peer)), td(fmtNum(r.packets, 0), "num"), td(fmtBytes(r.bytes), "num"))));
  const portTable = rows => table(["Port", "Service", "Protocol", { label: "Packets", num: 1 }], rows.map(r => el("tr", null, td(r.port), td(r.service), td(r.protocol), td(fmtNum(r.packets, 0), "num"))));
  const sniHref = (side, sni) => "/packets?" + new URLSearchParams({ [side]: ip, app_proto: "tls", sni: sni, from: Math.floor(d.range.from), to: Math.ceil(d.range.to) }).toString();
  const sniTable = (rows, side, id) => table(["TLS server name", { label: "ClientHellos", num: 1 }], rows.map(r => el("tr", null, td(hashLink(sniHref(side, r.sni), r.sni)), td(fmtNum(r.packets, 0), "num"))), { id: id, empty: "No TLS ClientHello with a server name in this range." });
  const labelled = d.windows.filter(w => w.label).slice(-200).reverse();
  main.appendChild(el("div", { class: "grid" },
    el("section", { class: "card wide" }, el("h2", { text: `Windows over time (${d.window_size} s windows)` }),
      d.notes.length ? el("p", { class: "warn", text: d.notes.join(" ") }) : null, chart,
      el("p", null, hashLink("/packets?" + new URLSearchParams({ ip: ip, from: Math.floor(d.range.from), to: Math.ceil(d.range.to) }).toString(), "Packets of " + ip + " in this range"),
        " · ", pcapLink({ host: ip, from: String(Math.floor(d.range.from)), to: String(Math.ceil(d.range.to)) }, "host-pcap"))),
    card("Verdicts (newest 200 windows with a prediction)", table(["Window", "View", { label: "Packets", num: 1 }, "Label", { label: "Confidence", num: 1 }],
      labelled.map(w => el("tr", null, td(fmtTime(w.window_start)), td(w.view), td(fmtNum(w.packet_count, 0), "num"), td(w.label), td(fmtNum(w.confidence * 100, 1) + "%", "num"))), { empty: "No predictions for this address in this range." })),
    card("Alerts", table(["Id", "Severity", "Class", "State", "Last seen"], d.alerts.map(a => el("tr", null, td(hashLink("/alerts/" + a.id, "#" + a.id)), td(sevBadge(a.severity)), td(a.class), td(a.state), td(fmtTime(a.last_seen)))), { empty: "No alerts for this address." })),
    card("Sent to", peerTable(d.peers.sent_to)), card("Received from", peerTable(d.peers.received_from)),
    card("Ports it contacted", portTable(d.ports.contacted)), card("Its ports contacted by others", portTable(d.ports.served)),
    card("TLS server names it asked for", sniTable(d.server_names.requested, "src", "sni-requested")),
    card("TLS server names asked of it", sniTable(d.server_names.served, "dst", "sni-served"))));
  newChart(chart, { type: "line", data: { datasets: [
    { label: "packets sent per window", data: src.map(w => ({ x: w.window_start, y: w.packet_count })), borderColor: palette[0], pointRadius: 0 },
    { label: "packets received per window", data: dst.map(w => ({ x: w.window_start, y: w.packet_count })), borderColor: palette[2], pointRadius: 0 },
    { label: "attack verdicts", type: "scatter", data: attack.map(w => ({ x: w.window_start, y: w.packet_count })), backgroundColor: palette[5], pointRadius: 4 }] },
    options: { scales: { x: Object.assign({ min: d.range.from, max: d.range.to }, timeAxis), y: { ticks: { color: "#94a3b8" } } } } });
}

const PACKET_FILTERS = ["ip", "src", "dst", "port", "protocol", "app_proto", "dns", "http_path", "http_host", "sni"];
const PACKET_FILTER_LABELS = { ip: "Address", src: "Source", dst: "Destination", port: "Port", protocol: "Protocol", app_proto: "Application", dns: "DNS name contains",
  http_path: "HTTP path contains", http_host: "HTTP host contains", sni: "TLS server name contains" };
const SELECT_FILTERS = { protocol: ["TCP", "UDP", "ICMP", "ICMPv6", "ARP", "OTHER"], app_proto: ["tls", "http", "dns", "ssh", "quic"] };
async function pagePackets(main, query) {
  const q = new URLSearchParams(query || "");
  const inputs = {};
  const form = el("form", { class: "filters", id: "packet-filters", onsubmit: e => {
    e.preventDefault();
    const p = new URLSearchParams();
    for (const k of PACKET_FILTERS) if (inputs[k].value.trim()) p.set(k, inputs[k].value.trim());
    location.hash = "#/packets?" + p.toString();
  } });
  for (const k of PACKET_FILTERS) {
    // Source and destination have no field of their own: links (the host page's server
    // names) set them, and the form keeps them while they are in the URL.
    if ((k === "src" || k === "dst") && !q.get(k)) { inputs[k] = { value: "" }; continue; }
    inputs[k] = SELECT_FILTERS[k]
      ? el("select", { id: "pf-" + k }, el("option", { value: "", text: "any" }), SELECT_FILTERS[k].map(p => el("option", { value: p, text: p })))
      : el("input", { id: "pf-" + k, size: k === "ip" || k === "src" || k === "dst" ? 16 : 10 });
    inputs[k].value = q.get(k) || "";
    form.appendChild(el("label", null, PACKET_FILTER_LABELS[k], inputs[k]));
  }
  form.appendChild(el("button", { type: "submit", text: "Search" }));
  const page = Math.max(1, Number(q.get("page") || 1));
  const params = rangeParams();
  for (const k of PACKET_FILTERS) if (q.get(k)) params.set(k, q.get(k));
  const csv = el("a", { href: "/api/packets.csv?" + params.toString(), id: "csv-link", download: "packets.csv", text: "Export CSV" });
  params.set("page", String(page)); params.set("per_page", "50");
  const box = el("div");
  main.append(el("h1", { text: "Packets" }), form, el("p", null, csv, " · ", pcapLink(pcapSearchParams(q), "packets-pcap")), box);
  let d;
  try { d = await api("/api/packets", params); } catch (e) { box.appendChild(errorBox(e)); return; }
  const n = statusNote(d); if (n) box.appendChild(n);
  const info = p => {
    if (p.dns_qname) return "DNS " + (p.dns_response ? "response " : "query ") + p.dns_qname;
    if (p.http_method || p.http_path) return "HTTP " + (p.http_method || "") + " " + (p.http_host || "") + (p.http_path || "");
    if (p.http_status_code) return "HTTP " + p.http_status_code;
    if (p.tls_sni !== null && p.tls_sni !== undefined) return "TLS ClientHello, server name " + p.tls_sni;
    if (p.arp_op) return "ARP " + (p.arp_op === 1 ? "who-has " : "is-at ") + (p.arp_pdst || "") + " from " + (p.arp_hwsrc || "");
    if (p.icmp_type !== null && p.icmp_type !== undefined) return "ICMP type " + p.icmp_type + " code " + p.icmp_code;
    return "";
  };
  box.appendChild(table(["Time", "Source", "Destination", "Protocol", "App", { label: "Src port", num: 1 }, { label: "Dst port", num: 1 }, { label: "Length", num: 1 }, "Flags", "Info"],
    d.packets.map(p => el("tr", null, td(fmtTime(p.ts)), td(hostLink(p.src_ip)), td(hostLink(p.dst_ip)), td(p.protocol), td(p.app_proto, "app"), td(p.src_port, "num"), td(p.dst_port, "num"),
      td(p.length, "num"), td(p.tcp_flags), el("td", { class: "info" }, document.createTextNode(info(p))))), { id: "packets-table", empty: "No packets match." }));
  const go = pg => { const p = new URLSearchParams(q); p.set("page", String(pg)); location.hash = "#/packets?" + p.toString(); };
  box.appendChild(el("div", { class: "pager" },
    el("button", { type: "button", disabled: page <= 1 ? "disabled" : null, text: "← Previous", onclick: () => go(page - 1) }),
    el("span", { id: "page-info", text: `Page ${page} of ${Math.max(1, d.pages)}${d.total_is_lower_bound ? "+" : ""} (${fmtNum(d.total, 0)}${d.total_is_lower_bound ? "+" : ""} packets)` }),
    el("button", { type: "button", disabled: page >= d.pages ? "disabled" : null, text: "Next →", onclick: () => go(page + 1) })));
}

// Re-scoring runs (`nta rescore`): the list, then one run's comparison with the live alerts.
async function pageRuns(main, name) {
  if (!name) {
    main.appendChild(el("h1", { text: "Re-scoring runs" }));
    let d;
    try { d = await api("/api/runs"); } catch (e) { main.appendChild(errorBox(e)); return; }
    const n = statusNote(d); if (n) main.appendChild(n);
    main.appendChild(table(["Run", "Model", "Range", "Agent", { label: "Records", num: 1 }, { label: "Windows", num: 1 }, { label: "Alerts", num: 1 }, "Finished"],
      d.runs.map(r => el("tr", null, td(hashLink("/runs/" + encodeURIComponent(r.name), r.name)), td(r.model_version), td(fmtTime(r.from) + " .. " + fmtTime(r.to)),
        td(r.agent_id || "all"), td(fmtNum(r.records, 0), "num"), td(fmtNum(r.windows, 0), "num"), td(fmtNum(r.alerts, 0), "num"), td(fmtTime(r.finished_at)))),
      { id: "runs-table", empty: "No runs yet: nta rescore --from TIME --to TIME --model FILE --run NAME" }));
    return;
  }
  main.appendChild(el("p", null, hashLink("/runs", "← all runs")));
  let d, al;
  try {
    d = await api("/api/runs/" + encodeURIComponent(name));
    al = await api("/api/runs/" + encodeURIComponent(name) + "/alerts", new URLSearchParams({ limit: "1000" }));
  } catch (e) { main.appendChild(errorBox(e)); return; }
  const r = d.run, c = d.comparison;
  const fields = [["Model", r.model_version], ["Model file", r.model_path], ["Model SHA-256", r.model_sha256], ["Range", fmtTime(r.from) + " .. " + fmtTime(r.to)],
    ["Agent", r.agent_id || "all"], ["Batches read", fmtNum(r.messages, 0)], ["Records", fmtNum(r.records, 0)], ["Late records", fmtNum(r.late_records, 0)],
    ["Windows", fmtNum(r.windows, 0)], ["Alerts", fmtNum(r.alerts, 0)], ["Finished", fmtTime(r.finished_at)]];
  const del = el("button", { type: "button", id: "delete-run-btn", text: "Delete run", onclick: async () => {
    if (!confirm("Delete run " + name + " and its results?")) return;
    try { await api("/api/runs/" + encodeURIComponent(name), null, { method: "DELETE" }); toast("Run deleted"); location.hash = "#/runs"; } catch (e) { toast(e.message, "error"); }
  } });
  const alertRows = list => list.map(a => el("tr", null, td(sevBadge(a.severity)), td(a.class), td(a.view), td(hostLink(a.key)), td(fmtTime(a.first_seen)), td(fmtTime(a.last_seen)),
    td(a.id ? hashLink("/alerts/" + a.id, "#" + a.id) : "run #" + a.seq)));
  const heads = ["Severity", "Class", "View", "Key", "First seen", "Last seen", "Alert"];
  main.append(el("h1", { id: "run-title", text: "Run " + name }), el("div", { class: "grid" },
    card("Run", el("table", { id: "run-fields" }, el("tbody", null, fields.map(([k, v]) => el("tr", null, el("th", { text: k }), td(v))))), el("p", null, del)),
    card(`Compared with live alerts (${c.run_alerts} in the run, ${c.live_alerts} live)`, table(["Class", { label: "Only in the run", num: 1 }, { label: "Only live", num: 1 }, { label: "Both", num: 1 }],
      Object.entries(c.per_class).map(([k, v]) => el("tr", null, td(k), td(v.run_only, "num"), td(v.live_only, "num"), td(v.both, "num"))), { id: "run-per-class", empty: "No alerts in the run or live." })),
    el("section", { class: "card wide" }, el("h2", { text: "Only in the run" }), table(heads, alertRows(c.run_only), { id: "run-only", empty: "None." })),
    el("section", { class: "card wide" }, el("h2", { text: "Only live" }), table(heads, alertRows(c.live_only), { id: "live-only", empty: "None." })),
    el("section", { class: "card wide" }, el("h2", { text: `Alerts of the run (${al.total})` }),
      table(["#", "Severity", "Class", "View", "Key", "First seen", "Last seen", { label: "Windows", num: 1 }, "Summary"],
        al.alerts.map(a => el("tr", null, td(a.seq), td(sevBadge(a.severity)), td(a.class), td(a.view), td(hostLink(a.key)), td(fmtTime(a.first_seen)), td(fmtTime(a.last_seen)),
          td(fmtNum(a.window_count, 0), "num"), td(a.summary))), { id: "run-alerts", empty: "The run raised no alert." }))));
}

// ------------------------------------------------------------------ router, live, start

async function route() {
  destroyCharts();
  if (S.timer) { clearTimeout(S.timer); S.timer = null; }
  S.alertsView = null;
  S.alertsPending = [];
  const h = location.hash.replace(/^#/, "") || "/overview";
  let [path, query] = h.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const name = parts[0] || "overview";
  S.page = name === "alerts" && parts[1] ? "alert" : name;
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.page === name);
  // `?range=latest` (the quick start's link) picks the range once; taken out of the address so
  // that a range picked afterwards is not overridden by it.
  const qp = new URLSearchParams(query || "");
  if (qp.get("range") === "latest") {
    S.range = { kind: "latest", from: null, to: null, chosen: true };
    qp.delete("range");
    query = qp.toString();
    history.replaceState(null, "", "#" + path + (query ? "?" + query : ""));
  }
  // `from` and `to` (links to a host or to packets over an alert's span) set a custom range.
  if (qp.get("from") && qp.get("to")) setCustomRange(Number(qp.get("from")), Number(qp.get("to")));
  await resolveRange();
  // A fresh element per route: a page still loading from an earlier route keeps appending to
  // its own, detached one instead of mixing into this page.
  const main = el("main", { id: "main" });
  document.getElementById("main").replaceWith(main);
  try {
    if (name === "alerts" && parts[1]) await pageAlertDetail(main, parts[1]);
    else if (name === "alerts") await pageAlerts(main);
    else if (name === "hosts") await pageHosts(main, parts[1]);
    else if (name === "packets") await pagePackets(main, query);
    else if (name === "runs") await pageRuns(main, parts[1]);
    else await pageOverview(main);
  } catch (e) { main.appendChild(errorBox(e)); }
  // Charts of relative ranges follow the clock.
  if (S.page === "overview" && S.range.kind !== "custom") S.timer = setTimeout(() => { if (S.page === "overview") route(); }, 10000);
}

async function refreshBadge() {
  try {
    const s = await api("/api/alerts/summary");
    const n = Object.values(s.open_by_severity).reduce((a, b) => a + b, 0);
    document.getElementById("open-badge").textContent = n ? String(n) : "";
  } catch (e) { /* ignore */ }
}

function connectLive() {
  const dot = document.getElementById("live-dot"), text = document.getElementById("live-text");
  const es = new EventSource("/api/alerts/stream");
  S.es = es;
  es.addEventListener("hello", () => { dot.classList.add("on"); text.textContent = "live"; });
  // Each event's id is its NTA_ALERTS sequence; the browser resends the last one when it
  // reconnects and gets what it missed. An id not above the last applied is never applied twice.
  es.addEventListener("alert", m => {
    const seq = Number(m.lastEventId);
    if (seq && S.lastSeq && seq <= S.lastSeq) return;
    if (seq) S.lastSeq = seq;
    try { onAlertEvent(JSON.parse(m.data)); } catch (e) { /* ignore malformed */ }
  });
  es.addEventListener("lagged", () => { if (S.page === "alerts") route(); });
  es.onerror = () => { dot.classList.remove("on"); text.textContent = "reconnecting…"; };
}

document.addEventListener("DOMContentLoaded", async () => {
  try {
    const s = await api("/api/session");
    S.csrf = s.csrf; S.via = s.via;
    if (s.via !== "cookie") document.getElementById("logout-form").hidden = true;
  } catch (e) { return; }
  document.getElementById("logout-form").addEventListener("submit", async e => {
    e.preventDefault();
    try { await fetch("/logout", { method: "POST", credentials: "same-origin", headers: { "X-CSRF-Token": S.csrf || "" } }); } catch (x) { /* ignore */ }
    location.href = "/login";
  });
  setupRange();
  window.addEventListener("hashchange", route);
  connectLive();
  refreshBadge();
  route();
});
