// The device check (docs/web_client.md, `precall`): the camera preview, the
// microphone level and the appointment, then "Check in" (patient) or "Open
// consultation" (practitioner). Without a working camera it says why and
// offers to continue with audio only; without a microphone it stops there.

import { enterCall } from "./call-screen.js";
import { comeBack } from "./coming-back.js";
import { offerConnectionTest } from "./connection-test.js";
import { fillDeviceChoice } from "./device-choice.js";
import { DeviceError, MicLevel, openMedia, stopStream } from "./devices.js";
import { endedByAck, finish } from "./endings.js";
import * as mediaScreens from "./media-screens.js";
import * as text from "./messages.js";
import { ensureWaitingList } from "./practitioner-tools.js";
import * as screens from "./screens.js";
import { app, show } from "./state.js";
import { stopMicLevel } from "./teardown.js";
import { leaveTooEarly } from "./too-early.js";
import { enterWaiting, showPosition } from "./waiting-screen.js";

const { byTestId } = screens;

/** Shows the device check for this session and starts the camera and microphone. */
export async function startPrecall() {
  show("precall");
  screens.renderPrecall({ role: app.role, ...text.appointmentTexts(app.session) });
  ensureWaitingList();
  leaveTooEarly();
  offerConnectionTest();
  if (app.startingDevices) return;
  // Tested already on the too-early screen: the same camera and microphone go on.
  if (!app.stream && !(await openDevices())) return;
  devicesReady();
}

/** The microphone, and the camera if it works; false when the page went elsewhere. */
async function openDevices() {
  app.startingDevices = true;
  screens.setText("device-status", "precall.starting_devices");
  let opened;
  try {
    opened = await openMedia();
  } catch (error) {
    if (!(error instanceof DeviceError)) throw error;
    // Without a microphone there is no consultation: say so plainly.
    finish({ state: "error", title: "audio.mic_title", message: error.message, retry: true });
    return false;
  } finally {
    app.startingDevices = false;
  }
  if (app.finished || app.screen !== "precall") {
    stopStream(opened.stream);
    return false;
  }
  app.stream = opened.stream;
  app.cameraProblem = opened.cameraProblem;
  return true;
}

function devicesReady() {
  const stream = app.stream;
  stopMicLevel();
  screens.attachStream("device-preview", stream);
  try {
    app.micLevel = new MicLevel(stream, byTestId("mic-level"));
  } catch {
    app.micLevel = null; // The level meter is a comfort, not a requirement.
  }
  mediaScreens.placeDeviceChoice("precall");
  fillDeviceChoice().catch(() => {});
  if (app.resumed && app.role === "patient") {
    comeBack(); // After a reload: straight back to where we were (audio only if so).
    return;
  }
  if (app.cameraProblem) {
    // No camera, one in use elsewhere, or refused: the consultation can be by voice.
    mediaScreens.renderCameraProblem(app.cameraProblem);
    screens.setText("device-status", "audio.mic_ok");
    byTestId("check-in").hidden = true;
    return;
  }
  mediaScreens.renderCameraProblem(null);
  byTestId("check-in").hidden = false;
  screens.setText(
    "device-status",
    app.role === "practitioner"
      ? "precall.devices_ok_practitioner"
      : "precall.devices_ok",
  );
  screens.setCheckInEnabled(true);
}

/** "Continue with audio only": check in (or open the consultation) without a camera. */
export function continueAudioOnly() {
  if (!app.stream || app.screen !== "precall") return;
  mediaScreens.renderCameraProblem(null);
  byTestId("check-in").hidden = false;
  screens.setText("device-status", "audio.audio_only_chosen");
  screens.setCheckInEnabled(true);
  onCheckInClick();
}

/** "Try the camera again": after closing the other app or allowing the camera. */
export async function retryCamera() {
  if (app.startingDevices || app.screen !== "precall") return;
  stopMicLevel();
  stopStream(app.stream);
  app.stream = null;
  app.cameraProblem = null;
  mediaScreens.renderCameraProblem(null);
  if (await openDevices()) devicesReady();
}

export function onCheckInClick() {
  if (app.role === "practitioner") openConsultation();
  else checkIn();
}

/** Emits `check_in`: from the device check, or again from `waiting` after a lost place. */
export async function checkIn() {
  if (app.checkingIn || !app.signalling) return;
  app.checkingIn = true;
  screens.setCheckInEnabled(false);
  screens.setInline("precall-error", null);
  screens.setInline("waiting-error", null);
  try {
    const ack = await app.signalling.request("check_in", {});
    // `waiting` events are at least as fresh as the ack, which may come last.
    if (app.finished) return;
    if (app.screen === "precall") enterWaiting(ack.position, ack.expected_start);
    else if (app.screen === "waiting" && app.position === null) {
      showPosition(ack.position, ack.expected_start);
    }
  } catch (error) {
    if (app.finished || endedByAck(error)) return;
    const where = app.screen === "waiting" ? "waiting-error" : "precall-error";
    screens.setInline(where, {
      key: "precall.check_in_failed",
      params: { reason: text.reasonOf(error) },
    });
    screens.setCheckInEnabled(Boolean(app.stream));
  } finally {
    app.checkingIn = false;
  }
}

async function openConsultation() {
  screens.setCheckInEnabled(false);
  screens.setInline("precall-error", null);
  try {
    await app.signalling.request("open_consultation", {});
    if (!app.finished) enterCall();
  } catch (error) {
    if (app.finished || endedByAck(error)) return;
    screens.setInline("precall-error", {
      key: "precall.open_failed",
      params: { reason: text.reasonOf(error) },
    });
    screens.setCheckInEnabled(Boolean(app.stream));
  }
}
