// How the page ends (docs/web_client.md, terminal states): one screen that
// says what happened, with everything released, and late events ignored.

import { dismissConfirm } from "./confirm.js";
import * as text from "./messages.js";
import * as screens from "./screens.js";
import { app, show } from "./state.js";
import { releaseMedia } from "./teardown.js";

const LEAVE_TIMEOUT_MS = 3000;
const ENDING_CODES = new Set(["room_ended", "room_closed", "room_cancelled"]);

/** Shows the terminal screen of `outcome` ({state, title, message, retry, retryLabel, listen}). */
export function finish(outcome) {
  if (app.finished) return;
  app.finished = true;
  dismissConfirm();
  // Over for good: a reload must not try to take a place back. After an
  // error it may (Rejoin reloads the page).
  if (outcome.state !== "error" && app.resumeSecret) app.resumeSecret.clear();
  releaseMedia();
  if (app.waitingList) app.waitingList.stop();
  if (app.desk) app.desk.close(); // The day's queue: no names left on screen.
  // A declined page stays connected to hear `undenied` (the practitioner's undo, a re-open).
  if (app.signalling && !outcome.listen) app.signalling.disconnect();
  screens.showNotice("connection-notice", null);
  screens.renderOutcome(outcome.state, outcome);
  show(outcome.state);
}

/** Ends on the right screen when an ack says the room is over; true if it did. */
export function endedByAck(error) {
  if (!error || !ENDING_CODES.has(error.code)) return false;
  finish(text.outcomeForCode(error.code));
  return true;
}

/** An uncaught error or rejection anywhere on the page. */
export function pageFailed() {
  if (app.finished) return;
  if (app.screen === "in-call") {
    // Do not cut a call that may still work; say so instead.
    screens.showNotice("call-notice", "call.page_failed");
    return;
  }
  finish({ state: "error", title: "error.page_failed_title", message: text.PAGE_FAILED, retry: true });
}

/** Emits `leave`; a failure or a timeout does not matter. */
export async function leaveQuietly() {
  try {
    await app.signalling.request("leave", {}, LEAVE_TIMEOUT_MS);
  } catch {
    // Disconnecting, which follows, also takes us out on the server.
  }
}

export function practitionerEnded() {
  return { state: "ended", title: "ended.title", message: "ended.by_you" };
}

export function onRoomEnded(payload) {
  if (app.finished) return;
  if (app.hangingUp) {
    finish(practitionerEnded()); // Our own end_consultation, announced to everyone.
    return;
  }
  finish(text.outcomeForRoomEnded(payload && payload.reason));
}
