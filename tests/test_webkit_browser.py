"""Safari's engine: Debian's WebKitGTK (MiniBrowser) with its mock camera (docs/browsers.md).

Debian builds WebKitGTK without WebRTC (no RTCPeerConnection), so the call
cannot run here; what a Safari patient meets before the call does:

- the page loads and runs its modules, connects over a WebSocket and gets its
  `session`, then says this browser cannot hold the call, in the
  appointment's language, naming the browsers to use and whom to contact;
- a too-early link shows the appointment, warns now that this browser will not
  do, and its camera and microphone test shows the mock camera's picture.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from signalling.app import SOCKETS
from tests.conftest import LiveServer
from tests.support.polling import eventually
from tests.support.screens import catalogue
from tests.support.webkit import STEP, WebKitPage, webkit
from tests.test_appointment_page import PRACTICE, book
from tests.test_e2e_browser import local_link

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(90)]

# Every <video> the page has plays inline (iOS Safari goes full screen otherwise).
ALL_INLINE = "return [...document.querySelectorAll('video')].every(v => v.playsInline)"
PREVIEW = """
const video = document.querySelector('[data-testid="early-preview"]');
return {width: video.videoWidth, ready: video.readyState, paused: video.paused,
        tracks: video.srcObject ? video.srcObject.getTracks().map(t => t.kind).sort() : []};
"""


def sessions_sent(server: LiveServer) -> list[dict[str, Any]]:
    """Records every `session` the server sends (the page disconnects right after)."""
    sio = server.app[SOCKETS].sio
    forward = sio.emit
    sent: list[dict[str, Any]] = []

    async def emit(event: str, data: Any = None, **kwargs: Any) -> Any:
        if event == "session":
            sent.append(data)
        return await forward(event, data, **kwargs)

    sio.emit = emit
    return sent


async def expect_text(page: WebKitPage, testid: str, expected: str) -> None:
    async def shown() -> None:
        assert (await page.text(testid)).strip() == expected

    await eventually(shown, timeout=STEP, what=f"{testid} says {expected!r}")


async def test_page_connects_then_says_which_browser_to_use(live_server: LiveServer) -> None:
    sent = sessions_sent(live_server)
    room = await book(live_server, locale="fr", practice=PRACTICE)
    async with webkit() as page:
        await page.goto(local_link(live_server, room["links"]["patient"]))
        await page.expect_state("error")
        # It got there through the real Socket.IO connection, over a WebSocket.
        assert [s["role"] for s in sent] == ["patient"]
        fr = catalogue("fr")
        assert await page.execute("return document.documentElement.lang") == "fr"
        await expect_text(
            page,
            "error-message",
            fr["browsers.cannot_call"].replace("{advice}", fr["browsers.advice_desktop"]),
        )
        assert fr["error.browser_title"] in await page.execute(
            "return document.querySelector('[data-screen=\"error\"] h1').textContent"
        )
        assert PRACTICE["name"] in await page.text("practice-contact")
        assert await page.execute(ALL_INLINE) is True


async def test_too_early_link_warns_now_and_tests_the_mock_camera(live_server: LiveServer) -> None:
    room = await book(live_server, locale="en", starts_in=timedelta(hours=3))
    async with webkit() as page:
        await page.goto(local_link(live_server, room["links"]["patient"]))
        await page.expect_state("not-yet-open")
        en = catalogue("en")
        await expect_text(
            page,
            "browser-warning",
            en["browsers.warning_early"].replace("{advice}", en["browsers.advice_desktop"]),
        )
        await page.click("early-device-test")
        await expect_text(page, "early-device-status", en["not_yet_open.devices_ok"])

        async def preview_plays() -> None:
            preview = await page.execute(PREVIEW)
            assert preview["tracks"] == ["audio", "video"], preview
            assert preview["width"] > 0, preview
            assert preview["ready"] >= 2, preview

        await eventually(preview_plays, timeout=STEP, what="the mock camera in the preview")
        assert await page.execute(ALL_INLINE) is True
