"""Keyboard only, and focus that stays put: in real Chromium, in French.

Check in, admit, decline (with its confirmation), a message to the waiting
room, mute and leave are all done with Tab, Enter and Space alone; live
updates (a new arrival on the practitioner's list and on the desk) leave the
keyboard focus where it was; buttons say whom they act on.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from playwright.async_api import Page, expect

from signalling.config import Settings
from tests.conftest import LiveServer
from tests.support import make_settings
from tests.support.browser import chromium
from tests.test_desk import API_KEY, book_for, desk_link
from tests.test_e2e_browser import expect_state, local_link, open_page

pytestmark = pytest.mark.browser

PRACTITIONER = "prac-keys"
MAX_TABS = 80

FOCUSED = """
() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const entry = el.closest('[data-testid="waiting-entry"], [data-testid="desk-waiting-entry"]');
  return {
    testid: el.dataset.testid || '',
    key: el.dataset.key || '',
    name: el.getAttribute('aria-label') || el.textContent.trim(),
    entry: entry ? entry.dataset.entryId : '',
  };
}
"""


@pytest.fixture
def settings() -> Settings:
    return make_settings(api_key=API_KEY)


async def focused(page: Page) -> dict[str, str] | None:
    info: dict[str, str] | None = await page.evaluate(FOCUSED)
    return info


async def tab_to(page: Page, test_id: str, *, name: str = "", entry: str = "") -> None:
    """Presses Tab until `test_id` (with that accessible name, in that entry) has focus."""
    for _ in range(MAX_TABS):
        await page.keyboard.press("Tab")
        info = await focused(page)
        if (
            info
            and info["testid"] == test_id
            and (not name or info["name"] == name)
            and (not entry or info["entry"] == entry)
        ):
            return
    raise AssertionError(f"Tab never reached {test_id} {name} {entry}")


async def test_a_consultation_with_the_keyboard_alone(live_server: LiveServer) -> None:
    room = await book_for(
        live_server, PRACTITIONER, starts_in=timedelta(minutes=5), patient_name="Alice Martin"
    )
    later = await book_for(
        live_server, PRACTITIONER, starts_in=timedelta(minutes=10), patient_name="Bruno Petit"
    )
    desk_url = (
        live_server.base_url + "/d#" + (await desk_link(live_server, PRACTITIONER)).split("#", 1)[1]
    )
    async with chromium() as browser:
        _, doctor = await open_page(
            browser, local_link(live_server, room["links"]["practitioner"]), locale="fr-FR"
        )
        await expect(doctor.get_by_test_id("check-in")).to_be_enabled()
        await tab_to(doctor, "check-in")
        await doctor.keyboard.press("Enter")
        await expect_state(doctor, "in-call")

        _, alice = await open_page(
            browser, local_link(live_server, room["links"]["patient"]), locale="fr-FR"
        )
        await expect(alice.get_by_test_id("check-in")).to_be_enabled()
        await tab_to(alice, "check-in")
        await alice.keyboard.press("Enter")
        await expect_state(alice, "waiting")

        # The desk: a message to everyone waiting, typed and sent from the keyboard.
        _, desk = await open_page(browser, desk_url, locale="fr-FR")
        await expect(desk.get_by_test_id("desk-waiting-entry")).to_have_count(1)
        await tab_to(desk, "desk-message-text")
        await desk.keyboard.type("Cinq minutes de retard")
        await desk.keyboard.press("Enter")
        await expect(alice.get_by_test_id("practitioner-message")).to_contain_text(
            "Cinq minutes de retard"
        )

        # Someone else in Alice's room: her interpreter (her own link twice would be one entry).
        await doctor.get_by_test_id("invite-guest").fill("Ines Interprete")
        await doctor.get_by_test_id("invite-guest-submit").click()
        await expect(doctor.get_by_test_id("guest-link")).to_have_value(re.compile("/c/"))
        guest_link = await doctor.get_by_test_id("guest-link").input_value()
        # Focus on Alice's Admit, on the desk and on the practitioner's list; then
        # someone else checks in: both pages update and the focus stays.
        await tab_to(desk, "desk-admit", name="Faire entrer Alice Martin")
        desk_focus = await focused(desk)
        entry = doctor.get_by_test_id("waiting-entry")
        await expect(entry).to_have_count(1)
        alice_entry = await entry.get_attribute("data-entry-id") or ""
        await tab_to(doctor, "admit", name="Faire entrer Alice Martin", entry=alice_entry)
        _, bruno = await open_page(
            browser, local_link(live_server, later["links"]["patient"]), locale="fr-FR"
        )
        _, second = await open_page(browser, local_link(live_server, guest_link), locale="fr-FR")
        for page in (bruno, second):
            await expect(page.get_by_test_id("check-in")).to_be_enabled()
            await tab_to(page, "check-in")
            await page.keyboard.press("Enter")
            await expect_state(page, "waiting")
        await expect(desk.get_by_test_id("desk-waiting-entry")).to_have_count(3)
        # Two in this room, and Bruno in the day's queue beside the call.
        await expect(doctor.get_by_test_id("waiting-entry")).to_have_count(3)
        assert await focused(desk) == desk_focus
        now = await focused(doctor)
        assert now is not None
        assert (now["testid"], now["entry"]) == ("admit", alice_entry)

        # Admit with Enter.
        await doctor.keyboard.press("Enter")
        await expect_state(alice, "in-call")
        await expect(doctor.get_by_test_id("waiting-entry")).to_have_count(2)  # With Bruno.

        # Decline the interpreter: Enter, the dialog opens on Cancel, Tab, Enter.
        await tab_to(doctor, "deny", name="Refuser Ines Interprete")
        await doctor.keyboard.press("Enter")
        await expect(doctor.get_by_test_id("confirm-dialog")).to_be_visible()
        info = await focused(doctor)
        assert info is not None
        assert info["testid"] == "confirm-cancel"
        await tab_to(doctor, "confirm")
        await doctor.keyboard.press("Enter")
        await expect_state(second, "denied")

        # Escape keeps things as they were.
        await tab_to(desk, "desk-deny", name="Refuser Bruno Petit")
        await desk.keyboard.press("Enter")
        await expect(desk.get_by_test_id("confirm-dialog")).to_be_visible()
        await desk.keyboard.press("Escape")
        await expect(desk.get_by_test_id("confirm-dialog")).to_be_hidden()
        assert await bruno.evaluate("() => document.body.dataset.state") == "waiting"

        # Mute with Space, leave with Enter and the confirmation.
        await tab_to(alice, "toggle-mic")
        await alice.keyboard.press("Space")
        await expect(alice.get_by_test_id("toggle-mic")).to_have_attribute("aria-pressed", "true")
        await tab_to(alice, "hang-up")
        await alice.keyboard.press("Enter")
        await expect(alice.get_by_test_id("confirm")).to_be_visible()
        await tab_to(alice, "confirm")
        await alice.keyboard.press("Enter")
        await expect_state(alice, "ended")

        for page in (doctor, alice, desk, bruno, second):
            assert page.errors == [], page.errors  # type: ignore[attr-defined]
