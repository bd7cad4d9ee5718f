// The dissuasion desk's pages: plain DOM, no library, no network but this console's /api/desk.
// Everything is set as text, except the dissuasion script, which the console renders from its own
// Markdown files with raw HTML off (oversight/desk/dissuasion_scripts.py).
"use strict";

const $ = (sel) => document.querySelector(sel);
const RETRY_MS = 1000; // after a failed read, before the next
const KEY = "antifraud-desk";
const state = { ...JSON.parse(sessionStorage.getItem(KEY) || "{}"), tasks: [], taskId: null, task: null, busy: false,
                again: false, stale: false };

const TYPES = {
  impersonate_police: "冒充公检法 impersonating police", investment: "投资理财 investment",
  order_brushing: "刷单返利 order brushing", fake_loan: "贷款 fake loan",
  fake_customer_service: "冒充客服 fake customer service", romance: "杀猪盘 romance", other: "其他 other",
  unknown: "未知 unknown",
};
const TIERS = { funds_warning: "资金预警 funds warning", high: "高风险 high", medium: "中风险 medium", low: "低风险 low" };
const CHANNELS = { police_visit: "上门 visit", hotline_call: "96110 call", sms: "SMS", ai_voice: "AI voice",
                   app_push: "app push", line_suspension: "line suspension" };
const FINDINGS = { dissuaded: "劝阻成功 dissuaded", not_reached: "未联系上 not reached", refused: "拒绝劝阻 refused",
                   money_already_sent: "已转账 money already sent", false_alarm: "误报 false alarm" };

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child);
  return node;
}

function showError(message) {
  $("#error").textContent = message || "";
  $("#error").hidden = !message;
}

class ApiError extends Error {
  constructor(status, body, retryAfter) {
    const detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail || "");
    super(`${status}: ${detail}`);
    Object.assign(this, { status, body, retryAfter });
  }
}

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${state.token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = response.status === 204 ? {} : await response.json().catch(() => ({}));
  if (response.status === 401 && path !== "/api/desk/session") {
    signedOut("Your session has ended: sign in again. 会话已过期，请重新登录");
  }
  if (!response.ok) throw new ApiError(response.status, data, Number(response.headers.get("Retry-After") || 1));
  return { status: response.status, data };
}

const taskPath = (id, tail = "") => `/api/desk/tasks/${encodeURIComponent(id)}${tail}`;
const pad = (n) => String(n).padStart(2, "0");

// "12:05 left" / "1:02:05 left" / "overdue 3:02", from a deadline in this browser's clock.
function fmtLeft(dueMs) {
  const s = Math.round((dueMs - Date.now()) / 1000);
  const a = Math.abs(s);
  const text = a >= 3600 ? `${Math.floor(a / 3600)}:${pad(Math.floor(a / 60) % 60)}:${pad(a % 60)}`
                         : `${Math.floor(a / 60)}:${pad(a % 60)}`;
  return s >= 0 ? `${text} left 剩余` : `overdue 超时 ${text}`;
}

// The server's seconds_left counted on from when it was read: the browser's clock may be wrong, its pace is not.
const dueOf = (task, readAt) => readAt + task.seconds_left * 1000;

function tick() {
  for (const node of document.querySelectorAll("[data-due]")) {
    const due = Number(node.dataset.due);
    node.textContent = fmtLeft(due);
    node.classList.toggle("overdue", due < Date.now());
  }
}

// ------------------------------------------------------------------ sign in, sign out

function remember(session) {
  Object.assign(state, session);
  sessionStorage.setItem(KEY, JSON.stringify(session));
}

function signedOut(message) {
  remember({ token: "", user: "", role: "", unit: "" });
  showError(message || "");
  route();
}

$("#sign-in").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  try {
    const { data } = await api("POST", "/api/desk/session", { user: form.get("user"), password: form.get("password") });
    remember({ token: data.token, user: data.user, role: data.role, unit: data.unit });
    event.target.reset();
    showError("");
    route();
  } catch (err) {
    showError(err.status === 401 ? "Wrong user or password. 用户名或密码错误" : err.message);
  }
});

$("#sign-out").addEventListener("click", async () => {
  await api("DELETE", "/api/desk/session").catch(() => {});
  location.hash = "";
  signedOut("");
});

// ------------------------------------------------------------------ the task list

function taskRow(task, readAt) {
  const mine = task.assignee && task.assignee === state.user;
  const who = task.assignee ? (mine ? "yours 我的" : task.assignee) : "free 待接单";
  const link = el("a", { href: `#task/${encodeURIComponent(task.task_id)}` },
    el("span", { class: "tier", text: TIERS[task.tier] || task.tier }),
    el("span", { class: "type", text: TYPES[task.warning_type] || task.warning_type }),
    el("span", { class: "left", "data-due": String(dueOf(task, readAt)) }),
    el("span", { class: "where", text: `${CHANNELS[task.channel] || task.channel} · ${task.grid || task.station}` }),
    el("span", { class: `who${mine ? " mine" : ""}`, text: who }));
  return el("li", { class: `task tier-${task.tier}`, "data-task-id": task.task_id }, link);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const onList = () => Boolean(state.token) && state.taskId === null;

// The list updates itself: the console answers this wait as soon as the unit's open tasks change
// (a long poll, oversight/desk/live.py), and the list is read again at once.
async function followChanges() {
  let stamp = "";
  for (;;) {
    if (!onList()) {
      stamp = "";
      await sleep(250);
      continue;
    }
    try {
      const { data } = await api("GET", `/api/desk/changes?since=${encodeURIComponent(stamp)}`);
      if (data.stamp !== stamp && onList()) {
        stamp = data.stamp;
        await refreshList();
      }
      if (state.stale) { // the list could not be read: read it again in a moment, changed or not
        state.stale = false;
        stamp = "";
        await sleep(RETRY_MS);
      }
    } catch (err) {
      await sleep(RETRY_MS);
    }
  }
}

// One read of the list at a time; a change noticed during a read is read once more after it.
async function refreshList() {
  if (!onList()) return;
  if (state.busy) {
    state.again = true;
    return;
  }
  state.busy = true;
  try {
    do {
      state.again = false;
      await readList();
    } while (state.again && onList());
  } finally {
    state.busy = false;
  }
}

async function readList() {
  try {
    const { data } = await api("GET", "/api/desk/tasks");
    const readAt = Date.now();
    $("#tasks").replaceChildren(...data.items.map((t) => taskRow(t, readAt)));
    const funds = data.funds_warnings;
    $("#count").textContent = data.total ? `${data.total} open task${data.total === 1 ? "" : "s"} 待办`
                                         : "No open tasks. 暂无任务";
    $("#funds-banner").textContent = `⚠ ${funds} 资金预警 funds warning${funds === 1 ? "" : "s"}: go now 立即上门`;
    $("#funds-banner").hidden = !funds;
    // The count in the title shows on a tab in the background and on a phone's task switcher.
    document.title = funds ? `(${funds}) ⚠ 资金预警 · 劝阻工作台` : `劝阻工作台 · Dissuasion desk (${data.total})`;
    showError("");
    tick();
  } catch (err) {
    state.stale = true;
    if (err.status !== 401) showError(`Could not load the tasks (${err.message}); trying again.`);
  }
}

// ------------------------------------------------------------------ one task

function fact(list, term, value) {
  if (value === null || value === undefined || value === "") return;
  list.append(el("dt", { text: term }), el("dd", { text: String(value) }));
}

function renderTask(task, readAt) {
  const open = task.state === "open";
  const mine = open && task.assignee === state.user;
  $("#task").className = `tier-${task.tier}`;
  $("#t-tier").textContent = TIERS[task.tier] || task.tier;
  $("#t-type").textContent = TYPES[task.warning_type] || task.warning_type;
  const left = $("#t-left");
  if (open) left.dataset.due = String(dueOf(task, readAt));
  else delete left.dataset.due;
  left.textContent = open ? "" : `Closed 已办结 (${task.state})`;

  const facts = $("#t-facts");
  facts.replaceChildren();
  fact(facts, "Channel 方式", CHANNELS[task.channel] || task.channel);
  fact(facts, "Held by 承办单位", task.held_by);
  fact(facts, "Area 辖区", [task.county, task.station, task.grid].filter(Boolean).join(" / "));
  fact(facts, "Duty desk because 值班台原因", task.station_reason);
  fact(facts, "Assignee 承办人", task.assignee || "nobody yet 待接单");
  fact(facts, "Deadline 时限", new Date(task.deadline).toLocaleString("zh-CN", { hour12: false }));
  fact(facts, "Attempt 第几次", task.attempt);
  fact(facts, "Alert 预警", task.alert_id);

  $("#t-phone-row").hidden = !task.phone;
  $("#t-phone").textContent = task.phone || "";
  $("#reveal").hidden = !(task.phone && mine);
  $("#take").hidden = !open || task.assignee === state.user;
  $("#take").textContent = task.assignee ? `Take it from ${task.assignee} 接单` : "Take it 接单";
  $("#t-mine").hidden = !mine;

  $("#t-evidence").replaceChildren(...(task.evidence.length ? task.evidence.map((e) => el("li", { text: e }))
    : [el("li", { class: "muted", text: "Not in the ledger yet. 预警依据尚未入账" })]));
  $("#t-script-version").textContent = `${task.script.name} · version ${task.script.version}`;
  // Rendered by the console from its own script files, raw HTML off: the one place HTML is set.
  $("#t-script").innerHTML = task.script.html;

  $("#outcome").hidden = !mine;
  $("#outcome-hint").hidden = mine;
  $("#outcome-hint").textContent = !open ? "The outcome is recorded; the task is closed. 已记录，任务已办结"
    : "Take the task to record its outcome. 接单后记录结果";
  tick();
}

async function loadContacts(taskId) {
  try {
    const { data } = await api("GET", taskPath(taskId, "/contacts"));
    if (state.taskId !== taskId) return;
    $("#t-contacts").replaceChildren(...(data.items.length ? data.items.map((c) => el("li", {
      text: `${new Date(c.finished_at).toLocaleString("zh-CN", { hour12: false })} · ${CHANNELS[c.channel] || c.channel}` +
            ` · ${c.finding ? FINDINGS[c.finding] || c.finding : c.result}${c.detail ? ` · ${c.detail}` : ""}`,
    })) : [el("li", { class: "muted", text: "None. 无" })]));
  } catch (err) {
    $("#t-contacts").replaceChildren(el("li", { class: "muted", text: `Could not load them (${err.message}).` }));
  }
}

async function loadTask(taskId) {
  try {
    const { data } = await api("GET", taskPath(taskId));
    if (state.taskId !== taskId) return; // the user moved on meanwhile
    state.task = data;
    $("#task-missing").hidden = true;
    $("#task").hidden = false;
    renderTask(data, Date.now());
  } catch (err) {
    if (err.status === 404) {
      $("#task").hidden = true;
      $("#task-missing").hidden = false;
    } else if (err.status !== 401) showError(err.message);
  }
}

function showTask(taskId) {
  if (state.taskId !== taskId) {
    state.taskId = taskId;
    state.task = null;
    $("#task").hidden = true;
    $("#outcome").reset();
    $("#amount-row").hidden = true;
    $("#outcome-result").hidden = true;
    $("#t-contacts").replaceChildren();
    loadTask(taskId);
    loadContacts(taskId);
  }
}

$("#take").addEventListener("click", async () => {
  const taskId = state.taskId;
  try {
    await api("POST", taskPath(taskId, "/take"));
    showError("");
  } catch (err) {
    if (err.status !== 401) showError(err.status === 404 ? "No such task in your unit." : err.message);
  }
  loadTask(taskId);
});

$("#reveal").addEventListener("click", async () => {
  try {
    const { data } = await api("GET", `${taskPath(state.taskId)}?reveal=true`); // logged by the console
    $("#t-phone").replaceChildren(el("a", { href: `tel:${data.phone}`, text: data.phone }));
    $("#reveal").hidden = true;
  } catch (err) {
    if (err.status !== 401) showError(err.message);
  }
});

$("#outcome").addEventListener("change", () => {
  $("#amount-row").hidden = new FormData($("#outcome")).get("finding") !== "money_already_sent";
});

function said(result, message) {
  $("#outcome-result").textContent = message;
  $("#outcome-result").className = `result ${result}`;
  $("#outcome-result").hidden = false;
}

// One outcome however often this is sent (the console's compare-and-set): a 503 is safe to post again.
async function postOutcome(taskId, body, tries = 5) {
  try {
    const { status, data } = await api("POST", taskPath(taskId, "/outcome"), body);
    const finding = FINDINGS[data.outcome.finding] || data.outcome.result;
    if (status === 201) said("recorded", `Recorded 已记录: ${finding}`);
    else said("again", `Already recorded 此前已记录: ${finding}. Nothing new was recorded.`);
  } catch (err) {
    if (err.status === 503 && tries > 1) {
      said("waiting", "Not recorded yet: trying again… 正在重试");
      await new Promise((resolve) => setTimeout(resolve, err.retryAfter * 1000));
      return postOutcome(taskId, body, tries - 1);
    }
    if (err.status === 409) {
      const stands = err.body.outcome;
      said("conflict", `A different outcome was recorded before and stands 已有其他结果: ${FINDINGS[stands.finding] ||
        stands.result}`);
    } else if (err.status !== 401) said("failed", `Not recorded 未记录: ${err.message}`);
  }
}

$("#outcome").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const body = { finding: form.get("finding"), note: form.get("note") || "" };
  if (body.finding === "money_already_sent") body.amount_sent = form.get("amount_sent");
  const button = event.target.querySelector("button[type=submit]");
  button.disabled = true; // a second tap while the first is under way: the console would record nothing new anyway
  try {
    await postOutcome(state.taskId, body);
  } finally {
    button.disabled = false;
  }
  loadTask(state.taskId);
});

// ------------------------------------------------------------------ views

function route() {
  const signedIn = Boolean(state.token);
  $("#sign-in").hidden = signedIn;
  $("#sign-out").hidden = !signedIn;
  $("#who").textContent = signedIn ? `${state.user} · ${state.role} · ${state.unit}` : "";
  const match = location.hash.match(/^#task\/(.+)$/);
  $("#list-view").hidden = !signedIn || Boolean(match);
  $("#task-view").hidden = !signedIn || !match;
  if (!signedIn) {
    state.taskId = null;
    document.title = "劝阻工作台 · Dissuasion desk";
    return;
  }
  if (match) showTask(decodeURIComponent(match[1]));
  else {
    state.taskId = null;
    refreshList();
  }
}

$("#back").addEventListener("click", (event) => {
  event.preventDefault();
  location.hash = "";
});
window.addEventListener("hashchange", route);
setInterval(tick, 1000);
route();
followChanges();
