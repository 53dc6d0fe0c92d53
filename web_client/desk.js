// The practitioner's desk (docs/web_client.md): the day's consultations across
// rooms, live over the `/desk` Socket.IO namespace. The token is in the
// fragment of `/d#<token>` and never leaves this browser except to the server's
// websocket handshake.

import { chime } from "./chime.js";
import { formatTime, formatWaited, parseInstant } from "./format.js";

const STATE_LABELS = {
  scheduled: "Scheduled",
  waiting: "Waiting",
  in_consultation: "In consultation",
  ended: "Ended",
  no_show: "No-show",
  cancelled: "Cancelled",
};

const body = document.body;
const rowsBody = document.querySelector('[data-testid="desk-rows"]');
const summary = document.querySelector('[data-testid="desk-summary"]');
const empty = document.querySelector('[data-testid="desk-empty"]');
const notice = document.querySelector('[data-testid="connection-notice"]');
const messageForm = document.querySelector('[data-testid="desk-message-form"]');
const messageText = document.querySelector('[data-testid="desk-message-text"]');
const messageStatus = document.querySelector('[data-testid="desk-message-status"]');
const baseTitle = document.title;

// "connecting" (as desk.html starts), "ready" or "error"; written to body[data-state].
let state = "connecting";
let lastDesk = null;
let knownWaiting = new Set();

function setState(next) {
  state = next;
  body.dataset.state = next;
}

function showError(message) {
  setState("error");
  document.querySelector('[data-testid="desk"]').hidden = true;
  document.querySelector('[data-testid="desk-error"]').hidden = false;
  document.querySelector('[data-testid="error-message"]').textContent = message;
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

function button(label, testid, onClick, kind = "") {
  const node = element("button", { type: "button", class: `button ${kind}`.trim(), "data-testid": testid }, label);
  node.addEventListener("click", onClick);
  return node;
}

function stateText(row, now) {
  const label = STATE_LABELS[row.state] || row.state;
  const since = parseInstant(row.waiting_since);
  if (row.state === "waiting" && since) return `${label} since ${formatTime(since)} (${formatWaited(since, now)})`;
  return label;
}

// The table is rebuilt on every update: keep what the practitioner is typing.
function typedInputs() {
  const typed = new Map();
  for (const input of rowsBody.querySelectorAll("input[data-key]")) typed.set(input.dataset.key, input.value);
  const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.key : undefined;
  return { typed, focused };
}

function restoreInputs({ typed, focused }) {
  for (const input of rowsBody.querySelectorAll("input[data-key]")) {
    if (typed.has(input.dataset.key)) input.value = typed.get(input.dataset.key);
    if (input.dataset.key === focused) input.focus();
  }
}

function render(desk) {
  lastDesk = desk;
  const now = Date.now();
  const typing = typedInputs();
  rowsBody.replaceChildren();
  let waitingCount = 0;
  const waitingIds = new Set();
  for (const row of desk.rows) {
    const tr = element("tr", { class: "desk-row", "data-testid": "desk-row", "data-state": row.state, "data-room-id": row.room_id });
    const starts = parseInstant(row.starts_at);
    const expected = parseInstant(row.expected_start);
    tr.append(
      element("td", { "data-testid": "desk-time" }, starts ? formatTime(starts) : ""),
      element("td", { "data-testid": "desk-patient" }, row.patient_name),
      element("td", { "data-testid": "desk-state" }, stateText(row, now)),
      element("td", { "data-testid": "desk-expected" }, expected ? formatTime(expected) : ""),
    );
    const actions = element("td");
    for (const entry of row.waiting) {
      waitingCount += 1;
      waitingIds.add(entry.entry_id);
      const line = element("div", { class: "desk-waiting-entry", "data-testid": "desk-waiting-entry", "data-entry-id": entry.entry_id });
      const who = entry.role === "guest" ? `${entry.name} (guest)` : entry.name;
      const away = parseInstant(entry.away_since);
      line.dataset.away = away ? "true" : "false";
      // Reloading or offline for a moment: their place is kept for a while.
      line.append(element("span", {}, away ? `${who} — away since ${formatTime(away)}` : who));
      const reason = element("input", { "data-testid": "desk-deny-reason", "data-key": `reason-${entry.entry_id}`, maxlength: "300", placeholder: "Reason shown to the patient (optional)", "aria-label": "Reason" });
      line.append(
        button("Admit", "desk-admit", () => admit(row, entry)),
        reason,
        button("Deny", "desk-deny", () => deny(row, entry, reason.value), "button-danger"),
      );
      actions.append(line);
    }
    for (const person of row.in_call || []) {
      const line = element("div", { class: "desk-waiting-entry", "data-testid": "desk-in-call-entry", "data-entry-id": person.entry_id });
      line.append(
        element("span", {}, person.role === "guest" ? `${person.name} (guest), in the call` : `${person.name}, in the call`),
        button("Send back to waiting room", "desk-return-to-waiting", () => act("return_to_waiting", { room_id: row.room_id, entry_id: person.entry_id })),
      );
      actions.append(line);
    }
    if (row.state === "in_consultation") {
      actions.append(button("End consultation", "desk-end", () => act("end", { room_id: row.room_id }), "button-danger"));
    }
    if (row.state === "waiting") {
      const text = element("input", { "data-testid": "desk-room-message-text", "data-key": `message-${row.room_id}`, maxlength: "500", placeholder: "Message to this patient", "aria-label": "Message to this patient" });
      actions.append(
        text,
        button("Send", "desk-room-message-send", async () => {
          if (!text.value.trim()) return;
          const ack = await request("message", { room_id: row.room_id, text: text.value.trim() });
          summary.textContent = ack.ok ? "Message sent." : ack.error.message;
        }),
      );
    }
    if (row.link) {
      const open = element("a", { href: row.link, target: `room-${row.room_id}`, rel: "noopener", "data-testid": "desk-open", class: "button button-secondary" }, "Open room");
      actions.append(open);
    }
    tr.append(actions);
    rowsBody.append(tr);
  }
  restoreInputs(typing);
  empty.hidden = desk.rows.length !== 0;
  summary.textContent = waitingCount === 0 ? "Nobody is waiting." : `${waitingCount} waiting.`;
  document.title = waitingCount ? `(${waitingCount}) waiting — ${baseTitle}` : baseTitle;
  const arrived = [...waitingIds].some((id) => !knownWaiting.has(id));
  if (arrived && state === "ready") chime();
  knownWaiting = waitingIds;
  document.querySelector('[data-testid="desk"]').hidden = false;
  setState("ready");
}

const token = tokenFromFragment();
let socket = null;

async function request(event, payload) {
  const ack = await socket.timeout(10000).emitWithAck(event, payload).catch(() => null);
  if (!ack) return { ok: false, error: { message: "The server did not answer in time." } };
  return ack;
}

async function admit(row, entry) {
  const ack = await request("admit", { room_id: row.room_id, entry_id: entry.entry_id });
  if (!ack.ok) {
    summary.textContent = ack.error.message;
    return;
  }
  // The consultation happens in the room: open it beside the desk.
  window.open(ack.link, `room-${row.room_id}`, "noopener");
}

async function act(event, payload) {
  const ack = await request(event, payload);
  if (!ack.ok) summary.textContent = ack.error.message;
}

async function deny(row, entry, reason) {
  const payload = { room_id: row.room_id, entry_id: entry.entry_id };
  if (reason.trim()) payload.reason = reason.trim();
  const ack = await request("deny", payload);
  if (!ack.ok) summary.textContent = ack.error.message;
}

if (!token) {
  showError("This desk link is incomplete: the access key is missing.");
} else if (typeof window.io !== "function") {
  showError("The page could not load completely. Please reload it.");
} else {
  socket = window.io("/desk", { auth: { token }, transports: ["websocket"], timeout: 5000 });
  socket.on("desk", render);
  socket.on("connect", () => {
    notice.hidden = true;
  });
  socket.on("disconnect", (reason) => {
    if (reason === "io server disconnect") {
      // The server ended it (the desk link expired): no names left on screen.
      rowsBody.replaceChildren();
      showError("This desk link has expired: ask for a new one.");
      return;
    }
    notice.hidden = false;
  });
  socket.on("connect_error", (error) => {
    const data = error && error.data;
    if (data && typeof data.message === "string") {
      socket.disconnect();
      showError(data.message);
    }
  });
  messageForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = messageText.value.trim();
    if (!text) return;
    const ack = await request("message", { text });
    if (ack.ok) {
      messageText.value = "";
      messageStatus.textContent = `Sent to ${ack.recipients} waiting.`;
    } else {
      messageStatus.textContent = ack.error.message;
    }
  });
  // Times waited move on even when nothing else changes. Not after an error:
  // an expired desk must not bring the names back.
  setInterval(() => state === "ready" && lastDesk && render(lastDesk), 30_000);
}
