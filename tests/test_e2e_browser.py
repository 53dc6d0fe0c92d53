"""End to end in real headless Chromium with fake camera and microphone.

Booking webhook → patient checks in → practitioner sees them → admits → both
browsers decode each other's video through the relay → someone else waiting is
turned away → hang up. Error screens for broken, early and late links.
"""

from __future__ import annotations

import json
import re
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from tests.conftest import LiveServer
from tests.support.browser import chromium

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"
STEP = 20_000  # ms: generous, the machine may be loaded; failures still fail.

REMOTE_FRAMES = """
() => [...document.querySelectorAll('[data-testid="remote-video"]')]
        .map(v => v.getVideoPlaybackQuality().totalVideoFrames)
"""


def local_link(server: LiveServer, link: str) -> str:
    """The same link on the test server's real port."""
    return server.base_url + "/c/" + link.split("/c/", 1)[1]


async def open_page(
    browser: Browser, url: str, init_script: str = "", locale: str = "en-US"
) -> tuple[BrowserContext, Page]:
    # English by default: these tests read some of the page's English texts
    # (tests/test_languages.py walks the screens in French).
    context = await browser.new_context(locale=locale)
    if init_script:
        # Runs before the page's own scripts, e.g. to hide a browser feature.
        await context.add_init_script(init_script)
    page = await context.new_page()
    page.set_default_timeout(STEP)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    await page.goto(url)
    page.errors = errors  # type: ignore[attr-defined]
    return context, page


async def practitioner_in_call_patient_waiting(
    browser: Browser, server: LiveServer, room: dict[str, Any], init_script: str = ""
) -> tuple[Page, Page]:
    """The practitioner's page in the call, the patient's checked in: (practitioner, patient)."""
    _, doctor = await open_page(
        browser, local_link(server, room["links"]["practitioner"]), init_script
    )
    await doctor.get_by_test_id("check-in").click()
    await expect_state(doctor, "in-call")
    _, patient = await open_page(browser, local_link(server, room["links"]["patient"]), init_script)
    await patient.get_by_test_id("check-in").click()
    await expect_state(patient, "waiting")
    return doctor, patient


async def confirm(page: Page) -> None:
    """The extra click a destructive action asks for (decline, end, leave)."""
    await page.get_by_test_id("confirm").click()


async def state_of(page: Page) -> str:
    return str(await page.evaluate("document.body.dataset.state"))


async def expect_state(page: Page, state: str) -> None:
    await expect(page.locator("body")).to_have_attribute("data-state", state, timeout=STEP)


async def wait_remote_frames(page: Page, minimum: int) -> list[int]:
    # A function, not a bare expression: the page's CSP forbids eval.
    await page.wait_for_function(
        f"() => ({REMOTE_FRAMES.strip()})().some(n => n >= {minimum})", timeout=STEP
    )
    frames: list[int] = await page.evaluate(REMOTE_FRAMES)
    return frames


# Marked here too: tests/test_rtp_workers.py runs it, and this module's pytestmark stays here.
@pytest.mark.browser
async def test_consultation_from_booking_to_hang_up(live_server: LiveServer) -> None:
    room = await live_server.book(patient_name="Alice Martin", practitioner_name="Dr Bernard")
    patient_url = local_link(live_server, room["links"]["patient"])
    practitioner_url = local_link(live_server, room["links"]["practitioner"])
    metrics: dict[str, Any] = {}

    async with chromium() as browser:
        _, doctor = await open_page(browser, practitioner_url)
        await expect_state(doctor, "precall")
        await expect(doctor.get_by_test_id("device-preview")).to_be_visible()
        await doctor.get_by_test_id("check-in").click()
        await expect_state(doctor, "in-call")
        await expect(doctor.get_by_test_id("waiting-list")).to_be_visible()
        await expect(doctor.get_by_test_id("local-video")).to_be_visible()

        _, patient = await open_page(browser, patient_url)
        await expect_state(patient, "precall")
        await expect(patient.get_by_test_id("device-preview")).to_be_visible()
        await patient.get_by_test_id("check-in").click()
        await expect_state(patient, "waiting")
        await expect(patient.get_by_test_id("waiting-position")).to_contain_text("1")

        entry = doctor.get_by_test_id("waiting-entry")
        await expect(entry).to_have_count(1)
        await expect(entry).to_contain_text("Alice Martin")
        # The waiting patient is not shown anyone else's name, nor any media.
        await expect(patient.get_by_test_id("remote-video")).to_have_count(0)

        admitted_at = time.monotonic()
        await entry.get_by_test_id("admit").click()
        await expect_state(patient, "in-call")
        patient_frames = await wait_remote_frames(patient, 1)
        metrics["admit_to_first_frame_patient_ms"] = round((time.monotonic() - admitted_at) * 1000)
        doctor_frames = await wait_remote_frames(doctor, 1)
        metrics["admit_to_first_frame_practitioner_ms"] = round(
            (time.monotonic() - admitted_at) * 1000
        )
        metrics["page_metrics_patient"] = await patient.evaluate("window.teleconsultMetrics")
        # Keeps decoding, not a single frame.
        patient_frames = await wait_remote_frames(patient, 30)
        doctor_frames = await wait_remote_frames(doctor, 30)
        assert len(patient_frames) == 1
        assert len(doctor_frames) == 1
        # End-to-end encrypted (the default), and verifiable by reading the codes aloud.
        for page in (doctor, patient):
            await expect(page.get_by_test_id("e2ee-status")).to_have_attribute(
                "data-state", "encrypted", timeout=STEP
            )
        doctor_code = (await doctor.get_by_test_id("safety-code").inner_text()).strip()
        assert doctor_code
        assert doctor_code == (await patient.get_by_test_id("safety-code").inner_text()).strip()
        await expect(doctor.get_by_test_id("waiting-entry")).to_have_count(0)

        # Mute and camera off toggle the local tracks.
        await patient.get_by_test_id("toggle-mic").click()
        await expect(patient.get_by_test_id("toggle-mic")).to_have_attribute("aria-pressed", "true")
        await patient.get_by_test_id("toggle-camera").click()
        await expect(patient.get_by_test_id("toggle-camera")).to_have_attribute(
            "aria-pressed", "true"
        )
        await patient.get_by_test_id("toggle-camera").click()
        await patient.get_by_test_id("toggle-mic").click()

        # Someone else waiting, a guest invited from the panel, is turned away (a second
        # device on the patient's own link would take the patient's place over instead).
        await doctor.get_by_test_id("invite-guest").fill("Ines Interprete")
        await doctor.get_by_test_id("invite-guest-submit").click()
        await expect(doctor.get_by_test_id("guest-link")).to_have_value(re.compile("/c/"))
        guest_link = await doctor.get_by_test_id("guest-link").input_value()
        _, intruder = await open_page(browser, local_link(live_server, guest_link))
        await intruder.get_by_test_id("check-in").click()
        await expect_state(intruder, "waiting")
        await expect(doctor.get_by_test_id("waiting-entry")).to_have_count(1)
        await doctor.get_by_test_id("waiting-entry").get_by_test_id("deny").click()
        await confirm(doctor)
        await expect_state(intruder, "denied")
        await expect(doctor.get_by_test_id("waiting-entry")).to_have_count(0)
        assert await state_of(patient) == "in-call"

        # The patient hangs up, then the practitioner ends the consultation.
        await patient.get_by_test_id("hang-up").click()
        await confirm(patient)
        await expect_state(patient, "ended")
        await expect(doctor.get_by_test_id("remote-video")).to_have_count(0)
        await doctor.get_by_test_id("hang-up").click()
        await confirm(doctor)
        await expect_state(doctor, "ended")

        for page in (doctor, patient, intruder):
            assert page.errors == [], page.errors  # type: ignore[attr-defined]

    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "e2e-metrics.json").write_text(json.dumps(metrics, indent=2))
    print("e2e metrics:", json.dumps(metrics))


async def test_broken_links_end_on_an_error_screen(live_server: LiveServer) -> None:
    room = await live_server.book()
    other = await live_server.book()
    link = local_link(live_server, room["links"]["patient"])
    base, token = link.split("#", 1)
    other_token = other["links"]["patient"].split("#", 1)[1]
    cases = {
        "missing token": base,
        "tampered token": base + "#" + token[:-4] + ("AAAA" if token[-4:] != "AAAA" else "BBBB"),
        "garbage token": base + "#not-a-jwt",
        "wrong room": base + "#" + other_token,
        "unknown room": live_server.base_url + "/c/unknownroom123#" + token,
    }
    async with chromium() as browser:
        for case, url in cases.items():
            _, page = await open_page(browser, url)
            await expect_state(page, "error")
            message = page.get_by_test_id("error-message")
            await expect(message).to_be_visible()
            assert (await message.inner_text()).strip(), case


async def test_early_late_and_cancelled_links(live_server: LiveServer) -> None:
    early = await live_server.book(starts_in=timedelta(hours=3))
    late = await live_server.book(starts_in=timedelta(hours=-4))
    cancelled = await live_server.book()
    status, _ = await live_server.send(
        "appointment.cancelled", {"appointment_id": cancelled["appointment_id"]}
    )
    assert status == 200
    async with chromium() as browser:
        _, page = await open_page(browser, local_link(live_server, early["links"]["patient"]))
        await expect_state(page, "not-yet-open")
        _, page = await open_page(browser, local_link(live_server, late["links"]["patient"]))
        await expect_state(page, "closed")
        _, page = await open_page(browser, local_link(live_server, cancelled["links"]["patient"]))
        await expect_state(page, "closed")
