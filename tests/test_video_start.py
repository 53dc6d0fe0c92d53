"""A call's video starts within VGA and then sends the camera's full picture.

libwebrtc drops the first frames of a picture larger than its starting
bandwidth estimate carries, which delayed the other side's first frame by
~130 ms from a 720p camera (docs/web_client.md, "Start small"). Real
Chromium on both sides, the fake camera at 1280x720.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import Page

from tests.conftest import LiveServer
from tests.support.browser import chromium
from tests.support.polling import eventually
from tests.support.webrtc_stats import COLLECT_CONNECTIONS, received
from tests.test_e2e_browser import expect_state, practitioner_in_call_patient_waiting

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

START_PIXELS = 640 * 480

SENT = """
() => {
  for (const pc of window.__testPeerConnections || []) {
    if (pc.connectionState === "closed") continue;
    for (const sender of pc.getSenders()) {
      if (!sender.track || sender.track.kind !== "video") continue;
      const { width, height } = sender.track.getSettings();
      const encoding = sender.getParameters().encodings[0] || {};
      return { width, height, scale: encoding.scaleResolutionDownBy || 1 };
    }
  }
  return null;
}
"""


async def sent(page: Page) -> dict[str, Any] | None:
    result: dict[str, Any] | None = await page.evaluate(SENT)
    return result


async def test_video_starts_within_vga_then_goes_full_once_the_estimate_carries_it(
    live_server: LiveServer,
) -> None:
    room = await live_server.book()
    async with chromium() as browser:
        doctor, patient = await practitioner_in_call_patient_waiting(
            browser, live_server, room, COLLECT_CONNECTIONS
        )
        await doctor.get_by_test_id("waiting-entry").get_by_test_id("admit").click()
        await expect_state(patient, "in-call")

        first = await sent(patient)
        assert first is not None, "the patient publishes no video"
        pixels = first["width"] * first["height"]
        assert pixels > START_PIXELS, f"the fake camera gave {first}: nothing to start small"
        # The publish offer asked for the start size before the first frame.
        assert (first["width"] / first["scale"]) * (
            first["height"] / first["scale"]
        ) <= START_PIXELS
        assert first["scale"] > 1

        async def practitioner_sees_video() -> None:
            assert (await received(doctor))["videoFrames"] >= 10

        await eventually(practitioner_sees_video, timeout=20)

        # At the first check where the estimate reaches 500 kbit/s, and after 4 s at most.
        async def full_picture() -> None:
            now = await sent(patient)
            quality = await patient.evaluate("window.teleconsultMetrics.quality")
            assert now is not None
            assert now["scale"] == 1, (now, quality)
            assert quality is not None
            assert quality["startScaled"] is False, quality

        await eventually(full_picture, timeout=15)
        assert (await patient.evaluate("window.teleconsultMetrics.quality"))["step"] == 0
