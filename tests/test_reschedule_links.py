"""After a reschedule, a link sent before it tells the room's own time, or that it is outdated."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import socketio
from playwright.async_api import expect

from tests.conftest import LiveServer
from tests.support.browser import chromium
from tests.support.synthetic import SyntheticParticipant
from tests.test_e2e_browser import expect_state, local_link, open_page


async def refusal(server: LiveServer, link: str) -> dict[str, Any]:
    page = SyntheticParticipant(server.base_url, link, "old link")
    with pytest.raises(socketio.exceptions.ConnectionError):
        await page.connect(timeout=5)
    assert page.connect_error is not None
    return page.connect_error


async def reschedule(server: LiveServer, room: dict[str, Any], starts_in: timedelta) -> Any:
    starts_at = datetime.now(UTC) + starts_in
    status, moved = await server.send(
        "appointment.rescheduled",
        {
            "appointment_id": room["appointment_id"],
            "starts_at": starts_at.isoformat(),
            "ends_at": (starts_at + timedelta(minutes=30)).isoformat(),
        },
    )
    assert status == 200, moved
    assert moved["opens_at"] != room["opens_at"]
    return moved


async def test_an_early_old_link_tells_the_new_opening_time(live_server: LiveServer) -> None:
    room = await live_server.book(starts_in=timedelta(hours=3))
    moved = await reschedule(live_server, room, timedelta(hours=5))
    refused = await refusal(live_server, room["links"]["patient"])
    assert refused["code"] == "room_not_yet_open"
    # The room's opening time, not the one the old link was minted with.
    assert refused["opens_at"] == moved["opens_at"]
    assert refused["starts_at"] == moved["starts_at"]


async def test_an_old_link_inside_its_window_tells_the_new_opening_time(
    live_server: LiveServer,
) -> None:
    room = await live_server.book(starts_in=timedelta(minutes=5))
    moved = await reschedule(live_server, room, timedelta(hours=5))
    refused = await refusal(live_server, room["links"]["patient"])
    assert refused["code"] == "room_not_yet_open"
    assert refused["opens_at"] == moved["opens_at"]


async def test_an_old_link_to_a_room_moved_earlier_says_there_is_a_newer_link(
    live_server: LiveServer,
) -> None:
    room = await live_server.book(starts_in=timedelta(hours=3))
    moved = await reschedule(live_server, room, timedelta(minutes=5))
    refused = await refusal(live_server, room["links"]["patient"])
    assert refused["code"] == "link_outdated"
    assert refused["starts_at"] == moved["starts_at"]
    assert refused["practitioner_name"]
    # The newer link, sent with the reschedule, opens the room.
    patient = SyntheticParticipant(live_server.base_url, moved["links"]["patient"], "new link")
    try:
        session = await patient.connect()
        assert session["room"]["opens_at"] == moved["opens_at"]
    finally:
        await patient.close()


@pytest.mark.browser
async def test_the_page_of_an_old_link_shows_the_rooms_time_or_the_newer_link(
    live_server: LiveServer,
) -> None:
    later = await live_server.book(starts_in=timedelta(hours=3))
    await reschedule(live_server, later, timedelta(hours=5))
    earlier = await live_server.book(starts_in=timedelta(hours=3))
    await reschedule(live_server, earlier, timedelta(minutes=5))
    async with chromium() as browser:
        _, page = await open_page(browser, local_link(live_server, later["links"]["patient"]))
        await expect_state(page, "not-yet-open")
        # Opens 15 minutes before the new start: in 4 h 45, not the old link's 2 h 45.
        await expect(page.get_by_test_id("not-yet-open-countdown")).to_contain_text("4 h 4")
        _, moved = await open_page(browser, local_link(live_server, earlier["links"]["patient"]))
        await expect_state(moved, "error")
        await expect(moved.locator("[data-screen=error] h1")).to_have_text(
            "This appointment was moved"
        )
        await expect(moved.get_by_test_id("error-message")).to_contain_text("newer link")
        for each in (page, moved):
            assert each.errors == [], each.errors  # type: ignore[attr-defined]
