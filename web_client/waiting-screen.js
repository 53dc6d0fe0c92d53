// The patient's virtual waiting room (docs/web_client.md, `waiting`): the place
// in the queue, the practitioner's messages, and what ends the wait.

import { enterCall, prepareCall } from "./call-screen.js";
import { finish, leaveQuietly } from "./endings.js";
import { parseInstant } from "./format.js";
import * as text from "./messages.js";
import * as screens from "./screens.js";
import { app, metrics, practitionerName, show } from "./state.js";
import { mark } from "./timeline.js";
import { closeCall, stopMicLevel } from "./teardown.js";
import { showReplyForm } from "./waiting-reply.js";

const { byTestId } = screens;

/** `key` with the practitioner's name, or its `_unnamed` variant. */
function withPractitioner(key) {
  const name = practitionerName();
  return name ? { key, params: { name } } : { key: `${key}_unnamed` };
}

export function enterWaiting(position, expectedStart = null) {
  stopMicLevel();
  byTestId("device-preview").srcObject = null;
  screens.attachStream("waiting-preview", app.stream);
  screens.setText("waiting-note", withPractitioner("waiting.note"));
  showPosition(position, expectedStart);
  show("waiting");
  prepareCall();
}

export function showPosition(position, expectedStart = app.expectedStart) {
  app.position = Number.isInteger(position) ? position : null;
  app.expectedStart = typeof expectedStart === "string" ? expectedStart : null;
  screens.renderWaitingPosition(position);
  screens.setInline("waiting-expected", text.expectedStartText(app.expectedStart));
}

export function onWaiting(payload) {
  if (app.finished || app.role !== "patient") return;
  const position = payload && payload.position;
  const expectedStart = payload && payload.expected_start;
  const screen = app.screen;
  // While a reloaded page starts its camera, keep the place to show it next.
  if (screen === "waiting" || (screen === "precall" && app.resumed)) {
    showPosition(position, expectedStart);
    // The relay may refuse to connect ahead before the call starts: asked again now and then.
    if (screen === "waiting") prepareCall();
  } else if (screen === "precall" && app.checkingIn) enterWaiting(position, expectedStart);
}

export function onPractitionerMessage(payload) {
  if (app.finished || app.role !== "patient") return;
  const message = payload && typeof payload.text === "string" ? payload.text.trim() : "";
  if (!message) return;
  screens.addPractitionerMessage(message, parseInstant(payload.sent_at) || new Date());
  showReplyForm();
}

export function onReturnedToWaiting() {
  if (app.finished || app.role !== "patient") return;
  if (app.screen === "precall" && app.resumed) {
    app.resumed = "waiting"; // Still starting the camera after a reload.
    return;
  }
  if (app.screen !== "in-call") return;
  // The relay has already dropped our connections and the others rotate their
  // keys; ours go too, so a new admission starts a fresh call and key schedule.
  closeCall();
  enterWaiting(null, null);
  screens.setText("waiting-note", withPractitioner("waiting.returned"));
}

export function onAdmitted() {
  if (app.finished || app.role !== "patient") return;
  if (metrics.admittedAt === null) metrics.admittedAt = performance.now();
  mark("admitted");
  if (!app.stream && app.resumed) {
    app.resumed = "in_call"; // Reloaded and still starting the camera: enter once it runs.
    return;
  }
  enterCall();
}

export function onDenied(payload) {
  if (app.role !== "patient") return;
  finish({ state: "denied", message: text.deniedMessage(payload && payload.reason), listen: true });
}

/** `undenied`: the practitioner undid the decline, or the appointment was re-opened. */
export function onUndenied() {
  if (app.screen === "denied") location.reload();
}

export async function leaveWaitingRoom() {
  byTestId("leave-waiting").disabled = true;
  await leaveQuietly();
  finish({ state: "ended", title: "ended.left_waiting_title", message: "ended.left_waiting" });
}
