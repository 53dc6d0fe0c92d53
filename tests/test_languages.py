"""Every screen state in French and in English, in real Chromium.

A patient, a guest and a practitioner go through a whole consultation (and a
second patient is turned away) with the browser in `fr-FR`, then in `en-US`.
At each state: `<html lang>`, no English left on the French page (its text
compared with the English catalogue), 24-hour times in French, no critical or
serious axe-core violation, the call controls on screen at 1280x800 and
390x844, and screenshots of both sizes in test-artifacts/screens/.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from playwright.async_api import Browser, Page, expect

from signalling.config import Settings
from tests.conftest import LiveServer
from tests.support import make_settings
from tests.support.browser import chromium
from tests.support.screens import check_screen
from tests.test_desk import API_KEY, book_for, desk_link
from tests.test_e2e_browser import confirm, expect_state, local_link, open_page

pytestmark = pytest.mark.browser

PRACTITIONER = "prac-lang"
TWELVE_HOUR = re.compile(r"\d{1,2}:\d{2}\s?(AM|PM|am|pm)")
TWENTY_FOUR_HOUR = re.compile(r"\b([01]\d|2[0-3]):[0-5]\d\b")


@pytest.fixture
def settings() -> Settings:
    return make_settings(api_key=API_KEY)


async def page_in(browser: Browser, url: str, locale: str) -> Page:
    _, page = await open_page(browser, url, locale=locale)
    return page


async def walk_every_screen(live_server: LiveServer, locale: str) -> None:
    language = locale[:2]
    alice_room = await book_for(
        live_server, PRACTITIONER, starts_in=timedelta(minutes=5), patient_name="Alice Martin"
    )
    bruno_room = await book_for(
        live_server, PRACTITIONER, starts_in=timedelta(minutes=12), patient_name="Bruno Petit"
    )
    early = await live_server.book(starts_in=timedelta(hours=3))
    late = await live_server.book(starts_in=timedelta(hours=-4))
    desk_url = (
        live_server.base_url + "/d#" + (await desk_link(live_server, PRACTITIONER)).split("#", 1)[1]
    )

    async with chromium() as browser:
        # Links that cannot lead to a consultation.
        error = await page_in(browser, live_server.base_url + "/c/some-room", locale)
        await expect_state(error, "error")
        await check_screen(error, "error", locale)
        closed = await page_in(browser, local_link(live_server, late["links"]["patient"]), locale)
        await expect_state(closed, "closed")
        await check_screen(closed, "closed", locale)
        too_early = await page_in(
            browser, local_link(live_server, early["links"]["patient"]), locale
        )
        await expect_state(too_early, "not-yet-open")
        opening = await too_early.get_by_test_id("not-yet-open-message").inner_text()
        if language == "fr":
            assert TWENTY_FOUR_HOUR.search(opening), opening
            assert not TWELVE_HOUR.search(opening), opening
        await check_screen(too_early, "not-yet-open", locale)

        # The practitioner opens the consultation.
        doctor = await page_in(
            browser, local_link(live_server, alice_room["links"]["practitioner"]), locale
        )
        await expect(doctor.get_by_test_id("check-in")).to_be_enabled()
        await check_screen(doctor, "precall-practitioner", locale)
        await doctor.get_by_test_id("check-in").click()
        await expect_state(doctor, "in-call")
        await check_screen(doctor, "in-call-practitioner-alone", locale, call=True)

        # The patient checks in.
        alice = await page_in(
            browser, local_link(live_server, alice_room["links"]["patient"]), locale
        )
        await expect(alice.get_by_test_id("check-in")).to_be_enabled()
        when = await alice.get_by_test_id("appointment-time").inner_text()
        if language == "fr":
            assert TWENTY_FOUR_HOUR.search(when), when
            assert not TWELVE_HOUR.search(when), when
        await check_screen(alice, "precall-patient", locale)
        await alice.get_by_test_id("check-in").click()
        await expect_state(alice, "waiting")

        # The desk, with a patient waiting; a message to the waiting room.
        desk = await page_in(browser, desk_url, locale)
        await expect(desk.locator("body")).to_have_attribute("data-state", "ready")
        await expect(desk.get_by_test_id("desk-waiting-entry")).to_have_count(1)
        message = "Dix minutes de retard" if language == "fr" else "Ten minutes late"
        await desk.get_by_test_id("desk-message-text").fill(message)
        await desk.get_by_test_id("desk-message-send").click()
        await expect(alice.get_by_test_id("practitioner-message")).to_have_count(1)
        await check_screen(desk, "desk-waiting", locale)
        await check_screen(alice, "waiting", locale)
        entry = doctor.get_by_test_id("waiting-entry")
        await expect(entry).to_have_count(1)
        await check_screen(doctor, "in-call-practitioner-waiting-list", locale, call=True)

        # Admitted: both in the call.
        await entry.get_by_test_id("admit").click()
        await expect_state(alice, "in-call")
        await expect(doctor.get_by_test_id("remote-video")).to_have_count(1)
        await expect(alice.get_by_test_id("remote-video")).to_have_count(1)
        await check_screen(alice, "in-call-patient", locale, call=True)

        # A guest, invited from the call, waits then joins.
        await doctor.get_by_test_id("invite-guest").fill("Ines Interprete")
        await doctor.get_by_test_id("invite-guest-submit").click()
        await expect(doctor.get_by_test_id("guest-link")).to_have_value(re.compile("/c/"))
        guest_link = await doctor.get_by_test_id("guest-link").input_value()
        guest = await page_in(browser, local_link(live_server, guest_link), locale)
        await expect(guest.get_by_test_id("check-in")).to_be_enabled()
        await guest.get_by_test_id("check-in").click()
        await expect_state(guest, "waiting")
        await expect(doctor.get_by_test_id("waiting-entry")).to_have_count(1)
        await doctor.get_by_test_id("waiting-entry").get_by_test_id("admit").click()
        await expect_state(guest, "in-call")
        await expect(guest.get_by_test_id("remote-video")).to_have_count(2)
        await check_screen(guest, "in-call-guest", locale, call=True)
        await check_screen(doctor, "in-call-practitioner", locale, call=True)

        # A second patient is turned away, after the confirmation.
        bruno = await page_in(
            browser, local_link(live_server, bruno_room["links"]["patient"]), locale
        )
        await expect(bruno.get_by_test_id("check-in")).to_be_enabled()
        await bruno.get_by_test_id("check-in").click()
        await expect_state(bruno, "waiting")
        bruno_entry = desk.get_by_test_id("desk-waiting-entry")
        await expect(bruno_entry).to_have_count(1)
        await bruno_entry.get_by_test_id("desk-deny").click()
        await expect(desk.get_by_test_id("confirm")).to_be_visible()
        await check_screen(desk, "desk-confirm-deny", locale)
        await confirm(desk)
        await expect_state(bruno, "denied")
        await check_screen(bruno, "denied", locale)

        # The patient leaves; the practitioner ends the consultation.
        await alice.get_by_test_id("hang-up").click()
        await confirm(alice)
        await expect_state(alice, "ended")
        await check_screen(alice, "ended-patient", locale)
        await doctor.get_by_test_id("hang-up").click()
        await confirm(doctor)
        await expect_state(doctor, "ended")
        await expect_state(guest, "ended")
        await check_screen(doctor, "ended-practitioner", locale)

        for page in (error, closed, too_early, doctor, alice, desk, guest, bruno):
            assert page.errors == [], page.errors  # type: ignore[attr-defined]


async def test_every_screen_in_french(live_server: LiveServer) -> None:
    await walk_every_screen(live_server, "fr-FR")


async def test_every_screen_in_english(live_server: LiveServer) -> None:
    await walk_every_screen(live_server, "en-US")
