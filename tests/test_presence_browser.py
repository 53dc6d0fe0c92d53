"""In Chromium: one patient link in two tabs is one entry; Take it back; a decline sticks; undo."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.conftest import LiveServer
from tests.support.browser import chromium
from tests.support.polling import eventually
from tests.support.screens import check_screen
from tests.test_e2e_browser import STEP, confirm, expect_state, local_link, open_page, state_of

pytestmark = pytest.mark.browser

REPLACED_FR = "Cette consultation est ouverte dans une autre fenêtre"


async def test_the_same_link_in_two_tabs_is_one_entry_and_take_back_works(
    live_server: LiveServer,
) -> None:
    room = await live_server.book(patient_name="Paul Girard")
    patient_url = local_link(live_server, room["links"]["patient"])
    async with chromium() as browser:
        _, doctor = await open_page(browser, local_link(live_server, room["links"]["practitioner"]))
        await doctor.get_by_test_id("check-in").click()
        await expect_state(doctor, "in-call")
        context, first = await open_page(browser, patient_url, locale="fr-FR")
        await first.get_by_test_id("check-in").click()
        await expect_state(first, "waiting")
        entry = doctor.get_by_test_id("waiting-entry")
        await expect(entry).to_have_count(1)
        entry_id = await entry.get_attribute("data-entry-id")

        # The same link in a second tab (of the same browser): it takes the place over.
        second = await context.new_page()
        await second.goto(patient_url)
        await expect_state(first, "replaced")
        await expect(first.get_by_test_id("replaced-message")).to_contain_text(REPLACED_FR)
        await check_screen(first, "replaced", "fr-FR")
        await expect_state(second, "waiting")
        await expect(second.get_by_test_id("waiting-position")).to_contain_text("1")
        await expect(entry).to_have_count(1)
        assert await entry.get_attribute("data-entry-id") == entry_id

        # Take it back in the first tab: it takes over in turn.
        await first.get_by_test_id("take-back").click()
        await expect_state(second, "replaced")
        await expect_state(first, "waiting")
        await expect(first.get_by_test_id("waiting-position")).to_contain_text("1")
        await expect(entry).to_have_count(1)
        assert await entry.get_attribute("data-entry-id") == entry_id
        await entry.get_by_test_id("admit").click()
        await expect_state(first, "in-call")
        assert await second.evaluate("() => document.body.dataset.state") == "replaced"


async def test_a_decline_sticks_on_a_new_tab_until_undone(live_server: LiveServer) -> None:
    room = await live_server.book(patient_name="Paul Girard")
    patient_url = local_link(live_server, room["links"]["patient"])
    async with chromium() as browser:
        _, doctor = await open_page(browser, local_link(live_server, room["links"]["practitioner"]))
        await doctor.get_by_test_id("check-in").click()
        await expect_state(doctor, "in-call")
        _, patient = await open_page(browser, patient_url)
        await patient.get_by_test_id("check-in").click()
        await expect_state(patient, "waiting")
        entry = doctor.get_by_test_id("waiting-entry")
        await entry.get_by_test_id("deny-reason").fill("Please call the practice")
        await entry.get_by_test_id("deny").click()
        await confirm(doctor)
        await expect_state(patient, "denied")
        await expect(doctor.get_by_test_id("undo")).to_be_visible()

        # The link opened again in a new tab (another browser context: another device).
        _, again = await open_page(browser, patient_url)
        await expect_state(again, "denied")
        await expect(again.get_by_test_id("denied-message")).to_contain_text(
            "Please call the practice"
        )
        await expect(entry).to_have_count(0)

        # The practitioner's undo: both pages come back; one holds the place, the other is told.
        await doctor.get_by_test_id("undo").click()
        await expect(doctor.get_by_test_id("undo-toast")).to_be_hidden()
        await expect(entry).to_have_count(1)

        async def one_back() -> bool:
            return sorted([await state_of(patient), await state_of(again)]) == [
                "replaced",
                "waiting",
            ]

        await eventually(one_back, timeout=STEP / 1000, interval=0.2)
        back = patient if await state_of(patient) == "waiting" else again
        await expect(back.get_by_test_id("waiting-position")).to_contain_text("1")
        await expect(entry).to_have_count(1)
