// WebRTC with the relay (docs/protocol.md, "Both roles, in the call"): one
// send-only publish connection that we offer, and one receive-only
// subscription connection per other participant that the relay offers.
// Neither is ever renegotiated, and SDP goes out only once ICE gathering is
// complete, because the protocol has no trickle-ICE messages.

import { mark } from "./timeline.js";
import { startScale, withStep } from "./video-steps.js";

const GATHERING_TIMEOUT_MS = 3000;
// A connection made in advance (a publish offer gathered while the patient
// waits, a spare for the next subscription) is used only while this fresh:
// older ones may hold addresses of a network the device has since left.
const PREPARED_MAX_AGE_MS = 4 * 60_000;
const MEDIA_REQUEST_TIMEOUT_MS = 20_000;
// A relay that refused to connect ahead (enough made ahead in the room) is asked again this much later.
const PREPARE_RETRY_MS = 20_000;
// The relay forwards encoded frames without transcoding, and only these.
const PREFERRED_CODECS = { audio: "audio/opus", video: "video/vp8" };

/** Resolves when gathering is complete, or after a timeout with what we have. */
export function iceGatheringComplete(pc, timeoutMs = GATHERING_TIMEOUT_MS) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const finish = () => {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    };
    const check = () => {
      if (pc.iceGatheringState === "complete") finish();
    };
    const timer = setTimeout(finish, timeoutMs);
    pc.addEventListener("icegatheringstatechange", check);
  });
}

/**
 * Offers only the codec the relay forwards: no RTX, RED or FEC. With an RTX
 * stream in the offer the relay aimed its keyframe requests (PLI) at the RTX
 * SSRC, so Chrome never answered them: a newcomer's video stayed black until
 * the encoder sent a keyframe on its own (~14 s in the end-to-end test, vs
 * ~0.3 s without RTX). Without RTX, Chrome retransmits on the media SSRC.
 */
function preferCodec(transceiver, kind) {
  if (typeof transceiver.setCodecPreferences !== "function") return;
  const wanted = PREFERRED_CODECS[kind];
  // Browsers differ on which capabilities they validate preferences against
  // (sender or receiver), so try both before leaving the browser's default.
  for (const source of [window.RTCRtpSender, window.RTCRtpReceiver]) {
    const capabilities = source && source.getCapabilities && source.getCapabilities(kind);
    if (!capabilities) continue;
    const codecs = capabilities.codecs.filter((c) => c.mimeType.toLowerCase() === wanted);
    if (codecs.length === 0) continue;
    try {
      transceiver.setCodecPreferences(codecs);
      return;
    } catch {
      // Try the other capability list.
    }
  }
}

/** Which tracks a stream holds now: an offer prepared for other tracks is not used. */
function trackIds(stream) {
  return stream
    .getTracks()
    .map((track) => track.id)
    .join(",");
}

/** Switches every encoding of every sender of `pc` on, without renegotiating. */
async function startSending(pc) {
  await Promise.all(
    pc.getSenders().map(async (sender) => {
      const parameters = sender.getParameters();
      if (!parameters.encodings || parameters.encodings.length === 0) return;
      parameters.encodings = parameters.encodings.map((encoding) => ({ ...encoding, active: true }));
      await sender.setParameters(parameters);
    }),
  );
}

/** Fires `onFailed` once if the connection fails for good; marks `step` once connected. */
function watchFailure(pc, onFailed, step) {
  let reported = false;
  pc.addEventListener("connectionstatechange", () => {
    if (pc.connectionState === "connected") mark(step);
    if (pc.connectionState === "failed" && !reported) {
      reported = true;
      onFailed();
    }
  });
}

/**
 * Everything media for one person in one call.
 *
 * `ui` is {onFailed(messageKey), addRemote(subscriptionId, role, publisherId) ->
 *          HTMLVideoElement, removeRemote(subscriptionId), play(video),
 *          remoteKinds(subscriptionId, {video}) (optional)}.
 * `e2ee` (e2ee.js) encrypts what we send and decrypts what we receive; null
 * only when the server runs with end-to-end encryption off.
 */
export class Call {
  constructor(signalling, iceServers, ui, e2ee = null, iceTransportPolicy = "all") {
    this.signalling = signalling;
    this.iceServers = Array.isArray(iceServers) ? iceServers : [];
    // "relay": media only through TURN, never from this device's own addresses.
    this.iceTransportPolicy = iceTransportPolicy === "relay" ? "relay" : "all";
    this.ui = ui;
    this.e2ee = e2ee;
    this.publisher = null;
    this.publishing = false;
    // {at, tracks, ready: Promise<RTCPeerConnection>}: our offer, gathered ahead.
    this.prepared = null;
    // {at, pc}: a connection gathering candidates for the next subscription offer.
    this.spare = null;
    this.subscriptions = new Map();
    // Kind of each publishing transceiver: a sender whose track was replaced by null has none.
    this.senderKinds = new Map();
    // Our video started below the camera's size (video-steps.js, START_PIXELS)
    // and the full picture has not been asked for yet.
    this.startScaled = false;
    this.closed = false;
  }

  setIceServers(iceServers) {
    if (Array.isArray(iceServers)) this.iceServers = iceServers;
  }

  newPeerConnection(candidatePool = 0) {
    const extra = this.e2ee ? this.e2ee.peerConnectionConfig() : {};
    return new RTCPeerConnection({
      iceServers: this.iceServers,
      iceTransportPolicy: this.iceTransportPolicy,
      // Gathers before any description: the answer to an offer then goes out at once.
      iceCandidatePoolSize: candidatePool,
      ...extra,
    });
  }

  /** A connection for a subscription offer: the spare gathered in advance if fresh. */
  takePeerConnection() {
    const spare = this.spare;
    this.spare = null;
    let pc;
    if (spare && Date.now() - spare.at < PREPARED_MAX_AGE_MS) pc = spare.pc;
    else {
      if (spare) spare.pc.close();
      pc = this.newPeerConnection();
    }
    this.keepSpare();
    return pc;
  }

  /** Gathers a connection for the next subscription offer (the relay's offers come unasked). */
  keepSpare() {
    if (this.closed || this.spare) return;
    this.spare = { at: Date.now(), pc: this.newPeerConnection(1) };
  }

  /**
   * Everything of publishing we can do while the patient waits: the
   * transceivers with their encryption, our offer and its ICE candidates,
   * and the connection to the relay itself (`prepare_publish`: ICE and DTLS
   * come up, every encoding inactive, so nothing is sent, and the relay
   * forwards it to nobody). Admission then only has to switch the encodings
   * on and say `publish {prepared: true}`. When the relay refuses to connect
   * ahead, `publish` sends this offer instead.
   */
  prepare(stream) {
    if (this.closed || this.publisher || this.publishing) return;
    const tracks = trackIds(stream);
    if (this.prepared && this.prepared.tracks === tracks) {
      this.retryAhead(this.prepared);
      return;
    }
    this.dropPrepared();
    const prepared = { at: Date.now(), tracks, answered: false, refusedAt: 0, trying: true };
    prepared.ready = this.offerFor(stream, { inactive: true }).then((offer) =>
      this.connectAhead(prepared, offer),
    );
    prepared.ready.catch(() => {}); // `publish` makes a new offer instead.
    this.prepared = prepared;
    this.keepSpare();
  }

  /** Asks the relay again to connect ahead, a while after it refused (enough made ahead there). */
  retryAhead(prepared) {
    if (prepared.answered || prepared.trying || !prepared.refusedAt) return;
    if (Date.now() - prepared.refusedAt < PREPARE_RETRY_MS) return;
    prepared.trying = true;
    prepared.ready = prepared.ready.then((offer) => this.connectAhead(prepared, offer));
    prepared.ready.catch(() => {});
  }

  async connectAhead(prepared, offer) {
    try {
      const ack = await this.signalling.request(
        "prepare_publish",
        { sdp: offer.pc.localDescription.sdp, type: "offer" },
        MEDIA_REQUEST_TIMEOUT_MS,
      );
      if (this.prepared !== prepared || this.closed) return offer; // Closed with it.
      await offer.pc.setRemoteDescription({ type: "answer", sdp: (ack.answer || {}).sdp });
      prepared.answered = true;
      mark("publish_connected_ahead_answered");
      offer.pc.addEventListener("connectionstatechange", () => {
        // Lost while waiting (network change, relay restart): admission makes a new one.
        if (offer.pc.connectionState === "failed" && this.prepared === prepared) this.dropPrepared();
      });
    } catch {
      prepared.refusedAt = Date.now();
    } finally {
      prepared.trying = false;
    }
    return offer;
  }

  dropPrepared() {
    const prepared = this.prepared;
    this.prepared = null;
    if (prepared) prepared.ready.then((offer) => offer.pc.close(), () => {});
  }

  /** A publish connection and its offer; `inactive`: every encoding off until `startSending`. */
  async offerFor(stream, { inactive = false } = {}) {
    const pc = this.newPeerConnection();
    const kinds = new Map();
    let scaled = false;
    // Audio first then video, one transceiver each, both in one stream so
    // the other side keeps them in sync.
    const tracks = [...stream.getAudioTracks(), ...stream.getVideoTracks()];
    for (const track of tracks) {
      const encoding = inactive ? { active: false } : {};
      if (track.kind === "video") {
        const settings = typeof track.getSettings === "function" ? track.getSettings() : {};
        const scale = startScale(settings.width, settings.height);
        if (scale > 1) {
          encoding.scaleResolutionDownBy = scale;
          scaled = true;
        }
      }
      const init = { direction: "sendonly", streams: [stream] };
      if (Object.keys(encoding).length > 0) init.sendEncodings = [encoding];
      const transceiver = pc.addTransceiver(track, init);
      kinds.set(transceiver.sender, track.kind);
      preferCodec(transceiver, track.kind);
      // Before negotiation, so that not one frame leaves unencrypted.
      if (this.e2ee) this.e2ee.protectSender(transceiver.sender, track.kind);
    }
    await pc.setLocalDescription(await pc.createOffer());
    await iceGatheringComplete(pc);
    return { pc, kinds, scaled, inactive };
  }

  /** Sends our camera and microphone to the relay. Rejects on failure. */
  async publish(stream) {
    if (this.publisher || this.publishing || this.closed) return;
    this.publishing = true;
    const prepared = this.prepared;
    this.prepared = null;
    let offer = null;
    const sameTracks = prepared && prepared.tracks === trackIds(stream);
    // A connection made ahead stays usable as long as it is up; a bare offer ages.
    if (sameTracks && (prepared.answered || Date.now() - prepared.at < PREPARED_MAX_AGE_MS)) {
      offer = await prepared.ready.catch(() => null);
    } else if (prepared) {
      prepared.ready.then((old) => old.pc.close(), () => {});
    }
    if (offer && prepared.answered) {
      const state = offer.pc.connectionState;
      if (state !== "failed" && state !== "closed" && (await this.publishPrepared(offer))) return;
      offer.pc.close();
      offer = null;
    }
    if (!offer) offer = await this.offerFor(stream);
    const { pc } = offer;
    if (this.closed) {
      pc.close();
      return;
    }
    this.usePublisher(offer);
    mark("publish_sent");
    const ack = await this.signalling.request(
      "publish",
      { sdp: pc.localDescription.sdp, type: "offer" },
      MEDIA_REQUEST_TIMEOUT_MS,
    );
    if (this.closed) return;
    mark("publish_answered");
    const answer = ack.answer || {};
    await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
    if (offer.inactive) await startSending(pc);
  }

  usePublisher(offer) {
    const { pc } = offer;
    this.publisher = pc;
    // Only the connection in use: a prepared one dropped for other tracks has its own.
    this.senderKinds = offer.kinds;
    this.startScaled = offer.scaled;
    watchFailure(pc, () => this.ui.onFailed("call.send_failed"), "publish_connected");
  }

  /**
   * Publishes the connection made ahead (the relay published it at
   * admission): its encodings on, then `publish {prepared: true}` to confirm.
   * False when the encodings would not switch on, or the relay has it no
   * more (`not_prepared`): `publish` then sends a fresh offer.
   */
  async publishPrepared(offer) {
    const { pc } = offer;
    if (this.closed) return true;
    this.usePublisher(offer);
    if (pc.connectionState === "connected") mark("publish_connected");
    const notPublished = () => {
      this.publisher = null;
      this.senderKinds = new Map();
      this.startScaled = false;
      return false;
    };
    try {
      await startSending(pc);
    } catch {
      return notPublished(); // A browser refusing `active` in setParameters.
    }
    mark("publish_sent");
    try {
      await this.signalling.request("publish", { prepared: true }, MEDIA_REQUEST_TIMEOUT_MS);
    } catch (error) {
      if (!error || error.code !== "not_prepared" || this.closed) throw error;
      return notPublished();
    }
    mark("publish_answered");
    return true;
  }

  /** Answers a relay offer for one other participant. Rejects on failure. */
  async acceptSubscription(offer) {
    if (this.closed) return;
    const id = offer.subscription_id;
    const role = (offer.publisher && offer.publisher.role) || "";
    const publisherId = (offer.publisher && offer.publisher.entry_id) || "";
    this.closeSubscription(id); // A repeated offer replaces the previous one.
    const pc = this.takePeerConnection();
    const video = this.ui.addRemote(id, role, publisherId);
    // A publisher without a camera: the relay offers its audio only.
    if (this.ui.remoteKinds) this.ui.remoteKinds(id, { video: /^m=video /m.test(offer.sdp) });
    const stream = new MediaStream();
    const subscription = { pc, video, publisherId, closed: false };
    this.subscriptions.set(id, subscription);

    mark("subscription_offer");
    watchFailure(pc, () => this.ui.onFailed("call.receive_failed"), "subscription_connected");
    pc.addEventListener("track", (event) => {
      // Synchronously in the event: the first frame must already go through it.
      if (this.e2ee) this.e2ee.protectReceiver(event.receiver, event.track.kind, publisherId, id);
      // One stream per subscription: the relay's own stream ids are not ours to trust.
      if (!stream.getTracks().includes(event.track)) stream.addTrack(event.track);
      if (video.srcObject !== stream) {
        video.srcObject = stream;
        this.ui.play(video);
      }
    });

    await pc.setRemoteDescription({ type: "offer", sdp: offer.sdp });
    mark("subscription_offer_applied");
    await pc.setLocalDescription(await pc.createAnswer());
    mark("subscription_answer_made");
    await iceGatheringComplete(pc);
    if (subscription.closed) return;
    mark("subscription_answer_sent");
    await this.signalling.request(
      "subscription_answer",
      { subscription_id: id, sdp: pc.localDescription.sdp, type: "answer" },
      MEDIA_REQUEST_TIMEOUT_MS,
    );
  }

  /** Our sender of `kind` on the publish connection, or null (audio only: no video sender). */
  sender(kind) {
    if (!this.publisher) return null;
    for (const [sender, senderKind] of this.senderKinds) {
      if (senderKind === kind) return sender;
    }
    return null;
  }

  /**
   * Sends `track` (or nothing: null) instead of the current one of its kind,
   * without renegotiating: the E2EE transform stays on the sender. Resolves
   * false when there is no sender of that kind (a call that began audio only).
   */
  async replaceTrack(kind, track) {
    const sender = this.sender(kind);
    if (!sender) return false;
    await sender.replaceTrack(track);
    return true;
  }

  /** Applies a video step (video-steps.js); false when there is no video sender. */
  async setVideoStep(step) {
    const sender = this.sender("video");
    if (!sender || typeof sender.getParameters !== "function") return false;
    await sender.setParameters(withStep(sender.getParameters(), step));
    this.startScaled = false;
    return true;
  }

  /** The statistics of every connection: {publisher: report|null, subscriptions: Map id -> report}. */
  async stats() {
    const read = (pc) => pc.getStats().catch(() => null);
    const publisher = this.publisher ? await read(this.publisher) : null;
    const subscriptions = new Map();
    for (const [id, subscription] of this.subscriptions) {
      const report = await read(subscription.pc);
      if (report) subscriptions.set(id, report);
    }
    return { publisher, subscriptions };
  }

  /** The remote <video> of each subscription, and the publisher it shows. */
  remotes() {
    return [...this.subscriptions].map(([id, s]) => ({ id, video: s.video, publisherId: s.publisherId }));
  }

  closeSubscription(id) {
    const subscription = this.subscriptions.get(id);
    if (!subscription) return;
    this.subscriptions.delete(id);
    subscription.closed = true;
    subscription.pc.close();
    if (this.e2ee) this.e2ee.forgetSubscription(id);
    this.ui.removeRemote(id);
  }

  close() {
    this.closed = true;
    this.dropPrepared();
    if (this.spare) this.spare.pc.close();
    this.spare = null;
    for (const id of [...this.subscriptions.keys()]) this.closeSubscription(id);
    if (this.publisher) {
      this.publisher.close();
      this.publisher = null;
    }
    this.senderKinds.clear();
  }
}
