"""What a page's peer connections receive, read with getStats from the test.

`COLLECT_CONNECTIONS` is an init script that keeps every RTCPeerConnection the
page makes in `window.__testPeerConnections` (the page itself never exposes
them); `received(page)` sums their inbound-rtp counters by kind, so a test can
show that audio is really heard at the other end (packets, and decoded audio
energy: silence or concealment has none) and video really decoded.
"""

from __future__ import annotations

from typing import Any, TypedDict

from playwright.async_api import Page

COLLECT_CONNECTIONS = """
(() => {
  const Native = window.RTCPeerConnection;
  if (!Native) return;
  window.__testPeerConnections = [];
  function Collected(...args) {
    const pc = new Native(...args);
    window.__testPeerConnections.push(pc);
    return pc;
  }
  Collected.prototype = Native.prototype;
  Object.setPrototypeOf(Collected, Native);
  window.RTCPeerConnection = Collected;
})();
"""

RECEIVED = """
async () => {
  const totals = {audioPackets: 0, audioLost: 0, audioEnergy: 0, audioSamples: 0,
                  videoFrames: 0, videoWidth: 0, videoPackets: 0, videoLost: 0};
  for (const pc of window.__testPeerConnections || []) {
    if (pc.connectionState === "closed") continue;
    const report = await pc.getStats();
    report.forEach((s) => {
      if (s.type !== "inbound-rtp") return;
      if (s.kind === "audio") {
        totals.audioPackets += s.packetsReceived || 0;
        totals.audioLost += s.packetsLost || 0;
        totals.audioEnergy += s.totalAudioEnergy || 0;
        totals.audioSamples += s.totalSamplesReceived || 0;
      } else if (s.kind === "video") {
        totals.videoFrames += s.framesDecoded || 0;
        totals.videoPackets += s.packetsReceived || 0;
        totals.videoLost += s.packetsLost || 0;
        totals.videoWidth = Math.max(totals.videoWidth, s.frameWidth || 0);
      }
    });
  }
  return totals;
}
"""

SENT_VIDEO = """
async () => {
  const out = {frameWidth: 0, framesPerSecond: 0, framesEncoded: 0, remoteDescriptions: [],
               encodings: []};
  for (const pc of window.__testPeerConnections || []) {
    if (pc.connectionState === "closed") continue;
    if (pc.remoteDescription) out.remoteDescriptions.push(pc.remoteDescription.sdp);
    for (const sender of pc.getSenders()) {
      // What setParameters asked of the encoder (null: the sender sends no track).
      const kind = sender.track ? sender.track.kind : null;
      if (kind === "video") out.encodings.push(...sender.getParameters().encodings);
    }
    const report = await pc.getStats();
    report.forEach((s) => {
      if (s.type === "outbound-rtp" && s.kind === "video") {
        out.frameWidth = Math.max(out.frameWidth, s.frameWidth || 0);
        out.framesPerSecond = Math.max(out.framesPerSecond, s.framesPerSecond || 0);
        out.framesEncoded += s.framesEncoded || 0;
      }
    });
  }
  return out;
}
"""


class Received(TypedDict):
    audioPackets: int
    audioLost: int
    audioEnergy: float
    audioSamples: int
    videoFrames: int
    videoWidth: int
    videoPackets: int
    videoLost: int


async def received(page: Page) -> Received:
    totals: Received = await page.evaluate(RECEIVED)
    return totals


async def sent_video(page: Page) -> dict[str, Any]:
    out: dict[str, Any] = await page.evaluate(SENT_VIDEO)
    return out
