// The buttons under the call: mute, camera off, audio only, hang up.

import { reportMediaState } from "./call-quality.js";
import { askToConfirm } from "./confirm.js";
import { deviceOf, openTrack } from "./devices.js";
import { endedByAck, finish, leaveQuietly, practitionerEnded } from "./endings.js";
import { renderAudioOnlyToggle } from "./media-screens.js";
import { reasonOf } from "./messages.js";
import * as screens from "./screens.js";
import { app } from "./state.js";

const { byTestId } = screens;

function tracksOf(kind) {
  if (!app.stream) return [];
  return kind === "audio" ? app.stream.getAudioTracks() : app.stream.getVideoTracks();
}

function isOff(kind) {
  const tracks = tracksOf(kind);
  return tracks.length === 0 || !tracks[0].enabled;
}

/** `kind` is "audio" or "video". */
export function toggle(kind) {
  const turnOn = isOff(kind);
  // Disabled tracks keep the connection and send silence / black frames, so
  // turning back on is instant and needs no renegotiation.
  for (const track of tracksOf(kind)) track.enabled = turnOn;
  renderToggles();
  if (kind === "video") reportMediaState(); // The others show the avatar meanwhile.
}

let cameraId = "";
let switching = false;

/**
 * Audio only during the call: the camera is released and nothing is sent on
 * the video sender (less to send on a weak link); pressed again, the camera
 * comes back on the same sender. Neither renegotiates.
 */
export async function toggleAudioOnly() {
  if (switching || !app.stream) return;
  switching = true;
  try {
    if (!app.audioOnly) {
      const tracks = app.stream.getVideoTracks();
      if (tracks.length) cameraId = deviceOf(tracks[0]);
      if (app.call) await app.call.replaceTrack("video", null);
      for (const track of tracks) {
        app.stream.removeTrack(track);
        track.stop();
      }
      app.audioOnly = true;
    } else {
      const track = await openTrack("video", cameraId);
      if (app.call && !(await app.call.replaceTrack("video", track))) {
        track.stop(); // This call has no video sender (it was set up audio only).
        return;
      }
      app.stream.addTrack(track);
      app.audioOnly = false;
    }
  } catch {
    screens.showNotice("call-notice", "audio.camera_back_failed");
  } finally {
    switching = false;
    renderToggles();
    reportMediaState();
  }
}

/** Whether this call can drop and take back its camera: it was set up with one. */
function cameraAvailable() {
  if (app.call && app.call.publisher) return Boolean(app.call.sender("video"));
  return !app.cameraProblem;
}

export function renderToggles() {
  screens.renderToggle("toggle-mic", isOff("audio"), {
    onLabel: "call.mute",
    offLabel: "call.unmute",
  });
  screens.renderToggle("toggle-camera", isOff("video"), {
    onLabel: "call.camera_off",
    offLabel: "call.camera_on",
  });
  screens.renderCameraOff(isOff("video"));
  renderAudioOnlyToggle(app.audioOnly, cameraAvailable());
}

/** A patient leaves the consultation; the practitioner ends it for everyone (after a confirmation). */
export async function hangUp() {
  const practitioner = app.role === "practitioner";
  const confirmed = await askToConfirm({
    message: { key: practitioner ? "confirm.end" : "confirm.leave" },
    confirmLabel: { key: practitioner ? "confirm.end_button" : "confirm.leave_button" },
  });
  if (!confirmed || app.finished) return;
  const button = byTestId("hang-up");
  button.disabled = true;
  screens.setInline("hang-up-error", null);
  if (app.role === "patient") {
    await leaveQuietly();
    finish({ state: "ended", title: "ended.title", message: "ended.left_call" });
    return;
  }
  app.hangingUp = true;
  try {
    await app.signalling.request("end_consultation", {});
  } catch (error) {
    app.hangingUp = false;
    if (app.finished || endedByAck(error)) return;
    screens.setInline("hang-up-error", {
      key: "call.end_failed",
      params: { reason: reasonOf(error) },
    });
    button.disabled = false;
    return;
  }
  finish(practitionerEnded());
}
