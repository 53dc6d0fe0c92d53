"""A consultation whose patient is on a weak mobile link, then on a good one again.

The patient's Chromium runs inside a network namespace the test makes
(tests/support/netns.py: a veth pair in 198.18.0.0/15, nothing else
reachable); the app listens on the host end. The link then becomes
300 kbit/s each way with a 150 ms queue and 5 % loss (tests/support/netem.py:
this kernel has no netem, so tbf and an iptables random drop where packets arrive). Audio must keep
flowing to the practitioner, the patient's video must step down, both sides'
quality indicators must say poor, and nothing may crash; when the link
recovers the video steps back up.
"""

from __future__ import annotations

import stat
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Page, expect

from signalling.app import make_app
from signalling.config import Settings
from tests.conftest import LiveServer
from tests.support.browser import chromium, require_chromium
from tests.support.netem import Impairment, weak_link
from tests.support.netns import network_namespace
from tests.support.polling import eventually
from tests.support.webrtc_stats import COLLECT_CONNECTIONS, received, sent_video
from tests.test_e2e_browser import expect_state, open_page

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(150)]

# Seconds: each phase is bounded, and the whole test stays under about a minute.
PHASE = 30


def local(server: LiveServer, link: str) -> str:
    return server.base_url + "/c/" + link.split("/c/", 1)[1]


async def step_of(page: Page) -> int:
    return int(await page.get_by_test_id("quality-self").get_attribute("data-video-step") or 0)


async def measures(*pages: Page) -> list[Any]:
    return [await page.evaluate("window.teleconsultMetrics.quality") for page in pages]


async def test_a_weak_link_keeps_the_voice_and_steps_video_down_then_up(
    aiohttp_server: Callable[..., Awaitable[TestServer]], settings: Settings, tmp_path: Path
) -> None:
    figures: dict[str, Any] = {}
    with network_namespace("dg") as ns, weak_link(ns) as link:
        server = LiveServer(await aiohttp_server(make_app(settings), host=ns.host_address))
        room = await server.book(patient_name="Alice Martin", practitioner_name="Dr Bernard")
        # Plain http on a non-loopback address: allowed the camera as a secure origin.
        flags = [f"--unsafely-treat-insecure-origin-as-secure={server.base_url}"]
        wrapper = tmp_path / "chromium-in-namespace"
        wrapper.write_text(
            f'#!/bin/sh\nexec ip netns exec {ns.name} {require_chromium()} "$@"\n',
            encoding="ascii",
        )
        wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)

        async with (
            chromium(flags) as host_browser,
            chromium(flags, wrapper=str(wrapper)) as namespace_browser,
        ):
            _, doctor = await open_page(
                host_browser,
                local(server, room["links"]["practitioner"]),
                init_script=COLLECT_CONNECTIONS,
            )
            await doctor.get_by_test_id("check-in").click()
            await expect_state(doctor, "in-call")
            _, patient = await open_page(
                namespace_browser,
                local(server, room["links"]["patient"]),
                init_script=COLLECT_CONNECTIONS,
            )
            await patient.get_by_test_id("check-in").click()
            await doctor.get_by_test_id("waiting-entry").get_by_test_id("admit").click()
            await expect_state(patient, "in-call")

            async def video_flows(at_least: int) -> None:
                assert (await received(doctor))["videoFrames"] >= at_least

            await eventually(lambda: video_flows(30), timeout=PHASE)

            # A good link: full video (a step taken while the estimate ramped up is undone).
            async def full_video() -> None:
                quality = await patient.get_by_test_id("quality-self").get_attribute("data-quality")
                assert quality == "good", await measures(patient, doctor)
                assert await step_of(patient) == 0, await measures(patient, doctor)

            await eventually(full_video, timeout=PHASE)
            # The relay asks the patient's Opus for in-band FEC and DTX.
            answer = " ".join((await sent_video(patient))["remoteDescriptions"])
            assert "useinbandfec=1" in answer
            assert "usedtx=1" in answer
            full_width = (await sent_video(patient))["frameWidth"]
            assert full_width > 0

            # The weak link.
            link.degrade(Impairment(rate_kbit=300, queue_ms=150, loss_percent=5))
            started = time.monotonic()
            audio_before = await received(doctor)
            await expect(patient.get_by_test_id("quality-self")).to_have_attribute(
                "data-quality", "poor", timeout=PHASE * 1000
            )
            await expect(doctor.get_by_test_id("quality-remote")).to_have_attribute(
                "data-quality", "poor", timeout=PHASE * 1000
            )
            await expect(doctor.get_by_test_id("remote-poor")).to_contain_text("Alice Martin")

            async def stepped_down() -> None:
                assert await step_of(patient) >= 1
                sent = await sent_video(patient)
                assert sent["frameWidth"] < full_width
                # Asked of the encoder by the page, not only the browser's own adaptation.
                (encoding,) = sent["encodings"]
                assert encoding["scaleResolutionDownBy"] >= 2
                assert encoding["maxFramerate"] <= 15
                assert encoding["maxBitrate"] <= 250_000

            await eventually(stepped_down, timeout=PHASE)
            figures["poor_to_step_down_s"] = round(time.monotonic() - started, 1)

            async def voice_flows() -> None:
                now = await received(doctor)
                assert now["audioPackets"] >= audio_before["audioPackets"] + 100, now
                assert now["audioEnergy"] > audio_before["audioEnergy"], now

            await eventually(voice_flows, timeout=PHASE)
            figures["degraded_s"] = round(time.monotonic() - started, 1)
            figures["sent_width_full_and_stepped"] = [
                full_width,
                (await sent_video(patient))["frameWidth"],
            ]

            # The link recovers: good again, then video back up.
            figures["degraded_measures"] = await measures(patient, doctor)
            # The patient measures its own uplink: the relay's receiver reports say
            # what reached it (before them, the patient's own loss was unknown and
            # which side got the blame was a race).
            assert figures["degraded_measures"][0]["loss"] is not None, figures
            figures["doctor_received"] = [audio_before, await received(doctor)]
            figures["patient_received"] = await received(patient)
            link.restore()
            recovered = time.monotonic()
            try:
                await expect(patient.get_by_test_id("quality-self")).to_have_attribute(
                    "data-quality", "good", timeout=PHASE * 1000
                )
            finally:
                figures["recovered_measures"] = await measures(patient, doctor)
                print("degraded network figures:", figures)

            async def back_up() -> None:
                assert await step_of(patient) == 0
                (encoding,) = (await sent_video(patient))["encodings"]
                assert encoding["scaleResolutionDownBy"] == 1
                assert "maxBitrate" not in encoding

            await eventually(back_up, timeout=PHASE)
            frames = (await received(doctor))["videoFrames"]
            await eventually(lambda: video_flows(frames + 30), timeout=PHASE)
            await expect(doctor.get_by_test_id("remote-poor")).to_be_hidden()
            figures["recovery_to_full_video_s"] = round(time.monotonic() - recovered, 1)

            for page in (doctor, patient):
                assert await page.evaluate("document.body.dataset.state") == "in-call"
                assert page.errors == [], page.errors  # type: ignore[attr-defined]
    print("degraded network figures:", figures)
