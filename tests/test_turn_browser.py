"""Chromium told to use TURN only reaches the relay through a real coturn and decodes video.

The server sends `ice_transport_policy: "relay"` in the `session` payload; the
web client passes it to every RTCPeerConnection. An init script records the
page's peer connections (without changing them) so the test can read which
candidate pair each one selected.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Page

from signalling.app import make_app
from tests.conftest import LiveServer
from tests.support import make_settings
from tests.support.browser import chromium
from tests.support.coturn_server import CoturnServer
from tests.test_e2e_browser import expect_state, local_link, open_page, wait_remote_frames

pytestmark = pytest.mark.browser

RECORD_PEER_CONNECTIONS = """
(() => {
  const Native = window.RTCPeerConnection;
  window.__peerConnections = [];
  window.RTCPeerConnection = function (config, ...rest) {
    const pc = new Native(config, ...rest);
    window.__peerConnections.push({ pc, policy: (config || {}).iceTransportPolicy || "all" });
    return pc;
  };
  window.RTCPeerConnection.prototype = Native.prototype;
  Object.setPrototypeOf(window.RTCPeerConnection, Native);
})();
"""

# For every connected peer connection: the policy it was built with and the
# candidate types of its selected pair.
SELECTED_PAIRS = """
async () => {
  const out = [];
  for (const { pc, policy } of window.__peerConnections) {
    if (pc.connectionState !== "connected") continue;
    const stats = await pc.getStats();
    let local = null, remote = null;
    stats.forEach((report) => {
      if (report.type !== "transport" || !report.selectedCandidatePairId) return;
      const pair = stats.get(report.selectedCandidatePairId);
      local = stats.get(pair.localCandidateId).candidateType;
      remote = stats.get(pair.remoteCandidateId).candidateType;
    });
    out.push({ policy, local, remote });
  }
  return out;
}
"""


async def selected_pairs(page: Page) -> list[dict[str, Any]]:
    pairs: list[dict[str, Any]] = await page.evaluate(SELECTED_PAIRS)
    return pairs


async def test_relay_only_browsers_talk_through_coturn(
    aiohttp_server: Callable[..., Awaitable[TestServer]], coturn: CoturnServer
) -> None:
    settings = make_settings(
        turn_urls=(coturn.url,), turn_secret=coturn.secret, ice_transport_policy="relay"
    )
    server = LiveServer(await aiohttp_server(make_app(settings), host="127.0.0.1"))
    room = await server.book()

    async with chromium() as browser:
        doctor_context, doctor = await open_page(browser, "about:blank")
        patient_context, patient = await open_page(browser, "about:blank")
        for context in (doctor_context, patient_context):
            await context.add_init_script(RECORD_PEER_CONNECTIONS)
        await doctor.goto(local_link(server, room["links"]["practitioner"]))
        await patient.goto(local_link(server, room["links"]["patient"]))

        await expect_state(doctor, "precall")
        await doctor.get_by_test_id("check-in").click()
        await expect_state(doctor, "in-call")
        await expect_state(patient, "precall")
        await patient.get_by_test_id("check-in").click()
        await expect_state(patient, "waiting")
        await doctor.get_by_test_id("waiting-entry").get_by_test_id("admit").click()
        await expect_state(patient, "in-call")

        # Keeps decoding: thirty frames each way, all of it through the TURN relay.
        await wait_remote_frames(patient, 30)
        await wait_remote_frames(doctor, 30)

        for page in (doctor, patient):
            pairs = await selected_pairs(page)
            # One publish and one subscription connection at least, every one relayed.
            assert len(pairs) >= 2, pairs
            for pair in pairs:
                assert pair["policy"] == "relay", pairs
                assert pair["local"] == "relay", pairs
            assert page.errors == [], page.errors  # type: ignore[attr-defined]
