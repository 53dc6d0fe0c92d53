// The too-early screen (docs/web_client.md, `not-yet-open`): the appointment,
// when the room opens and a live countdown to it, and a camera and microphone
// test the person can do now. The stream it opens is kept for the device check,
// which the page moves to by itself when the room opens (connection.js).

import { advice, cannotCall } from "./browser-support.js";
import { DeviceError, MicLevel, openMedia, stopStream } from "./devices.js";
import { transformSupport } from "./e2ee.js";
import { parseInstant } from "./format.js";
import * as text from "./messages.js";
import * as screens from "./screens.js";
import { app } from "./state.js";
import { stopMicLevel } from "./teardown.js";

const { byTestId } = screens;
const TICK_MS = 1000;

/** Fills the screen from the refusal (`opens_at`, and for a genuine link its appointment). */
export function renderTooEarly(opensAt, details) {
  screens.setText("not-yet-open-message", text.notYetOpenMessage(opensAt));
  const startsAt = parseInstant(details && details.starts_at);
  const name = details && typeof details.practitioner_name === "string" ? details.practitioner_name : "";
  let appointment = null;
  if (startsAt) {
    const when = { moment: startsAt.toISOString() };
    appointment = name
      ? { key: "not_yet_open.appointment_with", params: { name, when } }
      : { key: "not_yet_open.appointment", params: { when } };
  }
  screens.setInline("not-yet-open-appointment", appointment);
  screens.renderPractice(details && details.practice);
  // Said now, while there is time to change browser (the call itself is refused at `session`).
  const blocked = cannotCall() || !transformSupport();
  screens.setInline(
    "browser-warning",
    blocked ? { key: "browsers.warning_early", params: { advice: advice() } } : null,
  );
  startCountdown(opensAt);
}

function startCountdown(opensAt) {
  clearInterval(app.countdownTimer);
  const element = byTestId("not-yet-open-countdown");
  element.hidden = !opensAt;
  if (!opensAt) return;
  const tick = () => {
    const seconds = Math.max(0, Math.ceil((opensAt.getTime() - Date.now()) / 1000));
    screens.setText("not-yet-open-countdown", countdownText(seconds));
    if (seconds === 0 || app.screen !== "not-yet-open") clearInterval(app.countdownTimer);
  };
  tick();
  app.countdownTimer = setInterval(tick, TICK_MS);
}

/** "Opens in 1 h 05 min", "in 4 min 30 s", "in 20 s", then "Opening…". */
export function countdownText(seconds) {
  if (seconds <= 0) return { key: "not_yet_open.opening" };
  const hours = Math.floor(seconds / 3600);
  const minutes = Math.floor((seconds % 3600) / 60);
  const rest = seconds % 60;
  if (hours > 0) {
    return { key: "not_yet_open.in_hours", params: { hours, minutes: String(minutes).padStart(2, "0") } };
  }
  if (minutes > 0) return { key: "not_yet_open.in_minutes", params: { minutes, seconds: rest } };
  return { key: "not_yet_open.in_seconds", params: { seconds: rest } };
}

/** "Test my camera and microphone": the same check as later, now. */
export async function testDevicesEarly() {
  if (app.stream || app.startingDevices) return;
  app.startingDevices = true;
  byTestId("early-device-test").disabled = true;
  screens.setText("early-device-status", "precall.starting_devices");
  let stream;
  let cameraProblem = null;
  try {
    ({ stream, cameraProblem } = await openMedia());
  } catch (error) {
    if (!(error instanceof DeviceError)) throw error;
    screens.setText("early-device-status", error.message);
    byTestId("early-device-test").disabled = false;
    return;
  } finally {
    app.startingDevices = false;
  }
  if (app.finished || app.screen !== "not-yet-open") {
    stopStream(stream);
    return;
  }
  app.stream = stream;
  app.cameraProblem = cameraProblem;
  byTestId("early-device-test").hidden = true; // Done: the preview and the meter show it.
  byTestId("early-devices").hidden = false;
  screens.attachStream("early-preview", stream);
  try {
    app.micLevel = new MicLevel(stream, byTestId("early-mic-level"));
  } catch {
    app.micLevel = null;
  }
  // Without a camera: why, and that the consultation can still be by voice.
  screens.setText("early-device-status", cameraProblem || "not_yet_open.devices_ok");
}

/** Leaving the screen: the countdown stops, the preview lets go (the stream stays for precall). */
export function leaveTooEarly() {
  clearInterval(app.countdownTimer);
  stopMicLevel();
  byTestId("early-preview").srcObject = null;
}
