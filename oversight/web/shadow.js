// The rules shadow panel: live vs the candidate in shadow (GET /api/rules/shadow, docs/rules.md).
// Its own file and its own refresh, beside dashboard.js (whose `api` and `el` it uses); shown only
// while a candidate is or was in shadow. Every value is set as text.
"use strict";

const SHADOW_EVERY_MS = 5000;

function shadowRow(cells, head = false) {
  return el("tr", {}, ...cells.map((c) => el(head ? "th" : "td", { text: String(c) })));
}

function shadowCounts(kind, live, shadow) {
  const keys = [...new Set([...Object.keys(live[kind]), ...Object.keys(shadow[kind])])].sort();
  return keys.map((k) => shadowRow([k, live[kind][k] || 0, shadow[kind][k] || 0]));
}

function renderShadow(body) {
  const panel = $("#shadow");
  panel.hidden = !body.candidate;
  if (!body.candidate) return;
  const { live, shadow } = body;
  $("#shadow-title").textContent = `${live.version} (live) vs ${body.candidate} (${body.running ? "in shadow" : "stopped"}),` +
    ` since ${fmtTime(body.since)}${body.running ? "" : ` until ${fmtTime(body.until)}`}; set by ${body.set_by}: ${body.why}`;
  $("#shadow-counts tbody").replaceChildren(
    shadowRow(["alerts", live.alerts, shadow.alerts]), shadowRow(["persons warned", live.persons, shadow.persons]),
    shadowRow(["warned by one side only", body.only_live.count, body.only_shadow.count]),
    ...shadowCounts("tiers", live, shadow), ...shadowCounts("typologies", live, shadow));
  $("#shadow-contacts tbody").replaceChildren(...body.contacts.map(
    (c) => shadowRow([c.channel, c.live, c.shadow, c.added ? `+${c.added}` : "", c.avoided ? `−${c.avoided}` : ""])));
  $("#shadow-only").textContent = `only live: ${body.only_live.persons.join(", ") || "–"}; ` +
    `only the candidate: ${body.only_shadow.persons.join(", ") || "–"}`;
}

async function loadShadow() {
  if (!state.token || $("#app").hidden) return;
  renderShadow(await api("/api/rules/shadow", { minutes: $("#shadow-minutes").value }));
}

setInterval(() => loadShadow().catch((e) => showError(e.message)), SHADOW_EVERY_MS);
window.addEventListener("load", () => {
  $("#shadow-minutes").addEventListener("change", () => loadShadow().catch((e) => showError(e.message)));
  setTimeout(() => loadShadow().catch((e) => showError(e.message)), 500);
});
