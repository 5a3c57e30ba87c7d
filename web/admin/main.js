// The operators' dashboard: every screen is drawn from the JSON API under /v1/admin (its twin), nothing else.
// The session cookie is HttpOnly; the CSRF token comes from GET /v1/admin/session and goes in X-CSRF-Token.
import { barChart, lineChart } from "./charts.js";

const $ = (sel, root = document) => root.querySelector(sel);
const REFRESH_MS = 3000;
let session = null;
let timer = null;

// --- tiny DOM helper: h("tag.class", {attrs}, ...children) ------------------------------------------------
function h(spec, attrs, ...children) {
  if (attrs instanceof Node || Array.isArray(attrs) || typeof attrs === "string") {
    children.unshift(attrs);
    attrs = {};
  }
  const classes = spec.split(".");
  const head = classes.shift().split("#");
  const node = document.createElement(head[0] || "div");
  if (head[1]) node.id = head[1];
  if (classes.length) node.className = classes.join(" ");
  for (const k of Object.keys(attrs || {})) {
    const v = attrs[k];
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) if (c !== null && c !== undefined && c !== false) node.append(c instanceof Node ? c : String(c));
  return node;
}

// --- API ----------------------------------------------------------------------------------------------------
class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error && body.error.message) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

async function api(path, options) {
  const method = (options && options.method) || "GET";
  const body = options ? options.body : undefined;
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && session && session.csrf_token) headers["X-CSRF-Token"] = session.csrf_token;
  const reply = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: "same-origin" });
  let data = null;
  try { data = await reply.json(); } catch { /* not JSON */ }
  if (reply.status === 401 && path !== "/v1/admin/session") { showLogin("Your session ended; sign in again."); throw new ApiError(401, data); }
  if (!reply.ok) throw new ApiError(reply.status, data);
  return data;
}

// --- formatting ---------------------------------------------------------------------------------------------
const num = (v, digits = 0) => (v === null || v === undefined ? "–" : Number(v).toFixed(digits));
// Messages a second: a quiet pipeline moves a job a minute (0.017/s), which two decimals would round to 0.02.
const rate = (v) => (v === null || v === undefined ? "–" : v === 0 ? "0" : Number(v).toFixed(v < 0.1 ? 3 : 2));
// The age of a queue's oldest message; an empty queue has none.
const oldest = (q) => (q.depth ? age(q.oldest_age_s) : "–");
function age(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 1) return "0 s";
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86400)} d`;
}
// Today's times as 14:03:27, older ones with their date: an operator reads the recent ones most.
function when(iso) {
  if (!iso) return "–";
  const d = new Date(typeof iso === "number" ? iso * 1000 : iso);
  const time = d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
  return d.toDateString() === new Date().toDateString() ? time : `${d.toISOString().slice(0, 10)} ${time}`;
}
function took(a, b) {
  if (!a || !b) return "";
  const seconds = (new Date(b) - new Date(a)) / 1000;
  return seconds < 1 ? `+${Math.round(seconds * 1000)} ms` : `+${age(seconds)}`;
}
const shortId = (id) => (id ? `${id.slice(0, 8)}…` : "–");
const shortWallet = (w) => (w ? `${w.slice(0, 6)}…${w.slice(-4)}` : "–");
const stageBadge = (stage) => h(`span.badge.s-${stage}`, { text: stage });

function toast(text, bad = false) {
  const t = $("#toast");
  t.textContent = text;
  t.className = bad ? "bad" : "";
  t.hidden = false;
  clearTimeout(toast.t);
  toast.t = setTimeout(() => { t.hidden = true; }, 5000);
}

function confirmAction(title, text, okLabel) {
  const dialog = $("#confirm");
  $("#confirm-title").textContent = title;
  $("#confirm-text").textContent = text;
  $("#confirm-ok").textContent = okLabel;
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true }));
}

async function act(title, text, okLabel, path, body) {
  if (!(await confirmAction(title, text, okLabel))) return null;
  try {
    const result = await api(path, { method: "POST", body });
    let how = "";
    if (result && result.replayed !== undefined) how = ` (${result.replayed} sent back)`;
    else if (result && result.state) how = result.state === "minted" ? ` (minted: token ${result.token_id})` : ` (${result.state}: ${result.confirmations} of ${result.required_confirmations} confirmations)`;
    toast(`${title}: done${how}`);
    return result;
  } catch (err) {
    toast(`${title}: ${err.message}`, true);
    return null;
  }
}

// --- sign in ------------------------------------------------------------------------------------------------
function showLogin(message) {
  session = null;
  clearInterval(timer);
  $("#login").hidden = false;
  $("#view").hidden = true;
  $("#nav").hidden = true;
  $("#who").hidden = true;
  const err = $("#login-error");
  err.hidden = !message;
  err.textContent = message || "";
}

async function signIn(event) {
  event.preventDefault();
  const input = $("#token");
  try {
    session = await api("/v1/admin/session", { method: "POST", body: { token: input.value } });
    input.value = "";
    await start();
  } catch (err) {
    showLogin(err.status === 429 ? err.message : "That token is not right.");
  }
}

async function signOut() {
  try { await api("/v1/admin/session", { method: "DELETE" }); } catch { /* signed out anyway */ }
  showLogin("Signed out.");
}

async function start() {
  try {
    session = await api("/v1/admin/session");
  } catch (err) {
    const wrong = new URLSearchParams(location.search).get("login");
    showLogin(wrong === "wrong" ? "That token is not right." : wrong === "locked" ? "Too many wrong tokens; wait a minute." : "");
    return;
  }
  $("#login").hidden = true;
  $("#view").hidden = false;
  $("#nav").hidden = false;
  const who = $("#who");
  who.replaceChildren(h("span.role", { text: session.can_act ? "admin" : "read-only" }), " ",
    h("button.link", { type: "button", onclick: signOut, text: "Sign out" }));
  who.hidden = false;
  route();
}

// --- routing ------------------------------------------------------------------------------------------------
function route() {
  clearInterval(timer);
  const pieces = location.hash.replace(/^#/, "").split("?");
  const path = pieces[0];
  const query = pieces[1];
  const params = new URLSearchParams(query || "");
  const parts = (path || "/").split("/").filter(Boolean);
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("on", a.dataset.route === (parts[0] || "overview") || (a.dataset.route === "jobs" && parts[0] === "job"));
  const view = $("#view");
  if (parts[0] === "jobs") return jobsView(view, params);
  if (parts[0] === "job" && parts[1]) return jobView(view, parts[1]);
  if (parts[0] === "audit") return auditView(view);
  return overviewView(view);
}

function every(fn) {
  fn();
  timer = setInterval(() => { if (document.visibilityState === "visible") fn(); }, REFRESH_MS);
}

// --- overview -----------------------------------------------------------------------------------------------
function overviewView(view) {
  view.replaceChildren(h("h1", { text: "Overview" }), h("div#ov", { class: "loading", text: "Loading…" }));
  every(async () => {
    try {
      drawOverview($("#ov"), await api("/v1/admin/overview"));
    } catch (err) {
      if (err.status !== 401) $("#ov").prepend(h("p.warn.error", { text: `Could not refresh: ${err.message}` }));
    }
  });
}

function drawOverview(root, o) {
  if (!root) return;
  const stages = ["render", "pin", "events", "relay", "watch"];
  const relaysOff = relaysAreOff(o);
  // With relays off (no minter holds a relayer key) nothing consumes the relay queue, by design: not an error.
  const shown = o.warnings.filter((w) => !(relaysOff && w.queue && o.queues.some((q) => q.stage === "relay" && q.kind === "work" && q.queue === w.queue && q.no_consumer && !q.depth)));
  const warnings = h("ul.warnings", {}, shown.length ? shown.map((w) => h(`li.${w.level}`, { text: w.text })) : h("li.ok", { text: "All stages have consumers; nothing is piling up." }));
  const jobs = o.jobs;
  const per = jobs.last_hour.per_minute;
  const cards = h("div.cards",
    h("section.card",
      h("h2", { text: "Jobs by stage" }),
      h("dl.stages", {}, Object.keys(jobs.by_stage).map((k) => [h("dt", {}, stageBadge(k)), h("dd", { text: jobs.by_stage[k].toLocaleString() })]))),
    h("section.card",
      h("h2", { text: "Pinned a minute (last hour)" }),
      h("p.big", {}, `${jobs.last_hour.pinned}`, h("small", { text: ` pinned · ${jobs.last_hour.failed} failed` })),
      barChart(per.map((m) => m.pinned), { extra: per.map((m) => m.failed), label: "jobs pinned (and failed, red) per minute over the last hour" })),
    h("section.card",
      h("h2", { text: "Time to pinned" }),
      h("p.big", {}, `p50 ${num(jobs.last_hour.time_to_pinned_p50_s, 1)} s`, h("small", { text: ` · p95 ${num(jobs.last_hour.time_to_pinned_p95_s, 1)} s` })),
      lineChart([{ values: per.map((m) => m.p95_s), cls: "p95" }, { values: per.map((m) => m.p50_s), cls: "p50" }], { label: "time from submission to pinned, p50 (blue) and p95 (orange), per minute" }),
      h("p.legend", {}, h("span.k.p50", { text: "p50" }), " ", h("span.k.p95", { text: "p95" }))),
    h("section.card",
      h("h2", { text: "Pinning" }),
      h("p.big", {}, o.pins.left === null ? `${o.pins.used_this_month}` : `${o.pins.left}`, h("small", { text: o.pins.left === null ? " pins this month (no budget set)" : ` left of ${o.pins.monthly_budget} this month` })),
      h("p", { text: o.pins.last_429_at ? `Backend's last 429: ${when(o.pins.last_429_at)} (asked to wait ${num(o.pins.last_429_retry_after_s)} s)` : "The backend has not rate-limited us." })),
    minterCard(o, relaysOff),
  );
  const table = h("table.queues",
    h("thead", {}, h("tr", {}, ["Queue", "Depth", "In /s", "Out /s", "Consumers", "Oldest", ""].map((t) => h("th", { text: t })))),
    h("tbody", {}, stages.flatMap((stage) => queueRows(stage, o.queues.filter((q) => q.stage === stage), relaysOff))));
  const replicas = jobs.replicas || [];
  const workers = replicas.length ? h("div.scroll", {}, h("table.replicas", {},
    h("thead", {}, h("tr", {}, ["Replica", "Service", "Last stage change", "Changes"].map((t) => h("th", { text: t })))),
    h("tbody", {}, replicas.map((r) => h(`tr.${r.last_seen_s > 600 ? "quiet" : "plain"}`, {},
      h("td.mono", { text: r.replica }), h("td", { text: r.service }), h("td", { text: `${age(r.last_seen_s)} ago` }), h("td.n", { text: r.stage_changes })))))) :
    h("p.note", { text: "No renderer or pinner has moved a job in the last 10 minutes." });
  root.className = "";
  root.replaceChildren(warnings, cards, h("h2", { text: "Queues" }), h("div.scroll", {}, table),
    h("h2", { text: "Replicas at work (last 10 minutes)" }), workers,
    h("p.note", { text: `Depth and consumers from the broker; rates and ages from the job store's stage, retry and dead-letter history (events: this process's consumer; "–" where not known). Refreshed ${when(o.at)}, every ${REFRESH_MS / 1000} s.` }));
}

// --- the chain stage: the minter replicas ----------------------------------------------------------------------
// o.minters: the replicas heard from in the last minute (null: no chain, or the minter does not answer).
const chainConfigured = (o) => (o.minters !== null && o.minters !== undefined) || o.queues.some((q) => q.stage === "watch")
  || o.warnings.some((w) => /\bminter\b/.test(w.text));
// Relays are off when the replicas answer and none holds a relayer key (collectors mint from their own wallets).
const relaysAreOff = (o) => Array.isArray(o.minters) && o.minters.length > 0 && o.minters.every((m) => !m.relayer);

function minterCard(o, relaysOff) {
  if (!chainConfigured(o)) return "";
  const list = o.minters;
  const card = h("section#minters.card.wide", { "aria-labelledby": "minters-title" }, h("h2#minters-title", { text: "Chain stage (minter)" }));
  if (!Array.isArray(list)) {
    card.append(h("p.big.bad", { text: "No answer" }),
      h("p", { text: "The minter does not answer: no vouchers, no reported mints; relays wait in their queue." }));
    return card;
  }
  if (!list.length) {
    card.append(h("p.big.bad", { text: "0" }, h("small", { text: " replicas heard from in the last minute" })),
      h("p.problem", { text: "No minter replica has sent a heartbeat in the last minute: nobody watches the chain or sends relays." }));
    return card;
  }
  const watching = list.filter((m) => m.watching);
  const sending = list.filter((m) => m.sending);
  card.append(h(`p.big${watching.length === 1 ? "" : ".bad"}`, {}, `${watching.length}`, h("small", { text: ` watching · ${relaysOff ? "relays off" : `${sending.length} sending`} · ${list.length} replica${list.length === 1 ? "" : "s"}` })));
  card.append(h("ul.minters", {}, list.map((m) => {
    const roles = [m.watching ? "watching" : null, m.sending ? "sending" : null].filter(Boolean);
    return h(`li${roles.length ? "" : ".standby"}`, { "data-replica": m.name },
      h("div.who-roles", {}, h("span.mono.name", { text: m.name }), " ",
        (roles.length ? roles : ["standby"]).map((r) => [h(`span.badge.role.r-${r}`, { text: r }), " "])),
      h("div.facts", {},
        h("span", { text: m.head ? `head block ${Number(m.head).toLocaleString()}` : "head not read yet" }), " · ",
        h("span", { title: `last heartbeat ${when(o.at - m.seen_s_ago)}`, text: m.seen_s_ago < 1 ? "heartbeat just now" : `heartbeat ${age(m.seen_s_ago)} ago` }),
        m.started_at ? [" · ", h("span", { title: `started ${when(m.started_at)}`, text: `up ${age(Math.max(o.at - m.started_at, 0))}` })] : ""));
  })));
  const problems = [];
  if (!watching.length) problems.push("No replica is watching the chain: mints are not followed to minted (a replica takes over within a few polls).");
  else if (watching.length > 1) problems.push(`${watching.length} replicas say they watch: a handover in progress (it settles within a few polls).`);
  if (!relaysOff && !sending.length) problems.push("No replica has taken a relay lately: relayed mints may wait in the relay queue.");
  else if (sending.length > 1) problems.push(`${sending.length} replicas say they send relays: a handover in progress.`);
  for (const text of problems) card.append(h("p.problem", { text }));
  const relayer = list.find((m) => m.relayer);
  card.append(relaysOff
    ? h("p.note", { text: "Relays off (no relayer key): collectors mint from their own wallets." })
    : relayer ? h("p.note", {}, "Relays sent from ", h("span.mono", { title: relayer.relayer, text: shortWallet(relayer.relayer) }), ".") : "");
  return card;
}

// Messages a second through all the retry tiers of a stage; null (shown "–") when no tier's rate is known.
function sumRates(rows, key, together) {
  const known = rows.filter((q) => q[key] !== null && q[key] !== undefined);
  if (known.length) return known.reduce((a, q) => a + q[key], 0);
  const all = together && rows.find((q) => q[together] !== null && q[together] !== undefined);
  return all ? all[together] : null;
}

// The minter's queues: one active consumer takes the messages and the other replicas wait (the broker reports
// the active one only); the watch queue holds the newest tick only: no retry tiers, no dead letters.
const SINGLE_ACTIVE = new Set(["relay", "watch"]);
const STAGE_HINT = { relay: "the minter's relayed mints", watch: "the minter's chain watcher" };
// The admin API lists and replays the dead letters of these queues only.
const REPLAYABLE = new Set(["render", "pin", "events"]);

function queueRows(stage, rows, relaysOff) {
  const work = rows.find((q) => q.kind === "work");
  const dead = rows.find((q) => q.kind === "dead");
  const retries = rows.filter((q) => q.kind === "retry");
  const out = [];
  if (work) {
    const off = stage === "relay" && relaysOff && work.no_consumer && !work.depth; // nobody sends, nobody asks
    const cls = work.missing ? "bad" : work.no_consumer && !off ? "bad" : work.growing ? "warnrow" : "";
    const single = SINGLE_ACTIVE.has(stage) && !work.missing;
    let consumers = num(work.consumers);
    if (off) consumers = h("span.muted", { text: "0 (relays off)" });
    else if (work.no_consumer) consumers = h("span.flag", { text: "0 — none!" });
    else if (single) consumers = h("span", { title: "a single active consumer: one replica takes the messages, the others wait", text: `${num(work.consumers)} active` });
    out.push(h(`tr.${cls || "plain"}`, { "data-stage": stage },
      h("th", { scope: "row", title: work.queue }, h("strong", { text: stage }), h("small.qname", { text: ` ${work.queue}` }),
        STAGE_HINT[stage] ? h("small.hint", { text: STAGE_HINT[stage] }) : ""),
      h("td.n", { text: num(work.depth) }), h("td.n", { text: rate(work.rate_in) }), h("td.n", { text: rate(work.rate_out) }),
      h("td.n", {}, consumers),
      h("td.n", { text: oldest(work) }),
      h("td", {}, work.growing ? h("span.flag", { text: "growing" }) : "")));
    if (stage === "watch" && !work.missing) {
      out.push(h("tr.sub", {}, h("th", { scope: "row", colspan: 7 }, h("small", { text: "↳ ticks only: no retry tiers or dead letters (a late tick is worth nothing)" }))));
    }
  }
  if (retries.length) {
    const waiting = retries.reduce((a, q) => a + (q.depth || 0), 0);
    out.push(h("tr.sub", {},
      h("th", { scope: "row", title: retries.map((q) => `${q.queue}: ${q.depth ?? "?"}`).join("\n") }, h("small", { text: waiting
        ? `↳ retrying: ${retries.filter((q) => q.depth).map((q) => `${age(q.tier_seconds)} tier ${q.depth}`).join(" · ")}`
        : "↳ retry tiers" }, waiting ? "" : h("span.qname", { text: ` (${retries.length}, ${age(retries[0].tier_seconds)} to ${age(retries[retries.length - 1].tier_seconds)})` }))),
      h("td.n", { text: num(waiting) }), h("td.n", { text: rate(sumRates(retries, "rate_in", "rate_in_all_tiers")) }),
      h("td.n", { text: rate(sumRates(retries, "rate_out")) }), h("td"),
      h("td.n", { text: waiting ? `≤ ${age(Math.max(...retries.filter((q) => q.depth).map((q) => q.tier_seconds)))}` : "–" }), h("td")));
  }
  if (dead) {
    const replayable = REPLAYABLE.has(stage);
    const canReplay = replayable && session && session.can_act && dead.depth > 0;
    out.push(h(`tr.sub${dead.depth ? ".deadrow" : ""}`, {},
      h("th", { scope: "row", title: dead.queue }, h("small", { text: "↳ dead letters" })),
      h("td.n", { text: num(dead.depth) }), h("td.n", { text: rate(dead.rate_in) }), h("td.n", { text: rate(dead.rate_out) }), h("td"),
      h("td.n", { text: oldest(dead) }),
      h("td", {}, dead.depth && replayable ? h("a", { href: `#/dead/${stage}`, onclick: (e) => { e.preventDefault(); deadLetters(stage); }, text: "list" }) : "",
        dead.depth && !replayable ? h("small.muted", { title: "The admin API lists and replays render, pin and events dead letters only: see the minter's log", text: "not listed here" }) : "",
        canReplay ? [" ", h("button.small.danger", { type: "button", "data-replay": stage, onclick: () => replayAll(stage, dead.depth), text: "Replay all" })] : "")));
  }
  return out;
}

async function replayAll(stage, count) {
  const done = await act(`Replay ${stage} dead letters`, `Send all ${count} dead letter(s) of the ${stage} queue back to it? Their jobs resume (failed ones are reopened).`, "Replay all", `/v1/admin/actions/replay/${stage}`, {});
  if (done) route();
}

async function deadLetters(stage) {
  const view = $("#view");
  clearInterval(timer);
  view.replaceChildren(h("p", {}, h("a", { href: "#/", text: "← Overview" })), h("h1", { text: `Dead letters: ${stage}` }), h("p.loading", { text: "Loading…" }));
  try {
    const list = await api(`/v1/admin/queues/${stage}/dead-letters`);
    view.lastChild.replaceWith(h("div.scroll", {}, h("table", {},
      h("thead", {}, h("tr", {}, ["Job", "Reason", "By", ""].map((t) => h("th", { text: t })))),
      h("tbody", {}, list.messages.map((m) => h("tr", {},
        h("td", {}, m.job_id ? h("a.mono", { href: `#/job/${m.job_id}`, text: shortId(m.job_id) }) : "–"),
        h("td", { text: m.reason }), h("td", { text: m.dead_lettered_by || "broker" }),
        h("td", {}, session.can_act ? h("button.small", { type: "button", onclick: async () => {
          if (await act("Replay one dead letter", `Send job ${shortId(m.job_id)} back to the ${stage} queue?`, "Replay", `/v1/admin/actions/replay/${stage}`, { message_ids: [m.message_id] })) deadLetters(stage);
        }, text: "Replay" }) : "")))))));
  } catch (err) {
    view.lastChild.replaceWith(h("p.error", { text: err.message }));
  }
}

// --- jobs ---------------------------------------------------------------------------------------------------
const STAGES = ["", "queued", "rendering", "rendered", "pinning", "pinned", "minted", "failed"];

function jobsView(view, params) {
  const form = h("form.search", { role: "search", onsubmit: (e) => {
    e.preventDefault();
    const data = new FormData(e.target);
    const next = new URLSearchParams();
    data.forEach((v, k) => { if (v) next.set(k, k === "since" ? new Date(v).toISOString() : v); });
    location.hash = `#/jobs?${next}`;
  } },
  h("input", { name: "q", type: "search", placeholder: "job id, wallet 0x…, idempotency key or CID", value: params.get("q") || "", "aria-label": "search", size: 44 }),
  h("select", { name: "stage", "aria-label": "stage" }, STAGES.map((s) => h("option", { value: s, selected: params.get("stage") === s && s ? true : null, text: s || "any stage" }))),
  h("input", { name: "scene", placeholder: "scene", value: params.get("scene") || "", "aria-label": "scene", size: 8 }),
  h("input", { name: "since", type: "datetime-local", "aria-label": "created since", value: params.get("since") ? toLocalInput(params.get("since")) : "" }),
  h("button", { type: "submit", text: "Search" }));
  const results = h("div#results", { class: "loading", text: "Loading…" });
  view.replaceChildren(h("h1", { text: "Jobs" }), form, results);
  loadJobs(results, params, null);
}

function toLocalInput(iso) {
  const d = new Date(iso);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

async function loadJobs(results, params, cursor) {
  const query = new URLSearchParams(params);
  if (cursor) query.set("cursor", cursor);
  try {
    const page = await api(`/v1/admin/jobs?${query}`);
    let body = results.querySelector("tbody");
    if (!cursor) {
      results.className = "";
      body = h("tbody");
      results.replaceChildren(
        page.matched_as ? h("p.note", { text: `Matched as ${page.matched_as.replace("_", " ")}.` }) : "",
        h("div.scroll", {}, h("table.jobs", {}, h("thead", {}, h("tr", {}, ["Job", "Stage", "Progress", "Wallet", "Scene", "Created", "Error"].map((t) => h("th", { text: t })))), body)));
    }
    results.querySelector(".more")?.remove();
    for (const j of page.jobs) {
      body.append(h("tr", {},
        h("td", {}, h("a.mono", { href: `#/job/${j.job_id}`, text: shortId(j.job_id), title: j.job_id })),
        h("td", {}, stageBadge(j.stage)), h("td.n", { text: `${j.progress}%` }),
        h("td.mono", { title: j.wallet, text: shortWallet(j.wallet) }), h("td", { text: j.scene }),
        h("td", { text: when(j.created_at) }),
        h("td.err", {}, j.error || "", j.dead_letter ? h("span.parked", { title: j.dead_letter.reason, text: `parked in ${j.dead_letter.queue} dead letters` }) : "")));
    }
    if (!body.children.length) body.append(h("tr", {}, h("td", { colspan: 7, text: "No job matches." })));
    if (page.next_cursor) results.append(h("button.more", { type: "button", onclick: () => loadJobs(results, params, page.next_cursor), text: "More" }));
  } catch (err) {
    results.className = "";
    results.replaceChildren(h("p.error", { text: err.message }));
  }
}

// --- one job ------------------------------------------------------------------------------------------------
function jobView(view, jobId) {
  view.replaceChildren(h("p", {}, h("a", { href: "#/jobs", text: "← Jobs" })), h("div#job", { class: "loading", text: "Loading…" }));
  let last = "";
  every(async () => {
    try {
      const job = await api(`/v1/admin/jobs/${encodeURIComponent(jobId)}/detail`);
      const key = JSON.stringify([job.stage, job.progress, job.history.length, job.retries.length, job.dead_letters.length, job.audit.length, job.known_mint]);
      if (key !== last) { last = key; drawJob($("#job"), job); }
      if (["pinned", "minted"].includes(job.stage) && job.assets.image) clearInterval(timer);
    } catch (err) {
      if (err.status === 404) { clearInterval(timer); $("#job").replaceChildren(h("p.error", { text: "No job with this id." })); }
    }
  });
}

function table(headers, rows, empty, id) {
  if (!rows.length) return h("p.note", { id, text: empty });
  return h("div.scroll", { id }, h("table", {}, h("thead", {}, h("tr", {}, headers.map((t) => h("th", { text: t })))), h("tbody", {}, rows)));
}

function drawJob(root, job) {
  if (!root) return;
  root.className = "";
  const actions = h("div.actions");
  if (session.can_act) {
    if (job.stage === "failed" || job.parked) {
      const what = job.parked ? `Replay its dead letter into the ${job.parked.queue} queue?` : "It goes back to the queue it failed in (or is rendered again).";
      actions.append(h("button", { type: "button", id: "retry", onclick: async () => {
        if (await act("Retry job", `Retry job ${shortId(job.job_id)}? ${what}`, "Retry", `/v1/admin/actions/retry/${job.job_id}`)) route();
      }, text: job.parked ? "Replay its dead letter" : "Retry" }));
    }
    const m = job.known_mint;
    if (job.chain && job.stage === "pinned" && m && !m.confirmed) {
      actions.append(h("button", { type: "button", id: "reverify", onclick: async () => {
        if (await act("Re-verify mint", `Check transaction ${m.tx_hash.slice(0, 10)}… on chain again for job ${shortId(job.job_id)}? Once it has ${m.required_confirmations} confirmation(s) the job becomes minted.`, "Re-verify", `/v1/admin/actions/reverify/${job.job_id}`)) route();
      }, text: "Re-verify mint" }));
    }
    if (!["pinned", "minted", "failed"].includes(job.stage)) {
      actions.append(h("button.danger", { type: "button", id: "cancel", onclick: async () => {
        if (await act("Cancel job", `Cancel job ${shortId(job.job_id)}? Renderers and pinners stop working on it.`, "Cancel job", `/v1/admin/actions/cancel/${job.job_id}`)) route();
      }, text: "Cancel" }));
    }
  }
  const g = job.gateway_urls || {};
  root.replaceChildren(
    h("h1", {}, "Job ", h("span.mono", { text: job.job_id })),
    h("p.summary", {}, stageBadge(job.stage), ` ${job.progress}% · ${job.scene} · `, h("span.mono", { text: job.wallet }), ` · created ${when(job.created_at)}`),
    job.error ? h("p.error", { text: job.error }) : "",
    job.parked ? h("p.warnbox", { text: `Parked in the ${job.parked.queue} dead letters since ${when(job.parked.at)}: ${job.parked.reason}` }) : "",
    mintLine(job),
    actions,
    h("div.cards",
      h("section.card.wide", h("h2", { text: "Assets" }),
        g.image || g.animation ? h("div.media", {},
          g.image ? h("figure", {}, h("img", { src: g.image, alt: "the job's animated GIF", loading: "lazy" }), h("figcaption", { text: "GIF" })) : "",
          g.animation ? h("figure", {}, h("video", { src: g.animation, controls: true, loop: true, muted: true, playsinline: true, preload: "metadata" }), h("figcaption", { text: "MP4" })) : "") : h("p.note", { text: "Not pinned yet." }),
        h("dl.kv", {}, Object.keys(job.assets).map((k) => [h("dt", { text: k }), h("dd.mono", { text: job.assets[k] || "–" })]),
          h("dt", { text: "token URI" }), h("dd.mono", { text: job.token_uri || "–" }),
          h("dt", { text: "idempotency key" }), h("dd.mono", { text: job.idempotency_key || "–" }))),
      h("section.card", h("h2", { text: "Settings" }), h("pre", { text: JSON.stringify(job.settings, null, 2) }))),
    h("h2", { text: "Stage changes" }),
    table(["Stage", "When", "After", "Service", "Replica", "Error"], job.history.map((r, i) => h("tr", {}, h("td", {}, stageBadge(r.stage)), h("td", { text: when(r.at) }), h("td.n", { text: i ? took(job.history[i - 1].at, r.at) : "" }), h("td", { text: r.source || "–" }), h("td.mono", { text: r.replica || "–" }), h("td.err", { text: r.error || "" }))), "No stage change recorded.", "history"),
    h("h2", { text: "Retries" }),
    table(["Attempt", "When", "Stage", "Waits", "Reason", "Replica"], job.retries.map((r) => h("tr", {}, h("td.n", { text: r.attempt }), h("td", { text: when(r.at) }), h("td", { text: r.stage }), h("td.n", { text: `${r.retry_in_s} s` }), h("td.err", { text: r.reason }), h("td.mono", { text: r.replica || "–" }))), "No retries.", "retries"),
    h("h2", { text: "Dead letters" }),
    table(["Queue", "When", "Reason", "By", "Replayed"], job.dead_letters.map((r) => h("tr", {}, h("td", { text: r.queue }), h("td", { text: when(r.at) }), h("td.err", { text: r.reason }), h("td", { text: r.dead_lettered_by }), h("td", { text: r.replayed_at ? when(r.replayed_at) : "not yet" }))), "Never dead-lettered.", "dead-letters"),
    h("h2", { text: "Operator actions" }),
    table(["When", "Who", "What", "Outcome"], job.audit.map((a) => h("tr", {}, h("td", { text: when(a.at) }), h("td", { text: a.actor }), h("td", { text: a.action }), h("td", { text: a.outcome }))), "None.", "job-audit"),
  );
}

// What the chain side knows of the job's mint: a transaction seen (or relayed) but not confirmed is what an
// operator is asked about ("I minted, it still says pinned").
function mintLine(job) {
  const m = job.known_mint;
  if (!job.chain || !m) return job.chain && job.stage === "pinned" ? h("p#mint.note", { text: "Mint: no transaction known yet." }) : "";
  const where = m.block ? ` in block ${m.block}` : " (not mined yet)";
  const state = m.confirmed ? `confirmed, token ${m.token_id}`
    : `not confirmed yet: the job becomes minted once ${m.required_confirmations} block(s) are on top of it. Re-verify checks it on chain now`;
  const how = m.source === "relayed" ? "Mint transaction sent by the relayer" : "Mint transaction seen on chain";
  return h(`p#mint.${m.confirmed ? "note" : "warnbox"}`, {}, `${how}${where}: ${state}. `, h("span.mono.tx", { text: m.tx_hash }));
}

// --- audit --------------------------------------------------------------------------------------------------
async function auditView(view) {
  view.replaceChildren(h("h1", { text: "Audit" }), h("p.loading", { text: "Loading…" }));
  try {
    const entries = (await api("/v1/admin/audit?limit=200")).entries;
    view.lastChild.replaceWith(table(["When", "Who", "Action", "Target", "Outcome", "Detail"], entries.map((a) => h("tr", {},
      h("td", { text: when(a.at) }), h("td", { text: a.actor }), h("td", { text: a.action }),
      h("td.mono", {}, /^[0-9a-f]{32}$/.test(a.target) ? h("a", { href: `#/job/${a.target}`, text: shortId(a.target) }) : a.target),
      h("td", { class: a.outcome === "ok" ? "" : "err", text: a.outcome }), h("td.mono", { text: JSON.stringify(a.detail) }))), "No operator action yet."));
  } catch (err) {
    view.lastChild.replaceWith(h("p.error", { text: err.message }));
  }
}

$("#login-form").addEventListener("submit", signIn);
window.addEventListener("hashchange", () => { if (session) route(); });
start();
