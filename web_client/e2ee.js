// End-to-end encryption of the call, page side (docs/e2ee.md). It runs the key
// agreement over signalling (`e2ee_hello`, `e2ee_key`, `e2ee_peer_left`,
// docs/protocol.md), rotates our media key whenever someone joins or leaves,
// hands keys to the frame worker (e2ee-worker.js), and turns the worker's
// counters into the status and safety code the person sees.

import { deriveChatKey, openChat, sealChat } from "./e2ee-chat.js";
import {
  Identity,
  fromBase64,
  importMediaKey,
  newMediaKey,
  safetyCode,
  toBase64,
  unwrapMediaKey,
  wrapMediaKey,
} from "./e2ee-keys.js";
import { mark } from "./timeline.js";

// Joins and leaves that come together cost one new key, not one each.
const ROTATE_DEBOUNCE_MS = 50;
// Others get the new key before we encrypt with it, so the switch drops
// (almost) no frames; docs/e2ee.md discusses what this delay allows.
const KEY_SWITCH_DELAY_MS = 300;
// A stream counts as decrypted while a frame of it decrypted this recently.
// Above 1 s: a camera turned off still sends a black frame every second.
const FRESH_MS = 3000;
// Frames arrive before the key that opens them at the start of a call and
// around each key change: only failures that last longer are a problem.
const FAILING_AFTER_MS = 2000;
const MAX_PENDING_KEYS = 4;
const MAX_PENDING_SENDERS = 16;
const ENTRY_ID = /^[A-Za-z0-9_-]{1,64}$/;

/** "script" (RTCRtpScriptTransform), "streams" (Chromium's createEncodedStreams) or null. */
export function transformSupport() {
  const sender = window.RTCRtpSender && window.RTCRtpSender.prototype;
  if (!sender) return null;
  if (typeof window.RTCRtpScriptTransform === "function" && "transform" in sender) return "script";
  if (
    typeof sender.createEncodedStreams === "function" &&
    window.RTCRtpReceiver &&
    typeof window.RTCRtpReceiver.prototype.createEncodedStreams === "function"
  ) {
    return "streams";
  }
  return null;
}

function sameBytes(a, b) {
  return a.byteLength === b.byteLength && a.every((byte, i) => byte === b[i]);
}

function senderOf(message) {
  const from = message && message.from;
  return typeof from === "string" && ENTRY_ID.test(from) ? from : null;
}

/**
 * `ui` is {onStatus(state), onSafetyCode(code | null)}; states are
 * "pending", "encrypted" and "failing" (docs/web_client.md).
 */
export class E2ee {
  constructor(signalling, ui, mode = transformSupport()) {
    if (!mode) throw new Error("encoded transforms are not supported");
    this.signalling = signalling;
    this.ui = ui;
    this.mode = mode;
    this.worker = new Worker(new URL("./e2ee-worker.js", import.meta.url), { type: "module" });
    this.worker.addEventListener("message", (event) => this.onWorkerMessage(event.data));
    this.identity = null;
    // Entry id -> {publicKey, outgoing, incoming, lastKid, absent}; `absent`
    // while the relay says the peer is gone but signalling has not (yet).
    this.peers = new Map();
    this.pendingKeys = new Map();
    // Subscription id -> publisher entry id.
    this.subscriptions = new Map();
    this.protectedEndpoints = new WeakSet();
    this.kid = 0;
    // The in-call chat (e2ee-chat.js): our current chat key, and each peer's
    // two newest by key id (a message may cross a key change).
    this.ownChat = null;
    this.chatKeys = new Map();
    this.rotateTimer = 0;
    this.switchTimers = new Set();
    this.closed = false;
    this.status = null;
    this.lastStats = {};
    this.announced = false;
    // Every state change runs in order, one at a time.
    this.queue = Promise.resolve();
    // The key pair and the first media key are made as soon as the page may
    // need them (a patient still waiting), so that admission waits for neither.
    this.started = this.run(async () => {
      this.identity = await Identity.create();
      await this.rotate();
    });
    this.started.catch(() => {}); // Reported to whoever awaits ready().
  }

  /** Resolves once we have our key pair and first media key. */
  ready() {
    return this.started;
  }

  /** In the call: tell the others our public key (once per E2ee). */
  announce() {
    if (this.announced) return this.started;
    this.announced = true;
    return this.run(async () => {
      this.send("e2ee_hello", { public_key: toBase64(this.identity.publicKey) });
      this.setStatus("pending");
    });
  }

  run(job) {
    const next = this.queue.then(() => (this.closed ? undefined : job()));
    // One failed step must not stop the next ones; the status shows the result.
    this.queue = next.catch(() => {});
    return next;
  }

  send(event, payload) {
    // Fire and forget: a lost message shows as a stream that does not decrypt.
    this.signalling.request(event, payload).catch(() => {});
  }

  /** Extra RTCPeerConnection configuration the transforms need. */
  peerConnectionConfig() {
    return this.mode === "streams" ? { encodedInsertableStreams: true } : {};
  }

  protectSender(sender, kind) {
    this.attach(sender, { operation: "encrypt", kind });
  }

  protectReceiver(receiver, kind, publisher, subscription) {
    this.subscriptions.set(subscription, publisher);
    this.attach(receiver, { operation: "decrypt", kind, publisher, subscription });
    this.run(async () => {
      const peer = this.peers.get(publisher);
      if (!peer || !peer.absent) return;
      // Back in the call: it gets the key made now, not the ones made while away.
      peer.absent = false;
      this.scheduleRotation();
      await this.showSafetyCode();
    });
  }

  /**
   * The relay closed a subscription (`subscription_closed`): its publisher
   * left the call. `e2ee_peer_left` says so too; this covers any way out of
   * the call that signalling does not announce, so no one who left keeps
   * receiving our new keys.
   */
  publisherGone(subscription) {
    const publisher = this.subscriptions.get(subscription);
    if (!publisher) return;
    this.run(async () => {
      const stillThere = [...this.subscriptions].some(
        ([id, other]) => other === publisher && id !== subscription,
      );
      const peer = this.peers.get(publisher);
      if (stillThere || !peer || peer.absent) return;
      peer.absent = true;
      this.scheduleRotation();
      await this.showSafetyCode();
    });
  }

  attach(endpoint, options) {
    if (this.protectedEndpoints.has(endpoint)) return;
    this.protectedEndpoints.add(endpoint);
    if (this.mode === "script") {
      endpoint.transform = new RTCRtpScriptTransform(this.worker, options);
      return;
    }
    const { readable, writable } = endpoint.createEncodedStreams();
    this.worker.postMessage({ type: "streams", readable, writable, options }, [readable, writable]);
  }

  forgetSubscription(subscription) {
    this.subscriptions.delete(subscription);
    this.worker.postMessage({ type: "forget-subscription", subscription });
    this.refreshStatus();
  }

  // ------------------------------------------------------------ signalling

  onHello(message) {
    const from = senderOf(message);
    const publicKey = fromBase64(message && message.public_key);
    if (!from || !publicKey) return;
    this.run(async () => {
      const known = this.peers.get(from);
      if (known && sameBytes(known.publicKey, publicKey)) return;
      mark("e2ee_hello_received");
      let pair;
      try {
        pair = await this.identity.pairWith(publicKey);
      } catch {
        return; // Not a usable public key: this peer stays unable to decrypt us.
      }
      if (known) this.worker.postMessage({ type: "forget-publisher", publisher: from });
      this.peers.set(from, { publicKey, ...pair, lastKid: 0, hasOurKey: false });
      // A new peer has not seen our key; it answers us the same way, once.
      this.send("e2ee_hello", { public_key: toBase64(this.identity.publicKey), to: from });
      // Nobody decrypts us yet (we were alone): no joins to coalesce, key it now.
      if (this.nobodyDecryptsUs()) await this.rotate();
      else this.scheduleRotation();
      await this.showSafetyCode();
      for (const pending of this.pendingKeys.get(from) || []) await this.acceptKey(from, pending);
      this.pendingKeys.delete(from);
    });
  }

  onKey(message) {
    const from = senderOf(message);
    if (!from || !message) return;
    this.run(async () => {
      if (!this.peers.has(from)) {
        // Signalling may deliver a key before the hello that lets us open it.
        if (!this.pendingKeys.has(from) && this.pendingKeys.size >= MAX_PENDING_SENDERS) return;
        const pending = this.pendingKeys.get(from) || [];
        if (pending.length < MAX_PENDING_KEYS) pending.push(message);
        this.pendingKeys.set(from, pending);
        return;
      }
      await this.acceptKey(from, message);
    });
  }

  async acceptKey(from, message) {
    const peer = this.peers.get(from);
    const publicKey = fromBase64(message.public_key);
    const blob = fromBase64(message.wrapped);
    if (!peer || !publicKey || !blob || !sameBytes(publicKey, peer.publicKey)) return;
    const opened = await unwrapMediaKey(
      peer.incoming,
      blob,
      peer.publicKey,
      this.identity.publicKey,
    );
    if (!opened) return;
    if (opened.kid <= peer.lastKid) {
      opened.raw.fill(0); // A replayed or stale key: never go back to it.
      return;
    }
    const first = peer.lastKid === 0;
    if (first) mark("e2ee_key_received");
    peer.lastKid = opened.kid;
    const baseKey = await importMediaKey(opened.raw);
    this.worker.postMessage({ type: "receiver-key", publisher: from, kid: opened.kid, baseKey });
    const chat = this.chatKeys.get(from) || new Map();
    chat.set(opened.kid, await deriveChatKey(baseKey, opened.kid));
    for (const kid of [...chat.keys()].sort((a, b) => a - b).slice(0, -2)) chat.delete(kid);
    this.chatKeys.set(from, chat);
    if (first) this.askKeyFrames(from);
  }

  onPeerLeft(message) {
    const from = senderOf(message);
    if (!from) return;
    this.run(async () => {
      this.pendingKeys.delete(from);
      this.chatKeys.delete(from);
      if (!this.peers.delete(from)) return;
      this.worker.postMessage({ type: "forget-publisher", publisher: from });
      // The leaver must not decrypt what we send from now on.
      this.scheduleRotation();
      await this.showSafetyCode();
    });
  }

  // ----------------------------------------------------------------- keys

  /** No peer in the call holds a key of ours: switching keys cannot disturb anyone. */
  nobodyDecryptsUs() {
    return ![...this.peers.values()].some((peer) => !peer.absent && peer.hasOurKey);
  }

  /**
   * The publisher's first key is in: the key frame the relay sent us when the
   * subscription started was encrypted under a key we did not have, so ask
   * for another rather than wait for the encoder's next one (docs/e2ee.md).
   */
  askKeyFrames(publisher) {
    for (const [subscription, from] of this.subscriptions) {
      if (from === publisher) this.send("keyframe_request", { subscription_id: subscription });
    }
  }

  scheduleRotation() {
    clearTimeout(this.rotateTimer);
    this.rotateTimer = setTimeout(() => this.run(() => this.rotate()), ROTATE_DEBOUNCE_MS);
  }

  /** A new media key for exactly the peers in the call now. */
  async rotate() {
    clearTimeout(this.rotateTimer);
    this.kid += 1;
    const kid = this.kid;
    const raw = newMediaKey();
    // Those who decrypt us now must get the new key before we switch to it.
    const wait = !this.nobodyDecryptsUs();
    try {
      for (const [to, peer] of this.peers) {
        if (peer.absent) continue;
        const blob = await wrapMediaKey(
          peer.outgoing,
          kid,
          raw,
          this.identity.publicKey,
          peer.publicKey,
        );
        this.send("e2ee_key", {
          to,
          public_key: toBase64(this.identity.publicKey),
          wrapped: toBase64(blob),
        });
        peer.hasOurKey = true;
      }
    } catch (error) {
      raw.fill(0);
      throw error;
    }
    const baseKey = await importMediaKey(raw);
    // Everyone in the call was just sent this key, ahead of any message under it.
    this.ownChat = { kid, key: await deriveChatKey(baseKey, kid) };
    const use = () => {
      if (this.announced) mark("e2ee_sending_key_in_use");
      this.worker.postMessage({ type: "sender-key", kid, baseKey });
    };
    if (!wait) {
      use(); // Nobody to wait for: nobody could decrypt us before this key.
      return;
    }
    const timer = setTimeout(() => {
      this.switchTimers.delete(timer);
      if (!this.closed) use();
    }, KEY_SWITCH_DELAY_MS);
    this.switchTimers.add(timer);
  }

  async showSafetyCode() {
    const present = [...this.peers.values()].filter((p) => !p.absent);
    if (present.length === 0) {
      this.ui.onSafetyCode(null);
      return;
    }
    const keys = [this.identity.publicKey, ...present.map((p) => p.publicKey)];
    this.ui.onSafetyCode(await safetyCode(keys));
  }

  // ----------------------------------------------------------------- chat

  /** `chat`'s payload for `text`: {kid, iv, data}, sealed under our current media key. */
  sealChat(text) {
    return this.run(async () => {
      if (!this.ownChat) throw new Error("no media key yet");
      const { kid, key } = this.ownChat;
      const sealed = await sealChat(key, kid, text);
      return { kid, iv: toBase64(sealed.iv), data: toBase64(sealed.data) };
    });
  }

  /** The text of a forwarded `chat` message, or null when it does not open. */
  openChat(message) {
    return this.run(async () => {
      const from = senderOf(message);
      const key = from && this.chatKeys.get(from) && this.chatKeys.get(from).get(message.kid);
      if (!key) return null;
      return openChat(key, message.kid, fromBase64(message.iv), fromBase64(message.data));
    });
  }

  // --------------------------------------------------------------- status

  onWorkerMessage(message) {
    if (this.closed || !message) return;
    // The worker's clock has its own origin: its steps come as epoch milliseconds.
    if (message.type === "step") mark(message.step, message.at - performance.timeOrigin);
    if (message.type !== "stats") return;
    this.lastStats = message.subscriptions || {};
    this.refreshStatus();
  }

  refreshStatus() {
    const now = Date.now();
    const current = this.lastStats;
    let failing = false;
    let allDecrypted = this.subscriptions.size > 0;
    for (const id of this.subscriptions.keys()) {
      const kinds = Object.values(current[id] || {});
      const recentOk = kinds.some((k) => now - k.lastOkAt < FRESH_MS);
      // A kind that has only failed for a while is a stream we refuse to show.
      const refused = kinds.some(
        (k) =>
          k.failingSince > 0 &&
          now - k.failingSince >= FAILING_AFTER_MS &&
          now - k.lastFailedAt < FRESH_MS &&
          now - k.lastOkAt >= FRESH_MS,
      );
      if (refused) failing = true;
      if (!recentOk || refused) allDecrypted = false;
    }
    this.setStatus(failing ? "failing" : allDecrypted ? "encrypted" : "pending");
  }

  setStatus(state) {
    if (this.closed || state === this.status) return;
    this.status = state;
    this.ui.onStatus(state);
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.rotateTimer);
    for (const timer of this.switchTimers) clearTimeout(timer);
    this.switchTimers.clear();
    this.worker.terminate();
    this.peers.clear();
    this.pendingKeys.clear();
    this.chatKeys.clear();
    this.ownChat = null;
  }
}
