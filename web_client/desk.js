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
        bindText(summary, ack.ok ? "desk.message_sent" : reasonOf(ack.error).key);
      },
    });
    bindAttr(send, "aria-label", "desk.send_name", { name: row.patient_name });
    actions.append(text, send);
  }
  if (row.link) {
    const open = element("a", { href: row.link, target: `room-${row.room_id}`, rel: "noopener", "data-testid": "desk-open", "data-key": `open-${row.room_id}`, class: "button button-secondary" });
    bindText(open, "desk.open_room");
    bindAttr(open, "aria-label", "desk.open_room_name", { name: row.patient_name });
    actions.append(open);
  }
  return actions;
}

/** The practice of the day's appointments (`desk.practice`, optional `{name, phone}`). */
function renderPractice(practice) {
  const name = practice && typeof practice.name === "string" ? practice.name.trim() : "";
  const header = byTestId("practice-name");
  header.textContent = name;
  header.hidden = !name;
}

function render(desk) {
  lastDesk = desk;
  renderPractice(desk.practice);
  const now = Date.now();
  const typing = typedInputs();
  const rows = [];
  waitingCount = 0;
  const waitingIds = new Set();
  for (const row of desk.rows) {
    const tr = element("tr", { class: "desk-row", "data-testid": "desk-row", "data-state": row.state, "data-room-id": row.room_id });
    const starts = parseInstant(row.starts_at);
    const expected = parseInstant(row.expected_start);
    for (const entry of row.waiting) {
      waitingCount += 1;
      waitingIds.add(entry.entry_id);
    }
    tr.append(
      cell("time", "desk-time", starts ? formatTime(starts) : ""),
      cell("patient", "desk-patient", row.patient_name),
      cell("state", "desk-state", stateText(row, now)),
      cell("expected", "desk-expected", expected ? formatTime(expected) : ""),
      actionsCell(row),
    );
    rows.push(tr);
  }
  rowsBody.replaceChildren(...rows);
  restoreInputs(typing);
  empty.hidden = desk.rows.length !== 0;
  renderCounts();
  const arrived = [...waitingIds].some((id) => !knownWaiting.has(id));
  if (arrived && state === "ready") chime();
  knownWaiting = waitingIds;
  byTestId("desk").hidden = false;
  setState("ready");
}

function renderCounts() {
  bindText(summary, waitingCount === 0 ? "desk.nobody_waiting" : "desk.count_waiting", { count: waitingCount });
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
    bindText(summary, reasonOf(ack.error).key);
    return;
  }
  // The consultation happens in the room: open it beside the desk.
  window.open(ack.link, `room-${row.room_id}`, "noopener");
}

async function act(event, payload) {
  const ack = await request(event, payload);
  if (!ack.ok) bindText(summary, reasonOf(ack.error).key);
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
  socket = window.io("/desk", { auth: { token }, transports: ["websocket"], timeout: 5000 });
  socket.on("desk", (desk) => language.then(() => render(desk)));
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
