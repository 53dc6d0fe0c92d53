// The in-call chat's cryptography (docs/e2ee.md, "Chat"): each message is
// sealed with AES-256-GCM under a key derived, with its own HKDF label, from
// the sender's current media key, which only those in the call hold. The
// server forwards the sealed bytes; it never sees the text or a key.

import { concat } from "./e2ee-frame.js";

export const CHAT_MAX_CHARS = 1000;
const CHAT_LABEL = "teleconsult e2ee chat v1";
const IV_BYTES = 12;
const encoder = new TextEncoder();

function kidBytes(kid) {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setUint32(0, kid);
  return bytes;
}

/** The chat key of media key `kid` (`baseKey`, the non-extractable HKDF key of e2ee-keys.js). */
export async function deriveChatKey(baseKey, kid) {
  return crypto.subtle.deriveKey(
    {
      name: "HKDF",
      hash: "SHA-256",
      salt: new Uint8Array(0),
      info: concat(encoder.encode(CHAT_LABEL), kidBytes(kid)),
    },
    baseKey,
    { name: "AES-GCM", length: 256 },
    false,
    ["encrypt", "decrypt"],
  );
}

/** {iv, data} sealing `text` under `key` (of key id `kid`, bound in as additional data). */
export async function sealChat(key, kid, text) {
  const iv = crypto.getRandomValues(new Uint8Array(IV_BYTES));
  const sealed = await crypto.subtle.encrypt(
    { name: "AES-GCM", iv, additionalData: concat(encoder.encode(CHAT_LABEL), kidBytes(kid)) },
    key,
    encoder.encode(text),
  );
  return { iv, data: new Uint8Array(sealed) };
}

/** The text, or null when it was not sealed under this key (or was altered). */
export async function openChat(key, kid, iv, data) {
  if (!iv || iv.byteLength !== IV_BYTES || !data) return null;
  try {
    const plain = await crypto.subtle.decrypt(
      { name: "AES-GCM", iv, additionalData: concat(encoder.encode(CHAT_LABEL), kidBytes(kid)) },
      key,
      data,
    );
    return new TextDecoder("utf-8", { fatal: true }).decode(plain);
  } catch {
    return null;
  }
}
