// The DOM side of each state. index.html holds every screen; this module only
// fills in text and shows one screen at a time, so the page never depends on
// inline styles (the Content-Security-Policy forbids them). Texts are
// catalogue keys (`{key, params}` or a key), bound to their element by i18n.js
// so that a language switch re-renders them.

import { bindAttr, bindText } from "./i18n.js";

export const STATES = Object.freeze([
  "precall",
  "waiting",
  "in-call",
  "ended",
  "denied",
  "not-yet-open",
  "closed",
  "error",
  "replaced",
]);

// The end-of-journey screens, where the practice's contact is shown.
const OUTCOMES = new Set(["ended", "denied", "closed", "error", "not-yet-open"]);
let practiceContact = false;

/** The element with this data-testid (each is unique in the page). */
export function byTestId(testId, root = document) {
  return root.querySelector(`[data-testid="${testId}"]`);
}

/** Binds `text` ({key, params}, a key, or null for nothing) to the element. */
export function bindSpec(element, text) {
  if (!text) bindText(element, null);
  else if (typeof text === "string") bindText(element, text);
  else bindText(element, text.key, text.params);
}

export function setText(testId, text) {
  bindSpec(byTestId(testId), text);
}

/** Shows `text` in the element, or hides it when there is none. */
export function setInline(testId, text) {
  const element = byTestId(testId);
  bindSpec(element, text);
  element.hidden = !text;
}

/** Shows the screen of `state` (state.js decides which); `focus` moves focus to its heading. */
export function showState(state, { focus }) {
  document.body.dataset.state = state;
  for (const screen of document.querySelectorAll("[data-screen]")) {
    screen.hidden = screen.dataset.screen !== state;
  }
  byTestId("practice-contact").hidden = !(practiceContact && OUTCOMES.has(state));
  if (focus) {
    // Screen reader and keyboard users land on the new screen's heading.
    const heading = document.querySelector(`[data-screen="${state}"] h1`);
    if (heading) heading.focus({ preventScroll: false });
  }
}

/** Fills an end-of-journey screen (ended, denied, not-yet-open, closed, error); show() shows it. */
export function renderOutcome(state, { title, message, retry = false, retryLabel = "error.try_again" }) {
  const screen = document.querySelector(`[data-screen="${state}"]`);
  if (title) bindText(screen.querySelector("h1"), title);
  const messageId = state === "error" ? "error-message" : `${state}-message`;
  setText(messageId, message);
  if (state === "error") {
    const button = byTestId("retry");
    bindText(button, retryLabel);
    button.hidden = !retry;
  }
}

/** The practice (`session.practice`, optional `{name, phone}`): header, and whom to contact. */
export function renderPractice(practice) {
  const name = practice && typeof practice.name === "string" ? practice.name.trim() : "";
  const phone = practice && typeof practice.phone === "string" ? practice.phone.trim() : "";
  const header = byTestId("practice-name");
  header.textContent = name; // As the booking system wrote it, not a key.
  header.hidden = !name;
  const contact = byTestId("practice-contact");
  if (name && phone) bindText(contact, "app.practice_contact_phone", { name, phone });
  else if (name) bindText(contact, "app.practice_contact", { name });
  else if (phone) bindText(contact, "app.practice_contact_phone_only", { phone });
  practiceContact = Boolean(name || phone);
}

export function showNotice(testId, text) {
  setInline(testId, text);
}

export function renderPrecall({ role, withText, timeText }) {
  bindText(byTestId("check-in"), role === "practitioner" ? "precall.open_consultation" : "precall.check_in");
  setText("appointment-with", withText);
  setText("appointment-time", timeText);
  byTestId("appointment").hidden = false;
  byTestId("connecting-note").hidden = true;
}

export function setCheckInEnabled(enabled) {
  byTestId("check-in").disabled = !enabled;
}

export function attachStream(testId, stream) {
  const video = byTestId(testId);
  if (video.srcObject !== stream) video.srcObject = stream;
}

export function renderWaitingPosition(position) {
  const text =
    Number.isInteger(position) && position > 0
      ? position === 1
        ? { key: "waiting.position_next" }
        : { key: "waiting.position", params: { position } }
      : { key: "waiting.position_unknown" };
  setText("waiting-position", text);
}

export function renderCallRole(role, practitionerName) {
  const isPractitioner = role === "practitioner";
  byTestId("waiting-list").hidden = !isPractitioner;
  document.querySelector(".call-layout").classList.toggle("with-panel", isPractitioner);
  bindText(byTestId("hang-up"), isPractitioner ? "call.end" : "call.leave");
  setText(
    "stage-placeholder",
    isPractitioner
      ? { key: "call.placeholder_practitioner" }
      : practitionerName
        ? { key: "call.placeholder_patient", params: { name: practitionerName } }
        : { key: "call.placeholder_patient_unnamed" },
  );
}

/** Reflects a mute/camera-off toggle: pressed means the device is off. */
export function renderToggle(testId, off, { onLabel, offLabel }) {
  const button = byTestId(testId);
  button.setAttribute("aria-pressed", off ? "true" : "false");
  bindText(button, off ? offLabel : onLabel);
}

export function renderCameraOff(off) {
  byTestId("local-tile").classList.toggle("camera-off", off);
}

/** One tile per subscription; returns its <video> (audio plays from it too). `label` is a text spec. */
export function addRemoteTile(subscriptionId, role, label) {
  const container = byTestId("remote-videos");
  const tile = document.createElement("figure");
  tile.className = "video-frame remote-tile";
  tile.dataset.subscriptionId = subscriptionId;
  const video = document.createElement("video");
  video.dataset.testid = "remote-video";
  video.dataset.publisherRole = role;
  video.autoplay = true;
  video.playsInline = true;
  video.setAttribute("playsinline", "");
  const caption = document.createElement("figcaption");
  caption.className = "tile-label";
  bindSpec(caption, label);
  bindAttr(video, "aria-label", label.key, label.params);
  tile.append(video, caption);
  container.append(tile);
  updatePlaceholder();
  return video;
}

export function removeRemoteTile(subscriptionId) {
  for (const tile of byTestId("remote-videos").querySelectorAll(".remote-tile")) {
    if (tile.dataset.subscriptionId !== subscriptionId) continue;
    const video = tile.querySelector("video");
    video.srcObject = null;
    tile.remove();
  }
  updatePlaceholder();
}

function updatePlaceholder() {
  const count = byTestId("remote-videos").querySelectorAll(".remote-tile").length;
  byTestId("stage-placeholder").hidden = count > 0;
  byTestId("remote-videos").classList.toggle("several", count > 1);
}

export function clearVideos() {
  for (const video of document.querySelectorAll("video")) video.srcObject = null;
  for (const tile of document.querySelectorAll(".remote-tile")) tile.remove();
  updatePlaceholder();
}

const E2EE_STATES = new Set(["pending", "encrypted", "failing", "off"]);

/** `state` is one of pending, encrypted, failing, off (docs/web_client.md). */
export function renderE2eeStatus(state) {
  const element = byTestId("e2ee-status");
  element.dataset.state = state;
  bindText(element, `e2ee.${E2EE_STATES.has(state) ? state : "pending"}`);
}

/** The safety code, or hidden while nobody else is in the call. */
export function renderSafetyCode(code) {
  setText("safety-code", code || "");
  byTestId("safety").hidden = !code;
}

/** Newest first: the latest word from the practitioner is what matters. */
export function addPractitionerMessage(message, sentAt) {
  const item = document.createElement("li");
  item.className = "practitioner-message";
  item.dataset.testid = "practitioner-message";
  const time = document.createElement("time");
  time.className = "message-time";
  time.dateTime = sentAt.toISOString();
  bindText(time, "time.clock", { time: { time: sentAt.toISOString() } });
  const body = document.createElement("span");
  body.textContent = message; // Text, never HTML: it comes from another person.
  item.append(time, body);
  byTestId("practitioner-message-list").prepend(item);
  byTestId("practitioner-messages").hidden = false;
}

/** The remote videos, in the order they came. */
export function remoteVideos() {
  return byTestId("remote-videos").querySelectorAll('[data-testid="remote-video"]');
}

/** Removes the remote videos only; our own camera keeps playing. */
export function clearRemoteVideos() {
  for (const tile of document.querySelectorAll(".remote-tile")) {
    const video = tile.querySelector("video");
    if (video) video.srcObject = null;
    tile.remove();
  }
  updatePlaceholder();
}

/** A "Send back to the waiting room" button on a patient's or guest's tile. */
export function addReturnToWaiting(subscriptionId, name, onClick) {
  for (const tile of byTestId("remote-videos").querySelectorAll(".remote-tile")) {
    if (tile.dataset.subscriptionId !== subscriptionId) continue;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "button return-to-waiting";
    button.dataset.testid = "return-to-waiting";
    bindText(button, "call.send_back");
    bindAttr(button, "aria-label", "call.send_back_name", { name });
    button.addEventListener("click", () => onClick(button));
    tile.append(button);
  }
}

export function showGuestLink(name, link) {
  byTestId("guest-link-name").textContent = name; // A name as typed, not a key.
  byTestId("guest-link").value = link;
  setText("copy-guest-link-status", null);
  byTestId("guest-link-block").hidden = false;
}
