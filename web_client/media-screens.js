// The DOM side of audio only, device choice and connection quality (no
// decisions: device-choice.js, call-quality.js and device-check.js decide).

import { bindAttr, bindText } from "./i18n.js";
import { bindSpec, byTestId } from "./screens.js";

const QUALITY_KEYS = { good: "audio.quality_good", fair: "audio.quality_fair", poor: "audio.quality_poor" };

function tileOf(subscriptionId) {
  for (const tile of byTestId("remote-videos").querySelectorAll(".remote-tile")) {
    if (tile.dataset.subscriptionId === subscriptionId) return tile;
  }
  return null;
}

/** Our own link: `quality-self` with data-quality, and the video step we send at. */
export function renderQualitySelf(quality, step) {
  const element = byTestId("quality-self");
  element.dataset.quality = QUALITY_KEYS[quality] ? quality : "unknown";
  element.dataset.videoStep = String(step);
  bindText(element, QUALITY_KEYS[quality] ? `${QUALITY_KEYS[quality]}_self` : "audio.quality_measuring");
}

export function renderAudioOnlyOffer(shown) {
  byTestId("audio-only-offer").hidden = !shown;
}

/** Pressed: we send no video (the camera is released). `available`: there is a camera to drop. */
export function renderAudioOnlyToggle(pressed, available) {
  const button = byTestId("audio-only");
  button.hidden = !available;
  button.setAttribute("aria-pressed", pressed ? "true" : "false");
  bindText(button, pressed ? "audio.video_back" : "audio.audio_only");
  byTestId("toggle-camera").hidden = !available || pressed;
}

function initials(name) {
  const words = name.trim().split(/\s+/).filter(Boolean);
  if (words.length === 0) return "?";
  const letters = words.length === 1 ? [words[0]] : [words[0], words[words.length - 1]];
  return letters.map((w) => [...w][0].toUpperCase()).join("");
}

function who(name, role) {
  if (name) return { key: "audio.name", params: { name } };
  return { key: `call.tile_${role === "practitioner" ? "practitioner" : role === "guest" ? "guest" : "patient"}` };
}

/** Adds the quality badge, the avatar and the poor-connection note to a remote tile. */
export function decorateRemoteTile(subscriptionId, { name, role }) {
  const tile = tileOf(subscriptionId);
  if (!tile || tile.querySelector(".remote-avatar")) return;
  const badge = document.createElement("span");
  badge.className = "quality quality-remote";
  badge.dataset.testid = "quality-remote";
  badge.dataset.quality = "unknown";
  badge.setAttribute("role", "status");
  bindText(badge, "audio.quality_measuring");
  const avatar = document.createElement("div");
  avatar.className = "remote-avatar";
  avatar.dataset.testid = "remote-avatar";
  avatar.hidden = true;
  const circle = document.createElement("span");
  circle.className = "avatar-initials";
  circle.setAttribute("aria-hidden", "true");
  circle.textContent = name ? initials(name) : "?"; // From the name as typed, not a key.
  const label = document.createElement("span");
  label.className = "avatar-name";
  bindSpec(label, who(name, role));
  const why = document.createElement("span");
  why.className = "avatar-why";
  why.dataset.testid = "remote-no-video";
  avatar.append(circle, label, why);
  const note = document.createElement("p");
  note.className = "remote-poor";
  note.dataset.testid = "remote-poor";
  note.hidden = true;
  tile.append(badge, avatar, note);
}

/**
 * One remote participant's media: `quality` (good | fair | poor | unknown) and
 * `avatar` (null, "no-video": they send none, "frozen": their picture stopped
 * on a poor link) shown instead of the video.
 */
export function renderRemoteMedia(subscriptionId, { name, role, quality, avatar }) {
  const tile = tileOf(subscriptionId);
  if (!tile) return;
  const badge = tile.querySelector('[data-testid="quality-remote"]');
  if (badge) {
    const known = Boolean(QUALITY_KEYS[quality]);
    badge.dataset.quality = known ? quality : "unknown";
    if (known) bindText(badge, QUALITY_KEYS[quality], { name: name || "" });
    else bindText(badge, "audio.quality_measuring");
    bindAttr(badge, "aria-label", known ? `${QUALITY_KEYS[quality]}_of` : "audio.quality_measuring", {
      name: name || "",
    });
  }
  const box = tile.querySelector('[data-testid="remote-avatar"]');
  if (box) {
    box.hidden = !avatar;
    const reason = box.querySelector('[data-testid="remote-no-video"]');
    bindText(reason, avatar === "frozen" ? "audio.picture_paused" : avatar ? "audio.no_video" : null);
  }
  tile.classList.toggle("avatar-shown", Boolean(avatar));
  tile.dataset.video = avatar === "no-video" ? "false" : "true";
  const note = tile.querySelector('[data-testid="remote-poor"]');
  if (note) {
    note.hidden = quality !== "poor";
    if (quality === "poor") {
      bindSpec(note, name ? { key: "audio.remote_poor", params: { name } } : { key: `audio.remote_poor_${role === "practitioner" ? "practitioner" : "patient"}` });
    }
  }
}

/** The device check: why the camera is not there, and the audio-only choice; null hides it. */
export function renderCameraProblem(key) {
  const block = byTestId("camera-problem");
  block.hidden = !key;
  bindSpec(byTestId("camera-problem-message"), key || null);
  for (const frame of document.querySelectorAll(".video-frame-preview")) {
    frame.classList.toggle("no-camera", Boolean(key));
  }
}

/** Fills one of camera-select, microphone-select, speaker-select; keeps the chosen one. */
export function renderDeviceOptions(testId, devices, chosen, fallbackKey) {
  const select = byTestId(testId);
  select.replaceChildren();
  devices.forEach((device, index) => {
    const option = document.createElement("option");
    option.value = device.deviceId;
    // Labels come from the system (the device's own name), not from us.
    if (device.label) option.textContent = device.label;
    else bindText(option, fallbackKey, { number: index + 1 });
    select.append(option);
  });
  if (chosen && devices.some((d) => d.deviceId === chosen)) select.value = chosen;
  select.disabled = devices.length < 2;
  select.closest("[data-device-row]").hidden = devices.length === 0;
}

/** The one device-choice block goes where the person is: the device check or the call. */
export function placeDeviceChoice(slot) {
  const block = byTestId("device-choice");
  const target = document.querySelector(`[data-device-slot="${slot}"]`);
  if (target && block.parentElement !== target) target.append(block);
}

export function renderChoiceError(element, key) {
  bindText(element, key);
}
