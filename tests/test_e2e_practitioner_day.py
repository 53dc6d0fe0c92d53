"""The practitioner's day in real headless Chromium (issue #4).

One practitioner, three people waiting in two rooms: the desk lists them in
order, the patients' pages show their place and estimated start live, a
message to the waiting room reaches them, and a reload keeps the place. Then
the room tools: deny with a reason, invite a guest, send a patient back to
the waiting room and a reload in the call. Real pages where the test is about
what a page shows; a synthetic participant for the guest, whose page adds
nothing here (2 cores: few browsers).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import ClientSession
from playwright.async_api import Page, expect

from signalling.app import SOCKETS
from signalling.config import Settings
from tests.conftest import LiveServer
from tests.support import make_settings
from tests.support.browser import chromium
from tests.support.polling import eventually
from tests.support.synthetic import SyntheticParticipant
from tests.test_desk import API_KEY, book_for, desk_link
from tests.test_e2e_browser import (
    STEP,
    confirm,
    expect_state,
    local_link,
    open_page,
    wait_remote_frames,
)

pytestmark = pytest.mark.browser

PRACTITIONER = "prac-day"
ABOUT_TIME = re.compile(r"about \d{1,2}:\d{2}")
# Counts chimes: the page makes its sound with oscillators, there is no file to watch.
COUNT_CHIMES = """
window.chimes = 0;
const original = AudioContext.prototype.createOscillator;
AudioContext.prototype.createOscillator = function () {
  window.chimes += 1;
  return original.call(this);
};
"""


@pytest.fixture
def settings() -> Settings:
    return make_settings(api_key=API_KEY)


async def api_post(server: LiveServer, path: str, body: dict[str, Any]) -> dict[str, Any]:
    async with (
        ClientSession() as session,
        session.post(
            server.base_url + "/api/v1" + path,
            json=body,
            headers={"Authorization": f"Bearer {API_KEY}"},
        ) as response,
    ):
        assert response.status == 201, await response.text()
        document: dict[str, Any] = await response.json()
        return document


async def same_safety_code(one: Page, other: Page) -> None:
    """Both pages show one code: each has the other's current key (no one in the middle)."""

    async def same() -> None:
        codes = [(await p.get_by_test_id("safety-code").inner_text()).strip() for p in (one, other)]
        assert codes[0], "no safety code shown"
        assert codes[0] == codes[1], f"safety codes differ: {codes}"

    await eventually(same, timeout=STEP / 1000, interval=0.1)


async def drop_connection(server: LiveServer, entry_id: str) -> None:
    """The server loses the page's connection, as on a network failure; the page reconnects."""
    sockets = server.app[SOCKETS]
    sids = [sid for sid, s in sockets.sessions.items() if s.entry_id == entry_id]
    assert len(sids) == 1
    await sockets.sio.disconnect(sids[0])


async def check_in(page: Page) -> None:
    await expect_state(page, "precall")
    await page.get_by_test_id("check-in").click()
    await expect_state(page, "waiting")


async def test_the_desk_and_the_patients_pages_follow_the_queue(live_server: LiveServer) -> None:
    first = await book_for(
        live_server, PRACTITIONER, starts_in=timedelta(minutes=5), patient_name="Alice Martin"
    )
    second = await book_for(
        live_server, PRACTITIONER, starts_in=timedelta(minutes=12), patient_name="Bruno Petit"
    )
    guest_link = (
        await api_post(
            live_server, f"/rooms/{first['room_id']}/guests", {"name": "Ines Interprete"}
        )
    )["link"]
    desk_token = (await desk_link(live_server, PRACTITIONER)).split("#", 1)[1]
    desk_url = f"{live_server.base_url}/d#{desk_token}"
    guest = SyntheticParticipant(live_server.base_url, local_link(live_server, guest_link), "guest")

    async with chromium() as browser:
        _, desk = await open_page(browser, desk_url)
        await expect(desk.locator("body")).to_have_attribute("data-state", "ready")
        rows = desk.get_by_test_id("desk-row")
        await expect(rows).to_have_count(2)

        # Bruno, the later appointment, checks in first: he is next.
        _, bruno = await open_page(browser, local_link(live_server, second["links"]["patient"]))
        await check_in(bruno)
        await expect(bruno.get_by_test_id("waiting-position")).to_contain_text("number 1")
        await expect(bruno.get_by_test_id("waiting-expected")).to_contain_text(ABOUT_TIME)

        # Alice's slot comes first: she goes ahead of him, live on his page.
        _, alice = await open_page(browser, local_link(live_server, first["links"]["patient"]))
        await check_in(alice)
        await expect(alice.get_by_test_id("waiting-position")).to_contain_text("number 1")
        await expect(bruno.get_by_test_id("waiting-position")).to_contain_text("number 2")
        await expect(alice.get_by_test_id("waiting-expected")).to_contain_text(ABOUT_TIME)

        # Alice's interpreter waits in her room, after her and before Bruno.
        await guest.connect()
        assert await guest.check_in() == 2
        await expect(bruno.get_by_test_id("waiting-position")).to_contain_text("number 3")
        await expect(alice.get_by_test_id("waiting-position")).to_contain_text("number 1")

        # The desk: in slot order, everyone waiting under their appointment.
        await expect(rows.nth(0)).to_contain_text("Alice Martin")
        await expect(rows.nth(0)).to_have_attribute("data-state", "waiting")
        await expect(rows.nth(1)).to_contain_text("Bruno Petit")
        await expect(rows.nth(1)).to_have_attribute("data-state", "waiting")
        entries = rows.nth(0).get_by_test_id("desk-waiting-entry")
        await expect(entries).to_have_count(2)
        await expect(entries.nth(0)).to_contain_text("Alice Martin")
        await expect(entries.nth(1)).to_contain_text("Ines Interprete (guest)")
        await expect(desk).to_have_title(re.compile(r"^\(3\) waiting"))

        # A message to everyone waiting reaches both pages, newest first.
        for text in ("Running 10 minutes late", "Now 15 minutes, sorry"):
            await desk.get_by_test_id("desk-message-text").fill(text)
            await desk.get_by_test_id("desk-message-send").click()
            await expect(desk.get_by_test_id("desk-message-status")).to_contain_text("3 waiting")
        for page in (alice, bruno):
            messages = page.get_by_test_id("practitioner-message")
            await expect(messages).to_have_count(2)
            await expect(messages.nth(0)).to_contain_text("Now 15 minutes, sorry")
            await expect(messages.nth(1)).to_contain_text("Running 10 minutes late")

        # Alice's connection drops and comes back: same place, same entry.
        alice_entry = entries.nth(0)
        alice_id = await alice_entry.get_attribute("data-entry-id")
        await drop_connection(live_server, alice_id or "")
        await expect(alice.get_by_test_id("connection-notice")).to_be_hidden()
        await expect_state(alice, "waiting")
        await expect(alice_entry).to_have_attribute("data-entry-id", alice_id or "")
        await expect(alice.get_by_test_id("waiting-position")).to_contain_text("number 1")
        await expect(bruno.get_by_test_id("waiting-position")).to_contain_text("number 3")

        # Bruno reloads: same place, same entry, no second check-in.
        bruno_entry = rows.nth(1).get_by_test_id("desk-waiting-entry")
        entry_id = await bruno_entry.get_attribute("data-entry-id")
        await bruno.reload()
        await expect_state(bruno, "waiting")
        await expect(bruno.get_by_test_id("waiting-position")).to_contain_text("number 3")
        await expect(bruno.get_by_test_id("waiting-expected")).to_contain_text(ABOUT_TIME)
        await expect(bruno_entry).to_have_count(1)
        await expect(bruno_entry).to_have_attribute("data-entry-id", entry_id or "")
        await expect(desk).to_have_title(re.compile(r"^\(3\) waiting"))

        # Turned away from the desk with a reason: the page says it as given.
        await bruno_entry.get_by_test_id("desk-deny-reason").fill("Please book a new slot")
        await bruno_entry.get_by_test_id("desk-deny").click()
        await confirm(desk)
        await expect_state(bruno, "denied")
        await expect(bruno.get_by_test_id("denied-message")).to_contain_text(
            "Please book a new slot"
        )
        await expect(rows.nth(1)).to_have_attribute("data-state", "scheduled")
        await guest.close()

        for page in (desk, alice, bruno):
            assert page.errors == [], page.errors  # type: ignore[attr-defined]


async def test_the_practitioners_room_tools(live_server: LiveServer) -> None:
    room = await live_server.book(patient_name="Alice Martin")
    async with chromium() as browser:
        context, doctor = await open_page(
            browser, local_link(live_server, room["links"]["practitioner"]), COUNT_CHIMES
        )
        await expect_state(doctor, "precall")
        await doctor.get_by_test_id("check-in").click()
        await expect_state(doctor, "in-call")

        # Invite an interpreter: the page shows the link to send them.
        await doctor.get_by_test_id("invite-guest").fill("Ines Interprete")
        await doctor.get_by_test_id("invite-guest-submit").click()
        link_field = doctor.get_by_test_id("guest-link")
        await expect(link_field).to_be_visible()
        link = await link_field.input_value()
        assert f"/c/{room['room_id']}#" in link
        guest = SyntheticParticipant(live_server.base_url, local_link(live_server, link), "guest")
        denial: list[dict[str, Any]] = []
        guest.sio.on("denied", denial.append)  # In place of the participant's own handler.
        await guest.connect()
        assert (await guest.session)["role"] == "guest"

        _, alice = await open_page(browser, local_link(live_server, room["links"]["patient"]))
        await expect_state(alice, "precall")
        assert await doctor.evaluate("window.chimes") == 0
        await check_in(alice)
        entries = doctor.get_by_test_id("waiting-entry")
        await expect(entries).to_have_count(1)
        await expect(doctor).to_have_title("(1) Teleconsultation")
        chimes = await doctor.evaluate("window.chimes")
        assert chimes > 0  # A sound for the practitioner busy in another tab.

        await guest.check_in()
        await expect(entries).to_have_count(2)
        await expect(entries.nth(1)).to_have_attribute("data-role", "guest")
        await expect(entries.nth(1).get_by_test_id("guest-badge")).to_have_text("guest")
        await expect(entries.nth(0).get_by_test_id("guest-badge")).to_have_count(0)
        assert await doctor.evaluate("window.chimes") > chimes

        # Decline the guest with a reason: it reaches them as typed.
        await entries.nth(1).get_by_test_id("deny-reason").fill("Not needed today, thank you")
        await entries.nth(1).get_by_test_id("deny").click()
        await confirm(doctor)
        await expect(entries).to_have_count(1)
        # The page's ack comes before the guest's socket hears it.
        await eventually(lambda: denial == [{"reason": "Not needed today, thank you"}])
        await expect(entries).to_have_count(1)

        # A relative whose connection drops stays listed, marked away, until declined.
        await doctor.get_by_test_id("invite-guest").fill("Paul Proche")
        await doctor.get_by_test_id("invite-guest-submit").click()
        await expect(doctor.get_by_test_id("guest-link-name")).to_have_text("Paul Proche")
        second_link = await link_field.input_value()
        assert second_link != link
        relative = SyntheticParticipant(
            live_server.base_url, local_link(live_server, second_link), "relative"
        )
        await relative.connect()
        await relative.check_in()
        await expect(entries).to_have_count(2)
        await expect(entries.nth(1)).to_have_attribute("data-away", "false")
        await relative.close()
        await expect(entries.nth(1)).to_have_attribute("data-away", "true")
        await expect(entries.nth(1)).to_contain_text("away since")
        await entries.nth(1).get_by_test_id("deny").click()
        await confirm(doctor)
        await expect(entries).to_have_count(1)

        # Admit Alice, then send her back to the waiting room.
        alice_id = await entries.nth(0).get_attribute("data-entry-id")
        await entries.nth(0).get_by_test_id("admit").click()
        await expect_state(alice, "in-call")
        await wait_remote_frames(doctor, 5)
        await wait_remote_frames(alice, 5)
        send_back = doctor.get_by_test_id("return-to-waiting")
        await expect(send_back).to_have_count(1)
        await send_back.click()
        await expect_state(alice, "waiting")
        await expect(alice.get_by_test_id("waiting-position")).to_contain_text("number 1")
        await expect(alice.get_by_test_id("remote-video")).to_have_count(0)
        await expect(doctor.get_by_test_id("remote-video")).to_have_count(0)
        await expect(entries).to_have_count(1)

        # Admitted again: a fresh call, encrypted again with new keys.
        await entries.nth(0).get_by_test_id("admit").click()
        await expect_state(alice, "in-call")
        await wait_remote_frames(alice, 5)
        await wait_remote_frames(doctor, 5)

        # A reload in the call comes straight back into it.
        tiles = doctor.locator(".remote-tile")
        before = await tiles.get_attribute("data-subscription-id")
        await alice.reload()
        await expect_state(alice, "in-call")
        await expect(alice.get_by_test_id("remote-video")).to_have_count(1)
        await wait_remote_frames(alice, 5)
        await expect(
            doctor.locator(f'.remote-tile[data-subscription-id="{before}"]')
        ).to_have_count(0)
        await expect(tiles).to_have_count(1)  # Her new connection's video, not the old one.
        await wait_remote_frames(doctor, 5)
        for page in (doctor, alice):
            await expect(page.get_by_test_id("e2ee-status")).to_have_attribute(
                "data-state", "encrypted", timeout=STEP
            )
        await same_safety_code(doctor, alice)
        await expect(entries).to_have_count(0)

        # Her network drops in the call and comes back: the same page rejoins the call.
        before = await tiles.get_attribute("data-subscription-id")
        await drop_connection(live_server, alice_id or "")
        await expect(
            doctor.locator(f'.remote-tile[data-subscription-id="{before}"]')
        ).to_have_count(0)
        await expect(tiles).to_have_count(1)
        await wait_remote_frames(doctor, 5)
        await expect_state(alice, "in-call")
        await expect(alice.get_by_test_id("remote-video")).to_have_count(1)
        await wait_remote_frames(alice, 5)
        for page in (doctor, alice):
            await expect(page.get_by_test_id("e2ee-status")).to_have_attribute(
                "data-state", "encrypted", timeout=STEP
            )
        await same_safety_code(doctor, alice)

        await alice.get_by_test_id("hang-up").click()
        await confirm(alice)
        await expect_state(alice, "ended")
        await guest.close()
        for page in (doctor, alice):
            assert page.errors == [], page.errors  # type: ignore[attr-defined]
        await context.close()
