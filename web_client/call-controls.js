// The buttons under the call: mute, camera off, hang up.

import { askToConfirm } from "./confirm.js";
import { endedByAck, finish, leaveQuietly, practitionerEnded } from "./endings.js";
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
