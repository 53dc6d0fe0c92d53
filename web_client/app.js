// Boot and state machine of the join page (docs/web_client.md). The server's
// Socket.IO events (docs/protocol.md) drive the states; every failure ends on
// a screen that says what happened and, where it can help, offers to retry.

import { DeviceError, MicLevel, openCameraAndMicrophone, stopStream } from "./devices.js";
import { E2ee, transformSupport } from "./e2ee.js";
import { parseInstant } from "./format.js";
import { parseJoinLink } from "./link.js";
import { Call } from "./media.js";
import * as text from "./messages.js";
import * as screens from "./screens.js";
import { Signalling } from "./signalling.js";
import { WaitingList } from "./waiting-list.js";

const { byTestId } = screens;

// Before a first successful connection a few failures mean "unreachable";
// once connected, socket.io keeps retrying for a while before we give up.
const FIRST_CONNECT_ATTEMPTS = 3;
const RECONNECT_ATTEMPTS = 10;
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
const metrics = { admittedAt: null, firstRemoteFrameAt: null };
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
  checkingIn: false,
  position: null,
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
  if (app.call) app.call.close();
  app.call = null;
  if (app.e2ee) app.e2ee.close();
  app.e2ee = null;
  stopStream(app.stream);
  app.stream = null;
  screens.clearVideos();
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
  const limit = app.everConnected ? RECONNECT_ATTEMPTS : FIRST_CONNECT_ATTEMPTS;
  if (app.failedAttempts >= limit) {
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
  // After a reconnection the server has treated the old connection as gone.
  const state = screens.currentState();
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

// ---------------------------------------------------------------- precall

async function startPrecall() {
  screens.showState("precall");
  screens.renderPrecall({ role: app.role, ...text.appointmentTexts(app.session) });
  if (app.role === "practitioner" && !app.waitingList) {
    app.waitingList = new WaitingList({ admit: decide("admit"), deny: decide("deny") });
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
    if (state === "precall") enterWaiting(ack.position);
    else if (state === "waiting" && app.position === null) showPosition(ack.position);
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

function enterWaiting(position) {
  if (app.micLevel) app.micLevel.stop();
  app.micLevel = null;
  byTestId("device-preview").srcObject = null;
  screens.attachStream("waiting-preview", app.stream);
  const who = practitionerName() || "The practitioner";
  screens.setText("waiting-note", `${who} will let you in shortly. Please keep this page open.`);
  showPosition(position);
  screens.showState("waiting");
}

function showPosition(position) {
  app.position = Number.isInteger(position) ? position : null;
  screens.renderWaitingPosition(position);
}

function onWaiting(payload) {
  if (app.finished || app.role !== "patient") return;
  const position = payload && payload.position;
  const state = screens.currentState();
  if (state === "waiting") showPosition(position);
  else if (state === "precall" && app.checkingIn) enterWaiting(position);
}

function onAdmitted() {
  if (app.finished || app.role !== "patient") return;
  if (metrics.admittedAt === null) metrics.admittedAt = performance.now();
  enterCall();
}

function onDenied() {
  if (app.role !== "patient") return;
  finish({
    state: "denied",
    message:
      "The practitioner could not admit you to this consultation. If you think this is a " +
      "mistake, please contact the practice.",
  });
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
  const verb = event === "admit" ? "admit" : "decline";
  return async (entryId, name) => {
    if (event === "admit" && metrics.admittedAt === null) metrics.admittedAt = performance.now();
    try {
      await app.signalling.request(event, { entry_id: entryId });
    } catch (error) {
      if (endedByAck(error)) return;
      throw new Error(`We could not ${verb} ${name}: ${error.message}`);
    }
  };
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
  else label = (app.waitingList && app.waitingList.nameOf(publisherId)) || "Patient";
  const video = screens.addRemoteTile(subscriptionId, role, label);
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

  const signalling = new Signalling({ token, roomId }, window.io);
  app.signalling = signalling;
  signalling.on("connect", onConnect);
  signalling.on("connect_error", onConnectError);
  signalling.on("disconnect", onDisconnect);
  signalling.on("session", onSession);
  signalling.on("waiting", onWaiting);
  signalling.on("admitted", onAdmitted);
  signalling.on("denied", onDenied);
  signalling.on("waiting_list", onWaitingList);
  signalling.on("subscription_offer", onSubscriptionOffer);
  signalling.on("subscription_closed", onSubscriptionClosed);
  signalling.on("room_ended", onRoomEnded);
  signalling.on("e2ee_hello", (message) => app.e2ee && app.e2ee.onHello(message));
  signalling.on("e2ee_key", (message) => app.e2ee && app.e2ee.onKey(message));
  signalling.on("e2ee_peer_left", (message) => app.e2ee && app.e2ee.onPeerLeft(message));
  armSessionWatchdog();
}

boot();
