// Moving the practitioner into another room of their day (docs/web_client.md,
// "The practitioner's day"): admitting someone who waits for another
// appointment. The running camera and microphone go along (no second device
// check); the current consultation is ended or paused, as the practitioner
// chooses; the page connects to the other room with a practitioner token the
// server mints for that same practitioner (`room_token`, docs/protocol.md),
// opens it, and only then admits the patient, who therefore never waits in
// an empty call.

import { clearChat } from "./call-chat.js";
import { startCallMedia } from "./call-screen.js";
import { askToConfirm } from "./confirm.js";
import { endedByAck } from "./endings.js";
import { rememberJoinLink } from "./link.js";
import { reasonOf } from "./messages.js";
import * as screens from "./screens.js";
import { Signalling } from "./signalling.js";
import { app, metrics } from "./state.js";
import { closeCall } from "./teardown.js";

const FIRST_SESSION_MS = 10_000;

// app.js's wiring of a connection's events (set at boot: app.js is above us).
let wire = () => {};

export function configureRoomSwitch(wireSignalling) {
  wire = wireSignalling;
}

/** A failed move, with the sentence to show for it (a text spec). */
export class MoveError extends Error {
  constructor(text) {
    super(text.key);
    this.text = text;
  }
}

/** The new connection's first `session`, or its refusal (`{code}`) or a timeout. */
function firstSession(signalling) {
  return new Promise((resolve, reject) => {
    const done = (session, error) => {
      clearTimeout(timer);
      signalling.off("session", onSession);
      signalling.off("connect_error", onRefused);
      if (session) resolve(session);
      else reject(error);
    };
    const onSession = (session) => done(session && typeof session === "object" ? session : null, { code: "invalid_response" });
    // A network failure is retried by socket.io; the timer bounds it.
    const onRefused = (error) => {
      const data = error && error.data;
      if (data && typeof data.code === "string") done(null, data);
    };
    const timer = setTimeout(() => done(null, { code: "timeout" }), FIRST_SESSION_MS);
    signalling.on("session", onSession);
    signalling.on("connect_error", onRefused);
  });
}

function names(people) {
  return people.map((person) => person.name).filter(Boolean).join(", ");
}

/**
 * How to leave the current consultation for `entry`: "leave" when nobody else
 * is in it, else "end" or "pause" as the practitioner answers; null: stay.
 */
async function chooseHowToLeave(entry, others) {
  if (!others.length) return "leave";
  const current = names(others);
  const answer = await askToConfirm({
    message: { key: "dayscreen.switch_confirm", params: { current, next: entry.name } },
    confirmLabel: { key: "dayscreen.switch_end", params: { current } },
    alternative: { key: "dayscreen.switch_pause", params: { current } },
  });
  if (!answer) return null;
  return answer === "alternative" ? "pause" : "end";
}

/** End the consultation for everyone, or send those in it back to wait (first in line). */
async function leaveConsultation(previous, how, others) {
  try {
    if (how === "end") {
      await previous.request("end_consultation", {});
    } else if (how === "pause") {
      for (const person of others) {
        await previous.request("return_to_waiting", { entry_id: person.entry_id });
      }
    }
  } catch {
    // Disconnecting, next, takes us out of that room anyway; the queue shows the rest.
  }
}

/**
 * Moves into `row`'s room and admits `entry` there; `others` are those in the
 * current call ({entry_id, name}). Resolves false when the practitioner
 * cancelled; throws a MoveError when the move failed (still in the current room).
 */
export async function moveToRoom(row, entry, others) {
  if (app.moving || app.finished) return false;
  const how = await chooseHowToLeave(entry, others);
  if (!how || app.finished) return false;
  app.moving = true;
  const failed = (error) =>
    new MoveError({ key: "panel.admit_failed", params: { name: entry.name, reason: reasonOf(error) } });
  let next = null;
  try {
    let session;
    let token;
    try {
      ({ token } = await app.signalling.request("room_token", { room_id: row.room_id }));
      next = new Signalling({ token, roomId: row.room_id }, window.io);
      session = await firstSession(next);
    } catch (error) {
      // Still in the current room: nothing was changed there.
      if (next) next.disconnect();
      throw failed(error);
    }
    const previous = app.signalling;
    // From here on the old connection's events are ignored (app.js guards them).
    wire(next);
    app.signalling = next;
    app.session = session;
    rememberJoinLink(window, row.room_id, token);
    await leaveConsultation(previous, how, others);
    previous.disconnect();
    // Our media keys and connections go with the old room; the camera stays on.
    closeCall();
    clearChat();
    if (app.waitingList) app.waitingList.render([]);
    screens.showNotice("call-notice", null);
    try {
      await next.request("open_consultation", {});
      startCallMedia();
      if (metrics.admittedAt === null) metrics.admittedAt = performance.now();
      await next.request("admit", { entry_id: entry.entry_id });
    } catch (error) {
      if (endedByAck(error)) return true;
      throw failed(error);
    }
    return true;
  } finally {
    app.moving = false;
  }
}
