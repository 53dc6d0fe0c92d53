"""The practitioner's day from their own consultation link, in real headless Chromium (issue #12).

One practitioner, three patients in three rooms. From the link of the first
appointment the practitioner sees all three waiting beside the call, writes
to the waiting room and reads an answer only they get, admits the first,
then admits the second from the same screen (ending the first consultation)
and is in that call with video both ways without a second device check;
they chat end to end encrypted (the server handles only ciphertext), and
decline the third, who sees it.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

import pytest
from playwright.async_api import Page, expect

from signalling.app import SOCKETS
from signalling.config import Settings
from tests.conftest import LiveServer
from tests.support import make_settings
from tests.support.browser import chromium
from tests.test_desk import API_KEY, book_for
from tests.test_e2e_browser import (
    confirm,
    expect_state,
    local_link,
    open_page,
    wait_remote_frames,
)
from tests.test_e2e_practitioner_day import check_in

pytestmark = pytest.mark.browser

PRACTITIONER = "prac-dayscreen"
REPLY = "I'm in the car park, two minutes"
DRUG = "Amoxicilline 500 mg, trois fois par jour"
ADDRESS = "12 rue des Lilas, 69003 Lyon"
# Counts camera and microphone requests, and every screen the page shows.
WATCH_DEVICES = """
window.deviceRequests = 0;
window.screens = [];
const original = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
navigator.mediaDevices.getUserMedia = (constraints) => {
  window.deviceRequests += 1;
  return original(constraints);
};
new MutationObserver(() => {
  const state = document.body && document.body.dataset.state;
  if (state && window.screens[window.screens.length - 1] !== state) window.screens.push(state);
}).observe(document, { attributes: true, subtree: true, attributeFilter: ["data-state"] });
"""


@pytest.fixture
def settings() -> Settings:
    return make_settings(api_key=API_KEY)


class ServerTap:
    """Everything the default namespace received and sent: what the server handled."""

    def __init__(self, server: LiveServer) -> None:
        self.handled: list[tuple[str, Any]] = []
        namespace = server.app[SOCKETS]
        received = namespace.trigger_event
        emit = namespace.sio.emit

        async def trigger_event(event: str, *args: Any) -> Any:
            self.handled.append((event, args[1:]))
            return await received(event, *args)

        async def emitted(event: str, data: Any = None, *args: Any, **kwargs: Any) -> Any:
            self.handled.append((event, data))
            return await emit(event, data, *args, **kwargs)

        # Instance attributes shadow the methods python-socketio calls.
        namespace.trigger_event = trigger_event  # type: ignore[method-assign]
        namespace.sio.emit = emitted

    def text(self) -> str:
        return json.dumps(self.handled, default=str, ensure_ascii=False)

    def events(self, name: str) -> list[Any]:
        return [data for event, data in self.handled if event == name]


async def entry_of(page: Page, name: str) -> Any:
    entry = page.get_by_test_id("waiting-entry").filter(has_text=name)
    await expect(entry).to_have_count(1)
    return entry


async def test_the_practitioners_day_from_the_link_of_the_first_appointment(
    live_server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    booked = [
        await book_for(
            live_server, PRACTITIONER, starts_in=timedelta(minutes=minutes), patient_name=name
        )
        for minutes, name in ((5, "Alice Martin"), (10, "Bruno Petit"), (15, "Chloe Durand"))
    ]
    tap = ServerTap(live_server)
    async with chromium() as browser:
        patients = []
        for room in booked:
            _, page = await open_page(browser, local_link(live_server, room["links"]["patient"]))
            await check_in(page)
            patients.append(page)
        alice, bruno, chloe = patients

        _, doctor = await open_page(
            browser, local_link(live_server, booked[0]["links"]["practitioner"]), WATCH_DEVICES
        )
        await expect_state(doctor, "precall")
        await doctor.get_by_test_id("check-in").click()
        await expect_state(doctor, "in-call")

        # All three waiting, beside the call: this room's patient and the day's others.
        entries = doctor.get_by_test_id("waiting-entry")
        await expect(entries).to_have_count(3)
        rows = doctor.get_by_test_id("day-row")
        await expect(rows).to_have_count(3)
        await expect(rows.nth(0)).to_contain_text("Alice Martin")
        await expect(rows.nth(0).get_by_test_id("day-current")).to_be_visible()
        await expect(rows.nth(1)).to_contain_text("Waiting since")
        await expect(doctor.get_by_test_id("admit-next")).to_be_enabled()

        # A word to the waiting room; Chloe answers, and only the practitioner reads it.
        await doctor.get_by_test_id("day-message-text").fill("Running five minutes late")
        await doctor.get_by_test_id("day-message-send").click()
        await expect(doctor.get_by_test_id("day-message-status")).to_contain_text("3 waiting")
        await expect(chloe.get_by_test_id("practitioner-message")).to_contain_text("five minutes")
        await chloe.get_by_test_id("reply-input").fill(REPLY)
        await chloe.get_by_test_id("reply-send").click()
        await expect(chloe.get_by_test_id("reply-status")).to_contain_text("Sent")
        reply = doctor.get_by_test_id("waiting-reply")
        await expect(reply).to_have_count(1)
        await expect(reply).to_contain_text("Chloe Durand")
        await expect(reply).to_contain_text(REPLY)
        for page in (alice, bruno):
            assert REPLY not in await page.content()

        # Admit the first, in this room.
        await (await entry_of(doctor, "Alice Martin")).get_by_test_id("admit").click()
        await expect_state(alice, "in-call")
        await wait_remote_frames(doctor, 5)
        await wait_remote_frames(alice, 5)
        await expect(doctor.locator(".remote-tile")).to_contain_text("Alice Martin")

        # Admit the second from the same screen, pausing Alice's consultation: she waits again.
        await (await entry_of(doctor, "Bruno Petit")).get_by_test_id("admit").click()
        await expect(doctor.get_by_test_id("confirm-message")).to_contain_text("Bruno Petit")
        await expect(doctor.get_by_test_id("confirm")).to_contain_text("End")
        await doctor.get_by_test_id("confirm-alternative").click()
        await expect_state(alice, "waiting")
        await expect_state(bruno, "in-call")
        await expect(bruno.get_by_test_id("stage-placeholder")).to_have_text(
            "Dr Bernard is joining…"
        )
        await wait_remote_frames(bruno, 5)
        await expect(doctor.locator(".remote-tile")).to_have_count(1)
        await expect(doctor.locator(".remote-tile")).to_contain_text("Bruno Petit")
        await wait_remote_frames(doctor, 5)
        for page in (doctor, bruno):
            await expect(page.get_by_test_id("e2ee-status")).to_have_attribute(
                "data-state", "encrypted"
            )
        # The same camera all along: one device request, never the device check again.
        assert await doctor.evaluate("window.deviceRequests") == 1
        assert await doctor.evaluate("window.screens") == ["precall", "in-call"]
        await expect(entries).to_have_count(2)  # Alice (paused) and Chloe.

        # The in-call chat, both ways, end to end encrypted.
        await doctor.get_by_test_id("chat-input").fill(DRUG)
        await doctor.get_by_test_id("chat-send").click()
        await expect(bruno.get_by_test_id("chat-message")).to_contain_text(DRUG)
        await expect(bruno.get_by_test_id("chat-message")).to_contain_text("Dr Bernard")
        await bruno.get_by_test_id("chat-input").fill(ADDRESS)
        await bruno.get_by_test_id("chat-send").click()
        await expect(doctor.get_by_test_id("chat-message").nth(1)).to_contain_text(ADDRESS)
        await expect(doctor.get_by_test_id("chat-message").nth(1)).to_contain_text("Bruno Petit")
        sealed = tap.events("chat")
        assert len(sealed) >= 4, sealed  # Each message received, then forwarded.
        handled = tap.text()
        for plaintext in (DRUG, ADDRESS, "Amoxicilline", "Lilas"):
            assert plaintext not in handled
            assert plaintext not in caplog.text
        assert REPLY not in caplog.text

        # Bruno's network drops and comes back: the practitioner is told, by name.
        notices = doctor.get_by_test_id("presence-notice")
        # Offline: the page closes its connection and cannot come back until online again.
        await bruno.context.set_offline(True)
        await expect(notices.last).to_contain_text(
            "Bruno Petit lost the connection, waiting for them to come back (up to 2 min)."
        )
        await bruno.context.set_offline(False)
        await expect(notices.last).to_contain_text("Bruno Petit is back.")
        await wait_remote_frames(doctor, 5)

        # "Admit next" is Alice, first in the day's order: back to her room, ending Bruno's.
        await expect(doctor.get_by_test_id("admit-next")).to_have_attribute(
            "aria-label", "Admit next: Alice Martin"
        )
        await doctor.get_by_test_id("admit-next").click()
        await expect(doctor.get_by_test_id("confirm")).to_contain_text("End with Bruno Petit")
        await confirm(doctor)
        await expect_state(bruno, "ended")
        await expect_state(alice, "in-call")
        await expect(doctor.locator(".remote-tile")).to_have_count(1)
        await expect(doctor.locator(".remote-tile")).to_contain_text("Alice Martin")
        await wait_remote_frames(doctor, 5)
        await wait_remote_frames(alice, 5)
        await expect(doctor.get_by_test_id("chat-message")).to_have_count(0)  # A new consultation.
        assert await doctor.evaluate("window.deviceRequests") == 1

        # Decline the third, from the same screen.
        await (await entry_of(doctor, "Chloe Durand")).get_by_test_id("deny").click()
        await confirm(doctor)
        await expect_state(chloe, "denied")
        # A few seconds to take it back (undeny on the desk connection: another room).
        await expect(doctor.get_by_test_id("undo-toast")).to_be_visible()
        # She opens her link again, on another device: still declined, not back in the queue.
        _, chloe_again = await open_page(
            browser, local_link(live_server, booked[2]["links"]["patient"])
        )
        await expect_state(chloe_again, "denied")
        await expect(entries).to_have_count(0)
        await expect(doctor.get_by_test_id("admit-next")).to_be_disabled()
        await expect_state(doctor, "in-call")

        # On a phone the day sits under the call, behind its toggle.
        await doctor.set_viewport_size({"width": 390, "height": 844})
        toggle = doctor.get_by_test_id("day-queue-toggle")
        await expect(toggle).to_be_visible()
        await expect(toggle).to_have_attribute("aria-expanded", "false")
        await expect(rows.first).to_be_hidden()
        await toggle.click()
        await expect(toggle).to_have_attribute("aria-expanded", "true")
        await expect(rows.first).to_be_visible()
        await doctor.set_viewport_size({"width": 1280, "height": 800})
        await expect(toggle).to_be_hidden()

        # Alice hangs up: the practitioner is told she left.
        await alice.get_by_test_id("hang-up").click()
        await confirm(alice)
        await expect(notices.last).to_contain_text("Alice Martin left the consultation.")
        assert await doctor.evaluate("window.screens") == ["precall", "in-call"]

        for page in (doctor, alice, bruno, chloe, chloe_again):
            assert page.errors == [], page.errors  # type: ignore[attr-defined]
