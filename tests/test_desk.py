"""The practitioner's desk: desk links, the `/desk` namespace, and the page in Chromium."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import socketio
from aiohttp import ClientSession
from playwright.async_api import expect

from signalling import tokens
from signalling.app import HUB
from signalling.config import Settings
from tests.conftest import LiveServer
from tests.support import (
    TOKEN_SECRET,
    appointment_data,
    booking_body,
    make_settings,
    signed_headers,
)
from tests.support.browser import chromium
from tests.support.polling import eventually, stays_true
from tests.support.synthetic import SignallingError, SyntheticParticipant

API_KEY = "desk-test-api-key-0123456789"
STEP = 20_000


@pytest.fixture
def settings() -> Settings:
    return make_settings(api_key=API_KEY)


async def book_for(server: LiveServer, practitioner_id: str, **kwargs: Any) -> dict[str, Any]:
    data = appointment_data(**kwargs)
    data["practitioner"]["id"] = practitioner_id
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


async def desk_link(server: LiveServer, practitioner_id: str) -> str:
    async with (
        ClientSession() as session,
        session.post(
            f"{server.base_url}/api/v1/practitioners/{practitioner_id}/desk-link",
            headers={"Authorization": f"Bearer {API_KEY}"},
        ) as response,
    ):
        assert response.status == 201, await response.text()
        link: str = (await response.json())["link"]
        return link


class Desk:
    """A desk connection as the page makes it."""

    def __init__(self, server: LiveServer, link: str) -> None:
        self.server = server
        self.token = link.split("#", 1)[1]
        self.sio = socketio.AsyncClient(reconnection=False)
        self.documents: list[dict[str, Any]] = []
        self.changed = asyncio.Event()
        self.sio.on("desk", self._on_desk, namespace="/desk")

    async def _on_desk(self, document: dict[str, Any]) -> None:
        self.documents.append(document)
        self.changed.set()

    async def connect(self) -> None:
        await self.sio.connect(
            self.server.base_url,
            namespaces=["/desk"],
            auth={"token": self.token},
            transports=["websocket"],
            wait_timeout=10,
        )

    async def call(self, event: str, data: dict[str, Any]) -> dict[str, Any]:
        ack: dict[str, Any] = await self.sio.call(event, data, namespace="/desk", timeout=10)
        return ack

    async def until(self, check: Any, timeout: float = 10) -> dict[str, Any]:
        async def wait() -> dict[str, Any]:
            while not (self.documents and check(self.documents[-1])):
                self.changed.clear()
                await self.changed.wait()
            return self.documents[-1]

        return await asyncio.wait_for(wait(), timeout)

    async def close(self) -> None:
        await self.sio.disconnect()


def states(document: dict[str, Any]) -> list[str]:
    return [row["state"] for row in document["rows"]]


async def test_a_room_token_opens_no_desk_and_a_desk_token_opens_no_room(
    live_server: LiveServer,
) -> None:
    room = await book_for(live_server, "prac-1")
    link = await desk_link(live_server, "prac-1")
    room_token = room["links"]["practitioner"].split("#", 1)[1]

    wrong = Desk(live_server, "x#" + room_token)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await wrong.connect()
    as_room = SyntheticParticipant(
        live_server.base_url,
        live_server.base_url + f"/c/{room['room_id']}#" + link.split("#", 1)[1],
    )
    with pytest.raises(socketio.exceptions.ConnectionError):
        await as_room.connect(timeout=5)
    assert as_room.connect_error is not None
    assert as_room.connect_error["code"] == "token_invalid"
    now = datetime.now(UTC)
    expired = tokens.mint_desk(
        TOKEN_SECRET,
        practitioner_id="prac-1",
        not_before=now - timedelta(hours=15),
        expires_at=now - timedelta(hours=1),
    )
    with pytest.raises(socketio.exceptions.ConnectionError):
        await Desk(live_server, "x#" + expired).connect()


async def test_the_desk_lists_only_this_practitioners_day_in_slot_order(
    live_server: LiveServer,
) -> None:
    later = await book_for(live_server, "prac-1", starts_in=timedelta(minutes=40))
    sooner = await book_for(live_server, "prac-1", starts_in=timedelta(minutes=5))
    await book_for(live_server, "prac-2", patient_name="Someone Else")
    await book_for(live_server, "prac-1", starts_in=timedelta(days=3))
    desk = Desk(live_server, await desk_link(live_server, "prac-1"))
    await desk.connect()
    try:
        document = await desk.until(lambda d: True)
        assert [row["room_id"] for row in document["rows"]] == [sooner["room_id"], later["room_id"]]
        assert states(document) == ["scheduled", "scheduled"]
        assert "Someone Else" not in str(document)
        assert all(row["link"] for row in document["rows"])
    finally:
        await desk.close()


async def test_a_new_appointment_reaches_an_open_desk_at_once(live_server: LiveServer) -> None:
    await book_for(live_server, "prac-1", starts_in=timedelta(minutes=5))
    desk = Desk(live_server, await desk_link(live_server, "prac-1"))
    await desk.connect()
    try:
        await desk.until(lambda d: len(d["rows"]) == 1)
        booked = await book_for(live_server, "prac-1", starts_in=timedelta(minutes=20))
        # Pushed as the booking is stored, not at the next refresh.
        document = await desk.until(lambda d: len(d["rows"]) == 2, timeout=1)
        assert document["rows"][1]["room_id"] == booked["room_id"]

        data = appointment_data(starts_in=timedelta(minutes=35))
        data["practitioner"]["id"] = "prac-1"
        async with (
            ClientSession() as session,
            session.post(
                f"{live_server.base_url}/api/v1/appointments",
                json=data,
                headers={"Authorization": f"Bearer {API_KEY}"},
            ) as response,
        ):
            assert response.status == 201, await response.text()
            created = await response.json()
        document = await desk.until(lambda d: len(d["rows"]) == 3, timeout=1)
        assert document["rows"][2]["room_id"] == created["room_id"]
    finally:
        await desk.close()


async def test_admit_deny_and_message_from_the_desk(live_server: LiveServer) -> None:
    first = await book_for(live_server, "prac-1", starts_in=timedelta(minutes=5))
    second = await book_for(live_server, "prac-1", starts_in=timedelta(minutes=10))
    foreign = await book_for(live_server, "prac-2")
    desk = Desk(live_server, await desk_link(live_server, "prac-1"))
    patients = [
        SyntheticParticipant(live_server.base_url, first["links"]["patient"], "first"),
        SyntheticParticipant(live_server.base_url, second["links"]["patient"], "second"),
        SyntheticParticipant(live_server.base_url, foreign["links"]["patient"], "foreign"),
    ]
    messages: dict[str, list[dict[str, Any]]] = {p.label: [] for p in patients}
    for patient in patients:
        patient.sio.on(
            "practitioner_message",
            lambda data, label=patient.label: messages[label].append(data),
        )
    denial: list[dict[str, Any]] = []

    async def on_denied(data: dict[str, Any]) -> None:
        denial.append(data)
        patients[1].denied.set()

    patients[1].sio.on("denied", on_denied)
    await desk.connect()
    try:
        for patient in patients:
            await patient.connect()
            await patient.check_in()
        document = await desk.until(lambda d: states(d) == ["waiting", "waiting"])
        entry = document["rows"][0]["waiting"][0]
        assert entry["name"] == "Alice Martin"

        ack = await desk.call("message", {"text": "  Running 10 minutes late  "})
        assert ack == {"ok": True, "recipients": 2}
        told = ["Running 10 minutes late"]
        await eventually(lambda: [m["text"] for m in messages["first"]] == told)
        await eventually(lambda: [m["text"] for m in messages["second"]] == told)
        await stays_true(lambda: messages["foreign"] == [], for_seconds=0.3)

        refused = await desk.call(
            "admit", {"room_id": foreign["room_id"], "entry_id": entry["entry_id"]}
        )
        assert refused["error"]["code"] == "room_not_found"
        bad = await desk.call("message", {"text": "x" * 501})
        assert bad["error"]["code"] == "invalid_request"

        ack = await desk.call("admit", {"room_id": first["room_id"], "entry_id": entry["entry_id"]})
        assert ack["ok"]
        assert ack["link"].split("#")[0].endswith(f"/c/{first['room_id']}")
        await asyncio.wait_for(patients[0].admitted.wait(), 10)
        document = await desk.until(lambda d: states(d) == ["in_consultation", "waiting"])

        waiting = document["rows"][1]["waiting"][0]
        ack = await desk.call(
            "deny",
            {"room_id": second["room_id"], "entry_id": waiting["entry_id"], "reason": "Call us"},
        )
        assert ack["ok"]
        await asyncio.wait_for(patients[1].denied.wait(), 10)
        assert denial == [{"reason": "Call us"}]
        await desk.until(lambda d: states(d) == ["in_consultation", "scheduled"])
    finally:
        for patient in patients:
            await patient.close()
        await desk.close()


async def test_the_desk_ends_and_sends_back_only_its_own_rooms(live_server: LiveServer) -> None:
    mine = await book_for(live_server, "prac-1")
    foreign = await book_for(live_server, "prac-2")
    desk = Desk(live_server, await desk_link(live_server, "prac-1"))
    await desk.connect()
    try:
        for event, data in [
            ("end", {"room_id": foreign["room_id"]}),
            ("return_to_waiting", {"room_id": foreign["room_id"], "entry_id": "x" * 12}),
            ("end", {}),
        ]:
            ack = await desk.call(event, data)
            assert ack["error"]["code"] == "room_not_found", (event, ack)
        ack = await desk.call(
            "return_to_waiting", {"room_id": mine["room_id"], "entry_id": "x" * 12}
        )
        assert ack["error"]["code"] == "not_in_call"
        assert (await desk.call("end", {"room_id": mine["room_id"]}))["ok"]
        await desk.until(lambda d: states(d) == ["ended"])
    finally:
        await desk.close()


async def test_patient_cannot_use_the_desk_events(live_server: LiveServer) -> None:
    room = await book_for(live_server, "prac-1")
    patient = SyntheticParticipant(live_server.base_url, room["links"]["patient"])
    await patient.connect()
    try:
        # The default namespace has no desk events; nothing answers "message".
        with pytest.raises((SignallingError, socketio.exceptions.TimeoutError)):
            await patient.sio.call("message", {"text": "hi"}, timeout=2)
    finally:
        await patient.close()


@pytest.mark.browser
async def test_the_desk_page_shows_arrivals_live_and_admits(live_server: LiveServer) -> None:
    first = await book_for(live_server, "prac-1", starts_in=timedelta(minutes=5))
    second = await book_for(
        live_server, "prac-1", starts_in=timedelta(minutes=12), patient_name="Bruno Petit"
    )
    link = await desk_link(live_server, "prac-1")
    async with chromium() as browser:
        context = await browser.new_context(locale="en-US")
        page = await context.new_page()
        page.set_default_timeout(STEP)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(live_server.base_url + "/d#" + link.split("#", 1)[1])
        await expect(page.locator("body")).to_have_attribute("data-state", "ready")
        rows = page.get_by_test_id("desk-row")
        await expect(rows).to_have_count(2)
        await expect(page.get_by_test_id("desk")).to_be_visible()
        await expect(rows.nth(0)).to_contain_text("Alice Martin")
        await expect(rows.nth(1)).to_contain_text("Bruno Petit")

        patient = SyntheticParticipant(live_server.base_url, second["links"]["patient"])
        await patient.connect()
        try:
            await patient.check_in()
            await expect(rows.nth(1)).to_have_attribute("data-state", "waiting")
            await expect(page).to_have_title("(1) waiting — Desk — Teleconsultation")
            await expect(rows.nth(0)).to_have_attribute("data-state", "scheduled")

            requested: list[str] = []
            context.on("request", lambda request: requested.append(request.url))
            async with context.expect_page():
                await rows.nth(1).get_by_test_id("desk-admit").click()
            await asyncio.wait_for(patient.admitted.wait(), 10)

            # The room opens beside the desk (on the configured public URL, which this
            # test server does not listen on); its token stays in the fragment.
            def opened() -> list[str]:
                return [url for url in requested if f"/c/{second['room_id']}" in url]

            # The link is fetched on demand (`join_link`): the new page may navigate a moment
            # after the admission.
            await eventually(lambda: bool(opened()))
            assert all("#" not in url for url in opened())
            await expect(rows.nth(1)).to_have_attribute("data-state", "in_consultation")
            await expect(page).to_have_title("Desk — Teleconsultation")

            # Back to the waiting room from the desk; typing survives live updates.
            returned: list[Any] = []
            patient.sio.on("returned_to_waiting", returned.append)
            await rows.nth(1).get_by_test_id("desk-return-to-waiting").click()
            await expect(rows.nth(1)).to_have_attribute("data-state", "waiting")
            await eventually(lambda: returned == [{}])
            reason = rows.nth(1).get_by_test_id("desk-deny-reason")
            await reason.fill("Half-typed reason")
            other = SyntheticParticipant(live_server.base_url, first["links"]["patient"])
            await other.connect()
            await other.check_in()  # an update re-renders the table
            await expect(rows.nth(0)).to_have_attribute("data-state", "waiting")
            await expect(reason).to_have_value("Half-typed reason")
            await other.close()

            # A message to this one patient, then admit again and end from the desk.
            heard: list[dict[str, Any]] = []
            patient.sio.on("practitioner_message", heard.append)
            await rows.nth(1).get_by_test_id("desk-room-message-text").fill("Two more minutes")
            await rows.nth(1).get_by_test_id("desk-room-message-send").click()
            await expect(page.get_by_test_id("desk-summary")).to_contain_text("Message sent")
            assert [m["text"] for m in heard] == ["Two more minutes"]
            async with context.expect_page():
                await rows.nth(1).get_by_test_id("desk-admit").click()
            await expect(rows.nth(1)).to_have_attribute("data-state", "in_consultation")
            await rows.nth(1).get_by_test_id("desk-end").click()
            await page.get_by_test_id("confirm").click()
            await expect(rows.nth(1)).to_have_attribute("data-state", "ended")
            await asyncio.wait_for(patient.ended.wait(), 10)
        finally:
            await patient.close()

        bad = await context.new_page()
        await bad.goto(live_server.base_url + "/d#not-a-token")
        await expect(bad.locator("body")).to_have_attribute("data-state", "error")
        await expect(bad.get_by_test_id("error-message")).to_contain_text("not valid")
        assert errors == []
    assert first["room_id"] != second["room_id"]


@pytest.mark.browser
async def test_the_desk_page_clears_itself_when_its_link_expires(
    live_server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    await book_for(live_server, "prac-1")
    now = datetime.now(UTC)
    token = tokens.mint_desk(
        TOKEN_SECRET,
        practitioner_id="prac-1",
        not_before=now - timedelta(minutes=1),
        expires_at=now + timedelta(hours=1),
    )
    async with chromium() as browser:
        page = await (await browser.new_context(locale="en-US")).new_page()
        page.set_default_timeout(STEP)
        await page.goto(live_server.base_url + "/d#" + token)
        await expect(page.get_by_test_id("desk-row")).to_have_count(1)
        hub = live_server.app[HUB]
        real = hub.clock
        # The link's working day ends on the app's clock, whatever the page's load time.
        monkeypatch.setattr(hub, "clock", lambda: real() + timedelta(hours=1, minutes=1))
        await expect(page.locator("body")).to_have_attribute("data-state", "error")
        await expect(page.get_by_test_id("error-message")).to_contain_text("expired")
        await expect(page.get_by_test_id("desk-row")).to_have_count(0)
        assert "Alice Martin" not in await page.content()
