// How the call is doing (docs/web_client.md, "Network quality"): every second
// it reads the connections' statistics, shows a quality for us and for each
// other participant, tells the others over signalling (`media_state`,
// docs/protocol.md), steps our video down when our link stays bad (and offers
// audio only), and shows an avatar instead of a black or frozen picture.

import { interval, QualityMeter, readStats, worst } from "./quality.js";
import * as screens from "./media-screens.js";
import { app, metrics, practitionerName } from "./state.js";
import { fullPictureDue, initialSteps, nextSteps } from "./video-steps.js";

const TICK_MS = 1000;
// Reported at least this often, and at once on a change.
const REPORT_MS = 2000;
// No new video frame for this long while the sender says it sends: frozen.
const FROZEN_MS = 2500;
// The browser's bandwidth estimate starts low and ramps up for a few seconds:
// no step down for that alone.
const WARM_UP_MS = 10_000;

let quality = null;

function fresh() {
  return {
    timer: 0,
    busy: false,
    self: new QualityMeter(),
    selfQuality: "unknown",
    steps: initialSteps(),
    appliedStep: 0,
    lastReadings: new Map(),
    // subscription id -> {publisherId, name, meter, hasVideo, lastFrames, lastFrameAt}
    remotes: new Map(),
    // publisher entry id -> their last media_state
    peers: new Map(),
    lastReport: 0,
    startedAt: Date.now(),
    // The browser's estimate of what we can send, while it follows no cap of ours.
    sendEstimate: null,
  };
}

/** Starts measuring with the call (call-screen.js); idempotent. */
export function startQuality() {
  if (!quality) quality = fresh();
  if (quality.timer) return;
  quality.timer = setInterval(() => tick().catch(() => {}), TICK_MS);
  screens.renderQualitySelf("unknown", 0);
  reportMediaState();
}

/** Stops with the call: a new call (failover, coming back) starts again from good. */
export function stopQuality() {
  if (!quality) return;
  clearInterval(quality.timer);
  quality = null;
  screens.renderAudioOnlyOffer(false);
}

/** Whether we send video now: a camera, turned on, and not switched to audio only. */
export function sendingVideo() {
  if (!app.stream || app.audioOnly) return false;
  return app.stream.getVideoTracks().some((t) => t.enabled && t.readyState === "live");
}

/** Tells the others now (a toggle, audio only) rather than at the next report. */
export function reportMediaState() {
  // Not buffered through a disconnection: a stale report is worth nothing.
  if (!quality || !app.signalling || !app.signalling.connected) return;
  const receiving = {};
  for (const remote of quality.remotes.values()) {
    if (remote.publisherId && remote.meter.quality !== "unknown") {
      receiving[remote.publisherId] = remote.meter.quality;
    }
  }
  const message = { quality: quality.selfQuality, video: sendingVideo(), receiving };
  quality.lastReport = Date.now();
  // A hint only: a refused or lost report is replaced by the next one.
  app.signalling.request("media_state", message).catch(() => {});
}

function remoteName(role, publisherId) {
  if (role === "practitioner") return practitionerName();
  return (app.waitingList && app.waitingList.nameOf(publisherId)) || "";
}

/** A new remote tile (media.js `addRemote`): its quality, avatar and notes. */
export function remoteAdded(subscriptionId, role, publisherId) {
  if (!quality) quality = fresh();
  const name = remoteName(role, publisherId);
  quality.remotes.set(subscriptionId, {
    publisherId,
    name,
    role,
    meter: new QualityMeter(),
    hasVideo: true,
    lastFrames: 0,
    lastFrameAt: Date.now(),
  });
  screens.decorateRemoteTile(subscriptionId, { name, role });
  renderRemote(subscriptionId);
}

/** What the relay's offer carries (media.js `remoteKinds`): no video m-line, no camera. */
export function remoteKinds(subscriptionId, { video }) {
  const remote = quality && quality.remotes.get(subscriptionId);
  if (!remote) return;
  remote.hasVideo = video;
  renderRemote(subscriptionId);
}

export function remoteRemoved(subscriptionId) {
  if (quality) quality.remotes.delete(subscriptionId);
}

/** `media_state` from another participant: {from, quality, video, receiving_you}. */
export function onMediaState(message) {
  if (!quality || !message || typeof message.from !== "string") return;
  quality.peers.set(message.from, {
    quality: typeof message.quality === "string" ? message.quality : "unknown",
    video: message.video !== false,
    receivingYou: typeof message.receiving_you === "string" ? message.receiving_you : "unknown",
  });
  for (const [id, remote] of quality.remotes) {
    if (remote.publisherId === message.from) renderRemote(id);
  }
}

function peerOf(remote) {
  return (remote.publisherId && quality.peers.get(remote.publisherId)) || null;
}

function renderRemote(subscriptionId) {
  const remote = quality.remotes.get(subscriptionId);
  if (!remote) return;
  const peer = peerOf(remote);
  const shown = worst(peer ? peer.quality : "unknown", remote.meter.quality);
  const noVideo = !remote.hasVideo || (peer !== null && !peer.video);
  const frozen = !noVideo && Date.now() - remote.lastFrameAt >= FROZEN_MS;
  screens.renderRemoteMedia(subscriptionId, {
    name: remote.name,
    role: remote.role,
    quality: shown,
    // The avatar instead of a black (no camera) or a frozen picture.
    avatar: noVideo ? "no-video" : frozen && shown === "poor" ? "frozen" : null,
  });
}

async function tick() {
  const call = app.call;
  if (!quality || quality.busy || !call || call.closed) return;
  quality.busy = true;
  try {
    const { publisher, subscriptions } = await call.stats();
    if (!quality || call !== app.call) return;
    measureSelf(publisher, subscriptions);
    measureRemotes(subscriptions);
    await stepVideo(call);
    const now = Date.now();
    if (now - quality.lastReport >= REPORT_MS) reportMediaState();
  } finally {
    if (quality) quality.busy = false;
  }
}

function reading(key, report) {
  const now = readStats(report);
  const before = quality.lastReadings.get(key) || null;
  quality.lastReadings.set(key, now);
  return interval(before, now);
}

/**
 * Our own link, from what only it explains: what the relay says of what we
 * send (when it says), the browser's estimate of what we can send (while we
 * do not cap our video: then the estimate follows our cap), the round trip
 * of every connection, what others say they receive from us, and what we
 * receive from someone whose own link is good. Others' reports are left out
 * while their own link is poor: the trouble is then likely theirs.
 */
function measureSelf(publisher, subscriptions) {
  const combined = { loss: null, rtt: null, availableBitrate: null };
  const worse = (name, value) => {
    if (value !== null && value !== undefined) combined[name] = Math.max(combined[name] || 0, value);
  };
  if (publisher) {
    const sent = reading("publisher", publisher);
    worse("loss", sent.outboundLoss);
    worse("rtt", sent.rtt);
    if (quality.appliedStep === 0) combined.availableBitrate = sent.availableBitrate;
    quality.sendEstimate = sent.availableBitrate;
  }
  quality.inbound = new Map();
  for (const [id, report] of subscriptions) {
    const measure = reading(`sub:${id}`, report);
    quality.inbound.set(id, measure);
    worse("rtt", measure.rtt);
    const remote = quality.remotes.get(id);
    const peer = remote ? peerOf(remote) : null;
    if (peer && peer.quality === "good") worse("loss", measure.inboundLoss);
  }
  let self = quality.self.update(combined);
  for (const peer of quality.peers.values()) {
    if (peer.quality !== "poor") self = worst(self, peer.receivingYou);
  }
  metrics.quality = {
    self,
    loss: quality.self.loss,
    rtt: quality.self.rtt,
    availableBitrate: quality.self.availableBitrate,
    peers: [...quality.peers.values()].map((p) => ({ quality: p.quality, receivingYou: p.receivingYou })),
    remotes: [...quality.remotes.values()].map((r) => ({ quality: r.meter.quality, loss: r.meter.loss })),
    step: quality.appliedStep,
    // Our video still at its start size (video-steps.js, START_PIXELS).
    startScaled: Boolean(app.call && app.call.startScaled),
  };
  const changed = self !== quality.selfQuality;
  quality.selfQuality = self;
  screens.renderQualitySelf(self, quality.appliedStep);
  if (changed) reportMediaState();
}

/** Each other participant as we receive them: loss, and whether video frames still come. */
function measureRemotes(subscriptions) {
  const now = Date.now();
  for (const [id, remote] of quality.remotes) {
    const measure = quality.inbound && quality.inbound.get(id);
    if (!measure || !subscriptions.has(id)) continue;
    remote.meter.update({ loss: measure.inboundLoss, rtt: null, availableBitrate: null });
    if (measure.framesDecoded > 0) remote.lastFrameAt = now;
    renderRemote(id);
  }
}

/** The full picture once the link carries it, after a call that started scaled down. */
async function liftStartScale(call) {
  if (!call.startScaled || !sendingVideo()) return;
  if (!fullPictureDue(quality.sendEstimate, Date.now() - quality.startedAt)) return;
  try {
    await call.setVideoStep(quality.appliedStep);
  } catch {
    // Refused: the next tick tries again.
  }
}

/** Our video's step: down when our link stays bad, up again when it stays good. */
async function stepVideo(call) {
  await liftStartScale(call);
  if (!sendingVideo() || Date.now() - quality.startedAt < WARM_UP_MS) return;
  quality.steps = nextSteps(quality.steps, quality.selfQuality, Date.now());
  screens.renderAudioOnlyOffer(quality.steps.offerAudioOnly && !app.audioOnly);
  if (quality.steps.step === quality.appliedStep) return;
  const step = quality.steps.step;
  try {
    if (await call.setVideoStep(step)) quality.appliedStep = step;
  } catch {
    // Some browsers refuse a parameter: the next tick tries again.
  }
  screens.renderQualitySelf(quality.selfQuality, quality.appliedStep);
}
