// The oversight dashboard: plain DOM and inline SVG, no library, no network but this console.
// Every number comes from /api with the unit token the user signed in with; data is always
// set as text (never as HTML).
"use strict";

const $ = (sel) => document.querySelector(sel);
const state = { token: sessionStorage.getItem("antifraud-token") || "", page: 1, pageSize: 20, total: 0,
                timezone: "Asia/Shanghai", offset: "+08:00", role: "" };
const SVG = "http://www.w3.org/2000/svg";

function el(tag, attrs = {}, ...children) {
  const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") node.textContent = v;
    else if (k === "onclick") node.addEventListener("click", v);
    else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child);
  return node;
}

function showError(message) {
  const box = $("#error");
  box.textContent = message;
  box.hidden = !message;
}

async function api(path, params = {}) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(params)) if (v !== "" && v !== null && v !== undefined) url.searchParams.set(k, v);
  const response = await fetch(url, { headers: { Authorization: `Bearer ${state.token}` } });
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    throw new Error(`${response.status}: ${body.detail || response.statusText}`);
  }
  return response.json();
}

function filters() {
  const form = new FormData($("#filters"));
  const out = {};
  for (const [k, v] of form.entries()) if (v) out[k] = v;
  // Dates are days in the city's calendar, as the user picked them.
  if (out.since) out.since = `${out.since}T00:00:00${state.offset}`;
  if (out.until) out.until = `${out.until}T23:59:59${state.offset}`;
  return out;
}

const fmtTime = (iso) => (iso ? new Date(iso).toLocaleString("zh-CN", { hour12: false, timeZone: state.timezone }) : "–");
const fmtShort = (iso) => new Date(iso).toLocaleString("zh-CN", { hour12: false, timeZone: state.timezone, month: "2-digit",
  day: "2-digit", hour: "2-digit", minute: "2-digit" });
// A retro alert (回溯预警): raised by an entry listed after the resident touched it; both times shown.
const retroShort = (rb) => (rb ? `↩ 回溯 listed ${fmtShort(rb.listed_at)}, contacted ${fmtShort(rb.contacted_at)}` : "");
const retroLong = (rb) => `回溯预警 retro alert (v${rb.version}): ${rb.kind} entry listed at ${fmtTime(rb.listed_at)} ` +
  `by ${rb.source}, contacted at ${fmtTime(rb.contacted_at)}`;
const fmtSeconds = (s) => (s === null || s === undefined ? "–" : s < 120 ? `${Math.round(s)} s` : `${Math.round(s / 60)} min`);
const fmtMoney = (v) => Number(v).toLocaleString("zh-CN", { maximumFractionDigits: 0 });
const pct = (r) => (r === null || r === undefined ? "–" : `${(r * 100).toFixed(1)}%`);

// ------------------------------------------------------------------ charts (inline SVG)
function barChart(container, rows, label, value) {
  container.replaceChildren();
  const width = 460, bar = 18, gap = 4, left = 150;
  const max = Math.max(1, ...rows.map(value));
  const svg = el("svg:svg", { width, height: Math.max(bar, rows.length * (bar + gap)), role: "img" });
  rows.forEach((row, i) => {
    const y = i * (bar + gap);
    const w = ((width - left - 40) * value(row)) / max;
    svg.append(el("svg:text", { x: 0, y: y + 13, text: label(row) }));
    svg.append(el("svg:rect", { x: left, y, width: Math.max(1, w), height: bar, fill: "#1f6feb", class: "bar" }));
    svg.append(el("svg:text", { x: left + w + 4, y: y + 13, text: String(value(row)) }));
  });
  if (!rows.length) svg.append(el("svg:text", { x: 0, y: 13, text: "no warnings" }));
  container.append(svg);
}

function timeChart(container, rows, target) {
  container.replaceChildren();
  const width = 940, height = 180, left = 40, bottom = 24, top = 10;
  const svg = el("svg:svg", { width, height, role: "img" });
  const max = Math.max(1, ...rows.map((r) => r.alerts));
  const step = rows.length ? (width - left - 40) / rows.length : 0;
  const y = (v) => top + (height - top - bottom) * (1 - v);
  rows.forEach((r, i) => {
    const h = ((height - top - bottom) * r.alerts) / max;
    svg.append(el("svg:rect", { x: left + i * step + 2, y: height - bottom - h, width: Math.max(1, step - 4), height: h,
                                fill: "#9fbfe9", class: "bar" }));
    svg.append(el("svg:text", { x: left + i * step + 2, y: height - 8, text: r.bucket.slice(5, 10) }));
  });
  const points = rows.map((r, i) => (r.success_rate === null ? null : `${left + i * step + step / 2},${y(r.success_rate)}`)).filter(Boolean);
  if (points.length) svg.append(el("svg:polyline", { points: points.join(" "), fill: "none", stroke: "#2e7d32", "stroke-width": 2, class: "rate" }));
  svg.append(el("svg:line", { x1: left, x2: width - 40, y1: y(target), y2: y(target), stroke: "#c62828", "stroke-dasharray": "4 3" }));
  svg.append(el("svg:text", { x: width - 38, y: y(target) + 4, text: `target ${pct(target)}` }));
  svg.append(el("svg:text", { x: 0, y: top + 10, text: String(max) }));
  container.append(svg);
}

// ------------------------------------------------------------------ tables
function fillTable(selector, rows, cells, onclick) {
  const body = $(`${selector} tbody`);
  body.replaceChildren(...rows.map((row) => {
    const tr = el("tr", onclick ? { onclick: () => onclick(row, tr) } : {});
    for (const [text, cls] of cells(row)) tr.append(el("td", { text: String(text), ...(cls ? { class: cls } : {}) }));
    return tr;
  }));
}

async function loadAlerts() {
  const data = await api("/api/alerts", { ...filters(), page: state.page, page_size: state.pageSize, sort: $("#sort").value });
  state.total = data.total;
  $("#total").textContent = `${data.total} in view`;
  const pages = Math.max(1, Math.ceil(data.total / state.pageSize));
  $("#page").textContent = `page ${state.page} / ${pages}`;
  $("#prev").disabled = state.page <= 1;
  $("#next").disabled = state.page >= pages;
  fillTable("#alerts", data.items, (a) => [
    [fmtTime(a.alert_at)], [a.tier, `tier-${a.tier}`], [a.typology], [`${a.county}/${a.station}`],
    [a.status + (a.reopened ? " (reopened)" : ""), `status-${a.status}`], [a.channels.join(", ") || "–"], [a.phone || "–"],
    [retroShort(a.reach_back), "retro"],
  ], (a, tr) => showTimeline(a.alert_id, tr));
}

async function showTimeline(alertId, row) {
  document.querySelectorAll("#alerts tr.selected").forEach((tr) => tr.classList.remove("selected"));
  if (row) row.classList.add("selected");
  const alert = await api(`/api/alerts/${encodeURIComponent(alertId)}`);
  $("#timeline-title").textContent = `${alert.alert_id} · ${alert.tier} · ${alert.status}${alert.retro ? " · 回溯 retro" : ""}`;
  $("#timeline-retro").textContent = alert.reach_back.map(retroLong).join("; ");
  $("#timeline-retro").hidden = !alert.retro;
  $("#timeline").replaceChildren(...alert.timeline.map((s) => el("li", { class: `kind-${s.kind}` },
    el("span", { class: "kind", text: s.kind }), el("span", { text: `${fmtTime(s.at)} ${s.summary}` }),
    el("span", { class: "unit", text: `${s.unit} · ${s.ref}` }))));
}

async function loadStats() {
  const f = filters();
  const [warnings, success, contact, losses, sla, areas, cases, audits, auditStats, followups, retro] = await Promise.all([
    api("/api/stats/warnings", { ...f, bucket: "day", area: "station" }), api("/api/stats/dissuasion", { ...f, bucket: "day" }),
    api("/api/stats/first-contact", f), api("/api/stats/losses", f), api("/api/stats/sla-breaches", f),
    api("/api/stats/high-risk-areas", f), api("/api/stats/case-types", f), api("/api/audits", f),
    api("/api/stats/audits", f), api("/api/stats/followups", f), api("/api/stats/reach-back", f),
  ]);
  $("#kpi-retro").textContent = `${retro.retro_alerts} / ${retro.residents}`;
  fillTable("#retro-sources", retro.sources, (r) => [[r.source], [Object.keys(r.by_list).join(", ")], [r.alerts],
    [r.residents], [r.funds_warnings], [fmtSeconds(r.delay_p50_s)]]);
  if (state.role === "centre") await loadBacklog();
  $("#kpi-warnings").textContent = String(warnings.total);
  const kpi = $("#kpi-success");
  kpi.textContent = `${pct(success.success_rate)} (${success.success}/${success.success + success.failure})`;
  kpi.className = success.success_rate === null ? "" : success.success_rate >= success.target ? "above" : "below";
  $("#kpi-contact").textContent = `${fmtSeconds(contact.all.p50)} / ${fmtSeconds(contact.all.p90)}`;
  $("#kpi-losses").textContent = `¥${fmtMoney(losses.reported)} / ¥${fmtMoney(losses.estimated_avoided)}`;
  barChart($("#chart-type"), warnings.by_type, (r) => r.typology, (r) => r.count);
  barChart($("#chart-area"), warnings.by_area.slice(0, 12), (r) => r.area, (r) => r.count);
  timeChart($("#chart-time"), success.by_time, success.target);
  fillTable("#sla", sla, (r) => [[r.unit], [r.actions], [r.breached], [r.overdue]]);
  fillTable("#areas", areas, (r) => [[`${r.county}/${r.station}`], [r.high_risk_alerts], [r.cases], [fmtMoney(r.losses)]]);
  fillTable("#cases", cases, (r) => [[r.typology], [r.cases], [r.warned_before], [fmtMoney(r.losses)]]);
  fillTable("#audits", audits.items, (a) => [[fmtTime(a.filed_at)], [a.case_id], [a.typology], [a.station],
    [a.findings.map((x) => `${x.problem} (${x.unit})`).join("; ") || "none"],
    explanationCell(a.explanations || [])],
    (a) => a.alert_ids.length && showTimeline(a.alert_ids[a.alert_ids.length - 1]));
  fillTable("#audit-units", auditStats.by_unit, (r) => [[r.unit], [r.findings],
    [Object.entries(r.problems).map(([k, v]) => `${k} ${v}`).join(", ")]]);
  fillTable("#followups", followups, (r) => [[`${r.county}/${r.station}`], [r.sampled], [r.confirmed],
    [r.not_dissuaded, r.not_dissuaded ? "status-unreachable" : ""], [r.pending]]);
}

// Each accountable unit's explanation, written at the desk (oversight/desk/explanations.py), or when it is due.
function explanationCell(entries) {
  const text = entries.map((e) => e.state === "written"
    ? `${e.unit}: "${e.text}" (${e.written_by}${e.late ? ", late" : ""})`
    : `${e.unit}: ${e.state === "overdue" ? "OVERDUE" : "due " + fmtTime(e.due_at)}`).join("; ");
  return [text || "none owed", entries.some((e) => e.state === "overdue") ? "status-unreachable" : ""];
}

// The centre's city-wide figure: re-checks queued by late listings, not yet handed to correlation.
async function loadBacklog() {
  const b = await api("/api/reach-back/backlog");
  $("#backlog-card").hidden = false;
  $("#kpi-backlog").textContent = b.waiting === null ? `– (${b.error})`
    : b.waiting ? `${b.waiting} (~${fmtSeconds(b.drain_s)})` : "0";
}

async function refresh() {
  try {
    showError("");
    await Promise.all([loadAlerts(), loadStats()]);
  } catch (err) {
    showError(err.message);
  }
}

async function signIn(token) {
  state.token = token;
  try {
    const me = await api("/api/me");
    sessionStorage.setItem("antifraud-token", token);
    state.timezone = me.timezone;
    state.offset = me.utc_offset;
    state.role = me.role;
    $("#backlog-card").hidden = me.role !== "centre";
    // A bulk list drains over minutes: its progress keeps moving without pressing Apply.
    clearInterval(state.backlogTimer);
    if (me.role === "centre") state.backlogTimer = setInterval(() => loadBacklog().catch((e) => showError(e.message)), 5000);
    $("#who").textContent = me.unit;
    $("#app").hidden = false;
    showError("");
    await refresh();
  } catch (err) {
    $("#app").hidden = true;
    $("#who").textContent = "";
    showError(`Sign-in refused: ${err.message}`);
  }
}

$("#login").addEventListener("submit", (e) => { e.preventDefault(); signIn($("#token").value.trim()); });
$("#filters").addEventListener("submit", (e) => { e.preventDefault(); state.page = 1; refresh(); });
$("#sort").addEventListener("change", () => { state.page = 1; loadAlerts().catch((e) => showError(e.message)); });
$("#prev").addEventListener("click", () => { state.page -= 1; loadAlerts().catch((e) => showError(e.message)); });
$("#next").addEventListener("click", () => { state.page += 1; loadAlerts().catch((e) => showError(e.message)); });
if (state.token) signIn(state.token);
