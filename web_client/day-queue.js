// The practitioner's queue of the day beside the call (docs/web_client.md,
// `day-queue`): every appointment of the day across their rooms, in slot
// order, with who waits, since when, who is late and who did not come. People
// waiting in the current room are in the room's own list above it
// (waiting-list.js); those of the other appointments are listed here, each a
// `waiting-entry` with Admit and Decline. The list is drawn from the room
// documents of the desk (docs/protocol.md, `/desk`) by one function,
// `DayQueue.render(rooms)`, and updated in place, keyed by room and entry, so
// a live update never steals focus or what is being typed.

import { askToConfirm } from "./confirm.js";
import { formatTime, formatWaited, parseInstant } from "./format.js";
import { bindAttr, bindText, onLocaleChange, t } from "./i18n.js";
import { byTestId, setInline } from "./screens.js";

const STATES = new Set(["scheduled", "waiting", "in_consultation", "ended", "no_show", "cancelled"]);
const REFRESH_MS = 15_000;
const MAX_REPLIES = 20;

function make(tag, className, testId) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (testId) node.dataset.testid = testId;
  return node;
}

function nameOf(entry) {
  return typeof entry.name === "string" && entry.name ? entry.name : t("panel.a_patient");
}

/** The rows of a desk document that are usable, with their lists always arrays. */
export function validRooms(rooms) {
  return (Array.isArray(rooms) ? rooms : [])
    .filter((row) => row && typeof row.room_id === "string")
    .map((row) => ({
      ...row,
      waiting: (Array.isArray(row.waiting) ? row.waiting : []).filter(
        (entry) => entry && typeof entry.entry_id === "string",
      ),
      in_call: (Array.isArray(row.in_call) ? row.in_call : []).filter(
        (person) => person && typeof person.entry_id === "string",
      ),
    }));
}

/** The first person waiting in the practitioner's order (slot, then check-in): {row, entry}. */
export function firstWaiting(rooms) {
  for (const row of validRooms(rooms)) {
    if (row.waiting.length) return { row, entry: row.waiting[0] };
  }
  return null;
}

/** What a row's state says: waiting since, late, no-show… (a text spec). */
function rowStatus(row, now) {
  const state = STATES.has(row.state) ? row.state : "scheduled";
  const since = parseInstant(row.waiting_since);
  if (state === "waiting" && since) {
    return { key: "dayscreen.waiting_since", params: { time: formatTime(since), waited: formatWaited(since, now) } };
  }
  const starts = parseInstant(row.starts_at);
  if (state === "scheduled" && starts && starts.getTime() < now) {
    // Their slot has begun and they have not checked in.
    return { key: "dayscreen.late", params: { minutes: Math.max(1, Math.floor((now - starts.getTime()) / 60000)) } };
  }
  return { key: `desk.state_${state}` };
}

export class DayQueue {
  /**
   * `actions` is {admit(row, entry), deny(row, entry, reason)}, each returning a
   * Promise that rejects with an error whose `text` is the sentence to show.
   */
  constructor(actions) {
    this.actions = actions;
    this.root = byTestId("day-queue");
    this.list = byTestId("day-rows");
    this.rows = new Map();
    this.rooms = [];
    this.currentRoomId = null;
    this.timer = setInterval(() => this.refresh(), REFRESH_MS);
    onLocaleChange(() => this.refresh());
  }

  /** The day from the desk's room documents; `currentRoomId` is the room of the call. */
  render(rooms, currentRoomId = this.currentRoomId) {
    this.rooms = validRooms(rooms);
    this.currentRoomId = currentRoomId;
    const wanted = new Set(this.rooms.map((row) => row.room_id));
    for (const [id, item] of this.rows) {
      if (!wanted.has(id)) {
        item.element.remove();
        this.rows.delete(id);
      }
    }
    this.rooms.forEach((row, index) => {
      let item = this.rows.get(row.room_id);
      if (!item) {
        item = this.createRow(row);
        this.rows.set(row.room_id, item);
      }
      item.row = row;
      this.fillRow(item, row);
      const current = this.list.children[index];
      if (current !== item.element) this.list.insertBefore(item.element, current || null);
    });
    byTestId("day-empty").hidden = this.rooms.length > 0;
    this.root.hidden = false;
    this.forgetReplies();
    this.refresh();
  }

  /** Answers go with their room: once it is over (or gone), they are no longer shown. */
  forgetReplies() {
    const open = new Set(
      this.rooms.filter((row) => !["ended", "cancelled"].includes(row.state)).map((row) => row.room_id),
    );
    const list = byTestId("waiting-replies");
    for (const item of [...list.children]) {
      if (!open.has(item.dataset.roomId)) item.remove();
    }
    byTestId("waiting-replies-block").hidden = list.children.length === 0;
  }

  /** Who someone in the day's rooms is, by entry id (for tiles and notices). */
  nameOf(entryId) {
    for (const row of this.rooms) {
      for (const person of [...row.waiting, ...row.in_call]) {
        if (person.entry_id === entryId) return nameOf(person);
      }
    }
    return "";
  }

  createRow(row) {
    const element = make("li", "day-row", "day-row");
    element.dataset.roomId = row.room_id;
    const heading = make("p", "day-row-heading");
    const time = make("span", "day-time", "day-time");
    const patient = make("span", "day-patient", "day-patient");
    const current = make("span", "day-current", "day-current");
    bindText(current, "dayscreen.this_consultation");
    heading.append(time, " ", patient, " ", current);
    const status = make("p", "day-status", "day-status");
    const entries = make("ul", "waiting-entries");
    element.append(heading, status, entries);
    return { element, time, patient, current, status, entries, items: new Map(), row };
  }

  fillRow(item, row) {
    item.element.dataset.state = STATES.has(row.state) ? row.state : "scheduled";
    const isCurrent = row.room_id === this.currentRoomId;
    item.element.classList.toggle("is-current", isCurrent);
    item.current.hidden = !isCurrent;
    const starts = parseInstant(row.starts_at);
    item.time.textContent = starts ? formatTime(starts) : "";
    item.patient.textContent = typeof row.patient_name === "string" ? row.patient_name : "";
    // The current room's people are in the room's own list, with its live details.
    const shown = isCurrent ? [] : row.waiting;
    const wanted = new Set(shown.map((entry) => entry.entry_id));
    for (const [id, entry] of item.items) {
      if (!wanted.has(id)) {
        entry.element.remove();
        item.items.delete(id);
      }
    }
    shown.forEach((entry, index) => {
      let entryItem = item.items.get(entry.entry_id);
      if (!entryItem) {
        entryItem = this.createEntry(item, entry);
        item.items.set(entry.entry_id, entryItem);
      }
      entryItem.entry = entry;
      entryItem.since = parseInstant(entry.waiting_since);
      entryItem.awaySince = parseInstant(entry.away_since);
      entryItem.element.dataset.away = entryItem.awaySince ? "true" : "false";
      entryItem.element.classList.toggle("is-away", entryItem.awaySince !== null);
      const current = item.entries.children[index];
      if (current !== entryItem.element) item.entries.insertBefore(entryItem.element, current || null);
    });
  }

  createEntry(rowItem, entry) {
    const name = nameOf(entry);
    const element = make("li", "waiting-entry", "waiting-entry");
    element.dataset.entryId = entry.entry_id;
    element.dataset.roomId = rowItem.row.room_id;
    element.dataset.role = entry.role === "guest" ? "guest" : "patient";
    const who = make("p", "waiting-name");
    who.textContent = name;
    if (entry.role === "guest") {
      const badge = make("span", "guest-badge", "guest-badge");
      bindText(badge, "panel.guest_badge");
      who.append(" ", badge);
    }
    const waited = make("p", "waiting-time");
    const buttons = make("div", "waiting-actions");
    const admit = actionButton("admit", "panel.admit", name, "button button-primary");
    const deny = actionButton("deny", "panel.deny", name, "button button-secondary");
    const reason = make("input", "", "deny-reason");
    reason.maxLength = 300;
    bindAttr(reason, "placeholder", "panel.deny_reason_placeholder");
    bindAttr(reason, "aria-label", "panel.deny_reason_name", { name });
    buttons.append(admit, reason, deny);
    element.append(who, waited, buttons);
    const item = { element, waited, entry, since: null, awaySince: null };
    const run = async (action) => {
      admit.disabled = true;
      deny.disabled = true;
      setInline("waiting-list-error", null);
      try {
        await action(rowItem.row, item.entry, reason.value);
      } catch (error) {
        setInline("waiting-list-error", error.text || "errors.generic");
      } finally {
        admit.disabled = false;
        deny.disabled = false;
      }
    };
    admit.addEventListener("click", () => run(this.actions.admit));
    deny.addEventListener("click", async () => {
      const confirmed = await askToConfirm({
        message: { key: "confirm.deny", params: { name } },
        confirmLabel: { key: "confirm.deny_button", params: { name } },
      });
      if (confirmed && element.isConnected) run(this.actions.deny);
    });
    return item;
  }

  /** Times waited and lateness move on even when nothing else changes. */
  refresh() {
    const now = Date.now();
    for (const item of this.rows.values()) {
      const status = rowStatus(item.row, now);
      bindText(item.status, status.key, status.params);
      for (const entry of item.items.values()) {
        const waited = entry.since ? formatWaited(entry.since, now) : t("waited.unknown");
        entry.waited.textContent = entry.awaySince
          ? t("panel.away_since", { waited, time: formatTime(entry.awaySince) })
          : waited;
      }
    }
    const next = firstWaiting(this.rooms);
    const admitNext = byTestId("admit-next");
    admitNext.disabled = !next;
    if (next) bindAttr(admitNext, "aria-label", "dayscreen.admit_next_name", { name: nameOf(next.entry) });
    else bindAttr(admitNext, "aria-label", "dayscreen.admit_next");
  }

  /** A waiting patient's answer (`patient_reply`), newest first; seen only here. */
  addReply(reply) {
    if (!reply || typeof reply.text !== "string" || !reply.text.trim()) return;
    const sentAt = parseInstant(reply.sent_at) || new Date();
    const item = make("li", "waiting-reply", "waiting-reply");
    item.dataset.entryId = typeof reply.entry_id === "string" ? reply.entry_id : "";
    item.dataset.roomId = typeof reply.room_id === "string" ? reply.room_id : "";
    const time = make("time", "message-time");
    time.dateTime = sentAt.toISOString();
    time.textContent = formatTime(sentAt);
    const who = make("strong", "");
    who.textContent = nameOf(reply); // As they are named, never HTML.
    const body = make("span", "");
    body.textContent = reply.text.trim();
    item.append(time, " ", who, " ", body);
    const list = byTestId("waiting-replies");
    list.prepend(item);
    while (list.children.length > MAX_REPLIES) list.lastChild.remove();
    byTestId("waiting-replies-block").hidden = false;
    bindText(byTestId("waiting-announcer"), "dayscreen.reply_announce", { name: nameOf(reply) });
  }

  /** No names left on screen (the page ended, or the desk link expired). */
  clear() {
    clearInterval(this.timer);
    this.rows.clear();
    this.rooms = [];
    this.list.replaceChildren();
    byTestId("waiting-replies").replaceChildren();
    byTestId("waiting-replies-block").hidden = true;
  }
}

/** Visible text stays short ("Admit"); its accessible name says whom ("Admit Alice Martin"). */
function actionButton(testId, key, name, className) {
  const button = make("button", className, testId);
  button.type = "button";
  bindText(button, key);
  bindAttr(button, "aria-label", `${key}_name`, { name });
  return button;
}
