"""What the booking system sets per appointment reaches the page: language, practice, timing.

In real Chromium: a link forced to English opens in English in a French
browser, names the practice in the header and on the closed screen; the
person's own choice on the page wins and is remembered; a too-early link
shows the appointment and a countdown, lets the patient test their camera,
and moves to the device check by itself when the room opens.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer
from playwright.async_api import expect

from signalling.app import make_app
from tests.conftest import LiveServer
from tests.support import appointment_data, booking_body, make_settings, signed_headers
from tests.support.browser import chromium
from tests.support.screens import check_screen
from tests.test_e2e_browser import STEP, expect_state, local_link, open_page

pytestmark = pytest.mark.browser

PRACTICE = {"name": "Cabinet du Parc", "phone": "+33 1 23 45 67 89"}


async def book(server: LiveServer, **extra: Any) -> dict[str, Any]:
    starts_in = extra.pop("starts_in", timedelta(minutes=5))
    data = appointment_data(starts_in=starts_in)
    data.update(extra)
    body = booking_body("appointment.created", data)
    async with (
        ClientSession() as session,
        session.post(
            server.base_url + "/hooks/booking", data=body, headers=signed_headers(body)
        ) as response,
    ):
        assert response.status == 201, await response.text()
        document: dict[str, Any] = await response.json()
        return document


async def test_the_appointment_language_and_practice_reach_the_page(
    live_server: LiveServer,
) -> None:
    room = await book(live_server, locale="en", practice=PRACTICE)
    late = await book(live_server, locale="en", practice=PRACTICE, starts_in=timedelta(hours=-4))
    async with chromium() as browser:
        context, page = await open_page(
            browser, local_link(live_server, room["links"]["patient"]), locale="fr-FR"
        )
        await expect(page.get_by_test_id("check-in")).to_be_enabled()
        assert await page.evaluate("() => document.documentElement.lang") == "en"
        await expect(page.get_by_test_id("check-in")).to_have_text("Check in")
        await expect(page.get_by_test_id("practice-name")).to_have_text(PRACTICE["name"])
        await expect(page.get_by_test_id("language-switcher")).to_have_value("en")

        # The person's choice wins over the link's, and is remembered.
        await page.get_by_test_id("language-switcher").select_option("fr")
        await expect(page.get_by_test_id("check-in")).to_have_text("Signaler mon arrivée")
        assert await page.evaluate("() => document.documentElement.lang") == "fr"
        await page.reload()
        await expect(page.get_by_test_id("check-in")).to_be_enabled()
        await expect(page.get_by_test_id("check-in")).to_have_text("Signaler mon arrivée")

        # A closed room still says whom to contact, with their phone.
        _, closed = await open_page(
            browser, local_link(live_server, late["links"]["patient"]), locale="fr-FR"
        )
        await expect_state(closed, "closed")
        assert await closed.evaluate("() => document.documentElement.lang") == "en"
        contact = closed.get_by_test_id("practice-contact")
        await expect(contact).to_be_visible()
        await expect(contact).to_contain_text(PRACTICE["name"])
        await expect(contact).to_contain_text(PRACTICE["phone"])
        for each in (page, closed):
            assert each.errors == [], each.errors  # type: ignore[attr-defined]
        await context.close()


async def test_a_browser_without_french_or_english_gets_the_deployment_default(
    live_server: LiveServer,
) -> None:
    room = await book(live_server)
    async with chromium() as browser:
        _, page = await open_page(
            browser, local_link(live_server, room["links"]["patient"]), locale="de-DE"
        )
        await expect(page.get_by_test_id("check-in")).to_be_enabled()
        assert await page.evaluate("() => document.documentElement.lang") == "fr"
        _, english = await open_page(
            browser, local_link(live_server, room["links"]["patient"]), locale="en-GB"
        )
        await expect(english.get_by_test_id("check-in")).to_have_text("Check in")


async def test_too_early_shows_the_appointment_and_moves_on_by_itself(
    live_server: LiveServer,
) -> None:
    # The room opens 15 minutes before the start: here, in about 4 seconds.
    room = await book(live_server, practice=PRACTICE, starts_in=timedelta(minutes=15, seconds=4))
    async with chromium() as browser:
        _, page = await open_page(
            browser, local_link(live_server, room["links"]["patient"]), locale="fr-FR"
        )
        await expect_state(page, "not-yet-open")
        await expect(page.get_by_test_id("not-yet-open-appointment")).to_contain_text("Dr Bernard")
        await expect(page.get_by_test_id("not-yet-open-countdown")).to_contain_text("Ouverture")
        await expect(page.get_by_test_id("practice-name")).to_have_text(PRACTICE["name"])
        await page.get_by_test_id("early-device-test").click()
        await expect(page.get_by_test_id("early-preview")).to_be_visible()
        await page.wait_for_function(
            "() => document.querySelector('[data-testid=early-preview]').videoWidth > 0"
        )
        await check_screen(page, "not-yet-open-device-test", "fr-FR")
        # When the room opens the page connects again and shows the device check.
        await expect_state(page, "precall")
        await expect(page.get_by_test_id("check-in")).to_be_enabled(timeout=STEP)
        await page.wait_for_function(
            "() => document.querySelector('[data-testid=device-preview]').videoWidth > 0"
        )
        assert page.errors == [], page.errors  # type: ignore[attr-defined]


async def test_the_deployment_default_can_be_english(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> None:
    server = LiveServer(
        await aiohttp_server(make_app(make_settings(default_locale="en")), host="127.0.0.1")
    )
    room = await book(server)
    async with chromium() as browser:
        _, page = await open_page(
            browser, local_link(server, room["links"]["patient"]), locale="de-DE"
        )
        await expect(page.get_by_test_id("check-in")).to_have_text("Check in")
        assert await page.evaluate("() => document.documentElement.lang") == "en"
        # A French browser still gets French.
        _, french = await open_page(
            browser, local_link(server, room["links"]["patient"]), locale="fr-FR"
        )
        await expect(french.get_by_test_id("check-in")).to_have_text("Signaler mon arrivée")
