// Connection quality from WebRTC statistics (docs/web_client.md, "Network
// quality"): pure functions over plain objects, no DOM and no browser API, so
// node can test them (tests/test_quality_js.py). An `RTCStatsReport` is a
// Map-like of stats objects; `readStats` takes any iterable of them.

export const QUALITIES = Object.freeze(["good", "fair", "poor"]);

// Speech stays understandable with Opus FEC up to a few percent loss; video
// freezes well before. Round-trip time is both ways: above ~400 ms people
// start talking over each other. Below ~150 kbit/s only audio fits.
export const THRESHOLDS = Object.freeze({
  poor: { loss: 0.05, rtt: 0.4, bitrate: 150_000 },
  fair: { loss: 0.02, rtt: 0.25, bitrate: 400_000 },
});

/**
 * The counters of one connection's report: what it sends and what it
 * receives (sums over its streams), and its transport's estimates.
 */
export function readStats(report) {
  const totals = {
    at: 0,
    packetsSent: 0,
    packetsReceived: 0,
    packetsLost: 0,
    remoteLost: 0,
    remotePackets: 0,
    framesDecoded: 0,
    audioPacketsReceived: 0,
    rtt: null,
    availableBitrate: null,
  };
  const entries = typeof report.values === "function" ? report.values() : report;
  let pairs = [];
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
        else if (stats.kind === "audio") totals.audioPacketsReceived += stats.packetsReceived || 0;
        break;
      case "remote-inbound-rtp":
        // What the relay says it got of what we sent.
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
  totals.remotePackets = totals.packetsSent;
  return totals;
}

function maxOf(a, b) {
  return a === null ? b : Math.max(a, b);
}

/**
 * What happened between two readings of the same connection: loss as a
 * fraction of the packets of the interval (received side and, where the relay
 * reports it, sent side), the latest round-trip time and bitrate estimate,
 * and how many video frames and audio packets arrived.
 */
export function interval(before, after) {
  const seconds = before && after.at > before.at ? (after.at - before.at) / 1000 : 0;
  const diff = (name) => (before ? Math.max(0, after[name] - before[name]) : 0);
  const received = diff("packetsReceived");
  const lost = diff("packetsLost");
  const sent = diff("packetsSent");
  const remoteLost = diff("remoteLost");
  const inboundLoss = received + lost > 0 ? lost / (received + lost) : null;
  const outboundLoss = sent > 0 ? Math.min(1, remoteLost / sent) : null;
  return {
    seconds,
    loss: maxOrNull(inboundLoss, outboundLoss),
    inboundLoss,
    outboundLoss,
    rtt: after.rtt,
    availableBitrate: after.availableBitrate,
    framesDecoded: diff("framesDecoded"),
    audioPackets: diff("audioPacketsReceived"),
    packetsReceived: received,
  };
}

function maxOrNull(a, b) {
  if (a === null) return b;
  if (b === null) return a;
  return Math.max(a, b);
}

/** Exponential smoothing of a measurement: one bad second is noise, several are a trend. */
export function smooth(previous, value, weight = 0.4) {
  if (value === null || value === undefined) return previous;
  if (previous === null || previous === undefined) return value;
  return previous + weight * (value - previous);
}

/** good | fair | poor from {loss, rtt, availableBitrate}; unknown measures do not count. */
export function classify({ loss = null, rtt = null, availableBitrate = null }) {
  const over = (level) => {
    const limit = THRESHOLDS[level];
    return (
      (loss !== null && loss >= limit.loss) ||
      (rtt !== null && rtt >= limit.rtt) ||
      (availableBitrate !== null && availableBitrate < limit.bitrate)
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
    this.loss = smooth(this.loss, measure.loss);
    this.rtt = smooth(this.rtt, measure.rtt);
    this.availableBitrate = smooth(this.availableBitrate, measure.availableBitrate);
    this.quality = classify(this);
    return this.quality;
  }
}
