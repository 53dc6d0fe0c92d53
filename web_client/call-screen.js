// The call (docs/web_client.md, `in-call`, "Media"): entering it, publishing
// our camera, the remote tiles from the relay's subscriptions, and starting
// over when the relay changes.

import { knownName, rememberSpeaker, showChat } from "./call-chat.js";
import { renderToggles } from "./call-controls.js";
import { remoteAdded, remoteKinds, remoteRemoved, startQuality } from "./call-quality.js";
import { applySpeaker } from "./device-choice.js";
import { E2ee } from "./e2ee.js";
import { endedByAck } from "./endings.js";
import { Call } from "./media.js";
import { playRemote } from "./playback.js";
import { placeDeviceChoice } from "./media-screens.js";
import { addSendBack } from "./practitioner-tools.js";
import * as screens from "./screens.js";
import { app, e2eeRequired, metrics, practitionerName, show } from "./state.js";
import { closeCall, stopMicLevel } from "./teardown.js";
import { mark } from "./timeline.js";

const { byTestId } = screens;

// Entering the call, media starts first and the call screen is drawn this
// much later: drawn first, it held the page's main thread for tens of
// milliseconds on a busy device while the relay's offer waited, and the first
// picture with it (`teleconsult bench join`: ~250 -> ~190 ms). There is
// nothing to show before then anyway.
const SCREEN_AFTER_MS = 150;

export function enterCall() {
  if (app.screen === "in-call") return;
  app.screen = "in-call";
  startCallMedia();
  setTimeout(() => {
    // Gone meanwhile (returned to waiting, ended): that screen stays.
    if (app.finished || app.screen !== "in-call") return;
    drawCall();
  }, SCREEN_AFTER_MS);
}

function drawCall() {
  stopMicLevel();
  byTestId("device-preview").srcObject = null;
  byTestId("waiting-preview").srcObject = null;
  screens.renderCallRole(app.role, practitionerName());
  renderToggles();
  screens.attachStream("local-video", app.stream);
  placeDeviceChoice("in-call");
  show("in-call");
}

/**
 * While the patient waits: our keys, our publish offer with its ICE
 * candidates and a connection for the first subscription, all made ahead so
 * that admission only has to send them (the relay hears of none of it before).
 */
export function prepareCall() {
  if (app.finished || !app.stream || app.call) return;
  const call = ensureCall();
  const e2ee = app.e2ee;
  const ready = e2ee ? e2ee.ready() : Promise.resolve();
  ready.then(() => call.prepare(app.stream)).catch(() => {
    // Admission makes them instead.
  });
}

/** Publishes our camera and microphone, once our first media key exists. */
export function startCallMedia() {
  const call = ensureCall();
  const e2ee = app.e2ee;
  // Our first media key exists before the first frame is encoded.
  const ready = e2ee ? e2ee.announce() : Promise.resolve();
  call.keepSpare();
  startQuality();
  ready.then(() => call.publish(app.stream)).catch((error) => {
    if (app.finished || call.closed || endedByAck(error)) return;
    screens.showNotice("call-notice", "call.publish_failed");
  });
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
  showChat(Boolean(app.e2ee));
  app.call = new Call(
    app.signalling,
    app.session && app.session.ice_servers,
    {
      onFailed: (message) => screens.showNotice("call-notice", message),
      addRemote: (subscriptionId, role, publisherId) => {
        const video = addRemoteVideo(subscriptionId, role, publisherId);
        remoteAdded(subscriptionId, role, publisherId);
        applySpeaker(video);
        return video;
      },
      removeRemote: (subscriptionId) => {
        remoteRemoved(subscriptionId);
        screens.removeRemoteTile(subscriptionId);
      },
      remoteKinds,
      play: playRemote,
    },
    app.e2ee,
    app.session && app.session.ice_transport_policy,
  );
  return app.call;
}

function addRemoteVideo(subscriptionId, role, publisherId) {
  let name = "";
  if (role === "practitioner") name = practitionerName();
  else {
    name =
      (app.waitingList && app.waitingList.nameOf(publisherId)) ||
      (app.desk && app.desk.nameOf(publisherId)) ||
      knownName(publisherId);
  }
  rememberSpeaker(publisherId, name);
  const label = name
    ? { key: "call.tile_name", params: { name } }
    : { key: `call.tile_${role === "practitioner" ? "practitioner" : role === "guest" ? "guest" : "patient"}` };
  const video = screens.addRemoteTile(subscriptionId, role, label);
  if (app.role === "practitioner" && role !== "practitioner" && publisherId) {
    addSendBack(subscriptionId, name || { key: label.key }, publisherId);
  }
  const firstFrame = () => {
    if (metrics.firstRemoteFrameAt === null) metrics.firstRemoteFrameAt = performance.now();
    mark("first_remote_frame", metrics.firstRemoteFrameAt);
  };
  if (typeof video.requestVideoFrameCallback === "function") {
    video.requestVideoFrameCallback(firstFrame);
  } else {
    video.addEventListener("loadeddata", firstFrame, { once: true });
  }
  return video;
}

export function onSubscriptionOffer(offer) {
  if (app.finished || !app.session) return;
  if (!offer || typeof offer.subscription_id !== "string" || typeof offer.sdp !== "string") return;
  // The server names who this is (docs/protocol.md): their tile says it, never a bare role.
  if (offer.publisher) rememberSpeaker(offer.publisher.entry_id, offer.publisher.name);
  const call = ensureCall();
  call.acceptSubscription(offer).catch((error) => {
    if (app.finished || call.closed || endedByAck(error)) return;
    // The participant left while we were answering: nothing is missing.
    if (error && error.code === "unknown_subscription") return;
    screens.showNotice("call-notice", "call.receive_failed");
  });
}

export function onSubscriptionClosed(payload) {
  if (app.call && payload && typeof payload.subscription_id === "string") {
    if (app.e2ee) app.e2ee.publisherGone(payload.subscription_id);
    app.call.closeSubscription(payload.subscription_id);
  }
}

/**
 * The relay that carried our call is gone and the room was placed on another
 * (docs/protocol.md, "Relay failover"): drop every peer connection, make new
 * E2EE keys (everyone else restarts too, so all keys are new) and publish
 * again; the new relay offers the subscriptions.
 */
export function onMediaRestart() {
  if (app.finished || app.screen !== "in-call" || !app.stream) return;
  metrics.mediaRestarts += 1;
  closeCall();
  screens.showNotice("call-notice", null);
  startCallMedia();
}
