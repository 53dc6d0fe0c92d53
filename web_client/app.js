// Boot and state machine of the join page (docs/web_client.md). The server's
// Socket.IO events (docs/protocol.md) drive the states; every failure ends on
// a screen that says what happened and, where it can help, offers to retry.

import { DeviceError, MicLevel, openCameraAndMicrophone, stopStream } from "./devices.js";
import { chime } from "./chime.js";
import { E2ee, transformSupport } from "./e2ee.js";
import { formatTime, parseInstant } from "./format.js";
import { parseJoinLink } from "./link.js";
import { Call } from "./media.js";
import * as text from "./messages.js";
import { ResumeSecret } from "./resume.js";
import * as screens from "./screens.js";
import { Signalling } from "./signalling.js";
import { WaitingList } from "./waiting-list.js";

const { byTestId } = screens;

// Before a first successful connection a few failures mean "unreachable";
// once connected, socket.io keeps retrying for a while before we give up.
const FIRST_CONNECT_ATTEMPTS = 3;
// The server keeps a patient's place for 2 minutes by default; keep trying a
// little longer than that before saying the connection is lost.
const RECONNECT_GIVE_UP_MS = 130_000;
const LEAVE_TIMEOUT_MS = 3000;
// setTimeout overflows above this; longer waits are re-armed when they fire.
const MAX_TIMER_MS = 2 ** 31 - 1;
// Retry a little after the opening time (clocks differ), never in a tight loop.
const OPEN_RETRY_MARGIN_MS = 2000;
const OPEN_RETRY_MIN_MS = 5000;
const ENDING_CODES = new Set(["room_ended", "room_closed", "room_cancelled"]);
// However a connection attempt fails, "Connecting…" never stays up longer.
const SESSION_WATCHDOG_MS = 30_000;

// Read by the end-to-end tests: performance.now() of admission and of the
// first decoded remote video frame.
const metrics = { admittedAt: null, firstRemoteFrameAt: null, mediaRestarts: 0 };
window.teleconsultMetrics = metrics;

const app = {
  signalling: null,
  session: null,
  role: "patient",
  stream: null,
  startingDevices: false,
  micLevel: null,
  call: null,
  // End-to-end encryption of the call: null until the call starts, and when
  // the server runs with it off (session.e2ee === "off", for diagnostics only).
  e2ee: null,
  waitingList: null,
  everConnected: false,
  failedAttempts: 0,
  // When the connection dropped (Date.now()), while reconnecting.
  disconnectedAt: 0,
  resumeSecret: null,
  // Where the server put us back after a reload or reconnection: "waiting",
  // "in_call", or null (a fresh start).
  resumed: null,
  checkingIn: false,
  position: null,
  // The latest estimate from `waiting` (an ISO instant), shown under the position.
  expectedStart: null,
  hangingUp: false,
  // A terminal screen (ended, denied, closed, error) is showing: late events are ignored.
  finished: false,
  opensAt: null,
  openTimer: 0,
  watchdog: 0,
};

function practitionerName() {
  return (app.session && app.session.room && app.session.room.practitioner_name) || "";
}

// ---------------------------------------------------------------- endings

function finish(outcome) {
  if (app.finished) return;
  app.finished = true;
  // Over for good: a reload must not try to take a place back. After an
  // error it may (Rejoin reloads the page).
  if (outcome.state !== "error" && app.resumeSecret) app.resumeSecret.clear();
  releaseMedia();
  if (app.waitingList) app.waitingList.stop();
  if (app.signalling) app.signalling.disconnect();
  screens.showNotice("connection-notice", "");
  screens.showOutcome(outcome.state, outcome);
}

function releaseMedia() {
  clearTimeout(app.openTimer);
  clearTimeout(app.watchdog);
  if (app.micLevel) app.micLevel.stop();
  app.micLevel = null;
  closeCall();
  stopStream(app.stream);
  app.stream = null;
  screens.clearVideos();
}

/** Ends our part of the call (connections, keys, remote videos); the camera stays on. */
function closeCall() {
  if (app.call) app.call.close();
  app.call = null;
  if (app.e2ee) app.e2ee.close();
  app.e2ee = null;
  screens.clearRemoteVideos();
  screens.renderSafetyCode(null);
  screens.renderE2eeStatus("pending");
}

/** Ends on the right screen when an ack says the room is over; true if it did. */
function endedByAck(error) {
  if (!error || !ENDING_CODES.has(error.code)) return false;
  finish(text.outcomeForCode(error.code));
  return true;
}

function pageFailed() {
  if (app.finished) return;
  if (screens.currentState() === "in-call") {
    // Do not cut a call that may still work; say so instead.
    screens.showNotice(
      "call-notice",
      "Something went wrong on this page. If the call stops working, leave and join again.",
    );
    return;
  }
  finish({ state: "error", title: "Something went wrong", message: text.PAGE_FAILED, retry: true });
}

// ------------------------------------------------------------- connection

function armSessionWatchdog() {
  clearTimeout(app.watchdog);
  app.watchdog = setTimeout(() => {
    if (app.finished || app.session) return;
    finish({
      state: "error",
      title: "We could not connect you",
      message: text.NETWORK_UNREACHABLE,
      retry: true,
    });
  }, SESSION_WATCHDOG_MS);
}

function onConnect() {
  app.everConnected = true;
  app.failedAttempts = 0;
  app.disconnectedAt = 0;
}

function onConnectError(error) {
  if (app.finished) return;
  const data = error && error.data;
  if (data && typeof data.code === "string") {
    refused(data);
    return;
  }
  // A network failure: socket.io retries by itself, we only count.
  app.failedAttempts += 1;
  const givingUp = app.everConnected
    ? app.disconnectedAt !== 0 && Date.now() - app.disconnectedAt >= RECONNECT_GIVE_UP_MS
    : app.failedAttempts >= FIRST_CONNECT_ATTEMPTS;
  if (givingUp) {
    const wasInCall = screens.currentState() === "in-call";
    finish({
      state: "error",
      title: wasInCall ? "The connection was lost" : "We could not connect you",
      message: wasInCall ? text.CONNECTION_LOST : text.NETWORK_UNREACHABLE,
      retry: true,
      retryLabel: wasInCall ? "Rejoin" : "Try again",
    });
  } else if (app.everConnected) {
    screens.showNotice("connection-notice", "Connection lost. Reconnecting…");
  }
}

function refused(data) {
  if (data.code === "room_not_yet_open") {
    notYetOpen(parseInstant(data.opens_at));
    return;
  }
  finish(text.outcomeForCode(data.code, data.message));
}

function notYetOpen(opensAt) {
  // Nothing to show a camera for yet; the next `session` starts afresh.
  releaseMedia(); // Also disarms the session watchdog: waiting here is expected.
  app.session = null;
  app.opensAt = opensAt;
  screens.showNotice("connection-notice", "");
  screens.setText("not-yet-open-message", text.notYetOpenMessage(opensAt));
  screens.showState("not-yet-open");
  scheduleOpenRetry();
}

function scheduleOpenRetry() {
  clearTimeout(app.openTimer);
  const opensAt = app.opensAt;
  const wait = opensAt ? opensAt.getTime() + OPEN_RETRY_MARGIN_MS - Date.now() : 60_000;
  app.openTimer = setTimeout(
    () => {
      if (opensAt && Date.now() + OPEN_RETRY_MARGIN_MS < opensAt.getTime()) {
        scheduleOpenRetry(); // Woke early: the wait was longer than one timer.
      } else {
        retryConnect();
      }
    },
    Math.min(Math.max(wait, OPEN_RETRY_MIN_MS), MAX_TIMER_MS),
  );
}

function retryConnect() {
  if (app.finished || screens.currentState() !== "not-yet-open") return;
  clearTimeout(app.openTimer);
  app.failedAttempts = 0;
  armSessionWatchdog();
  app.signalling.connect();
}

function onVisible() {
  // Timers in background tabs and sleeping laptops fire late: check on return.
  if (document.visibilityState !== "visible") return;
  if (screens.currentState() !== "not-yet-open" || !app.opensAt) return;
  if (Date.now() >= app.opensAt.getTime()) retryConnect();
}

function onDisconnect(reason) {
  if (app.finished || reason === "io client disconnect") return;
  if (!app.disconnectedAt) app.disconnectedAt = Date.now();
  screens.showNotice("connection-notice", "Connection lost. Reconnecting…");
  // socket.io reconnects by itself except after a server-side disconnect.
  if (reason === "io server disconnect") app.signalling.connect();
}

function onSession(session) {
  if (app.finished) return;
  if (!session || typeof session !== "object") {
    pageFailed();
    return;
  }
  clearTimeout(app.watchdog);
  const again = app.session !== null;
  app.session = session;
  app.role = session.role === "practitioner" ? "practitioner" : "patient";
  // A fresh entry comes with a fresh secret; a resumed one keeps ours.
  if (typeof session.resume === "string" && app.resumeSecret) app.resumeSecret.set(session.resume);
  app.resumed = ["waiting", "in_call"].includes(session.resumed) ? session.resumed : null;
  screens.showNotice("connection-notice", "");
  if (app.call) app.call.setIceServers(session.ice_servers);
  if (!again) {
    if (e2eeRequired() && !transformSupport()) {
      // Never a silently unencrypted call.
      finish({ state: "error", title: "Browser not supported", message: text.E2EE_UNSUPPORTED });
      return;
    }
    startPrecall().catch(pageFailed);
    return;
  }
  const state = screens.currentState();
  if (app.resumed && app.role === "patient" && (state === "in-call" || state === "waiting")) {
    comeBack();
    return;
  }
  // Not resumed: the server has treated the old connection as gone.
  if (state === "in-call") {
    finish({
      state: "error",
      title: "The connection was lost",
      message: text.CONNECTION_LOST,
      retry: true,
      retryLabel: "Rejoin",
    });
  } else if (state === "waiting" && app.role === "patient") {
    app.position = null;
    checkIn();
  }
}

/**
 * The server gave us our place back (docs/protocol.md, "Coming back"). In the
 * call, the old connections died with the network: publish again, accept the
 * new subscription offers, and make new keys (the others rekey for us).
 */
function comeBack() {
  const state = screens.currentState();
  if (app.resumed === "in_call") {
    if (state === "in-call") {
      closeCall();
      startCallMedia();
    } else {
      enterCall();
    }
  } else if (state === "in-call") {
    // Sent back to the waiting room while we were away.
    closeCall();
    enterWaiting(app.position, app.expectedStart);
  } else if (state !== "waiting") {
    enterWaiting(app.position, app.expectedStart);
  }
}

function onReplaced() {
  finish({
    state: "error",
    title: "Open in another window",
    message:
      "This consultation is now open in another tab or window, so it was closed here. " +
      "Please continue there.",
  });
}

// ---------------------------------------------------------------- precall

async function startPrecall() {
  screens.showState("precall");
  screens.renderPrecall({ role: app.role, ...text.appointmentTexts(app.session) });
  if (app.role === "practitioner" && !app.waitingList) {
    app.waitingList = new WaitingList(
      { admit: decide("admit"), deny: decide("deny") },
      { onArrival: chime },
    );
  }
  if (app.stream || app.startingDevices) return;
  app.startingDevices = true;
  screens.setText("device-status", "Starting your camera and microphone…");
  let stream;
  try {
    stream = await openCameraAndMicrophone();
  } catch (error) {
    if (!(error instanceof DeviceError)) throw error;
    finish({
      state: "error",
      title: "Camera and microphone needed",
      message: error.message,
      retry: true,
    });
    return;
  } finally {
    app.startingDevices = false;
  }
  if (app.finished || screens.currentState() !== "precall") {
    stopStream(stream);
    return;
  }
  app.stream = stream;
  screens.attachStream("device-preview", stream);
  try {
    app.micLevel = new MicLevel(stream, byTestId("mic-level"));
  } catch {
    app.micLevel = null; // The level meter is a comfort, not a requirement.
  }
  if (app.resumed && app.role === "patient") {
    comeBack(); // After a reload: straight back to where we were.
    return;
  }
  screens.setText(
    "device-status",
    app.role === "practitioner"
      ? "Your camera and microphone are working."
      : "Your camera and microphone are working. Check in when you are ready.",
  );
  screens.setCheckInEnabled(true);
}

function onCheckInClick() {
  if (app.role === "practitioner") openConsultation();
  else checkIn();
}

async function checkIn() {
  if (app.checkingIn || !app.signalling) return;
  app.checkingIn = true;
  screens.setCheckInEnabled(false);
  screens.setInline("precall-error", "");
  screens.setInline("waiting-error", "");
  try {
    const ack = await app.signalling.request("check_in", {});
    // `waiting` events are at least as fresh as the ack, which may come last.
    if (app.finished) return;
    const state = screens.currentState();
    if (state === "precall") enterWaiting(ack.position, ack.expected_start);
    else if (state === "waiting" && app.position === null) {
      showPosition(ack.position, ack.expected_start);
    }
  } catch (error) {
    if (app.finished || endedByAck(error)) return;
    const where = screens.currentState() === "waiting" ? "waiting-error" : "precall-error";
    screens.setInline(where, `We could not check you in: ${error.message} Please try again.`);
    screens.setCheckInEnabled(Boolean(app.stream));
  } finally {
    app.checkingIn = false;
  }
}

async function openConsultation() {
  screens.setCheckInEnabled(false);
  screens.setInline("precall-error", "");
  try {
    await app.signalling.request("open_consultation", {});
    if (!app.finished) enterCall();
  } catch (error) {
    if (app.finished || endedByAck(error)) return;
    screens.setInline(
      "precall-error",
      `We could not open the consultation: ${error.message} Please try again.`,
    );
    screens.setCheckInEnabled(Boolean(app.stream));
  }
}

// ------------------------------------------------------------ waiting room

function enterWaiting(position, expectedStart = null) {
  if (app.micLevel) app.micLevel.stop();
  app.micLevel = null;
  byTestId("device-preview").srcObject = null;
  screens.attachStream("waiting-preview", app.stream);
  const who = practitionerName() || "The practitioner";
  screens.setText("waiting-note", `${who} will let you in shortly. Please keep this page open.`);
  showPosition(position, expectedStart);
  screens.showState("waiting");
}

function showPosition(position, expectedStart = app.expectedStart) {
  app.position = Number.isInteger(position) ? position : null;
  app.expectedStart = typeof expectedStart === "string" ? expectedStart : null;
  screens.renderWaitingPosition(position);
  screens.setInline("waiting-expected", text.expectedStartText(app.expectedStart));
}

function onWaiting(payload) {
  if (app.finished || app.role !== "patient") return;
  const position = payload && payload.position;
  const expectedStart = payload && payload.expected_start;
  const state = screens.currentState();
  // While a reloaded page starts its camera, keep the place to show it next.
  if (state === "waiting" || (state === "precall" && app.resumed)) {
    showPosition(position, expectedStart);
  } else if (state === "precall" && app.checkingIn) enterWaiting(position, expectedStart);
}

function onPractitionerMessage(payload) {
  if (app.finished || app.role !== "patient") return;
  const message = payload && typeof payload.text === "string" ? payload.text.trim() : "";
  if (!message) return;
  screens.addPractitionerMessage(message, parseInstant(payload.sent_at) || new Date(), formatTime);
}

function onReturnedToWaiting() {
  if (app.finished || app.role !== "patient") return;
  if (screens.currentState() === "precall" && app.resumed) {
    app.resumed = "waiting"; // Still starting the camera after a reload.
    return;
  }
  if (screens.currentState() !== "in-call") return;
  // The relay has already dropped our connections and the others rotate their
  // keys; ours go too, so a new admission starts a fresh call and key schedule.
  closeCall();
  enterWaiting(null, null);
  screens.setText(
    "waiting-note",
    `${practitionerName() || "The practitioner"} has put you back in the waiting room for a ` +
      "moment. Please keep this page open.",
  );
}

function onAdmitted() {
  if (app.finished || app.role !== "patient") return;
  if (metrics.admittedAt === null) metrics.admittedAt = performance.now();
  if (!app.stream && app.resumed) {
    app.resumed = "in_call"; // Reloaded and still starting the camera: enter once it runs.
    return;
  }
  enterCall();
}

function onDenied(payload) {
  if (app.role !== "patient") return;
  finish({ state: "denied", message: text.deniedMessage(payload && payload.reason) });
}

async function leaveWaitingRoom() {
  byTestId("leave-waiting").disabled = true;
  await leaveQuietly();
  finish({ state: "ended", title: "You left the waiting room", message: "You left the waiting room." });
}

async function leaveQuietly() {
  try {
    await app.signalling.request("leave", {}, LEAVE_TIMEOUT_MS);
  } catch {
    // Disconnecting, which follows, also takes us out on the server.
  }
}

// ---------------------------------------------------- practitioner's list

function onWaitingList(payload) {
  if (app.finished || app.role !== "practitioner" || !app.waitingList) return;
  app.waitingList.render(payload && payload.entries);
}

function decide(event) {
  const verb = { admit: "admit", deny: "decline", return_to_waiting: "send back" }[event];
  return async (entryId, name, reason = "") => {
    if (event === "admit" && metrics.admittedAt === null) metrics.admittedAt = performance.now();
    const payload = { entry_id: entryId };
    if (event === "deny" && reason.trim()) payload.reason = reason.trim();
    try {
      await app.signalling.request(event, payload);
    } catch (error) {
      if (endedByAck(error)) return;
      throw new Error(`We could not ${verb} ${name}: ${error.message}`);
    }
  };
}

async function inviteGuest(event) {
  event.preventDefault();
  const input = byTestId("invite-guest");
  const submit = byTestId("invite-guest-submit");
  const name = input.value.trim();
  screens.setInline("invite-guest-error", "");
  if (!name) {
    screens.setInline("invite-guest-error", "Type the guest's name first.");
    return;
  }
  submit.disabled = true;
  try {
    const ack = await app.signalling.request("invite_guest", { name });
    if (typeof ack.link !== "string") throw new Error("The server gave no link.");
    input.value = "";
    screens.showGuestLink(name, ack.link);
  } catch (error) {
    if (endedByAck(error)) return;
    screens.setInline("invite-guest-error", `We could not invite ${name}: ${error.message}`);
  } finally {
    submit.disabled = false;
  }
}

async function copyGuestLink() {
  const field = byTestId("guest-link");
  try {
    await navigator.clipboard.writeText(field.value);
    screens.setText("copy-guest-link-status", "Copied.");
  } catch {
    // No clipboard permission: leave it selected for Ctrl+C.
    field.select();
    screens.setText("copy-guest-link-status", "Press Ctrl+C (or ⌘C) to copy the selected link.");
  }
}

// ------------------------------------------------------------------- call

function e2eeRequired() {
  return !(app.session && app.session.e2ee === "off");
}

function ensureCall() {
  if (app.call) return app.call;
  if (e2eeRequired()) {
    app.e2ee = new E2ee(app.signalling, {
      onStatus: (state) => screens.renderE2eeStatus(state),
      onSafetyCode: (code) => screens.renderSafetyCode(code),
    });
  } else {
    screens.renderE2eeStatus("off");
  }
  app.call = new Call(
    app.signalling,
    app.session && app.session.ice_servers,
    {
      onFailed: (message) => screens.showNotice("call-notice", message),
      addRemote: addRemoteVideo,
      removeRemote: (subscriptionId) => screens.removeRemoteTile(subscriptionId),
      play: playRemote,
    },
    app.e2ee,
    app.session && app.session.ice_transport_policy,
  );
  return app.call;
}

function addRemoteVideo(subscriptionId, role, publisherId) {
  let label;
  if (role === "practitioner") label = practitionerName() || "Practitioner";
  else {
    const known = app.waitingList && app.waitingList.nameOf(publisherId);
    label = known || (role === "guest" ? "Guest" : "Patient");
  }
  const video = screens.addRemoteTile(subscriptionId, role, label);
  if (app.role === "practitioner" && role !== "practitioner" && publisherId) {
    const sendBack = decide("return_to_waiting");
    screens.addReturnToWaiting(subscriptionId, label, async (button) => {
      button.disabled = true;
      screens.setInline("waiting-list-error", "");
      try {
        await sendBack(publisherId, label);
      } catch (error) {
        screens.setInline("waiting-list-error", error.message);
        button.disabled = false;
      }
    });
  }
  const firstFrame = () => {
    if (metrics.firstRemoteFrameAt === null) metrics.firstRemoteFrameAt = performance.now();
  };
  if (typeof video.requestVideoFrameCallback === "function") {
    video.requestVideoFrameCallback(firstFrame);
  } else {
    video.addEventListener("loadeddata", firstFrame, { once: true });
  }
  return video;
}

function playRemote(video) {
  const started = video.play();
  if (!started) return;
  started.catch((error) => {
    // Only a blocked autoplay needs the person's tap; other rejections mean
    // the element was reloaded or removed meanwhile.
    if (error && error.name === "NotAllowedError") byTestId("start-audio").hidden = false;
  });
}

function startAudio() {
  byTestId("start-audio").hidden = true;
  for (const video of document.querySelectorAll('[data-testid="remote-video"]')) playRemote(video);
}

function enterCall() {
  if (screens.currentState() === "in-call") return;
  if (app.micLevel) app.micLevel.stop();
  app.micLevel = null;
  byTestId("device-preview").srcObject = null;
  byTestId("waiting-preview").srcObject = null;
  screens.renderCallRole(app.role, practitionerName());
  renderToggles();
  screens.attachStream("local-video", app.stream);
  screens.showState("in-call");
  startCallMedia();
}

function startCallMedia() {
  const call = ensureCall();
  const e2ee = app.e2ee;
  // Our first media key exists before the first frame is encoded.
  const ready = e2ee ? e2ee.ready() : Promise.resolve();
  ready.then(() => call.publish(app.stream)).catch((error) => {
    if (app.finished || call.closed || endedByAck(error)) return;
    screens.showNotice(
      "call-notice",
      "We could not send your camera and microphone to the call. Leave and join again; " +
        "if it keeps happening, check your internet connection.",
    );
  });
}

function onSubscriptionOffer(offer) {
  if (app.finished || !app.session) return;
  if (!offer || typeof offer.subscription_id !== "string" || typeof offer.sdp !== "string") return;
  const call = ensureCall();
  call.acceptSubscription(offer).catch((error) => {
    if (app.finished || call.closed || endedByAck(error)) return;
    // The participant left while we were answering: nothing is missing.
    if (error && error.code === "unknown_subscription") return;
    screens.showNotice(
      "call-notice",
      "We cannot receive the other person's video. Check your internet connection; if it " +
        "does not recover, leave and join again.",
    );
  });
}

/**
 * The relay that carried our call is gone and the room was placed on another
 * (docs/protocol.md, "Relay failover"): drop every peer connection, make new
 * E2EE keys (everyone else restarts too, so all keys are new) and publish
 * again; the new relay offers the subscriptions.
 */
function onMediaRestart() {
  if (app.finished || screens.currentState() !== "in-call" || !app.stream) return;
  metrics.mediaRestarts += 1;
  closeCall();
  screens.showNotice("call-notice", "");
  startCallMedia();
}

function onSubscriptionClosed(payload) {
  if (app.call && payload && typeof payload.subscription_id === "string") {
    if (app.e2ee) app.e2ee.publisherGone(payload.subscription_id);
    app.call.closeSubscription(payload.subscription_id);
  }
}

function tracksOf(kind) {
  if (!app.stream) return [];
  return kind === "audio" ? app.stream.getAudioTracks() : app.stream.getVideoTracks();
}

function isOff(kind) {
  const tracks = tracksOf(kind);
  return tracks.length === 0 || !tracks[0].enabled;
}

function toggle(kind) {
  const turnOn = isOff(kind);
  // Disabled tracks keep the connection and send silence / black frames, so
  // turning back on is instant and needs no renegotiation.
  for (const track of tracksOf(kind)) track.enabled = turnOn;
  renderToggles();
}

function renderToggles() {
  screens.renderToggle("toggle-mic", isOff("audio"), {
    onLabel: "Mute microphone",
    offLabel: "Unmute microphone",
  });
  screens.renderToggle("toggle-camera", isOff("video"), {
    onLabel: "Turn camera off",
    offLabel: "Turn camera on",
  });
  screens.renderCameraOff(isOff("video"));
}

async function hangUp() {
  const button = byTestId("hang-up");
  button.disabled = true;
  screens.setInline("hang-up-error", "");
  if (app.role === "patient") {
    await leaveQuietly();
    finish({ state: "ended", title: "Consultation ended", message: "You left the consultation." });
    return;
  }
  app.hangingUp = true;
  try {
    await app.signalling.request("end_consultation", {});
  } catch (error) {
    app.hangingUp = false;
    if (app.finished || endedByAck(error)) return;
    screens.setInline(
      "hang-up-error",
      `We could not end the consultation: ${error.message} Please try again.`,
    );
    button.disabled = false;
    return;
  }
  finish(practitionerEnded());
}

function practitionerEnded() {
  return { state: "ended", title: "Consultation ended", message: "Consultation ended." };
}

function onRoomEnded(payload) {
  if (app.finished) return;
  if (app.hangingUp) {
    finish(practitionerEnded()); // Our own end_consultation, announced to everyone.
    return;
  }
  finish(text.outcomeForRoomEnded(payload && payload.reason));
}

// ------------------------------------------------------------------- boot

function wireControls() {
  byTestId("check-in").addEventListener("click", onCheckInClick);
  byTestId("leave-waiting").addEventListener("click", leaveWaitingRoom);
  byTestId("toggle-mic").addEventListener("click", () => toggle("audio"));
  byTestId("toggle-camera").addEventListener("click", () => toggle("video"));
  byTestId("hang-up").addEventListener("click", hangUp);
  byTestId("start-audio").addEventListener("click", startAudio);
  byTestId("retry").addEventListener("click", () => location.reload());
  byTestId("invite-guest-form").addEventListener("submit", inviteGuest);
  byTestId("copy-guest-link").addEventListener("click", copyGuestLink);
  document.addEventListener("visibilitychange", onVisible);
}

function boot() {
  window.addEventListener("error", pageFailed);
  window.addEventListener("unhandledrejection", pageFailed);
  wireControls();
  screens.showState("precall");

  const { roomId, token } = parseJoinLink(window.location);
  if (!roomId || !token) {
    finish({ state: "error", title: "This link is incomplete", message: text.INCOMPLETE_LINK });
    return;
  }
  if (typeof window.io !== "function") {
    finish({ state: "error", title: "Something went wrong", message: text.PAGE_FAILED, retry: true });
    return;
  }
  if (typeof window.RTCPeerConnection !== "function") {
    finish({ state: "error", title: "Browser not supported", message: text.BROWSER_UNSUPPORTED });
    return;
  }

  // Only patients and guests are given one (the role is known at `session`).
  const resumeSecret = new ResumeSecret(roomId);
  app.resumeSecret = resumeSecret;
  const signalling = new Signalling(
    { token, roomId, resumeSecret: () => resumeSecret.get() },
    window.io,
  );
  app.signalling = signalling;
  signalling.on("connect", onConnect);
  signalling.on("connect_error", onConnectError);
  signalling.on("disconnect", onDisconnect);
  signalling.on("session", onSession);
  signalling.on("waiting", onWaiting);
  signalling.on("admitted", onAdmitted);
  signalling.on("denied", onDenied);
  signalling.on("returned_to_waiting", onReturnedToWaiting);
  signalling.on("replaced", onReplaced);
  signalling.on("practitioner_message", onPractitionerMessage);
  signalling.on("waiting_list", onWaitingList);
  signalling.on("subscription_offer", onSubscriptionOffer);
  signalling.on("subscription_closed", onSubscriptionClosed);
  signalling.on("media_restart", onMediaRestart);
  signalling.on("room_ended", onRoomEnded);
  signalling.on("e2ee_hello", (message) => app.e2ee && app.e2ee.onHello(message));
  signalling.on("e2ee_key", (message) => app.e2ee && app.e2ee.onKey(message));
  signalling.on("e2ee_peer_left", (message) => app.e2ee && app.e2ee.onPeerLeft(message));
  armSessionWatchdog();
}

boot();
