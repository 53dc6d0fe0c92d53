// The worker that encrypts every outgoing encoded frame and decrypts every
// incoming one (docs/e2ee.md). One worker per page holds every frame key, so
// audio and video share one sender counter. Keys arrive from the page as
// non-extractable CryptoKeys; frames come either from RTCRtpScriptTransform
// (`rtctransform` events) or, on Chromium without it, as transferred streams
// from createEncodedStreams.

import { FrameDecryptor, FrameEncryptor, deriveFrameKey } from "./e2ee-frame.js";

const STATS_INTERVAL_MS = 500;

const encryptor = new FrameEncryptor();
// Publisher entry id -> its keys.
const decryptors = new Map();
// Subscription id -> {audio: {ok, failed, lastOkAt, lastFailedAt, failingSince}, video: …};
// failingSince is when the current run of failures began (0 after a success).
const stats = new Map();

function decryptorOf(publisher) {
  let decryptor = decryptors.get(publisher);
  if (!decryptor) {
    decryptor = new FrameDecryptor();
    decryptors.set(publisher, decryptor);
  }
  return decryptor;
}

const stepsSent = new Set();

/** Tells the page when a step of the call's start first happened (timeline.js). */
function step(name) {
  if (stepsSent.has(name)) return;
  stepsSent.add(name);
  self.postMessage({ type: "step", step: name, at: performance.timeOrigin + performance.now() });
}

function statsOf(subscription, kind) {
  let entry = stats.get(subscription);
  if (!entry) {
    entry = {};
    stats.set(subscription, entry);
  }
  if (!entry[kind]) {
    entry[kind] = { ok: 0, failed: 0, lastOkAt: 0, lastFailedAt: 0, failingSince: 0 };
  }
  return entry[kind];
}

function encrypting(kind) {
  return new TransformStream({
    async transform(frame, controller) {
      if (frame.data.byteLength === 0) {
        controller.enqueue(frame); // Nothing to hide.
        return;
      }
      const sealed = await encryptor.encrypt(kind, frame.data);
      if (sealed === null) {
        if (kind === "video") step("video_frame_dropped_without_key");
        return; // No key yet: drop rather than send in clear.
      }
      if (kind === "video") step("video_frame_sent");
      frame.data = sealed;
      controller.enqueue(frame);
    },
  });
}

function decrypting(kind, publisher, subscription) {
  const counts = statsOf(subscription, kind);
  return new TransformStream({
    async transform(frame, controller) {
      if (frame.data.byteLength === 0) return;
      if (kind === "video") step("video_frame_received");
      const decryptor = decryptors.get(publisher);
      const opened = decryptor ? await decryptor.decrypt(kind, frame.data) : null;
      if (opened === null) {
        // Fail closed: a frame we cannot authenticate never reaches the decoder.
        if (kind === "video") step("video_frame_undecryptable");
        counts.failed += 1;
        counts.lastFailedAt = Date.now();
        if (!counts.failingSince) counts.failingSince = counts.lastFailedAt;
        return;
      }
      frame.data = opened;
      if (kind === "video") step("video_frame_decrypted");
      counts.ok += 1;
      counts.lastOkAt = Date.now();
      counts.failingSince = 0;
      controller.enqueue(frame);
    },
  });
}

function attach(readable, writable, options) {
  const { operation, kind, publisher, subscription } = options || {};
  if (kind !== "audio" && kind !== "video") return;
  let transform;
  if (operation === "encrypt") transform = encrypting(kind);
  else if (operation === "decrypt" && typeof publisher === "string") {
    transform = decrypting(kind, publisher, String(subscription));
  } else return;
  readable
    .pipeThrough(transform)
    .pipeTo(writable)
    .catch(() => {
      // The connection closed; its streams error out. Nothing to recover.
    });
}

self.addEventListener("rtctransform", (event) => {
  const transformer = event.transformer;
  attach(transformer.readable, transformer.writable, transformer.options);
});

async function handle(message) {
  switch (message.type) {
    case "streams":
      attach(message.readable, message.writable, message.options);
      break;
    case "sender-key":
      encryptor.setKey(await deriveFrameKey(message.baseKey, message.kid));
      break;
    case "receiver-key":
      decryptorOf(message.publisher).addKey(await deriveFrameKey(message.baseKey, message.kid));
      break;
    case "forget-publisher":
      decryptors.delete(message.publisher);
      break;
    case "forget-subscription":
      stats.delete(message.subscription);
      break;
    default:
      break;
  }
}

// One message at a time, in order: a key still being derived must not land
// after the page said to forget its sender.
let inbox = Promise.resolve();
self.addEventListener("message", (event) => {
  const message = event.data || {};
  inbox = inbox.then(() => handle(message)).catch(() => {});
});

setInterval(() => {
  self.postMessage({ type: "stats", now: Date.now(), subscriptions: Object.fromEntries(stats) });
}, STATS_INTERVAL_MS);
