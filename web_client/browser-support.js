// Whether this browser can hold the call, and which browser to suggest when it
// cannot (docs/browsers.md). The person is told before the call, never in it.

/** "ios", "android" or "desktop": where the person is, for the browser to suggest. */
export function platform(nav = navigator) {
  const agent = nav.userAgent || "";
  // iPadOS Safari presents itself as a Mac; only the touch points tell.
  if (/iPhone|iPad|iPod/.test(agent) || (/Macintosh/.test(agent) && nav.maxTouchPoints > 1)) {
    return "ios";
  }
  if (/Android/.test(agent)) return "android";
  return "desktop";
}

const ADVICE = {
  ios: "browsers.advice_ios",
  android: "browsers.advice_android",
  desktop: "browsers.advice_desktop",
};

/** The sentence naming the browser to open the link in, here. */
export function advice() {
  return { key: ADVICE[platform()] };
}

/** False only when the browser says it cannot send or receive VP8, the one video codec the relay forwards. */
function hasVp8() {
  for (const side of [window.RTCRtpSender, window.RTCRtpReceiver]) {
    if (!side || typeof side.getCapabilities !== "function") continue;
    const capabilities = side.getCapabilities("video");
    if (!capabilities || !Array.isArray(capabilities.codecs)) continue;
    if (!capabilities.codecs.some((c) => String(c.mimeType).toLowerCase() === "video/vp8")) {
      return false;
    }
  }
  return true;
}

/** Why this browser cannot hold the call (a message), or null when it can. */
export function cannotCall() {
  if (typeof window.RTCPeerConnection !== "function" || !hasVp8()) {
    return { key: "browsers.cannot_call", params: { advice: advice() } };
  }
  return null;
}

/** For a browser without encoded transforms, when the call is end-to-end encrypted. */
export function cannotEncrypt() {
  return { key: "browsers.cannot_encrypt", params: { advice: advice() } };
}

/**
 * Plain http:// (other than localhost): no camera, no WebCrypto, and the join
 * token would travel in clear. Browsers without `isSecureContext` are old ones
 * that the other checks turn away.
 */
export function insecurePage() {
  return window.isSecureContext === false;
}
