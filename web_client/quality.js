// Connection quality from WebRTC statistics (docs/web_client.md, "Network
// quality"): pure functions over plain objects, no DOM and no browser API, so
// node can test them (tests/test_quality_js.py). An `RTCStatsReport` is a
// Map-like of stats objects; `readStats` takes any iterable of them.

export const QUALITIES = Object.freeze(["good", "fair", "poor"]);

// Speech stays understandable with Opus FEC up to a few percent loss; video
// freezes well before. Round-trip time is both ways: above ~400 ms people
// start talking over each other. Below ~150 kbit/s only audio fits.
export const THRESHOLDS = Object.freeze({
  poor: { loss: 0.04, rtt: 0.4, bitrate: 150_000 },
  // Chrome starts its estimate at 300 kbit/s and ramps up from there.
  fair: { loss: 0.015, rtt: 0.25, bitrate: 250_000 },
});
// Leaving a level takes a clearly better link than entering it: measures
// wobble around a threshold, the indicator must not.
const LEAVE = Object.freeze({ loss: 0.6, rtt: 0.8, bitrate: 1.25 });

/**
 * The counters of one connection's report: what it sends and what it
 * receives (sums over its streams, audio apart), and its transport's estimates.
 */
export function readStats(report) {
  const totals = {
    at: 0,
    packetsSent: 0,
    packetsReceived: 0,
    packetsLost: 0,
    audioPacketsReceived: 0,
    audioPacketsLost: 0,
    remoteLost: 0,
    remoteReports: 0,
    framesDecoded: 0,
    rtt: null,
    availableBitrate: null,
  };
  const entries = typeof report.values === "function" ? report.values() : report;
  const pairs = [];
  let selectedPair = null;
  for (const stats of entries) {
    totals.at = Math.max(totals.at, stats.timestamp || 0);
    switch (stats.type) {
      case "outbound-rtp":
        totals.packetsSent += stats.packetsSent || 0;
        break;
      case "inbound-rtp":
        totals.packetsReceived += stats.packetsReceived || 0;
        totals.packetsLost += Math.max(0, stats.packetsLost || 0);
        if (stats.kind === "video") totals.framesDecoded += stats.framesDecoded || 0;
        if (stats.kind === "audio") {
          // Audio is never retransmitted: its loss is the link's, where video's
          // is what retransmission could not repair.
          totals.audioPacketsReceived += stats.packetsReceived || 0;
          totals.audioPacketsLost += Math.max(0, stats.packetsLost || 0);
        }
        break;
      case "remote-inbound-rtp":
        // What the relay says it got of what we sent (when it says).
        totals.remoteReports += 1;
        totals.remoteLost += Math.max(0, stats.packetsLost || 0);
        if (typeof stats.roundTripTime === "number") totals.rtt = maxOf(totals.rtt, stats.roundTripTime);
        break;
      case "transport":
        if (stats.selectedCandidatePairId) selectedPair = stats.selectedCandidatePairId;
        break;
      case "candidate-pair":
        pairs.push(stats);
        break;
      default:
        break;
    }
  }
  const pair =
    pairs.find((p) => p.id === selectedPair) ||
    pairs.find((p) => p.nominated && p.state === "succeeded") ||
    null;
  if (pair) {
    if (typeof pair.currentRoundTripTime === "number") {
      totals.rtt = maxOf(totals.rtt, pair.currentRoundTripTime);
    }
    if (typeof pair.availableOutgoingBitrate === "number") {
      totals.availableBitrate = pair.availableOutgoingBitrate;
    }
  }
  return totals;
}

function maxOf(a, b) {
  return a === null ? b : Math.max(a, b);
}

function lossOf(lost, received) {
  return received + lost > 0 ? lost / (received + lost) : null;
}

/**
 * What happened between two readings of the same connection: loss as a
 * fraction of the packets of the interval (what we received, the worse of
 * audio and video; what we sent, where the relay reports it), the latest
 * round-trip time and bitrate estimate, and how many video frames and audio
 * packets arrived.
 */
export function interval(before, after) {
  const seconds = before && after.at > before.at ? (after.at - before.at) / 1000 : 0;
  const diff = (name) => (before ? Math.max(0, after[name] - before[name]) : 0);
  const audioLoss = lossOf(diff("audioPacketsLost"), diff("audioPacketsReceived"));
  const allLoss = lossOf(diff("packetsLost"), diff("packetsReceived"));
  const sent = diff("packetsSent");
  const outboundLoss =
    after.remoteReports > 0 && sent > 0 ? Math.min(1, diff("remoteLost") / sent) : null;
  const inboundLoss = maxOrNull(audioLoss, allLoss);
  return {
    seconds,
    loss: maxOrNull(inboundLoss, outboundLoss),
    inboundLoss,
    outboundLoss,
    rtt: after.rtt,
    availableBitrate: after.availableBitrate,
    framesDecoded: diff("framesDecoded"),
    audioPackets: diff("audioPacketsReceived"),
    packetsReceived: diff("packetsReceived"),
  };
}

function maxOrNull(a, b) {
  if (a === null || a === undefined) return b === undefined ? null : b;
  if (b === null || b === undefined) return a;
  return Math.max(a, b);
}

/** Exponential smoothing of a measurement: one bad second is noise, several are a trend. */
export function smooth(previous, value, weight = 0.4) {
  if (value === null || value === undefined) return previous;
  if (previous === null || previous === undefined) return value;
  return previous + weight * (value - previous);
}

/**
 * good | fair | poor from {loss, rtt, availableBitrate}; unknown measures do
 * not count. `current`, the level now, is left only for a clearly better one.
 */
export function classify({ loss = null, rtt = null, availableBitrate = null }, current = "unknown") {
  const over = (level) => {
    const limit = THRESHOLDS[level];
    const stay = QUALITIES.indexOf(current) >= QUALITIES.indexOf(level);
    const lossLimit = stay ? limit.loss * LEAVE.loss : limit.loss;
    const rttLimit = stay ? limit.rtt * LEAVE.rtt : limit.rtt;
    const bitrateLimit = stay ? limit.bitrate * LEAVE.bitrate : limit.bitrate;
    return (
      (loss !== null && loss >= lossLimit) ||
      (rtt !== null && rtt >= rttLimit) ||
      (availableBitrate !== null && availableBitrate < bitrateLimit)
    );
  };
  if (over("poor")) return "poor";
  if (over("fair")) return "fair";
  return "good";
}

/** The worse of two qualities; null and "unknown" count as nothing known. */
export function worst(a, b) {
  const rank = (q) => QUALITIES.indexOf(q);
  if (rank(a) < 0) return rank(b) < 0 ? "unknown" : b;
  if (rank(b) < 0) return a;
  return rank(a) >= rank(b) ? a : b;
}

/**
 * Keeps the smoothed measures of one direction and classifies them. `update`
 * takes one `interval()` and returns the quality now.
 */
export class QualityMeter {
  constructor() {
    this.loss = null;
    this.rtt = null;
    this.availableBitrate = null;
    this.quality = "unknown";
  }

  update(measure) {
    // Not smoothed over a gap: a measure that stopped counting must not stay.
    const next = (previous, value, weight) =>
      value === null || value === undefined ? null : smooth(previous, value, weight);
    this.loss = next(this.loss, measure.loss, 0.3);
    this.rtt = next(this.rtt, measure.rtt, 0.4);
    this.availableBitrate = next(this.availableBitrate, measure.availableBitrate, 0.4);
    this.quality = classify(this, this.quality);
    return this.quality;
  }
}
