"""Pushes of a practitioner's day: coalesced, only what changed, join links on demand."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import pytest
from playwright.async_api import WebSocket, expect

from signalling.config import Settings
from signalling.waiting_pushes import PUSH_INTERVAL
from tests.conftest import LiveServer
from tests.support import make_settings
from tests.support.browser import chromium
from tests.support.polling import eventually, stays_true
from tests.support.synthetic import SyntheticParticipant
from tests.test_desk import API_KEY, STEP, Desk, book_for, desk_link, states


@pytest.fixture
def settings() -> Settings:
    return make_settings(api_key=API_KEY)


class Patient(SyntheticParticipant):
    """Records every `waiting` it is sent."""

    def __init__(self, base_url: str, link: str, label: str = "patient") -> None:
        super().__init__(base_url, link, label)
        self.places: list[dict[str, Any]] = []
        self.sio.on("waiting", self._record)

    async def _record(self, data: dict[str, Any]) -> None:
        self.places.append(data)


class DeltaDesk(Desk):
    """A desk as the web client opens it (`auth.delta`), applying deltas as it does."""

    def __init__(self, server: LiveServer, link: str) -> None:
        super().__init__(server, link)
        self.deltas: list[dict[str, Any]] = []
        self.rows: dict[str, dict[str, Any]] = {}
        self.sio.on("desk_delta", self._on_delta, namespace="/desk")

    async def _on_desk(self, document: dict[str, Any]) -> None:
        self.rows = {row["room_id"]: row for row in document["rows"]}
        await super()._on_desk(document)

    async def _on_delta(self, delta: dict[str, Any]) -> None:
        self.deltas.append(delta)
        for room_id in delta["removed"]:
            self.rows.pop(room_id, None)
        for row in delta["rows"]:
            self.rows[row["room_id"]] = row
        for room_id, at in delta["expected"].items():
            self.rows[room_id]["expected_start"] = at

    async def connect(self) -> None:
        await self.sio.connect(
            self.server.base_url,
            namespaces=["/desk"],
            auth={"token": self.token, "delta": True},
            transports=["websocket"],
            wait_timeout=10,
        )


async def test_a_burst_of_check_ins_reaches_the_desks_in_a_few_pushes_with_the_last_state(
    live_server: LiveServer,
) -> None:
    rooms = [
        await book_for(live_server, "prac-1", starts_in=timedelta(minutes=1 + i / 10))
        for i in range(50)
    ]
    link = await desk_link(live_server, "prac-1")
    whole, delta = Desk(live_server, link), DeltaDesk(live_server, link)
    patients = [Patient(live_server.base_url, room["links"]["patient"]) for room in rooms]
    try:
        await whole.connect()
        await delta.connect()
        await asyncio.gather(*(p.connect() for p in patients))
        await whole.until(lambda d: len(d["rows"]) == 50)
        await eventually(lambda: len(delta.rows) == 50)
        documents_before = len(whole.documents)
        started = time.monotonic()
        await asyncio.gather(*(p.check_in() for p in patients))
        await whole.until(lambda d: states(d) == ["waiting"] * 50)
        await eventually(lambda: all(row["state"] == "waiting" for row in delta.rows.values()))
        took = time.monotonic() - started
        # One push per window at most (and one more for the window the burst ended in).
        bound = int(took / PUSH_INTERVAL) + 2
        assert len(whole.documents) - documents_before <= bound < 50, (took, bound)
        assert len(delta.deltas) <= bound
        # The last state went out: every row with its patient, in slot order.
        last = whole.documents[-1]
        assert [row["room_id"] for row in last["rows"]] == [room["room_id"] for room in rooms]
        assert all(len(row["waiting"]) == 1 for row in last["rows"])
        assert {room_id: row["waiting"] for room_id, row in delta.rows.items()} == {
            row["room_id"]: row["waiting"] for row in last["rows"]
        }
        # Each patient heard their place once: nobody's moved, each arrived behind the others.
        await eventually(lambda: [len(p.places) for p in patients] == [1] * 50)
        assert [p.places[0]["position"] for p in patients] == list(range(1, 51))
    finally:
        for patient in patients:
            await patient.close()
        await whole.close()
        await delta.close()


async def test_a_patient_hears_of_their_own_place_only_when_it_moves(
    live_server: LiveServer,
) -> None:
    first = await book_for(live_server, "prac-1", starts_in=timedelta(minutes=5))
    later = await book_for(live_server, "prac-1", starts_in=timedelta(minutes=6))
    others = [
        await book_for(live_server, "prac-1", starts_in=timedelta(minutes=7 + i)) for i in range(5)
    ]
    early = Patient(live_server.base_url, first["links"]["patient"], "early")
    second = Patient(live_server.base_url, later["links"]["patient"], "second")
    crowd = [Patient(live_server.base_url, room["links"]["patient"]) for room in others]
    try:
        await second.connect()
        await early.connect()
        assert await second.check_in() == 1
        await eventually(lambda: [p["position"] for p in second.places] == [1])
        # The earlier slot arrives: the second patient moves back, and hears it once.
        assert await early.check_in() == 1
        await eventually(lambda: [p["position"] for p in second.places] == [1, 2])
        await eventually(lambda: [p["position"] for p in early.places] == [1])
        for patient in crowd:
            await patient.connect()
            await patient.check_in()
        await eventually(lambda: all(len(p.places) == 1 for p in crowd))
        # Later slots queue behind them: neither place moved, so nothing was sent to them.
        await stays_true(
            lambda: len(early.places) == 1 and len(second.places) == 2,
            for_seconds=3 * PUSH_INTERVAL,
        )
        # The head of the queue leaves: everyone behind moves up, and is told.
        await early.call("leave")
        await eventually(lambda: [p["position"] for p in second.places] == [1, 2, 1])
        await eventually(lambda: [p.places[-1]["position"] for p in crowd] == [2, 3, 4, 5, 6])
        assert [len(p.places) for p in crowd] == [2] * 5
    finally:
        for patient in [early, second, *crowd]:
            await patient.close()


async def test_a_delta_desk_fetches_join_links_on_demand(live_server: LiveServer) -> None:
    mine = await book_for(live_server, "prac-1", starts_in=timedelta(minutes=5))
    other = await book_for(live_server, "prac-2")
    desk = DeltaDesk(live_server, await desk_link(live_server, "prac-1"))
    await desk.connect()
    try:
        document = await desk.until(lambda d: True)
        (row,) = document["rows"]
        # No link signed per row: the desk says whether the room can be opened.
        assert "link" not in row
        assert row["open"] is True

        ack = await desk.call("join_link", {"room_id": mine["room_id"]})
        assert ack["ok"], ack
        assert ack["url"].split("#")[0].endswith(f"/c/{mine['room_id']}")
        practitioner = SyntheticParticipant(live_server.base_url, ack["url"], "doctor")
        session = await practitioner.connect()
        assert session["role"] == "practitioner"
        await practitioner.close()

        for data in ({"room_id": other["room_id"]}, {"room_id": "no-such"}, {}, "not an object"):
            # Someone else's room, or none: the same answer, and no link.
            refused = await desk.call("join_link", data)  # type: ignore[arg-type]
            assert refused["ok"] is False
            assert refused["error"]["code"] == "room_not_found"

        # Over: the row says so at once, and no link is minted any more.
        assert (await desk.call("end", {"room_id": mine["room_id"]}))["ok"]
        await eventually(lambda: desk.rows[mine["room_id"]]["open"] is False)
        refused = await desk.call("join_link", {"room_id": mine["room_id"]})
        assert refused["ok"] is False
        assert refused["error"]["code"] == "room_ended"
        assert "link" not in str(desk.deltas)
    finally:
        await desk.close()


async def test_a_whole_document_desk_still_gets_its_links(live_server: LiveServer) -> None:
    await book_for(live_server, "prac-1")
    desk = Desk(live_server, await desk_link(live_server, "prac-1"))
    await desk.connect()
    try:
        document = await desk.until(lambda d: True)
        assert document["rows"][0]["link"]
        assert "open" not in document["rows"][0]
    finally:
        await desk.close()


@pytest.mark.browser
async def test_the_desk_page_changes_only_the_row_of_the_room_that_changed(
    live_server: LiveServer,
) -> None:
    rooms = [
        await book_for(live_server, "prac-1", starts_in=timedelta(minutes=2 + i / 4))
        for i in range(30)
    ]
    link = await desk_link(live_server, "prac-1")
    changed = rooms[17]["room_id"]
    async with chromium() as browser:
        page = await (await browser.new_context(locale="en-US")).new_page()
        page.set_default_timeout(STEP)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        heard: list[str | bytes] = []
        said: list[str | bytes] = []

        def watch(socket: WebSocket) -> None:
            socket.on("framereceived", lambda frame: heard.append(frame))
            socket.on("framesent", lambda frame: said.append(frame))

        page.on("websocket", watch)
        await page.goto(live_server.base_url + "/d#" + link.split("#", 1)[1])
        rows = page.get_by_test_id("desk-row")
        await expect(rows).to_have_count(30)
        # Mark every row's element: a delta must leave the 29 others as they are.
        await page.evaluate(
            "() => document.querySelectorAll('[data-testid=desk-row]')"
            ".forEach((tr) => { tr.dataset.mark = 'kept'; })"
        )
        patient = SyntheticParticipant(live_server.base_url, rooms[17]["links"]["patient"])
        await patient.connect()
        try:
            await patient.check_in()
            row = page.locator(f'[data-testid=desk-row][data-room-id="{changed}"]')
            await expect(row).to_have_attribute("data-state", "waiting")
            await expect(row.get_by_test_id("desk-waiting-entry")).to_have_count(1)
            await expect(page.get_by_test_id("desk-summary")).to_contain_text("1 waiting")
            marks = await page.evaluate(
                "() => [...document.querySelectorAll('[data-testid=desk-row]')]"
                ".map((tr) => [tr.dataset.roomId, tr.dataset.mark || null])"
            )
            assert [room_id for room_id, _ in marks] == [room["room_id"] for room in rooms]
            assert [room_id for room_id, mark in marks if mark != "kept"] == [changed]
            # What came was a delta of that room, not the day again.
            deltas = [frame for frame in heard if isinstance(frame, str) and "desk_delta" in frame]
            assert deltas
            assert all(frame.count('"room_id"') <= 1 for frame in deltas)

            # Opening the room asks for its link then.
            requested: list[str] = []
            page.context.on("request", lambda request: requested.append(request.url))
            async with page.context.expect_page():
                await row.get_by_test_id("desk-open").click()
            await eventually(lambda: any(f"/c/{changed}" in url for url in requested))
            assert all("#" not in url for url in requested)
            assert any("join_link" in frame for frame in said if isinstance(frame, str))
        finally:
            await patient.close()
        assert errors == []


async def test_a_patient_sent_back_from_the_call_is_told_their_place_again(
    live_server: LiveServer,
) -> None:
    room = await book_for(live_server, "prac-1")
    patient = Patient(live_server.base_url, room["links"]["patient"])
    doctor = SyntheticParticipant(live_server.base_url, room["links"]["practitioner"], "doctor")
    returned: list[Any] = []
    patient.sio.on("returned_to_waiting", returned.append)
    try:
        await patient.connect()
        await doctor.connect()
        await doctor.open_consultation()
        await patient.check_in()
        entry_id = (await doctor.wait_for_waiting(1))[0]["entry_id"]
        await eventually(lambda: len(patient.places) == 1)
        # Admitted and sent back within one push window: the same place as before, told again.
        await doctor.admit(entry_id)
        await doctor.call("return_to_waiting", {"entry_id": entry_id})
        await eventually(lambda: returned == [{}])
        await eventually(lambda: [p["position"] for p in patient.places] == [1, 1])
    finally:
        await patient.close()
        await doctor.close()
