// Choosing the camera, microphone and speaker (docs/web_client.md, "Devices"):
// on the device check and during the call. A new camera or microphone
// replaces the track in our stream and on the publish connection (no
// renegotiation: the E2EE transform stays on the sender); the speaker is
// each remote video's `setSinkId`, where the browser has it.

import { canChooseSpeaker, deviceOf, listDevices, MicLevel, openTrack } from "./devices.js";
import * as mediaScreens from "./media-screens.js";
import { byTestId } from "./screens.js";
import { app } from "./state.js";

/** Refreshes the three selects from the browser's devices (labels show once allowed). */
export async function fillDeviceChoice() {
  const { cameras, microphones, speakers } = await listDevices();
  const stream = app.stream;
  const current = (kind) => {
    const tracks = !stream ? [] : kind === "audio" ? stream.getAudioTracks() : stream.getVideoTracks();
    return tracks.length ? deviceOf(tracks[0]) : "";
  };
  mediaScreens.renderDeviceOptions("camera-select", cameras, current("video"), "audio.camera_n");
  mediaScreens.renderDeviceOptions("microphone-select", microphones, current("audio"), "audio.microphone_n");
  mediaScreens.renderDeviceOptions(
    "speaker-select",
    canChooseSpeaker() ? speakers : [],
    app.speakerId,
    "audio.speaker_n",
  );
}

export function wireDeviceChoice() {
  byTestId("camera-select").addEventListener("change", (event) => {
    useDevice("video", event.target.value).catch(() => showChoiceError());
  });
  byTestId("microphone-select").addEventListener("change", (event) => {
    useDevice("audio", event.target.value).catch(() => showChoiceError());
  });
  byTestId("speaker-select").addEventListener("change", (event) => {
    useSpeaker(event.target.value);
  });
  if (navigator.mediaDevices && typeof navigator.mediaDevices.addEventListener === "function") {
    // A headset plugged in or out.
    navigator.mediaDevices.addEventListener("devicechange", () => {
      if (app.stream) fillDeviceChoice().catch(() => {});
    });
  }
}

function showChoiceError(key = "audio.device_failed") {
  const element = byTestId("device-choice-error");
  element.hidden = false;
  mediaScreens.renderChoiceError(element, key);
}

/** Switches to another camera or microphone, keeping whether it was turned off. */
export async function useDevice(kind, deviceId) {
  byTestId("device-choice-error").hidden = true;
  const stream = app.stream;
  if (!stream) return;
  const old = kind === "audio" ? stream.getAudioTracks()[0] : stream.getVideoTracks()[0];
  if (!old || deviceOf(old) === deviceId) return;
  const track = await openTrack(kind, deviceId, old);
  if (!track) return;
  track.enabled = old.enabled;
  if (app.call) await app.call.replaceTrack(kind, track);
  stream.removeTrack(old);
  old.stop();
  stream.addTrack(track);
  // A MediaStream's new track is not always picked up by a playing element.
  for (const video of document.querySelectorAll("video.mirrored")) {
    if (video.srcObject === stream) {
      video.srcObject = null;
      video.srcObject = stream;
    }
  }
  if (kind === "audio" && app.micLevel) {
    const meter = app.micLevel.meter;
    app.micLevel.stop();
    app.micLevel = new MicLevel(stream, meter);
  }
}

/** Sends the call's sound to `deviceId`, now and for remote videos added later. */
export function useSpeaker(deviceId) {
  app.speakerId = deviceId;
  for (const video of document.querySelectorAll('[data-testid="remote-video"]')) applySpeaker(video);
}

/** The chosen speaker on one remote video (a new tile). */
export function applySpeaker(video) {
  if (!app.speakerId || typeof video.setSinkId !== "function") return;
  video.setSinkId(app.speakerId).catch(() => showChoiceError("audio.speaker_failed"));
}
