// blockledger console (issue 14): logs in like any client, then polls the
// JSON API. Every piece of data reaches the page as text (textContent,
// createTextNode, attribute values), never as markup: names, descriptions
// and refusal messages are written by other people.
"use strict";

const POLL_MS = 3000;
// The hash chain is checked from the start on every digest request: ask
// for it once every this many polls, not every few seconds.
const DIGEST_EVERY = 10;
// sessionStorage only (gone with the tab); the password is never kept.
const SESSION_KEY = "blockledger-console";
const MAX_PAGES = 50;

const $ = (id) => document.getElementById(id);

// Builds an element; children are nodes or text (text is never parsed).
function el(tag, props, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "onclick") e.addEventListener("click", v);
    else e.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

class Unauthorized extends Error {}

let mode = "keystone";
let session = null;
let pollTimer = null;
let generation = 0; // bumped at logout: a poll of an old session stops
let polls = 0;
let selected = null; // {kind, id, name}
let selectedPosition = null;
const lastRender = {}; // what each table last showed, to skip identical redraws

function loadSession() {
  try {
    session = JSON.parse(sessionStorage.getItem(SESSION_KEY) || "null");
  } catch (_) {
    session = null;
  }
}

function saveSession() {
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
}

// --- the API ---------------------------------------------------------------

function faultMessage(status, body) {
  // OpenStack faults are {"<code>": {"message": ...}}, Keystone's
  // {"error": {"message": ...}}.
  if (body && typeof body === "object") {
    for (const v of Object.values(body)) {
      if (v && typeof v === "object" && typeof v.message === "string") {
        return `HTTP ${status}: ${v.message}`;
      }
    }
  }
  return `HTTP ${status}`;
}

async function api(path) {
  const r = await fetch(path, {
    headers: { "X-Auth-Token": session.token, Accept: "application/json" },
    cache: "no-store",
  });
  if (r.status === 401) throw new Unauthorized();
  let body = null;
  try {
    body = await r.json();
  } catch (_) {
    body = null;
  }
  if (!r.ok) throw new Error(faultMessage(r.status, body));
  return body;
}

// Only links back to this server are followed.
function sameOrigin(link) {
  if (typeof link !== "string" || link === "") return null;
  try {
    const u = new URL(link, location.href);
    return u.origin === location.origin ? u.pathname + u.search : null;
  } catch (_) {
    return null;
  }
}

const enc = encodeURIComponent;
const projectBase = () => `/v3/${enc(session.projectId)}`;
const allProjects = () => session.admin && $("all-projects").checked;

// What the console lists, and where each kind's timeline comes from.
const KINDS = {
  volumes: {
    noun: "volume",
    list: () => `${projectBase()}/volumes/detail${allProjects() ? "?all_tenants=true" : ""}`,
    next: (b) => (b.volumes_links || []).find((l) => l.rel === "next")?.href,
    project: (v) => v["os-vol-tenant-attr:tenant_id"],
    columns: ["Name", "ID", "Status", "Size (GiB)"],
    cells: (v) => [v.name || "", idText(v.id), statusBadge(v.status), String(v.size)],
    history: (id) => `${projectBase()}/volumes/${enc(id)}/history`,
  },
  snapshots: {
    noun: "snapshot",
    list: () => `${projectBase()}/snapshots/detail${allProjects() ? "?all_tenants=true" : ""}`,
    next: (b) => (b.snapshots_links || []).find((l) => l.rel === "next")?.href,
    project: (s) => s["os-extended-snapshot-attributes:project_id"],
    columns: ["Name", "ID", "Status", "Volume", "Size (GiB)"],
    cells: (s) => [s.name || "", idText(s.id), statusBadge(s.status), idText(s.volume_id), String(s.size)],
    history: (id) => `${projectBase()}/snapshots/${enc(id)}/history`,
  },
  images: {
    noun: "image",
    // The image catalog lists every project's images to an admin already.
    list: () => "/image/v2/images",
    next: (b) => b.next,
    project: (i) => i.owner,
    columns: ["Name", "ID", "Status", "Visibility"],
    cells: (i) => [i.name || "", idText(i.id), statusBadge(i.status), i.visibility],
    // No per-image history route: the events API filtered by resource.
    history: null,
    events: (id) => `${projectBase()}/events?resource_type=image&resource_id=${enc(id)}`,
  },
};

async function listAll(kind) {
  const k = KINDS[kind];
  const items = [];
  let path = k.list();
  for (let i = 0; path && i < MAX_PAGES; i++) {
    const b = await api(path);
    items.push(...(b[kind] || []));
    path = sameOrigin(k.next(b));
  }
  return items;
}

async function eventsOf(path) {
  const events = [];
  let body = null;
  for (let i = 0; path && i < MAX_PAGES; i++) {
    body = await api(path);
    events.push(...(body.events || []));
    path = sameOrigin(body.next);
  }
  return events;
}

// --- rendering -------------------------------------------------------------

function statusClass(status) {
  const s = String(status || "");
  if (s.startsWith("error") || s === "killed" || s === "deleted") return "bad";
  if (s === "available" || s === "active" || s === "in-use") return "ok";
  return "busy";
}

function statusBadge(status) {
  return el("span", { class: `status ${statusClass(status)}` }, String(status ?? ""));
}

function idText(id) {
  return el("span", { class: "id" }, String(id ?? ""));
}

function fmtTime(t) {
  // "2026-11-30T00:01:02.123456Z" → "2026-11-30 00:01:02.123456" (UTC).
  return typeof t === "string" ? t.replace("T", " ").replace(/Z$/, "") : "";
}

function renderList(kind, items) {
  const k = KINDS[kind];
  const showProject = allProjects();
  const signature = JSON.stringify([showProject, selected, items]);
  if (lastRender[kind] === signature) return;
  lastRender[kind] = signature;
  const table = $(kind);
  const heads = [...k.columns, ...(showProject ? ["Project"] : []), ""];
  table.tHead.replaceChildren(el("tr", null, heads.map((h) => el("th", null, h))));
  const rows = items.map((item) => {
    const isSelected = selected && selected.kind === kind && selected.id === item.id;
    return el(
      "tr",
      { class: isSelected ? "selected" : null, "data-id": item.id },
      k.cells(item).map((c) => el("td", null, c)),
      showProject ? el("td", null, k.project(item) || "") : null,
      el(
        "td",
        null,
        el(
          "button",
          {
            type: "button",
            class: "open-timeline",
            onclick: () => openTimeline(kind, item.id, item.name || item.id),
          },
          "Timeline",
        ),
      ),
    );
  });
  if (rows.length === 0) {
    rows.push(el("tr", null, el("td", { colspan: heads.length, class: "empty" }, `No ${kind}.`)));
  }
  table.tBodies[0].replaceChildren(...rows);
}

function isRefused(ev) {
  return ev.outcome === "refused" || ev.event_type === "CommandRejected";
}

function who(ev) {
  const w = ev.who || {};
  const name = w.user_id ?? w.system ?? "?";
  const extra = [w.project_id, (w.roles || []).join(",")].filter((x) => x);
  return [el("span", { class: "user" }, name), extra.length ? el("small", null, ` (${extra.join(" ")})`) : null];
}

function what(ev) {
  const parts = [el("span", { class: "event-type" }, ev.event_type || "")];
  if (isRefused(ev) && ev.data) {
    const reason = ev.data.message || ev.data.reason;
    if (reason) parts.push(el("div", { class: "reason" }, String(reason)));
  }
  return parts;
}

function how(ev) {
  const h = ev.how || {};
  return [h.dialect, h.method, h.route].filter((x) => x).join(" ");
}

function renderTimeline(events) {
  const signature = JSON.stringify([selected, selectedPosition, events]);
  if (lastRender.events === signature) return;
  lastRender.events = signature;
  const rows = events.map((ev) =>
    el(
      "tr",
      {
        class: ["event", isRefused(ev) ? "refused" : "accepted", ev.position === selectedPosition ? "selected" : ""]
          .join(" ")
          .trim(),
        "data-position": ev.position,
      },
      el("td", { class: "position" }, `#${ev.position}`),
      el("td", { class: "time" }, el("time", { datetime: ev.recorded_at }, fmtTime(ev.recorded_at))),
      el("td", { class: "who" }, who(ev)),
      el("td", { class: "what" }, what(ev)),
      el("td", { class: "how" }, how(ev)),
      el(
        "td",
        { class: "outcome" },
        el("span", { class: isRefused(ev) ? "badge refused" : "badge accepted" }, isRefused(ev) ? "REFUSED" : "accepted"),
      ),
      el(
        "td",
        null,
        el("button", { type: "button", class: "as-of", onclick: () => showAsOf(ev) }, "As of here"),
      ),
    ),
  );
  if (rows.length === 0) {
    rows.push(el("tr", null, el("td", { colspan: 7, class: "empty" }, "No events.")));
  }
  $("events").tBodies[0].replaceChildren(...rows);
}

// The history route's state is the domain's fold, {"volume": {...} | null,
// "deleted": bool} (contract14.md, DEVIATIONS): show the resource's fields.
function unwrapState(noun, state) {
  if (state && typeof state === "object" && noun in state) {
    const inner = state[noun];
    if (inner === null || typeof inner !== "object") return inner;
    return state.deleted ? { ...inner, deleted: true } : inner;
  }
  return state;
}

function renderState(state) {
  const body = $("asof-state").tBodies[0];
  if (state === null || state === undefined) {
    body.replaceChildren(el("tr", null, el("td", { class: "empty" }, "It did not exist yet.")));
    return;
  }
  if (typeof state !== "object") {
    body.replaceChildren(el("tr", null, el("td", null, String(state))));
    return;
  }
  body.replaceChildren(
    ...Object.entries(state).map(([k, v]) =>
      el(
        "tr",
        null,
        el("th", { scope: "row" }, k),
        el("td", null, v !== null && typeof v === "object" ? JSON.stringify(v) : String(v)),
      ),
    ),
  );
}

// --- actions ---------------------------------------------------------------

async function openTimeline(kind, id, name) {
  selected = { kind, id, name };
  selectedPosition = null;
  $("asof").hidden = true;
  $("timeline").hidden = false;
  $("timeline-title").textContent = `Timeline of ${KINDS[kind].noun} ${name}`;
  $("events").tBodies[0].replaceChildren();
  delete lastRender.events;
  for (const k of Object.keys(KINDS)) {
    delete lastRender[k];
    for (const tr of $(k).tBodies[0].rows) tr.classList.toggle("selected", k === kind && tr.dataset.id === id);
  }
  await refreshTimeline();
  $("timeline").scrollIntoView({ block: "start" });
}

async function refreshTimeline() {
  if (!selected) return;
  const s = selected;
  const k = KINDS[s.kind];
  try {
    const events = await eventsOf(k.history ? k.history(s.id) : k.events(s.id));
    if (s !== selected) return; // another resource was opened meanwhile
    $("timeline-error").textContent = "";
    renderTimeline(events);
  } catch (e) {
    if (e instanceof Unauthorized) throw e;
    if (s === selected) $("timeline-error").textContent = e.message;
  }
}

async function showAsOf(ev) {
  const s = selected;
  const k = KINDS[s.kind];
  selectedPosition = ev.position;
  delete lastRender.events;
  for (const tr of $("events").tBodies[0].rows) {
    tr.classList.toggle("selected", tr.dataset.position === String(ev.position));
  }
  $("asof").hidden = false;
  $("asof-error").textContent = "";
  try {
    let state;
    let at = { position: ev.position, recorded_at: ev.recorded_at };
    if (k.history) {
      const b = await api(`${k.history(s.id)}?as_of=${enc(ev.position)}`);
      state = unwrapState(k.noun, b.state);
      if (b.as_of) at = b.as_of;
    } else {
      // Images have no as-of route: the event's own data.
      state = ev.data;
    }
    if (s !== selected || selectedPosition !== ev.position) return;
    $("asof-title").textContent = k.history
      ? `${k.noun} ${s.name} as of event #${at.position} (${fmtTime(at.recorded_at)} UTC)`
      : `Data of event #${at.position} (${fmtTime(at.recorded_at)} UTC) of ${k.noun} ${s.name}`;
    renderState(state);
  } catch (e) {
    if (e instanceof Unauthorized) return endSession("Your session has ended; log in again.");
    $("asof-error").textContent = e.message;
  }
}

async function refreshLists() {
  const results = await Promise.allSettled(Object.keys(KINDS).map((kind) => listAll(kind)));
  const errors = [];
  Object.keys(KINDS).forEach((kind, i) => {
    const r = results[i];
    if (r.status === "fulfilled") renderList(kind, r.value);
    else if (r.reason instanceof Unauthorized) throw r.reason;
    else errors.push(`${kind}: ${r.reason.message}`);
  });
  $("list-error").textContent = errors.join("; ");
  $("refreshed").textContent = `Refreshed ${new Date().toLocaleTimeString()}`;
}

async function refreshDigest() {
  const d = $("digest");
  if (!session.admin) return;
  d.hidden = false;
  try {
    const b = await api(`${projectBase()}/events/digest`);
    const g = b.digest || {};
    d.className = g.verified ? "digest ok" : "digest bad";
    const hash = String(g.hash || "").slice(0, 12);
    d.textContent = g.verified
      ? `Log verified up to #${g.position} (${hash}…)`
      : `Log NOT verified: ${g.detail || "the hash chain does not hold"}`;
    d.title = `position ${g.position}, hash ${g.hash}, ${g.recorded_at || ""}`;
  } catch (e) {
    if (e instanceof Unauthorized) throw e;
    d.className = "digest busy";
    d.textContent = `Log verify state unavailable (${e.message})`;
  }
}

async function poll() {
  const gen = generation;
  try {
    await refreshLists();
    if (gen !== generation) return;
    await refreshTimeline();
    if (polls % DIGEST_EVERY === 0) await refreshDigest();
    polls++;
  } catch (e) {
    if (e instanceof Unauthorized) return endSession("Your session has ended; log in again.");
    $("list-error").textContent = e.message;
  }
  if (gen === generation && session) pollTimer = setTimeout(poll, POLL_MS);
}

function showConsole() {
  $("login").hidden = true;
  $("resources").hidden = false;
  $("logout").hidden = false;
  $("all-projects-label").hidden = !session.admin;
  const role = session.admin ? "admin" : (session.roles || ["member"]).join(",");
  $("who").textContent = `${session.user} in project ${session.projectName} (${role})`;
  polls = 0;
  poll();
}

function showLogin(message) {
  $("login").hidden = false;
  for (const id of ["resources", "timeline", "asof", "logout", "digest"]) $(id).hidden = true;
  $("who").textContent = "";
  $("login-error").textContent = message || "";
  $("login-mode").textContent =
    mode === "noauth"
      ? "This server runs without authentication (noauth): any user name with the project given; the password is not checked; the user admin is an administrator."
      : "Log in with your blockledger user name, password and project.";
  $("login-password").required = mode !== "noauth";
}

function endSession(message) {
  generation++;
  clearTimeout(pollTimer);
  session = null;
  selected = null;
  selectedPosition = null;
  for (const k of Object.keys(lastRender)) delete lastRender[k];
  sessionStorage.removeItem(SESSION_KEY);
  showLogin(message);
}

async function logout() {
  const s = session;
  if (s && s.mode === "keystone") {
    // Revoke the token, so it is useless even if it was copied.
    fetch("/identity/v3/auth/tokens", {
      method: "DELETE",
      headers: { "X-Auth-Token": s.token, "X-Subject-Token": s.token },
    }).catch(() => {});
  }
  endSession("");
}

async function login(event) {
  event.preventDefault();
  const user = $("login-user").value.trim();
  const password = $("login-password").value;
  const project = $("login-project").value.trim();
  $("login-error").textContent = "";
  if (mode === "noauth") {
    // noauth's credential is the token "user:project" (CLIENTS.md, noauth).
    session = {
      mode,
      token: `${user}:${project}`,
      user,
      projectId: project,
      projectName: project,
      admin: user === "admin",
    };
  } else {
    const body = {
      auth: {
        identity: {
          methods: ["password"],
          password: { user: { name: user, domain: { id: "default" }, password } },
        },
        scope: { project: { name: project, domain: { id: "default" } } },
      },
    };
    let r;
    try {
      r = await fetch("/identity/v3/auth/tokens?nocatalog", {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify(body),
      });
    } catch (e) {
      $("login-error").textContent = `The server did not answer (${e.message}).`;
      return;
    }
    if (r.status !== 201) {
      $("login-error").textContent =
        r.status === 401
          ? "Wrong user name, password or project."
          : r.status === 429
            ? "Too many failed attempts; try again later."
            : `Login failed (HTTP ${r.status}).`;
      return;
    }
    const token = r.headers.get("X-Subject-Token");
    const t = (await r.json()).token;
    const roles = (t.roles || []).map((x) => x.name);
    session = {
      mode,
      token,
      user: t.user.name,
      projectId: t.project.id,
      projectName: t.project.name,
      admin: roles.includes("admin"),
      roles,
    };
  }
  $("login-password").value = "";
  saveSession();
  showConsole();
}

async function start() {
  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", logout);
  $("all-projects").addEventListener("change", () => {
    for (const k of Object.keys(KINDS)) delete lastRender[k];
    clearTimeout(pollTimer);
    generation++;
    poll();
  });
  try {
    const r = await fetch("/console/config.json", { cache: "no-store" });
    mode = (await r.json()).auth === "noauth" ? "noauth" : "keystone";
  } catch (_) {
    mode = "keystone";
  }
  loadSession();
  if (session && session.token && session.mode === mode) showConsole();
  else {
    session = null;
    showLogin("");
  }
}

document.addEventListener("DOMContentLoaded", start);
