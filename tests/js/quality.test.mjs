// Unit checks of web_client/quality.js and web_client/video-steps.js, run by
// node (tests/test_quality_js.py): pure functions, no browser needed.
import assert from "node:assert/strict";
import { classify, interval, QualityMeter, readStats, worst } from "../../web_client/quality.js";
import {
  DOWN_AFTER_MS,
  FULL_PICTURE_AFTER_MS,
  FULL_PICTURE_BITRATE,
  fullPictureDue,
  initialSteps,
  LOWEST,
  nextSteps,
  OFFER_AUDIO_ONLY_AFTER_MS,
  START_PIXELS,
  startScale,
  STEPS,
  UP_AFTER_MS,
  withStep,
} from "../../web_client/video-steps.js";

const checks = [];
const check = (name, body) => checks.push([name, body]);

// A getStats() report of a publish connection and a subscription, as Chrome gives them.
function report({ at, sent = 0, received = 0, lost = 0, audioReceived = 0, audioLost = 0,
                  remoteLost = null, rtt = 0.05, bitrate = 1_000_000, frames = 0 }) {
  const stats = [
    { type: "outbound-rtp", kind: "video", timestamp: at, packetsSent: sent },
    { type: "inbound-rtp", kind: "video", timestamp: at, packetsReceived: received,
      packetsLost: lost, framesDecoded: frames },
    { type: "inbound-rtp", kind: "audio", timestamp: at, packetsReceived: audioReceived,
      packetsLost: audioLost },
    { type: "transport", timestamp: at, selectedCandidatePairId: "p1" },
    { type: "candidate-pair", id: "p0", timestamp: at, currentRoundTripTime: 9 },
    { type: "candidate-pair", id: "p1", timestamp: at, currentRoundTripTime: rtt,
      availableOutgoingBitrate: bitrate, nominated: true, state: "succeeded" },
  ];
  if (remoteLost !== null) {
    stats.push({ type: "remote-inbound-rtp", kind: "video", timestamp: at, packetsLost: remoteLost });
  }
  return new Map(stats.map((s, i) => [String(i), s]));
}

check("readStats sums streams and reads the selected candidate pair", () => {
  const totals = readStats(report({ at: 1000, received: 90, lost: 10, audioReceived: 50 }));
  assert.equal(totals.packetsReceived, 140);
  assert.equal(totals.audioPacketsReceived, 50);
  assert.equal(totals.rtt, 0.05); // Not the other pair's 9 s.
  assert.equal(totals.availableBitrate, 1_000_000);
  assert.equal(totals.remoteReports, 0);
});

check("interval: loss of the interval, audio counted on its own", () => {
  const before = readStats(report({ at: 0, received: 100, audioReceived: 100 }));
  const after = readStats(
    report({ at: 1000, received: 200, lost: 0, audioReceived: 190, audioLost: 10 }),
  );
  const measure = interval(before, after);
  assert.equal(measure.seconds, 1);
  assert.ok(Math.abs(measure.inboundLoss - 0.1) < 1e-9, String(measure.inboundLoss));
  assert.equal(measure.outboundLoss, null); // The relay said nothing of what we send.
  assert.equal(measure.audioPackets, 90);
});

check("interval: what the relay reports of what we send", () => {
  const before = readStats(report({ at: 0, sent: 100, remoteLost: 0 }));
  const after = readStats(report({ at: 1000, sent: 200, remoteLost: 8 }));
  assert.ok(Math.abs(interval(before, after).outboundLoss - 0.08) < 1e-9);
});

check("interval: the first reading has nothing to compare with", () => {
  const measure = interval(null, readStats(report({ at: 5, received: 10, lost: 5 })));
  assert.equal(measure.inboundLoss, null);
  assert.equal(measure.framesDecoded, 0);
});

check("classify: thresholds, unknown measures ignored", () => {
  assert.equal(classify({}), "good");
  assert.equal(classify({ loss: 0.001, rtt: 0.05, availableBitrate: 2_000_000 }), "good");
  assert.equal(classify({ loss: 0.02 }), "fair");
  assert.equal(classify({ rtt: 0.3 }), "fair");
  assert.equal(classify({ availableBitrate: 200_000 }), "fair");
  assert.equal(classify({ loss: 0.05 }), "poor");
  assert.equal(classify({ rtt: 0.5 }), "poor");
  assert.equal(classify({ availableBitrate: 100_000 }), "poor");
});

check("classify: leaving poor takes a clearly better link", () => {
  assert.equal(classify({ loss: 0.03 }), "fair");
  assert.equal(classify({ loss: 0.03 }, "poor"), "poor");
  assert.equal(classify({ loss: 0.01 }, "poor"), "fair");
  assert.equal(classify({ loss: 0.005 }, "poor"), "good");
});

check("worst", () => {
  assert.equal(worst("good", "poor"), "poor");
  assert.equal(worst("fair", "good"), "fair");
  assert.equal(worst("unknown", "fair"), "fair");
  assert.equal(worst(undefined, "unknown"), "unknown");
});

check("QualityMeter smooths one bad second and follows a lasting one", () => {
  const meter = new QualityMeter();
  meter.update({ loss: 0, rtt: 0.05, availableBitrate: 1_000_000 });
  assert.equal(meter.update({ loss: 0.1, rtt: 0.05, availableBitrate: 1_000_000 }), "fair");
  for (let i = 0; i < 5; i += 1) meter.update({ loss: 0.08, rtt: 0.05, availableBitrate: 1e6 });
  assert.equal(meter.quality, "poor");
  // An estimate that stops counting (video capped) does not linger.
  meter.update({ loss: 0, rtt: 0.05, availableBitrate: 50_000 });
  meter.update({ loss: 0, rtt: 0.05, availableBitrate: null });
  assert.equal(meter.availableBitrate, null);
});

function run(qualities, start = initialSteps(), stepMs = 1000) {
  let state = start;
  let now = 0;
  const seen = [];
  for (const quality of qualities) {
    now += stepMs;
    state = nextSteps(state, quality, now);
    seen.push(state.step);
  }
  return { state, seen, now };
}

check("steps: down one step per DOWN_AFTER_MS of poor, to the lowest, then the offer", () => {
  const seconds = (LOWEST + 1) * DOWN_AFTER_MS / 1000 + OFFER_AUDIO_ONLY_AFTER_MS / 1000 + 2;
  const { state, seen } = run(Array(seconds).fill("poor"));
  assert.equal(state.step, LOWEST);
  assert.equal(state.offerAudioOnly, true);
  // Never two steps at once.
  for (let i = 1; i < seen.length; i += 1) assert.ok(seen[i] - seen[i - 1] <= 1);
});

check("steps: one bad second changes nothing", () => {
  const { state } = run(["good", "poor", "good", "good", "poor", "good"]);
  assert.equal(state.step, 0);
});

check("steps: a lasting fair costs one step only", () => {
  const { state } = run(Array(30).fill("fair"));
  assert.equal(state.step, 1);
});

check("steps: back up one step per UP_AFTER_MS of good, and the offer goes", () => {
  const down = run(Array(20).fill("poor"));
  assert.equal(down.state.step, LOWEST);
  let state = down.state;
  let now = down.now;
  const ups = [];
  for (let i = 0; i < (LOWEST + 1) * UP_AFTER_MS / 1000 + 2; i += 1) {
    now += 1000;
    state = nextSteps(state, "good", now);
    ups.push(state.step);
  }
  assert.equal(state.step, 0);
  assert.equal(state.offerAudioOnly, false);
});

check("steps: a failed probe up doubles the wait before the next", () => {
  let { state, now } = run(Array(4).fill("poor"));
  assert.equal(state.step, 1);
  for (let i = 0; i < UP_AFTER_MS / 1000 + 1; i += 1) state = nextSteps(state, "good", (now += 1000));
  assert.equal(state.step, 0);
  for (let i = 0; i < DOWN_AFTER_MS / 1000 + 1; i += 1) state = nextSteps(state, "poor", (now += 1000));
  assert.equal(state.step, 1);
  assert.equal(state.upAfterMs, 2 * UP_AFTER_MS);
  // A step up the link carries halves it again.
  for (let i = 0; i < 2 * UP_AFTER_MS / 1000 + 1; i += 1) state = nextSteps(state, "good", (now += 1000));
  assert.equal(state.step, 0);
  assert.equal(state.upAfterMs, UP_AFTER_MS);
});

check("QualityMeter forgets a loss nobody measures any more", () => {
  const meter = new QualityMeter();
  for (let i = 0; i < 5; i += 1) meter.update({ loss: 0.2, rtt: null, availableBitrate: null });
  assert.equal(meter.quality, "poor");
  assert.equal(meter.update({ loss: null, rtt: 0.02, availableBitrate: null }), "good");
});

check("withStep keeps the sender's parameters and sets the step's limits", () => {
  const parameters = { transactionId: "t", encodings: [{ active: true, maxBitrate: 9 }] };
  const low = withStep(parameters, LOWEST);
  assert.equal(low.transactionId, "t");
  assert.equal(low.encodings[0].active, true);
  assert.equal(low.encodings[0].scaleResolutionDownBy, STEPS[LOWEST].scaleResolutionDownBy);
  assert.equal(low.encodings[0].maxFramerate, STEPS[LOWEST].maxFramerate);
  assert.equal(low.encodings[0].maxBitrate, STEPS[LOWEST].maxBitrate);
  const full = withStep(low, 0);
  assert.equal("maxBitrate" in full.encodings[0], false);
  assert.equal(full.encodings[0].scaleResolutionDownBy, 1);
  assert.equal(withStep({}, 1).encodings.length, 1);
});

check("a call starts within START_PIXELS whatever the camera, and never above", () => {
  assert.equal(startScale(640, 480), 1);
  assert.equal(startScale(320, 240), 1);
  assert.equal(startScale(undefined, undefined), 1); // No settings: nothing to scale.
  for (const [w, h] of [[1280, 720], [1920, 1080], [3840, 2160], [1280, 960], [641, 480]]) {
    const scale = startScale(w, h);
    assert.ok(scale > 1, `${w}x${h}`);
    assert.ok((w / scale) * (h / scale) <= START_PIXELS, `${w}x${h} at ${scale}`);
    // Not needlessly small: one hundredth less would exceed the limit.
    const less = scale - 0.01;
    assert.ok((w / less) * (h / less) > START_PIXELS, `${w}x${h} at ${scale}`);
  }
  assert.equal(startScale(1280, 720), 1.74);
});

check("the full picture comes once the estimate carries it, or after a few seconds", () => {
  assert.equal(fullPictureDue(FULL_PICTURE_BITRATE - 1, FULL_PICTURE_AFTER_MS - 1), false);
  assert.equal(fullPictureDue(FULL_PICTURE_BITRATE, 0), true);
  assert.equal(fullPictureDue(null, FULL_PICTURE_AFTER_MS - 1), false);
  assert.equal(fullPictureDue(undefined, 0), false);
  assert.equal(fullPictureDue(null, FULL_PICTURE_AFTER_MS), true);
  assert.equal(fullPictureDue(FULL_PICTURE_BITRATE - 1, FULL_PICTURE_AFTER_MS), true);
});

let failed = 0;
for (const [name, body] of checks) {
  try {
    body();
    console.log(`ok ${name}`);
  } catch (error) {
    failed += 1;
    console.log(`FAILED ${name}: ${error.message}`);
  }
}
process.exit(failed ? 1 : 0);
