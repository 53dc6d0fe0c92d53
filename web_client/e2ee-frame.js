// End-to-end frame encryption, modelled on SFrame (RFC 9605); docs/e2ee.md.
// Used by the worker that transforms encoded frames, and by the key-schedule
// tests. No DOM here: it runs in a worker.
//
//   frame = clear prefix | AES-GCM ciphertext | 16-byte tag | KID (u32) | CTR (u64)
//
// The clear prefix is what the relay and the receiving packetizer must read
// (VP8 key frame: 10 bytes, VP8 delta frame: 3, Opus: the 1-byte TOC). It is
// authenticated with the trailer and the media kind as additional data.

export const TAG_BYTES = 16;
export const TRAILER_BYTES = 12;
export const CLEAR_BYTES = { videoKey: 10, videoDelta: 3, audio: 1 };
// Frames a receiver accepts out of order (audio and video share one counter,
// so this is ~10 s of both at 50 + 30 frames a second).
export const REPLAY_WINDOW = 1024;
// Keys a receiver keeps per sender: the current one and the one before it,
// whose frames may still be in flight when the sender switches.
export const KEYS_PER_SENDER = 2;
// The counter lives in 8 bytes, but we stop well before JavaScript numbers lose precision.
const MAX_COUNTER = 2 ** 48;
const KIND_CODES = { audio: 1, video: 2 };
const KEY_LABEL = "teleconsult SFrame 1.0 key ";
const SALT_LABEL = "teleconsult SFrame 1.0 salt ";
const encoder = new TextEncoder();

function kindCode(kind) {
  const code = KIND_CODES[kind];
  if (!code) throw new TypeError("kind must be audio or video");
  return code;
}

/** The bytes of `parts`, one after the other (also used by e2ee-keys.js). */
export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.byteLength;
  }
  return out;
}

function u32(value) {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setUint32(0, value);
  return bytes;
}

/** True when a VP8 payload is a key frame (RFC 6386 9.1: low bit of byte 0 is 0). */
export function isVp8KeyFrame(data) {
  return data.byteLength > 0 && (data[0] & 0x01) === 0;
}

/** How many leading bytes stay in clear; the same rule on both ends. */
export function clearByteCount(kind, data) {
  let wanted;
  if (kind === "audio") wanted = CLEAR_BYTES.audio;
  else wanted = isVp8KeyFrame(data) ? CLEAR_BYTES.videoKey : CLEAR_BYTES.videoDelta;
  return Math.min(wanted, data.byteLength);
}

/**
 * The AES-GCM key and salt of one media key (`baseKey`, an HKDF CryptoKey)
 * under one key id. Both derived keys are non-extractable.
 */
export async function deriveFrameKey(baseKey, kid) {
  if (!Number.isInteger(kid) || kid < 0 || kid > 0xffffffff) throw new RangeError("bad key id");
  const hkdf = (label) => ({
    name: "HKDF",
    hash: "SHA-256",
    salt: new Uint8Array(0),
    info: concat(encoder.encode(label), u32(kid)),
  });
  const key = await crypto.subtle.deriveKey(
    hkdf(KEY_LABEL),
    baseKey,
    { name: "AES-GCM", length: 128 },
    false,
    ["encrypt", "decrypt"],
  );
  const salt = new Uint8Array(await crypto.subtle.deriveBits(hkdf(SALT_LABEL), baseKey, 96));
  return { kid, key, salt };
}

function nonce(salt, counter) {
  const iv = new Uint8Array(salt);
  const view = new DataView(iv.buffer);
  // SFrame: the counter, left-padded to the nonce size, XOR the salt.
  view.setUint32(4, view.getUint32(4) ^ Math.floor(counter / 2 ** 32));
  view.setUint32(8, view.getUint32(8) ^ (counter >>> 0));
  return iv;
}

function trailer(kid, counter) {
  const bytes = new Uint8Array(TRAILER_BYTES);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, kid);
  view.setUint32(4, Math.floor(counter / 2 ** 32));
  view.setUint32(8, counter >>> 0);
  return bytes;
}

function additionalData(kind, clear, tail) {
  return concat(new Uint8Array([kindCode(kind)]), clear, tail);
}

/**
 * The sending side: one per participant, shared by its audio and video so
 * that a (key, counter) pair is never used twice.
 */
export class FrameEncryptor {
  constructor() {
    this.frameKey = null;
    this.counter = 0;
  }

  /** Switch to a new key: its counter starts at 0, which is safe only because the key is new. */
  setKey(frameKey) {
    // Keys may finish deriving out of order; an older one never comes back.
    if (this.frameKey && frameKey.kid <= this.frameKey.kid) return;
    this.frameKey = frameKey;
    this.counter = 0;
  }

  /** The protected frame, or null when there is no key yet: nothing goes out in clear. */
  async encrypt(kind, buffer) {
    const frameKey = this.frameKey;
    if (!frameKey || this.counter >= MAX_COUNTER) return null;
    // Taken before any await: concurrent frames never share a counter.
    const counter = this.counter++;
    const data = new Uint8Array(buffer);
    const clear = data.subarray(0, clearByteCount(kind, data));
    const tail = trailer(frameKey.kid, counter);
    const sealed = await crypto.subtle.encrypt(
      {
        name: "AES-GCM",
        iv: nonce(frameKey.salt, counter),
        additionalData: additionalData(kind, clear, tail),
      },
      frameKey.key,
      data.subarray(clear.byteLength),
    );
    return concat(clear, new Uint8Array(sealed), tail).buffer;
  }
}

/** Counters already accepted under one key: no frame is accepted twice. */
class ReplayWindow {
  constructor() {
    this.highest = -1;
    this.seen = new Set();
  }

  fresh(counter) {
    if (counter > this.highest) return true;
    return this.highest - counter < REPLAY_WINDOW && !this.seen.has(counter);
  }

  record(counter) {
    this.seen.add(counter);
    if (counter > this.highest) this.highest = counter;
    if (this.seen.size > REPLAY_WINDOW * 2) {
      for (const old of this.seen) if (this.highest - old >= REPLAY_WINDOW) this.seen.delete(old);
    }
  }
}

/**
 * The receiving side for one sender: its last few keys, each with its own
 * replay window. Anything that does not decrypt is refused.
 */
export class FrameDecryptor {
  constructor() {
    this.keys = new Map();
  }

  addKey(frameKey) {
    if (this.keys.has(frameKey.kid)) return; // A key id is never reused with another key.
    this.keys.set(frameKey.kid, { ...frameKey, window: new ReplayWindow() });
    while (this.keys.size > KEYS_PER_SENDER) this.keys.delete(Math.min(...this.keys.keys()));
  }

  get kids() {
    return [...this.keys.keys()];
  }

  /** The clear frame, or null (plain, forged, replayed, or under an unknown key). */
  async decrypt(kind, buffer) {
    const data = new Uint8Array(buffer);
    const clearLength = clearByteCount(kind, data);
    if (data.byteLength < clearLength + TAG_BYTES + TRAILER_BYTES) return null;
    const tail = data.subarray(data.byteLength - TRAILER_BYTES);
    const view = new DataView(tail.buffer, tail.byteOffset, TRAILER_BYTES);
    const kid = view.getUint32(0);
    const counter = view.getUint32(4) * 2 ** 32 + view.getUint32(8);
    const entry = this.keys.get(kid);
    if (!entry || counter >= MAX_COUNTER || !entry.window.fresh(counter)) return null;
    const clear = data.subarray(0, clearLength);
    let opened;
    try {
      opened = await crypto.subtle.decrypt(
        {
          name: "AES-GCM",
          iv: nonce(entry.salt, counter),
          additionalData: additionalData(kind, clear, tail),
        },
        entry.key,
        data.subarray(clearLength, data.byteLength - TRAILER_BYTES),
      );
    } catch {
      return null;
    }
    // Checked again: another frame with this counter may have won meanwhile.
    if (!entry.window.fresh(counter)) return null;
    entry.window.record(counter);
    return concat(clear, new Uint8Array(opened)).buffer;
  }
}
