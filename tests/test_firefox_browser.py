"""A consultation between real Debian Firefox (firefox-esr) and real Chromium (docs/browsers.md).

Firefox takes the standard RTCRtpScriptTransform path of e2ee.js, Chromium
the same (its RTCRtpScriptTransform); each decodes the other's video through
the relay, both show "encrypted" and the same safety code. Both ways round:
Firefox as the patient, then as the practitioner. Firefox runs in a network
namespace (it gathers no ICE candidates on loopback) with a private
PulseAudio; the app listens on loopback for Chromium and on the namespace's
host address for Firefox.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
from playwright.async_api import Page, expect

from signalling.config import Settings
from tests.support.browser import chromium
from tests.support.firefox import FirefoxPage, firefox
from tests.support.netns import Namespace, network_namespace
from tests.support.sound_server import SoundServer, sound_server
from tests.support.two_address_server import TwoAddressServer, link_on, two_address_server
from tests.test_e2e_browser import STEP, expect_state, open_page, wait_remote_frames
from tests.test_e2ee_browser import SAFETY_CODE, expect_e2ee, safety_code

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(90)]

FRAMES = 30
# Frames shown by each remote <video>: headless Firefox counts them in
# mozPaintedFrames (its getVideoPlaybackQuality() stays at 0 without a compositor).
FIREFOX_FRAMES = """
() => [...document.querySelectorAll('[data-testid="remote-video"]')]
        .map(v => Math.max(v.getVideoPlaybackQuality().totalVideoFrames, v.mozPaintedFrames || 0))
"""
# The loudest sample of the remote <video>'s decoded sound over up to 5 s: the
# other side's fake microphone (a tone in Firefox, beeps in Chromium) once decrypted.
AUDIO_PEAK = """
async () => {
  const video = document.querySelector('[data-testid="remote-video"]');
  const stream = video.captureStream ? video.captureStream() : video.mozCaptureStream();
  const context = new AudioContext();
  await context.resume();
  const analyser = context.createAnalyser();
  analyser.fftSize = 2048;
  context.createMediaStreamSource(stream).connect(analyser);
  const samples = new Float32Array(analyser.fftSize);
  let peak = 0;
  const until = performance.now() + 5000;
  while (peak < 0.05 && performance.now() < until) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    analyser.getFloatTimeDomainData(samples);
    for (const sample of samples) peak = Math.max(peak, Math.abs(sample));
  }
  await context.close();
  return peak;
}
"""
HEARD = 0.05


@pytest.fixture
def namespace() -> Iterator[Namespace]:
    with network_namespace("ff") as ns:
        yield ns


@pytest.fixture
def sound() -> Iterator[SoundServer]:
    with sound_server() as server:
        yield server


@pytest.fixture
async def server(namespace: Namespace, settings: Settings) -> AsyncIterator[TwoAddressServer]:
    async with two_address_server(settings, namespace.host_address) as server:
        yield server


async def firefox_frames(page: FirefoxPage, minimum: int) -> list[int]:
    await page.wait_for_function(f"() => ({FIREFOX_FRAMES.strip()})().some(n => n >= {minimum})")
    frames: list[int] = await page.evaluate(FIREFOX_FRAMES)
    return frames


async def firefox_safety_code(page: FirefoxPage) -> str:
    await page.wait_for_function(
        "() => /^\\d{5} \\d{5} \\d{5} \\d{5}$/"
        ".test(document.querySelector('[data-testid=\"safety-code\"]').textContent.trim())"
    )
    return (await page.text("safety-code")).strip()


async def chromium_check(page: Page) -> tuple[str, list[int]]:
    frames = await wait_remote_frames(page, FRAMES)
    await expect_e2ee(page, "encrypted")
    return await safety_code(page), frames


async def firefox_check(page: FirefoxPage) -> tuple[str, list[int]]:
    frames = await firefox_frames(page, FRAMES)
    await page.expect_attribute("e2ee-status", "data-state", "encrypted")
    return await firefox_safety_code(page), frames


@pytest.mark.parametrize("firefox_role", ["patient", "practitioner"])
async def test_firefox_and_chromium_hold_an_encrypted_call(
    server: TwoAddressServer, namespace: Namespace, sound: SoundServer, firefox_role: str
) -> None:
    room = await server.book(patient_name="Alice Martin", practitioner_name="Dr Bernard")
    chromium_role = "practitioner" if firefox_role == "patient" else "patient"
    firefox_url = link_on(server.namespace_url, room["links"][firefox_role])
    chromium_url = link_on(server.base_url, room["links"][chromium_role])
    async with (
        chromium() as browser,
        firefox(namespace, sound, [namespace.host_address]) as fox,
    ):
        await fox.goto(firefox_url)
        await fox.expect_state("precall")
        # The standard encoded-transform path of e2ee.js, not Chromium's fallback.
        assert await fox.evaluate("() => typeof RTCRtpScriptTransform") == "function"
        _, other = await open_page(browser, chromium_url)
        await expect_state(other, "precall")
        if firefox_role == "practitioner":
            await fox.click("check-in")
            await fox.expect_state("in-call")
            await other.get_by_test_id("check-in").click()
            await expect_state(other, "waiting")
            await fox.click("admit")
            await expect_state(other, "in-call")
        else:
            await other.get_by_test_id("check-in").click()
            await expect_state(other, "in-call")
            await fox.click("check-in")
            await fox.expect_state("waiting")
            await other.get_by_test_id("waiting-entry").get_by_test_id("admit").click()
            await fox.expect_state("in-call")
        (fox_code, fox_frames), (other_code, other_frames) = await asyncio.gather(
            firefox_check(fox), chromium_check(other)
        )
        assert SAFETY_CODE.match(fox_code)
        assert fox_code == other_code
        assert len(fox_frames) == 1
        assert len(other_frames) == 1
        # Sound both ways, decrypted: each hears the other's microphone.
        assert await other.evaluate(AUDIO_PEAK) >= HEARD
        assert await fox.evaluate(AUDIO_PEAK) >= HEARD
        assert await fox.errors() == []
        assert other.errors == []  # type: ignore[attr-defined]
        await expect(other.get_by_test_id("e2ee-status")).to_have_attribute(
            "data-state", "encrypted", timeout=STEP
        )
