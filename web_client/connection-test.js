// The pre-call connection test on the device check (docs/web_client.md,
// "Connection test"; docs/protocol.md `connection_test`): one peer connection
// to the relay that would carry the call, over the same ICE servers (TURN
// included) and transport policy as the call, with one unreliable data
// channel. We send small numbered probes, the relay echoes each back, and the
// round trip and the share lost say in plain words whether the call will work.

import { iceGatheringComplete } from "./media.js";
import * as screens from "./screens.js";
import { app } from "./state.js";

const { byTestId } = screens;

const PROBES = 40;
const PROBE_INTERVAL_MS = 50;
// Connecting (ICE, DTLS, SCTP) on a slow network; the relay's echo lives 8 s.
const OPEN_TIMEOUT_MS = 4000;
const LAST_REPLY_WAIT_MS = 600;
const REQUEST_TIMEOUT_MS = 10_000;
// Beyond these a call stutters: the figures WebRTC's own quality limits use.
const POOR_RTT_MS = 400;
const POOR_LOSS = 0.05;

let running = false;

const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** "good", "poor" or "failed" from what came back; figures rounded for people. */
export function verdict(sent, roundTrips) {
  if (!sent || roundTrips.length === 0) return { result: "failed", rttMs: null, lossPercent: 100 };
  const sorted = [...roundTrips].sort((a, b) => a - b);
  const rttMs = Math.round(sorted[Math.floor(sorted.length / 2)]);
  const loss = Math.max(0, 1 - roundTrips.length / sent);
  const result = loss > POOR_LOSS || rttMs > POOR_RTT_MS ? "poor" : "good";
  return { result, rttMs, lossPercent: Math.round(loss * 100) };
}

function channelOpen(channel, timeoutMs) {
  if (channel.readyState === "open") return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    channel.addEventListener("open", () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/** Whether the pair in use goes through TURN (the local candidate is a relay one). */
async function throughTurn(pc) {
  try {
    const stats = await pc.getStats();
    for (const report of stats.values()) {
      if (report.type !== "transport" || !report.selectedCandidatePairId) continue;
      const pair = stats.get(report.selectedCandidatePairId);
      const local = pair && stats.get(pair.localCandidateId);
      return Boolean(local && local.candidateType === "relay");
    }
  } catch {
    // The figures stand without the route.
  }
  return false;
}

/** Runs one test through the relay; resolves with {result, rttMs, lossPercent, turn}. */
export async function measureConnection(signalling, iceServers, iceTransportPolicy) {
  const pc = new RTCPeerConnection({
    iceServers: Array.isArray(iceServers) ? iceServers : [],
    iceTransportPolicy: iceTransportPolicy === "relay" ? "relay" : "all",
  });
  const channel = pc.createDataChannel("probe", { ordered: false, maxRetransmits: 0 });
  const sentAt = new Map();
  const roundTrips = [];
  channel.addEventListener("message", (event) => {
    const seq = Number(String(event.data).split(" ")[1]);
    const at = sentAt.get(seq);
    if (at === undefined) return;
    sentAt.delete(seq);
    roundTrips.push(performance.now() - at);
  });
  try {
    await pc.setLocalDescription(await pc.createOffer());
    await iceGatheringComplete(pc);
    const ack = await signalling.request(
      "connection_test",
      { sdp: pc.localDescription.sdp, type: "offer" },
      REQUEST_TIMEOUT_MS,
    );
    await pc.setRemoteDescription({ type: "answer", sdp: (ack.answer || {}).sdp });
    if (!(await channelOpen(channel, OPEN_TIMEOUT_MS))) return verdict(0, []);
    for (let seq = 0; seq < PROBES && channel.readyState === "open"; seq += 1) {
      sentAt.set(seq, performance.now());
      channel.send(`probe ${seq} ${"x".repeat(64)}`);
      await delay(PROBE_INTERVAL_MS);
    }
    await delay(LAST_REPLY_WAIT_MS);
    return { ...verdict(PROBES, roundTrips), turn: await throughTurn(pc) };
  } finally {
    pc.close();
  }
}

function render(outcome) {
  const element = byTestId("connection-result");
  element.dataset.result = outcome.result;
  if (outcome.result === "failed") delete element.dataset.route;
  else element.dataset.route = outcome.turn ? "turn" : "direct";
  const params = { rtt: outcome.rttMs ?? 0, loss: outcome.lossPercent };
  screens.setInline("connection-result", { key: `connection_test.${outcome.result}`, params });
}

/** The button of the device check: one test at a time, once connected. */
export async function runConnectionTest() {
  if (running || !app.signalling || !app.session) return;
  running = true;
  const button = byTestId("connection-test");
  button.disabled = true;
  const element = byTestId("connection-result");
  element.dataset.result = "running";
  screens.setInline("connection-result", "connection_test.running");
  let outcome;
  try {
    outcome = await measureConnection(
      app.signalling,
      app.session.ice_servers,
      app.session.ice_transport_policy,
    );
  } catch {
    // Refused or unanswered by the relay: media would not get through either.
    outcome = verdict(0, []);
  } finally {
    running = false;
    button.disabled = false;
  }
  render(outcome);
}

/** Called when the device check shows: the test needs the connection's session. */
export function offerConnectionTest() {
  byTestId("connection-test").disabled = !app.session || running;
}
