// Key agreement and key delivery for end-to-end encryption (docs/e2ee.md).
//
// Each participant makes an ephemeral ECDH P-256 key pair when it enters the
// call. For each other participant it derives, with HKDF over the ECDH
// secret and both public keys, one wrapping key per direction. A media key
// (32 random bytes, one per sender and key id) travels to each recipient
// encrypted under the pairwise key; the server only ever sees the opaque blob.

import { concat } from "./e2ee-frame.js";

export const PUBLIC_KEY_BYTES = 65; // Uncompressed P-256 point.
export const MEDIA_KEY_BYTES = 32;
const IV_BYTES = 12;
const KID_BYTES = 4;
const WRAP_LABEL = "teleconsult e2ee wrap v1";
const MEDIA_KEY_LABEL = "teleconsult e2ee media key v1";
const SAFETY_LABEL = "teleconsult safety code v1";
const SAFETY_GROUPS = 4;
const SAFETY_GROUP_BYTES = 5;
const ECDH = { name: "ECDH", namedCurve: "P-256" };
const encoder = new TextEncoder();

export function toBase64(bytes) {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

/** Bytes of a base64 string, or null when it is not base64. */
export function fromBase64(text) {
  if (typeof text !== "string") return null;
  try {
    return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  } catch {
    return null;
  }
}

function sameBytes(a, b) {
  return a.byteLength === b.byteLength && a.every((byte, i) => byte === b[i]);
}

function compareBytes(a, b) {
  for (let i = 0; i < Math.min(a.length, b.length); i += 1) {
    if (a[i] !== b[i]) return a[i] - b[i];
  }
  return a.length - b.length;
}

/** A media key as a non-extractable HKDF key; the raw bytes are wiped. */
export async function importMediaKey(raw) {
  try {
    return await crypto.subtle.importKey("raw", raw, "HKDF", false, ["deriveKey", "deriveBits"]);
  } finally {
    raw.fill(0);
  }
}

/**
 * Safety code over every public key in the call (ours included), sorted so
 * that every participant computes the same one: 4 groups of 5 digits.
 */
export async function safetyCode(publicKeys) {
  const sorted = [...publicKeys].map((k) => new Uint8Array(k)).sort(compareBytes);
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", concat(encoder.encode(SAFETY_LABEL), ...sorted)),
  );
  const groups = [];
  for (let g = 0; g < SAFETY_GROUPS; g += 1) {
    let value = 0n;
    for (const byte of digest.subarray(g * SAFETY_GROUP_BYTES, (g + 1) * SAFETY_GROUP_BYTES)) {
      value = (value << 8n) | BigInt(byte);
    }
    groups.push(String(value % 100000n).padStart(5, "0"));
  }
  return groups.join(" ");
}

/** Our side of the key agreement: the ECDH key pair and the pairwise keys. */
export class Identity {
  static async create() {
    const pair = await crypto.subtle.generateKey(ECDH, false, ["deriveBits"]);
    const publicKey = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
    return new Identity(pair.privateKey, publicKey);
  }

  constructor(privateKey, publicKey) {
    this.privateKey = privateKey;
    this.publicKey = publicKey;
  }

  /** Wrapping keys with the holder of `peerPublicKey`: {outgoing, incoming}. Throws on a bad key. */
  async pairWith(peerPublicKey) {
    if (peerPublicKey.byteLength !== PUBLIC_KEY_BYTES || peerPublicKey[0] !== 0x04) {
      throw new TypeError("not an uncompressed P-256 public key");
    }
    if (sameBytes(peerPublicKey, this.publicKey)) throw new TypeError("our own public key");
    const peer = await crypto.subtle.importKey("raw", peerPublicKey, ECDH, false, []);
    const secret = new Uint8Array(
      await crypto.subtle.deriveBits({ name: "ECDH", public: peer }, this.privateKey, 256),
    );
    const base = await importMediaKey(secret);
    const direction = async (from, to) =>
      crypto.subtle.deriveKey(
        {
          name: "HKDF",
          hash: "SHA-256",
          salt: new Uint8Array(0),
          info: concat(encoder.encode(WRAP_LABEL), from, to),
        },
        base,
        { name: "AES-GCM", length: 256 },
        false,
        ["encrypt", "decrypt"],
      );
    return {
      outgoing: await direction(this.publicKey, peerPublicKey),
      incoming: await direction(peerPublicKey, this.publicKey),
    };
  }
}

function wrapData(senderPublicKey, recipientPublicKey) {
  return concat(encoder.encode(MEDIA_KEY_LABEL), senderPublicKey, recipientPublicKey);
}

/** The opaque blob carrying media key `raw` under key id `kid` to one recipient. */
export async function wrapMediaKey(outgoing, kid, raw, senderPublicKey, recipientPublicKey) {
  const iv = crypto.getRandomValues(new Uint8Array(IV_BYTES));
  const plain = new Uint8Array(KID_BYTES + MEDIA_KEY_BYTES);
  new DataView(plain.buffer).setUint32(0, kid);
  plain.set(raw, KID_BYTES);
  try {
    const sealed = await crypto.subtle.encrypt(
      { name: "AES-GCM", iv, additionalData: wrapData(senderPublicKey, recipientPublicKey) },
      outgoing,
      plain,
    );
    return concat(iv, new Uint8Array(sealed));
  } finally {
    plain.fill(0);
  }
}

/** {kid, raw} from a blob, or null when it was not sealed for us by that sender. */
export async function unwrapMediaKey(incoming, blob, senderPublicKey, recipientPublicKey) {
  if (blob.byteLength !== IV_BYTES + KID_BYTES + MEDIA_KEY_BYTES + 16) return null;
  let plain;
  try {
    plain = new Uint8Array(
      await crypto.subtle.decrypt(
        {
          name: "AES-GCM",
          iv: blob.subarray(0, IV_BYTES),
          additionalData: wrapData(senderPublicKey, recipientPublicKey),
        },
        incoming,
        blob.subarray(IV_BYTES),
      ),
    );
  } catch {
    return null;
  }
  const kid = new DataView(plain.buffer).getUint32(0);
  const raw = plain.slice(KID_BYTES);
  plain.fill(0);
  return { kid, raw };
}

export function newMediaKey() {
  return crypto.getRandomValues(new Uint8Array(MEDIA_KEY_BYTES));
}
