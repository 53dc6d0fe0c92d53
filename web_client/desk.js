// The practitioner's desk (docs/web_client.md): the day's consultations across
// rooms, live over the `/desk` Socket.IO namespace. The token is in the
// fragment of `/d#<token>` and never leaves this browser except to the server's
// websocket handshake. Texts come from the catalogues (i18n.js); live updates
// rebuild the rows but give keyboard focus back to the same control.

import { chime } from "./chime.js";
import { askToConfirm } from "./confirm.js";
import { formatTime, formatWaited, parseInstant } from "./format.js";
import {
  bindAttr,
  bindText,
  chooseLocale,
  deploymentLocale,
  loadCatalogues,
  onLocaleChange,
  rememberLocale,
  setLocale,
  storedLocale,
  t,
} from "./i18n.js";
import { reasonOf } from "./messages.js";

const STATES = new Set(["scheduled", "waiting", "in_consultation", "ended", "no_show", "cancelled"]);

const body = document.body;
const byTestId = (testId) => document.querySelector(`[data-testid="${testId}"]`);
const rowsBody = byTestId("desk-rows");
const summary = byTestId("desk-summary");
const empty = byTestId("desk-empty");
const notice = byTestId("connection-notice");
const messageForm = byTestId("desk-message-form");
const messageText = byTestId("desk-message-text");
const messageStatus = byTestId("desk-message-status");

// "connecting" (as desk.html starts), "ready" or "error"; written to body[data-state].
let state = "connecting";
let lastDesk = null;
let knownWaiting = new Set();
let waitingCount = 0;

function setState(next) {
  state = next;
  body.dataset.state = next;
}

function showError(messageKey) {
  setState("error");
  byTestId("desk").hidden = true;
  byTestId("desk-error").hidden = false;
  bindText(byTestId("error-message"), messageKey);
}

function tokenFromFragment() {
  const token = decodeURIComponent(window.location.hash.slice(1));
  return token || null;
}

function element(tag, attributes = {}, text = "") {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text) node.textContent = text;
  return node;
}

/** A button whose visible text is `key` and whose accessible name says whom (`nameKey`). */
function button({ key, testid, focusKey, onClick, kind = "", name = "" }) {
  const node = element("button", {
    type: "button",
    class: `button ${kind}`.trim(),
    "data-testid": testid,
    "data-key": focusKey,
  });
  bindText(node, key);
  if (name) bindAttr(node, "aria-label", `${key}_name`, { name });
  node.addEventListener("click", onClick);
  return node;
}

function stateText(row, now) {
  const label = STATES.has(row.state) ? t(`desk.state_${row.state}`) : row.state;
  const since = parseInstant(row.waiting_since);
  if (row.state === "waiting" && since) {
    return t("desk.waiting_since", { state: label, time: formatTime(since), waited: formatWaited(since, now) });
  }
  return label;
}

// The table is rebuilt on every update: keep what the practitioner is typing
// and where the keyboard focus was (a live update never moves it).
function typedInputs() {
  const typed = new Map();
  for (const input of rowsBody.querySelectorAll("input[data-key]")) typed.set(input.dataset.key, input.value);
  const active = document.activeElement;
  const focused = active && rowsBody.contains(active) && active.dataset ? active.dataset.key : undefined;
  return { typed, focused };
}

function restoreInputs({ typed, focused }) {
  for (const input of rowsBody.querySelectorAll("input[data-key]")) {
    if (typed.has(input.dataset.key)) input.value = typed.get(input.dataset.key);
  }
  if (!focused) return;
  const again = [...rowsBody.querySelectorAll("[data-key]")].find((node) => node.dataset.key === focused);
  // Gone (admitted, declined): the table itself keeps the focus, not the page's top.
  (again || rowsBody.closest("table")).focus({ preventScroll: true });
}

function cell(column, testid, text) {
  const td = element("td", testid ? { "data-testid": testid } : {}, text);
  bindAttr(td, "data-label", `desk.column_${column}`);
  return td;
}

function waitingLine(row, entry) {
  const line = element("div", { class: "desk-waiting-entry", "data-testid": "desk-waiting-entry", "data-entry-id": entry.entry_id });
  const who = entry.role === "guest" ? t("desk.guest", { name: entry.name }) : entry.name;
  const away = parseInstant(entry.away_since);
  line.dataset.away = away ? "true" : "false";
  // Reloading or offline for a moment: their place is kept for a while.
  line.append(element("span", {}, away ? t("desk.away_since", { name: who, time: formatTime(away) }) : who));
  const reason = element("input", {
    "data-testid": "desk-deny-reason",
    "data-key": `reason-${entry.entry_id}`,
    maxlength: "300",
  });
  bindAttr(reason, "placeholder", "desk.deny_reason_placeholder");
  bindAttr(reason, "aria-label", "desk.deny_reason_name", { name: entry.name });
  line.append(
    button({ key: "panel.admit", testid: "desk-admit", focusKey: `admit-${entry.entry_id}`, name: entry.name, kind: "button-primary", onClick: () => admit(row, entry) }),
    reason,
    button({ key: "panel.deny", testid: "desk-deny", focusKey: `deny-${entry.entry_id}`, name: entry.name, kind: "button-secondary", onClick: () => deny(row, entry, reason.value) }),
  );
  return line;
}

function actionsCell(row) {
  const actions = cell("actions", "", "");
  for (const entry of row.waiting) actions.append(waitingLine(row, entry));
  for (const person of row.in_call || []) {
    const line = element("div", { class: "desk-waiting-entry", "data-testid": "desk-in-call-entry", "data-entry-id": person.entry_id });
    line.append(
      element("span", {}, t(person.role === "guest" ? "desk.guest_in_call" : "desk.in_call", { name: person.name })),
      button({ key: "call.send_back", testid: "desk-return-to-waiting", focusKey: `back-${person.entry_id}`, onClick: () => act("return_to_waiting", { room_id: row.room_id, entry_id: person.entry_id }) }),
    );
    bindAttr(line.lastChild, "aria-label", "call.send_back_name", { name: person.name });
    actions.append(line);
  }
  if (row.state === "in_consultation") {
    const end = button({ key: "call.end", testid: "desk-end", focusKey: `end-${row.room_id}`, kind: "button-danger", onClick: () => endConsultation(row) });
    bindAttr(end, "aria-label", "desk.end_name", { name: row.patient_name });
    actions.append(end);
  }
  if (row.state === "waiting") {
    const text = element("input", { "data-testid": "desk-room-message-text", "data-key": `message-${row.room_id}`, maxlength: "500" });
    bindAttr(text, "placeholder", "desk.room_message_placeholder");
    bindAttr(text, "aria-label", "desk.room_message_name", { name: row.patient_name });
    const send = button({
      key: "desk.send",
      testid: "desk-room-message-send",
      focusKey: `send-${row.room_id}`,
      onClick: async () => {
        if (!text.value.trim()) return;
        const ack = await request("message", { room_id: row.room_id, text: text.value.trim() });
        tell(ack.ok ? "desk.message_sent" : reasonOf(ack.error).key);
      },
    });
    bindAttr(send, "aria-label", "desk.send_name", { name: row.patient_name });
    actions.append(text, send);
  }
  if (row.link || row.open) {
    const open = element("a", { href: row.link || `#open-${row.room_id}`, target: `room-${row.room_id}`, rel: "noopener", "data-testid": "desk-open", "data-key": `open-${row.room_id}`, class: "button button-secondary" });
    bindText(open, "desk.open_room");
    bindAttr(open, "aria-label", "desk.open_room_name", { name: row.patient_name });
    if (!row.link) linkOnDemand(open, row);
    actions.append(open);
  }
  return actions;
}

/** Join links are minted when needed (`join_link`), not signed for every row on every push. */
function linkOnDemand(open, row) {
  let fetching = null;
  const fetchLink = () => {
    fetching ||= request("join_link", { room_id: row.room_id }).then((ack) => {
      if (ack.ok && typeof ack.url === "string") {
        open.href = ack.url;
        open.dataset.ready = "true";
      } else {
        fetching = null;
        tell(reasonOf(ack.error).key);
      }
      return ack;
    });
    return fetching;
  };
  // Fetched ahead when the pointer or the keyboard comes to it, so a click opens at once.
  open.addEventListener("pointerenter", fetchLink, { once: true });
  open.addEventListener("focus", fetchLink, { once: true });
  open.addEventListener("click", async (event) => {
    if (open.dataset.ready === "true") return; // A real link now: the browser opens it.
    event.preventDefault(); // Never follow the placeholder: the desk's token is the fragment.
    const ack = await fetchLink();
    if (ack.ok && typeof ack.url === "string") window.open(ack.url, `room-${row.room_id}`, "noopener");
  });
}

/** The practice of the day's appointments (`desk.practice`, optional `{name, phone}`). */
function renderPractice(practice) {
  const name = practice && typeof practice.name === "string" ? practice.name.trim() : "";
  const header = byTestId("practice-name");
  header.textContent = name;
  header.hidden = !name;
}

function rowElement(row, now) {
  const tr = element("tr", { class: "desk-row", "data-testid": "desk-row", "data-state": row.state, "data-room-id": row.room_id });
  const starts = parseInstant(row.starts_at);
  tr.append(
    cell("time", "desk-time", starts ? formatTime(starts) : ""),
    cell("patient", "desk-patient", row.patient_name),
    cell("state", "desk-state", stateText(row, now)),
    cell("expected", "desk-expected", expectedText(row)),
    actionsCell(row),
  );
  return tr;
}

function expectedText(row) {
  const expected = parseInstant(row.expected_start);
  return expected ? formatTime(expected) : "";
}

// room id -> its <tr>: a delta rebuilds only the rows it names.
const rowElements = new Map();

function render(desk) {
  lastDesk = desk;
  renderPractice(desk.practice);
  const now = Date.now();
  const typing = typedInputs();
  rowElements.clear();
  const rows = desk.rows.map((row) => {
    const tr = rowElement(row, now);
    rowElements.set(row.room_id, tr);
    return tr;
  });
  rowsBody.replaceChildren(...rows);
  restoreInputs(typing);
  settle();
}

/** After the rows changed: counts, the chime for a new arrival, the page ready. */
function settle() {
  empty.hidden = lastDesk.rows.length !== 0;
  waitingCount = 0;
  const waitingIds = new Set();
  for (const row of lastDesk.rows) {
    for (const entry of row.waiting) {
      waitingCount += 1;
      waitingIds.add(entry.entry_id);
    }
  }
  renderCounts();
  const arrived = [...waitingIds].some((id) => !knownWaiting.has(id));
  if (arrived && state === "ready") chime();
  knownWaiting = waitingIds;
  byTestId("desk").hidden = false;
  setState("ready");
}

const slotOrder = (a, b) =>
  (Date.parse(a.starts_at) - Date.parse(b.starts_at)) || (a.room_id < b.room_id ? -1 : a.room_id > b.room_id ? 1 : 0);

/** A `desk_delta` (docs/protocol.md, "Desk deltas"): changed rows only, in slot order. */
function applyDelta(delta) {
  if (!lastDesk || !delta || !Array.isArray(delta.rows)) return;
  const byId = new Map(lastDesk.rows.map((row) => [row.room_id, row]));
  for (const roomId of delta.removed || []) byId.delete(roomId);
  const changed = new Set();
  for (const row of delta.rows) {
    byId.set(row.room_id, row);
    changed.add(row.room_id);
  }
  const moved = [];
  for (const [roomId, at] of Object.entries(delta.expected || {})) {
    const row = byId.get(roomId);
    if (row && !changed.has(roomId)) {
      row.expected_start = at;
      moved.push(row);
    }
  }
  if ("practice" in delta) lastDesk.practice = delta.practice;
  lastDesk.now = delta.now;
  lastDesk.rows = [...byId.values()].sort(slotOrder);
  renderPractice(lastDesk.practice);
  const typing = typedInputs();
  for (const roomId of delta.removed || []) {
    const tr = rowElements.get(roomId);
    if (tr) tr.remove();
    rowElements.delete(roomId);
  }
  const now = Date.now();
  // From the last row up, so the row after each one is already in place.
  for (let index = lastDesk.rows.length - 1; index >= 0; index -= 1) {
    const row = lastDesk.rows[index];
    if (!changed.has(row.room_id)) continue;
    const old = rowElements.get(row.room_id);
    const tr = rowElement(row, now);
    rowElements.set(row.room_id, tr);
    const next = index + 1 < lastDesk.rows.length ? rowElements.get(lastDesk.rows[index + 1].room_id) : null;
    if (old) old.remove();
    rowsBody.insertBefore(tr, next || null);
  }
  for (const row of moved) {
    const cellOfRow = rowElements.get(row.room_id)?.querySelector('[data-testid="desk-expected"]');
    if (cellOfRow) cellOfRow.textContent = expectedText(row);
  }
  restoreInputs(typing);
  settle();
}

// A sentence for the practitioner ("Message sent.", a refusal) stays this long before
// live updates put the count back in its place.
const NOTICE_MS = 4000;
let noticeUntil = 0;

function tell(key) {
  bindText(summary, key);
  noticeUntil = Date.now() + NOTICE_MS;
  setTimeout(renderCounts, NOTICE_MS);
}

function renderCounts() {
  if (Date.now() >= noticeUntil) {
    bindText(summary, waitingCount === 0 ? "desk.nobody_waiting" : "desk.count_waiting", { count: waitingCount });
  }
  bindText(document.querySelector("title"), waitingCount ? "desk.title_count" : "desk.title", { count: waitingCount });
}

const token = tokenFromFragment();
let socket = null;

async function request(event, payload) {
  const ack = await socket.timeout(10000).emitWithAck(event, payload).catch(() => null);
  if (!ack) return { ok: false, error: { code: "timeout" } };
  if (!ack.ok && !(ack.error && typeof ack.error === "object")) return { ok: false, error: {} };
  return ack;
}

async function admit(row, entry) {
  const ack = await request("admit", { room_id: row.room_id, entry_id: entry.entry_id });
  if (!ack.ok) {
    tell(reasonOf(ack.error).key);
    return;
  }
  // The consultation happens in the room: open it beside the desk.
  window.open(ack.link, `room-${row.room_id}`, "noopener");
}

async function act(event, payload) {
  const ack = await request(event, payload);
  if (!ack.ok) tell(reasonOf(ack.error).key);
}

async function endConsultation(row) {
  const confirmed = await askToConfirm({
    message: { key: "desk.confirm_end", params: { name: row.patient_name } },
    confirmLabel: { key: "confirm.end_button" },
  });
  if (confirmed) await act("end", { room_id: row.room_id });
}

async function deny(row, entry, reason) {
  const confirmed = await askToConfirm({
    message: { key: "confirm.deny", params: { name: entry.name } },
    confirmLabel: { key: "confirm.deny_button", params: { name: entry.name } },
  });
  if (!confirmed) return;
  const payload = { room_id: row.room_id, entry_id: entry.entry_id };
  if (reason.trim()) payload.reason = reason.trim();
  await act("deny", payload);
}

/** Refusal codes of the desk's handshake, as the catalogue's sentences. */
function refusalKey(code) {
  if (code === "room_closed") return "desk.expired";
  if (code === "token_missing") return "desk.incomplete";
  if (code === "room_not_yet_open") return "desk.not_yet_valid";
  return "desk.invalid";
}

/** Connects at once (a desk link may be about to expire); shows nothing before `language`. */
function connect(language) {
  // `delta`: the day once, then only what changed (docs/protocol.md, "Desk deltas").
  socket = window.io("/desk", { auth: { token, delta: true }, transports: ["websocket"], timeout: 5000 });
  // Applied in order: a delta waits for the document (and the catalogues) before it. A
  // failed step still surfaces (unhandled), but does not stop the ones after it.
  let applied = Promise.resolve();
  const then = (step) => {
    applied = applied.catch(() => {}).then(() => language).then(step);
  };
  socket.on("desk", (desk) => then(() => render(desk)));
  socket.on("desk_delta", (delta) => then(() => state !== "error" && applyDelta(delta)));
  socket.on("connect", () => {
    notice.hidden = true;
  });
  socket.on("disconnect", (reason) => {
    if (reason === "io server disconnect") {
      // The server ended it (the desk link expired): no names left on screen.
      rowsBody.replaceChildren();
      language.then(() => showError("desk.expired"));
      return;
    }
    notice.hidden = false;
  });
  socket.on("connect_error", (error) => {
    const data = error && error.data;
    if (data && data.code === "rate_limited") {
      // Too many connections on this desk link (reloads): try again when told, not an error.
      notice.hidden = false;
      const wait = Number.isFinite(data.retry_after) ? data.retry_after : 5;
      setTimeout(() => socket.connect(), Math.max(1, wait) * 1000);
      return;
    }
    if (data && (typeof data.code === "string" || typeof data.message === "string")) {
      socket.disconnect();
      language.then(() => showError(refusalKey(data.code)));
    }
  });
  messageForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = messageText.value.trim();
    if (!text) return;
    const ack = await request("message", { text });
    if (ack.ok) {
      messageText.value = "";
      bindText(messageStatus, "desk.sent_to", { count: ack.recipients });
    } else {
      bindText(messageStatus, reasonOf(ack.error).key);
    }
  });
  // Times waited move on even when nothing else changes. Not after an error:
  // an expired desk must not bring the names back.
  setInterval(() => state === "ready" && lastDesk && render(lastDesk), 30_000);
}

async function startLanguage() {
  try {
    await loadCatalogues();
  } catch {
    // Without catalogues the keys show; the desk still works.
  }
  const switcher = byTestId("language-switcher");
  onLocaleChange((locale) => {
    switcher.value = locale;
    if (state === "ready" && lastDesk) render(lastDesk);
  });
  switcher.addEventListener("change", () => {
    rememberLocale(switcher.value);
    setLocale(switcher.value);
  });
  setLocale(
    chooseLocale({
      stored: storedLocale(),
      languages: navigator.languages || [navigator.language],
      fallback: deploymentLocale(),
    }),
  );
}

function boot() {
  const language = startLanguage();
  if (!token) language.then(() => showError("desk.incomplete"));
  else if (typeof window.io !== "function") language.then(() => showError("desk.page_failed"));
  else connect(language);
}

boot();
