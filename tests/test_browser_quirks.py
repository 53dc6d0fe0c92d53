"""What Safari (and others) do differently, handled by the page (docs/browsers.md), in Chromium.

Each test makes Chromium behave as the documented browser does, then checks
the page's handling:

- sound that needs a tap: unmuted play() is refused without a user gesture
  (Safari's autoplay policy) -> "Turn on sound", and the tap starts it;
- a tab back from the background with its videos paused (iOS Safari) -> they play again;
- a browser without RTCPeerConnection, or without VP8 -> told so, and told which
  browser to use on an iPhone, on Android, on a computer;
- a page on plain http:// (not a secure context) -> told to open the https link,
  and it never connects (the token would travel in clear).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from playwright.async_api import Browser, Page, expect

from signalling.app import SOCKETS
from signalling.config import Settings
from tests.conftest import LiveServer
from tests.support.browser import chromium
from tests.support.netns import Namespace, network_namespace
from tests.support.screens import catalogue
from tests.support.two_address_server import TwoAddressServer, link_on, two_address_server
from tests.test_e2e_browser import STEP, expect_state, local_link, open_page, wait_remote_frames
from tests.test_e2ee_browser import admit_patient, open_consultation

pytestmark = pytest.mark.browser

# Safari's rule, in Chromium: a <video> with sound starts only within a user gesture.
SOUND_NEEDS_A_GESTURE = """
// The autoplay attribute does not start sound either.
Object.defineProperty(HTMLMediaElement.prototype, "autoplay", { get: () => false, set() {} });
const play = HTMLMediaElement.prototype.play;
HTMLMediaElement.prototype.play = function () {
  // Allowed within a click's handler (window.event), as Safari allows it in a gesture's.
  const event = window.event;
  if (!this.muted && !(event && event.type === "click")) {
    return Promise.reject(new DOMException("needs a gesture", "NotAllowedError"));
  }
  return play.call(this);
};
"""
NO_PEER_CONNECTION = "delete window.RTCPeerConnection;"
NO_VP8 = """
for (const side of [RTCRtpSender, RTCRtpReceiver]) {
  const capabilities = side.getCapabilities.bind(side);
  side.getCapabilities = (kind) => {
    const found = capabilities(kind);
    if (kind !== "video" || !found) return found;
    return { ...found, codecs: found.codecs.filter((c) => c.mimeType !== "video/VP8") };
  };
}
"""
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)
ANDROID = (
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Mobile Safari/537.36"
)
REMOTE_PAUSED = """
() => [...document.querySelectorAll('[data-testid="remote-video"]')].map(v => v.paused)
"""


def expected(key: str, advice: str) -> str:
    en = catalogue("en")
    return en[key].replace("{advice}", en[advice])


async def remote_paused(page: Page) -> list[bool]:
    paused: list[bool] = await page.evaluate(REMOTE_PAUSED)
    return paused


async def test_sound_blocked_until_a_tap_then_playing(live_server: LiveServer) -> None:
    room = await live_server.book()
    async with chromium() as browser:
        doctor = await open_consultation(
            browser, local_link(live_server, room["links"]["practitioner"])
        )
        patient_url = local_link(live_server, room["links"]["patient"])
        patient = await admit_patient(browser, doctor, patient_url, SOUND_NEEDS_A_GESTURE)
        start_audio = patient.get_by_test_id("start-audio")
        await expect(start_audio).to_be_visible(timeout=STEP)
        await expect(patient.get_by_test_id("remote-video")).to_have_count(1)
        assert await remote_paused(patient) == [True]
        assert await patient.get_by_test_id("remote-video").get_attribute("playsinline") == ""
        await start_audio.click()
        await expect(start_audio).to_be_hidden()
        await wait_remote_frames(patient, 30)
        assert await remote_paused(patient) == [False]


async def test_videos_paused_in_the_background_play_again_on_return(
    live_server: LiveServer,
) -> None:
    room = await live_server.book()
    async with chromium() as browser:
        doctor = await open_consultation(
            browser, local_link(live_server, room["links"]["practitioner"])
        )
        patient = await admit_patient(
            browser, doctor, local_link(live_server, room["links"]["patient"])
        )
        await wait_remote_frames(patient, 1)
        # What iOS Safari does to a tab sent to the background; then the tab comes back.
        await patient.evaluate(
            """() => {
              for (const v of document.querySelectorAll('video')) v.pause();
              document.dispatchEvent(new Event('visibilitychange'));
            }"""
        )
        await patient.wait_for_function(
            '() => [...document.querySelectorAll(\'[data-testid="remote-video"],'
            ' [data-testid="local-video"]\')].every(v => !v.paused)',
            timeout=STEP,
        )
        assert await remote_paused(patient) == [False]


async def open_as(browser: Browser, url: str, user_agent: str, init_script: str) -> Page:
    context = await browser.new_context(locale="en-US", user_agent=user_agent)
    await context.add_init_script(init_script)
    page = await context.new_page()
    page.set_default_timeout(STEP)
    await page.goto(url)
    return page


CASES = {
    "iphone": (IPHONE, "browsers.advice_ios"),
    "android": (ANDROID, "browsers.advice_android"),
    "computer": ("", "browsers.advice_desktop"),
}


@pytest.mark.parametrize("missing", [NO_PEER_CONNECTION, NO_VP8], ids=["no-webrtc", "no-vp8"])
async def test_a_browser_that_cannot_call_is_told_which_browser_to_use(
    live_server: LiveServer, missing: str
) -> None:
    room = await live_server.book()
    url = local_link(live_server, room["links"]["patient"])
    async with chromium() as browser:
        for case, (user_agent, advice) in CASES.items():
            if user_agent:
                page = await open_as(browser, url, user_agent, missing)
            else:
                _, page = await open_page(browser, url, missing)
            await expect_state(page, "error")
            message = (await page.get_by_test_id("error-message").inner_text()).strip()
            assert message == expected("browsers.cannot_call", advice), case
            # Told before the camera is ever asked for.
            preview = page.get_by_test_id("device-preview")
            assert await preview.evaluate("v => v.srcObject") is None, case
            await page.context.close()


@pytest.fixture
def namespace() -> Iterator[Namespace]:
    with network_namespace("bq") as ns:
        yield ns


@pytest.fixture
async def server(namespace: Namespace, settings: Settings) -> AsyncIterator[TwoAddressServer]:
    async with two_address_server(settings, namespace.host_address) as server:
        yield server


async def test_plain_http_says_open_the_https_link_and_never_connects(
    server: TwoAddressServer,
) -> None:
    room = await server.book()
    sio = server.app[SOCKETS].sio
    connected: list[str] = []
    forward = sio.emit

    async def emit(event: str, data: object = None, **kwargs: object) -> object:
        connected.append(event)
        return await forward(event, data, **kwargs)

    sio.emit = emit
    async with chromium() as browser:
        # Not loopback, not https: not a secure context for the browser.
        _, page = await open_page(browser, link_on(server.namespace_url, room["links"]["patient"]))
        await expect_state(page, "error")
        en = catalogue("en")
        await expect(page.get_by_test_id("error-message")).to_have_text(en["browsers.insecure"])
        await expect(page.locator('[data-screen="error"] h1')).to_have_text(
            en["browsers.insecure_title"]
        )
        assert await page.evaluate("window.isSecureContext") is False
    assert connected == []
