// The practitioner's day beside the call (docs/web_client.md, "The
// practitioner's day"): their join page also connects to the desk namespace
// with the desk token its `session` carries (docs/protocol.md), and lists the
// day across rooms (day-queue.js). From here the practitioner admits or
// declines anyone waiting, "Admit next", messages the waiting room and reads
// the patients' answers; they are told when someone in the call drops,
// leaves or comes back.

import { chime } from "./chime.js";
import { DayQueue, firstWaiting, validRooms } from "./day-queue.js";
import { bindText } from "./i18n.js";
import { formatTime } from "./format.js";
import { reasonOf } from "./messages.js";
import { MoveError, moveToRoom } from "./room-switch.js";
import * as screens from "./screens.js";
import { app, metrics } from "./state.js";
import { offerUndo } from "./undo-deny.js";

const { byTestId } = screens;
const REQUEST_TIMEOUT_MS = 10_000;

// {socket, queue, rooms, presence: {roomId, inCall: Map}}; null until a practitioner's session.
let day = null;
let controlsWired = false;

function currentRoomId() {
  return (app.session && app.session.room && app.session.room.id) || null;
}

/** Connects the day's queue, once, for a practitioner's session that carries a desk token. */
export function startDayScreen(session) {
  if (day || app.finished || !session || session.role !== "practitioner") return;
  if (typeof session.desk_token !== "string" || typeof window.io !== "function") return;
  const socket = window.io("/desk", {
    auth: { token: session.desk_token },
    transports: ["websocket"],
    timeout: 5000,
    // Its own connection: it outlives the room connections as the practitioner moves.
    forceNew: true,
  });
  day = {
    socket,
    queue: new DayQueue({ admit: admitFrom, deny: denyFrom }),
    rooms: [],
    presence: { roomId: null, inCall: new Map() },
  };
  app.desk = { close: stopDayScreen, nameOf: (entryId) => day && day.queue.nameOf(entryId) };
  socket.on("desk", onDesk);
  socket.on("patient_reply", (reply) => {
    if (!day) return;
    day.queue.addReply(reply);
    chime();
  });
  socket.on("connect_error", (error) => {
    // A refused desk token: the room's own list still works; the day is not shown.
    if (error && error.data && typeof error.data.code === "string") stopDayScreen();
  });
  socket.on("disconnect", (reason) => {
    // The server ended it (its token expired): no names left on screen.
    if (reason === "io server disconnect") stopDayScreen();
  });
  if (!controlsWired) {
    controlsWired = true;
    byTestId("admit-next").addEventListener("click", admitNext);
    byTestId("day-queue-toggle").addEventListener("click", toggleQueue);
    byTestId("day-message-form").addEventListener("submit", sendMessage);
  }
}

export function stopDayScreen() {
  if (!day) return;
  day.socket.disconnect();
  day.queue.clear();
  byTestId("day-queue").hidden = true;
  day = null;
}

function onDesk(document) {
  if (!day || app.finished || !document || typeof document !== "object") return;
  day.rooms = validRooms(document.rows);
  day.queue.render(day.rooms, currentRoomId());
  notePresence();
}

function request(event, payload) {
  return day.socket
    .timeout(REQUEST_TIMEOUT_MS)
    .emitWithAck(event, payload)
    .catch(() => ({ ok: false, error: { code: "timeout" } }));
}

/** Those in the current call other than us, as the day's documents list them. */
function othersInCall() {
  const row = day.rooms.find((room) => room.room_id === currentRoomId());
  return row ? row.in_call.map((person) => ({ entry_id: person.entry_id, name: person.name })) : [];
}

async function admitFrom(row, entry) {
  if (!day) return;
  if (row.room_id === currentRoomId()) {
    if (metrics.admittedAt === null) metrics.admittedAt = performance.now();
    try {
      await app.signalling.request("admit", { entry_id: entry.entry_id });
    } catch (error) {
      throw new MoveError({ key: "panel.admit_failed", params: { name: entry.name, reason: reasonOf(error) } });
    }
    return;
  }
  const moved = await moveToRoom(row, entry, othersInCall());
  if (moved && day) {
    day.queue.render(day.rooms, currentRoomId());
    notePresence();
  }
}

async function denyFrom(row, entry, reason = "") {
  const payload = { room_id: row.room_id, entry_id: entry.entry_id };
  if (reason.trim()) payload.reason = reason.trim();
  const ack = await request("deny", payload);
  if (!ack || ack.ok !== true) {
    throw new MoveError({ key: "panel.deny_failed", params: { name: entry.name, reason: reasonOf(ack && ack.error) } });
  }
  // A few seconds to take it back, in whichever of the practitioner's rooms it was.
  if (!app.finished) {
    offerUndo(entry.entry_id, entry.name, (id) =>
      request("undeny", { room_id: row.room_id, entry_id: id }),
    );
  }
}

/** "Admit next": the first person waiting in the practitioner's order, in any room. */
async function admitNext() {
  if (!day) return;
  const next = firstWaiting(day.rooms);
  if (!next) return;
  const button = byTestId("admit-next");
  button.disabled = true;
  screens.setInline("waiting-list-error", null);
  try {
    await admitFrom(next.row, next.entry);
  } catch (error) {
    screens.setInline("waiting-list-error", error.text || "errors.generic");
  } finally {
    button.disabled = !(day && firstWaiting(day.rooms));
  }
}

/** On a phone the day's queue is behind this toggle; wider screens always show it. */
function toggleQueue() {
  const root = byTestId("day-queue");
  const open = root.classList.toggle("is-open");
  const toggle = byTestId("day-queue-toggle");
  toggle.setAttribute("aria-expanded", open ? "true" : "false");
  bindText(toggle, open ? "dayscreen.hide" : "dayscreen.show");
}

async function sendMessage(event) {
  event.preventDefault();
  const input = byTestId("day-message-text");
  const text = input.value.trim();
  if (!day || !text) return;
  const ack = await request("message", { text });
  if (ack && ack.ok === true) {
    input.value = "";
    screens.setText("day-message-status", { key: "desk.sent_to", params: { count: ack.recipients } });
  } else {
    screens.setText("day-message-status", reasonOf(ack && ack.error));
  }
}

/**
 * Someone in the current call dropped (their place is kept for the resume
 * grace), came back, or left: say so beside the call, by name.
 */
function notePresence() {
  const roomId = currentRoomId();
  const row = day.rooms.find((room) => room.room_id === roomId);
  const inCall = new Map((row ? row.in_call : []).map((person) => [person.entry_id, person]));
  const waiting = new Set((row ? row.waiting : []).map((entry) => entry.entry_id));
  const { presence } = day;
  if (presence.roomId === roomId) {
    for (const [id, before] of presence.inCall) {
      const after = inCall.get(id);
      const name = before.name;
      if (!after) {
        // Sent back to the waiting room is the practitioner's own doing: no notice.
        if (!waiting.has(id)) notice("dayscreen.presence_left", { name });
      } else if (!before.away_since && after.away_since) {
        const grace = (app.session && app.session.resume_grace_seconds) || 120;
        notice("dayscreen.presence_dropped", { name, minutes: Math.max(1, Math.round(grace / 60)) });
      } else if (before.away_since && !after.away_since) {
        notice("dayscreen.presence_back", { name });
      }
    }
  } else {
    clearNotices(); // Another consultation.
  }
  day.presence = { roomId, inCall };
}

const MAX_NOTICES = 3;

/** One more line of who dropped, came back or left (the last few stay, with their time). */
function notice(key, params) {
  const list = byTestId("presence-notices");
  const item = document.createElement("li");
  item.className = "presence-notice";
  item.dataset.testid = "presence-notice";
  const time = document.createElement("time");
  const now = new Date();
  time.dateTime = now.toISOString();
  time.textContent = formatTime(now);
  const text = document.createElement("span");
  bindText(text, key, params);
  item.append(time, " ", text);
  list.append(item);
  while (list.children.length > MAX_NOTICES) list.firstChild.remove();
  list.hidden = false;
}

function clearNotices() {
  const list = byTestId("presence-notices");
  list.replaceChildren();
  list.hidden = true;
}
