// The DOM side of each state. index.html holds every screen; this module only
// fills in text and shows one screen at a time, so the page never depends on
// inline styles (the Content-Security-Policy forbids them).

export const STATES = Object.freeze([
  "precall",
  "waiting",
  "in-call",
  "ended",
  "denied",
  "not-yet-open",
  "closed",
  "error",
]);

/** The element with this data-testid (each is unique in the page). */
export function byTestId(testId, root = document) {
  return root.querySelector(`[data-testid="${testId}"]`);
}

export function setText(testId, text) {
  byTestId(testId).textContent = text;
}

/** Shows `text` in the element, or hides it when text is empty. */
export function setInline(testId, text) {
  const element = byTestId(testId);
  element.textContent = text || "";
  element.hidden = !text;
}

/** Shows the screen of `state` (state.js decides which); `focus` moves focus to its heading. */
export function showState(state, { focus }) {
  document.body.dataset.state = state;
  for (const screen of document.querySelectorAll("[data-screen]")) {
    screen.hidden = screen.dataset.screen !== state;
  }
  if (focus) {
    // Screen reader and keyboard users land on the new screen's heading.
    const heading = document.querySelector(`[data-screen="${state}"] h1`);
    if (heading) heading.focus({ preventScroll: false });
  }
}

/** Fills an end-of-journey screen (ended, denied, not-yet-open, closed, error); show() shows it. */
export function renderOutcome(state, { title, message, retry = false, retryLabel = "Try again" }) {
  const screen = document.querySelector(`[data-screen="${state}"]`);
  if (title) screen.querySelector("h1").textContent = title;
  const messageId = state === "error" ? "error-message" : `${state}-message`;
  setText(messageId, message);
  if (state === "error") {
    const button = byTestId("retry");
    button.textContent = retryLabel;
    button.hidden = !retry;
  }
}

export function showNotice(testId, text) {
  setInline(testId, text);
}

export function renderPrecall({ role, withText, timeText }) {
  byTestId("check-in").textContent = role === "practitioner" ? "Open consultation" : "Check in";
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
        ? "You are number 1 in the queue: you are next."
        : `You are number ${position} in the queue.`
      : "You are in the queue.";
  setText("waiting-position", text);
}

export function renderCallRole(role, practitionerName) {
  const isPractitioner = role === "practitioner";
  byTestId("waiting-list").hidden = !isPractitioner;
  document.querySelector(".call-layout").classList.toggle("with-panel", isPractitioner);
  byTestId("hang-up").textContent = isPractitioner ? "End consultation" : "Leave consultation";
  setText(
    "stage-placeholder",
    isPractitioner
      ? "When you admit a patient, they will appear here."
      : `Connecting you with ${practitionerName || "the practitioner"}…`,
  );
}

/** Reflects a mute/camera-off toggle: pressed means the device is off. */
export function renderToggle(testId, off, { onLabel, offLabel }) {
  const button = byTestId(testId);
  button.setAttribute("aria-pressed", off ? "true" : "false");
  button.textContent = off ? offLabel : onLabel;
}

export function renderCameraOff(off) {
  byTestId("local-tile").classList.toggle("camera-off", off);
}

/** One tile per subscription; returns its <video> (audio plays from it too). */
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
  caption.textContent = label;
  video.setAttribute("aria-label", label);
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

const E2EE_TEXTS = {
  pending: "Securing the call…",
  encrypted: "End-to-end encrypted: only the people in this call can see and hear it.",
  failing: "Some video or sound could not be decrypted, so it is not shown.",
  off: "Not end-to-end encrypted: this server runs in a diagnostic mode.",
};

/** `state` is one of pending, encrypted, failing, off (docs/web_client.md). */
export function renderE2eeStatus(state) {
  const element = byTestId("e2ee-status");
  element.dataset.state = state;
  element.textContent = E2EE_TEXTS[state] || E2EE_TEXTS.pending;
}

/** The safety code, or hidden while nobody else is in the call. */
export function renderSafetyCode(code) {
  setText("safety-code", code || "");
  byTestId("safety").hidden = !code;
}

/** Newest first: the latest word from the practitioner is what matters. */
export function addPractitionerMessage(message, sentAt, formatTime) {
  const item = document.createElement("li");
  item.className = "practitioner-message";
  item.dataset.testid = "practitioner-message";
  const time = document.createElement("time");
  time.className = "message-time";
  time.dateTime = sentAt.toISOString();
  time.textContent = formatTime(sentAt);
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
    button.textContent = "Send back to waiting room";
    button.setAttribute("aria-label", `Send ${name} back to the waiting room`);
    button.addEventListener("click", () => onClick(button));
    tile.append(button);
  }
}

export function showGuestLink(name, link) {
  setText("guest-link-name", name);
  byTestId("guest-link").value = link;
  setText("copy-guest-link-status", "");
  byTestId("guest-link-block").hidden = false;
}
