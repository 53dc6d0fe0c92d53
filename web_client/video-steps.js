// When the connection stays bad, send less video; when it is good again for a
// while, send more (docs/web_client.md, "Network quality"). Pure policy: the
// call applies a step with RTCRtpSender.setParameters (call-quality.js).
// Audio is never touched: it is what a consultation cannot do without.

/** Step 0 is the camera as captured; each next step costs less. */
export const STEPS = Object.freeze([
  Object.freeze({ scaleResolutionDownBy: 1, maxFramerate: 30, maxBitrate: null }),
  Object.freeze({ scaleResolutionDownBy: 2, maxFramerate: 15, maxBitrate: 250_000 }),
  Object.freeze({ scaleResolutionDownBy: 4, maxFramerate: 10, maxBitrate: 100_000 }),
  Object.freeze({ scaleResolutionDownBy: 4, maxFramerate: 5, maxBitrate: 50_000 }),
]);
export const LOWEST = STEPS.length - 1;

// A call's video starts at no more pixels than this, whatever the camera gives:
// libwebrtc (Chrome, Safari) drops the first frames and downscales when they are
// larger than its starting bandwidth estimate carries (VGA below 500 kbps), which
// kept the other side waiting ~130 ms longer for a first picture from a 720p
// camera. The full picture comes back once the estimate reaches that rate, or
// after a few seconds whatever it says: past the first frames the browser
// adapts the resolution to its estimate itself, without dropping frames.
export const START_PIXELS = 640 * 480;
export const FULL_PICTURE_BITRATE = 500_000;
export const FULL_PICTURE_AFTER_MS = 4000;

/** The scaleResolutionDownBy that keeps a `width` x `height` picture within START_PIXELS. */
export function startScale(width, height) {
  const pixels = (Number(width) || 0) * (Number(height) || 0);
  if (pixels <= START_PIXELS) return 1;
  // Rounded up, so the scaled picture never exceeds the limit.
  return Math.ceil(Math.sqrt(pixels / START_PIXELS) * 100) / 100;
}

/** Whether a call that started scaled down may send the full picture now. */
export function fullPictureDue(availableBitrate, elapsedMs) {
  if (elapsedMs >= FULL_PICTURE_AFTER_MS) return true;
  return typeof availableBitrate === "number" && availableBitrate >= FULL_PICTURE_BITRATE;
}

// Down fast (a frozen picture helps no one), up slowly (no see-saw on a link
// that is only briefly better). A "fair" link may lose the first step only.
export const DOWN_AFTER_MS = 3000;
export const UP_AFTER_MS = 5000;
export const OFFER_AUDIO_ONLY_AFTER_MS = 6000;
// A step up that the link could not carry (poor again soon after) was a
// probe that failed: wait twice as long before the next one, up to a limit.
const PROBE_FAILED_WITHIN_MS = 10_000;
const UP_AFTER_MAX_MS = 40_000;
const FAIR_FLOOR = 1;

/** The policy's state: the step, since when the quality has been what it is, the offer. */
export function initialSteps() {
  return {
    step: 0,
    quality: "unknown",
    since: 0,
    changedAt: 0,
    upAfterMs: UP_AFTER_MS,
    lastUpAt: -Infinity,
    offerAudioOnly: false,
  };
}

/**
 * The next state after measuring `quality` at `now` (ms). Pure: the caller
 * applies `step` when it changed and shows the audio-only offer when
 * `offerAudioOnly` became true.
 */
export function nextSteps(state, quality, now) {
  const since = quality === state.quality ? state.since : now;
  const next = { ...state, quality, since };
  const held = now - since;
  const sinceChange = now - state.changedAt;
  const down = () => ({
    ...next,
    step: state.step + 1,
    changedAt: now,
    upAfterMs:
      now - state.lastUpAt < PROBE_FAILED_WITHIN_MS
        ? Math.min(UP_AFTER_MAX_MS, state.upAfterMs * 2)
        : state.upAfterMs,
  });
  if (quality === "poor") {
    if (state.step < LOWEST && held >= DOWN_AFTER_MS && sinceChange >= DOWN_AFTER_MS) {
      return down();
    }
    if (state.step === LOWEST && sinceChange >= OFFER_AUDIO_ONLY_AFTER_MS) {
      return { ...next, offerAudioOnly: true };
    }
    return next;
  }
  if (quality === "fair") {
    // Only a lasting "fair" costs the first step.
    if (state.step < FAIR_FLOOR && held >= 2 * DOWN_AFTER_MS && sinceChange >= DOWN_AFTER_MS) {
      return down();
    }
    return next;
  }
  if (quality === "good") {
    const wait = state.upAfterMs;
    if (state.step > 0 && held >= wait && sinceChange >= wait) {
      // Each step up the link carried halves the wait again (see the doubling above).
      return {
        ...next,
        step: state.step - 1,
        changedAt: now,
        lastUpAt: now,
        upAfterMs: Math.max(UP_AFTER_MS, wait / 2),
        offerAudioOnly: false,
      };
    }
    // Long at full video on a good link: the next trouble starts from scratch.
    const settled = state.step === 0 && held >= UP_AFTER_MAX_MS;
    return { ...next, upAfterMs: settled ? UP_AFTER_MS : state.upAfterMs, offerAudioOnly: false };
  }
  return next;
}

/**
 * The encoding parameters of `step` merged into a sender's current
 * `getParameters()` result (what setParameters requires back, unchanged
 * otherwise). A step without a bitrate cap removes the cap.
 */
export function withStep(parameters, step) {
  const wanted = STEPS[Math.max(0, Math.min(LOWEST, step))];
  const encodings = (parameters.encodings && parameters.encodings.length
    ? parameters.encodings
    : [{}]
  ).map((encoding) => {
    const next = {
      ...encoding,
      scaleResolutionDownBy: wanted.scaleResolutionDownBy,
      maxFramerate: wanted.maxFramerate,
    };
    if (wanted.maxBitrate === null) delete next.maxBitrate;
    else next.maxBitrate = wanted.maxBitrate;
    return next;
  });
  return { ...parameters, encodings };
}
