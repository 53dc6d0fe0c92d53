"""A link is a pass for one person: one live entry each, takeovers, and denials that stick.

Over real sockets against the real app (docs/protocol.md, "One person, one entry").
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import socketio
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from signalling.app import HUB, make_app
from tests.conftest import LiveServer
from tests.support import make_settings, room_id_of
from tests.support.polling import eventually, stays_true
from tests.support.synthetic import SignallingError, SyntheticParticipant
from tests.test_desk import API_KEY, Desk, desk_link

AUTH = {"Authorization": f"Bearer {API_KEY}"}
FLOOD = 500


@pytest.fixture
async def server(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> LiveServer:
    settings = make_settings(api_key=API_KEY)
    return LiveServer(await aiohttp_server(make_app(settings), host="127.0.0.1"))


class Device(SyntheticParticipant):
    """A connection that records, in order, what it is told."""

    def __init__(self, server: LiveServer, link: str, label: str, resume: str | None = None):
        super().__init__(server.base_url, link, label)
        self.resume = resume
        self.log: list[tuple[str, Any]] = []
        for event in ("replaced", "undenied", "e2ee_peer_left"):
            self.sio.on(event, lambda data, event=event: self.log.append((event, data)))

    async def _on_waiting(self, data: dict[str, Any]) -> None:
        self.log.append(("waiting", data))
        await super()._on_waiting(data)

    async def _on_denied(self, data: Any) -> None:
        self.log.append(("denied", data))
        await super()._on_denied(data)

    async def _on_subscription_closed(self, data: dict[str, Any]) -> None:
        self.log.append(("subscription_closed", data))
        await super()._on_subscription_closed(data)

    async def _accept_subscription(self, data: dict[str, Any]) -> None:
        self.log.append(("subscription_offer", data["publisher"]))
        await super()._accept_subscription(data)

    async def _on_waiting_list(self, data: dict[str, Any]) -> None:
        self.log.append(("waiting_list", None))  # Counted, not kept: names.
        await super()._on_waiting_list(data)

    async def connect(self, timeout: float = 10.0) -> dict[str, Any]:
        auth = {"token": self.token, "room_id": self.room_id}
        if self.resume is not None:
            auth["resume"] = self.resume
        await self.sio.connect(
            self.base_url, auth=auth, transports=["websocket"], wait_timeout=timeout
        )
        return await asyncio.wait_for(self.session, timeout)

    def told(self, event: str) -> list[Any]:
        return [data for name, data in self.log if name == event]

    def video_frames(self) -> int:
        return sum(reception.video_frames for reception in self.receptions.values())


@pytest.fixture
async def devices() -> AsyncIterator[Callable[..., Awaitable[Device]]]:
    opened: list[Device] = []

    async def open_one(
        server: LiveServer, link: str, label: str, resume: str | None = None
    ) -> Device:
        device = Device(server, link, label, resume)
        opened.append(device)
        await device.connect()
        return device

    yield open_one
    for device in reversed(opened):
        await device.close()


async def api(server: LiveServer, path: str, headers: dict[str, str] | None = None) -> Any:
    async with (
        ClientSession() as session,
        session.post(server.base_url + path, headers=AUTH if headers is None else headers) as got,
    ):
        return got.status, await got.json()


async def checked_in_events(server: LiveServer, room_id: str) -> list[str]:
    events = await server.app[HUB].event_log.after(None, 1000)
    return [e.type for e in events if e.data["room_id"] == room_id]


def entry_ids(doctor: SyntheticParticipant) -> list[str]:
    return [entry["entry_id"] for entry in doctor.waiting_list]


async def test_a_flood_on_one_link_is_one_entry_and_one_check_in(
    server: LiveServer, devices: Callable[..., Awaitable[Device]]
) -> None:
    room = await server.book()
    doctor = await devices(server, room["links"]["practitioner"], "doctor")
    await doctor.open_consultation()
    started = time.monotonic()
    admitted_connects = refused_connects = refused_check_ins = 0
    refused_codes: set[str] = set()
    for n in range(FLOOD):
        patient = Device(server, room["links"]["patient"], f"flood {n}")
        try:
            await patient.connect()
        except socketio.exceptions.ConnectionError:
            # Past the link's connect budget (signalling/socket_limits.py): refused at once.
            refused_connects += 1
            continue
        admitted_connects += 1
        try:
            assert await patient.check_in() == 1
        except SignallingError as error:
            refused_codes.add(error.code)
            refused_check_ins += 1
        await patient.sio.disconnect()
    elapsed = time.monotonic() - started
    pushes = len(doctor.told("waiting_list"))
    print(
        f"{FLOOD} connect/check-in/disconnect cycles in {elapsed:.1f} s: {admitted_connects} "
        f"connections let in, {refused_connects} refused, {refused_check_ins} check-ins refused, "
        f"{pushes} list pushes"
    )
    # One link is one pass: after the burst, connections are refused (rate_limited).
    assert admitted_connects >= 1
    assert refused_connects > FLOOD / 2
    assert refused_codes <= {"rate_limited"}

    await eventually(lambda: len(doctor.waiting_list) == 1 and doctor.waiting_list[0]["away_since"])
    hub_room = await server.app[HUB].room(room_id_of(room["links"]["patient"]))
    assert hub_room is not None
    assert len(hub_room.waiting) == 1
    types = await checked_in_events(server, hub_room.id)
    assert types.count("consultation.patient_checked_in") == 1
    assert elapsed < 60


async def test_a_second_tab_takes_the_place_over_and_the_first_is_told(
    server: LiveServer, devices: Callable[..., Awaitable[Device]]
) -> None:
    room = await server.book()
    doctor = await devices(server, room["links"]["practitioner"], "doctor")
    await doctor.open_consultation()
    first = await devices(server, room["links"]["patient"], "first tab")
    assert await first.check_in() == 1
    invited = await doctor.call("invite_guest", {"name": "Ines Interprète"})
    guest = await devices(server, invited["link"], "guest")
    assert await guest.check_in() == 2
    before = await doctor.wait_for_waiting(2)

    second = await devices(server, room["links"]["patient"], "second tab")  # No secret.
    session = await second.session
    assert session["resumed"] == "waiting"
    assert session["denied"] is None
    assert isinstance(session["resume"], str)  # Its own secret for the entry now.
    await eventually(lambda: first.told("replaced") == [{}])
    await eventually(lambda: not first.sio.connected)
    await eventually(lambda: [p["position"] for p in second.told("waiting")][-1:] == [1])
    # Never twice, never behind themself: the same entries in the same order.
    await stays_true(lambda: entry_ids(doctor) == [e["entry_id"] for e in before], for_seconds=0.3)
    assert await second.check_in() == 1  # Checking in again is no new arrival.
    await doctor.admit(before[0]["entry_id"])
    await asyncio.wait_for(second.admitted.wait(), 10)
    assert not first.admitted.is_set()
    assert (await checked_in_events(server, room_id_of(room["links"]["patient"]))).count(
        "consultation.patient_checked_in"
    ) == 1


async def test_a_second_practitioner_device_takes_the_call_over(
    server: LiveServer, devices: Callable[..., Awaitable[Device]]
) -> None:
    room = await server.book()
    doctor = await devices(server, room["links"]["practitioner"], "doctor laptop")
    patient = await devices(server, room["links"]["patient"], "patient")
    await doctor.open_consultation()
    await patient.check_in()
    [entry] = await doctor.wait_for_waiting(1)
    await doctor.admit(entry["entry_id"])
    await asyncio.wait_for(patient.admitted.wait(), 10)
    await doctor.publish()
    await patient.publish()
    await eventually(lambda: doctor.video_frames() > 5, timeout=20)
    await eventually(lambda: patient.video_frames() > 5, timeout=20)
    [doctor_offer] = patient.told("subscription_offer")
    doctor_entry = doctor_offer["entry_id"]

    phone = await devices(server, room["links"]["practitioner"], "doctor phone")
    assert (await phone.session)["resumed"] == "in_call"
    await eventually(lambda: doctor.told("replaced") == [{}])
    await eventually(lambda: not doctor.sio.connected)
    # The others are told (and rekey) before the new device is served anything.
    await eventually(lambda: patient.told("e2ee_peer_left") == [{"from": doctor_entry}])
    await phone.open_consultation()  # Already in: the page's usual call changes nothing.
    await phone.publish()
    await eventually(lambda: phone.video_frames() > 5, timeout=20)
    await eventually(lambda: len(patient.told("subscription_offer")) == 2, timeout=20)
    order = [name for name, _ in patient.log if name in ("e2ee_peer_left", "subscription_offer")]
    assert order == ["subscription_offer", "e2ee_peer_left", "subscription_offer"]
    assert [offer["entry_id"] for offer in patient.told("subscription_offer")] == [doctor_entry] * 2
    # The replaced device gets no more media from the relay.
    last = [-1]

    def settled() -> bool:
        now = doctor.video_frames()
        same, last[0] = now == last[0], now
        return same

    # A second without a frame (15 a second while forwarded; a loaded decoder may lag behind).
    await eventually(settled, interval=1.0, timeout=20)
    frozen = doctor.video_frames()
    await stays_true(lambda: doctor.video_frames() == frozen, for_seconds=1.0)
    hub_room = await server.app[HUB].room(room_id_of(room["links"]["patient"]))
    assert hub_room is not None
    assert [p.role.value for p in hub_room.in_call] == ["practitioner", "patient"]


async def test_a_denied_person_stays_denied_on_a_new_connection_and_a_resume(
    server: LiveServer, devices: Callable[..., Awaitable[Device]]
) -> None:
    room = await server.book()
    doctor = await devices(server, room["links"]["practitioner"], "doctor")
    await doctor.open_consultation()
    alice = await devices(server, room["links"]["patient"], "alice")
    await alice.check_in()
    secret = (await alice.session)["resume"]
    [entry] = await doctor.wait_for_waiting(1)
    await doctor.call("deny", {"entry_id": entry["entry_id"], "reason": "Wrong day, call us"})
    await eventually(lambda: alice.told("denied") == [{"reason": "Wrong day, call us"}])

    for label, resume in (("new tab", None), ("reload", secret)):
        again = await devices(server, room["links"]["patient"], label, resume)
        session = await again.session
        assert session["denied"] == {"reason": "Wrong day, call us"}, label
        assert session["resumed"] is None
        with pytest.raises(SignallingError) as refused:
            await again.check_in()
        assert refused.value.code == "not_allowed"
    assert alice.sio.connected  # A declined page is never `replaced`: it shows its denial.
    await stays_true(lambda: doctor.waiting_list == [], for_seconds=0.3)
    types = await checked_in_events(server, room_id_of(room["links"]["patient"]))
    assert types.count("consultation.patient_checked_in") == 1
    assert types.count("consultation.patient_denied") == 1


async def test_reopen_through_the_api_lets_the_person_check_in_again(
    server: LiveServer, devices: Callable[..., Awaitable[Device]]
) -> None:
    room = await server.book()
    room_id = room_id_of(room["links"]["patient"])
    doctor = await devices(server, room["links"]["practitioner"], "doctor")
    await doctor.open_consultation()
    alice = await devices(server, room["links"]["patient"], "alice")
    await alice.check_in()
    [entry] = await doctor.wait_for_waiting(1)
    await doctor.deny(entry["entry_id"])
    await asyncio.wait_for(alice.denied.wait(), 10)

    status, state = await api(server, f"/api/v1/rooms/{room_id}/reopen")
    assert status == 200
    assert state["room_id"] == room_id
    await eventually(lambda: alice.told("undenied") == [{}])  # Its page comes back.
    again = await devices(server, room["links"]["patient"], "alice again")
    assert (await again.session)["denied"] is None
    assert await again.check_in() == 1
    await doctor.wait_for_waiting(1)
    assert (await api(server, f"/api/v1/rooms/{room_id}/reopen"))[0] == 200  # Idempotent.


async def test_undeny_gives_the_place_back(
    server: LiveServer, devices: Callable[..., Awaitable[Device]]
) -> None:
    room = await server.book()
    doctor = await devices(server, room["links"]["practitioner"], "doctor")
    await doctor.open_consultation()
    alice = await devices(server, room["links"]["patient"], "alice")
    await alice.check_in()
    invited = await doctor.call("invite_guest", {"name": "Ines Interprète"})
    guest = await devices(server, invited["link"], "guest")
    await guest.check_in()
    before = [e["entry_id"] for e in await doctor.wait_for_waiting(2)]
    await doctor.deny(before[0])
    await eventually(lambda: guest.position == 1)

    assert await doctor.call("undeny", {"entry_id": before[0]}) == {"ok": True}
    await eventually(lambda: entry_ids(doctor) == before)
    await eventually(lambda: alice.told("undenied") == [{}])
    await eventually(lambda: guest.position == 2)
    back = await devices(server, room["links"]["patient"], "alice back")  # Her page, reloaded.
    assert (await back.session)["resumed"] == "waiting"
    assert await back.check_in() == 1


async def test_undeny_from_the_desk(
    server: LiveServer, devices: Callable[..., Awaitable[Device]]
) -> None:
    room = await server.book()
    room_id = room_id_of(room["links"]["patient"])
    alice = await devices(server, room["links"]["patient"], "alice")
    await alice.check_in()
    desk = Desk(server, await desk_link(server, "prac-1"))
    await desk.connect()
    try:
        document = await desk.until(lambda d: d["rows"] and d["rows"][0]["waiting"])
        entry_id = document["rows"][0]["waiting"][0]["entry_id"]
        assert (await desk.call("deny", {"room_id": room_id, "entry_id": entry_id}))["ok"]
        await asyncio.wait_for(alice.denied.wait(), 10)
        for bad, code in (
            ({"room_id": "nope-nope-nope", "entry_id": entry_id}, "room_not_found"),
            ({"room_id": room_id, "entry_id": "someone-else"}, "not_denied"),
            ({"room_id": room_id}, "invalid_request"),
        ):
            refused = await desk.call("undeny", bad)
            assert refused["ok"] is False, bad
            assert refused["error"]["code"] == code, bad
        ack = await desk.call("undeny", {"room_id": room_id, "entry_id": entry_id})
        assert ack == {"ok": True}
        await desk.until(lambda d: [w["entry_id"] for w in d["rows"][0]["waiting"]] == [entry_id])
    finally:
        await desk.close()


async def test_bad_reopens_and_undos_change_nothing(
    server: LiveServer, devices: Callable[..., Awaitable[Device]]
) -> None:
    room = await server.book()
    room_id = room_id_of(room["links"]["patient"])
    hub = server.app[HUB]
    doctor = await devices(server, room["links"]["practitioner"], "doctor")
    await doctor.open_consultation()
    alice = await devices(server, room["links"]["patient"], "alice")
    await alice.check_in()
    [entry] = await doctor.wait_for_waiting(1)
    await doctor.deny(entry["entry_id"])
    await asyncio.wait_for(alice.denied.wait(), 10)
    before = await hub.room(room_id)

    status, body = await api(server, "/api/v1/rooms/no-such-room/reopen")
    assert (status, body["error"]["code"]) == (404, "room_not_found")
    status, body = await api(server, f"/api/v1/rooms/{room_id}/reopen", headers={})
    assert (status, body["error"]["code"]) == (401, "unauthorized")
    again = await devices(server, room["links"]["patient"], "alice again")
    for who, data, code in (
        (again, {"entry_id": entry["entry_id"]}, "not_allowed"),  # Not the practitioner.
        (doctor, {"entry_id": "nobody-denied"}, "not_denied"),
        (doctor, {}, "not_denied"),
        (doctor, {"entry_id": 42}, "not_denied"),
    ):
        with pytest.raises(SignallingError) as refused:
            await who.call("undeny", data)
        assert refused.value.code == code, data
    assert await hub.room(room_id) == before

    await doctor.call("end_consultation")
    status, body = await api(server, f"/api/v1/rooms/{room_id}/reopen")
    assert (status, body["error"]["code"]) == (409, "room_ended")


async def test_a_second_practitioner_device_before_the_call_replaces_the_first(
    server: LiveServer, devices: Callable[..., Awaitable[Device]]
) -> None:
    room = await server.book()
    first = await devices(server, room["links"]["practitioner"], "doctor laptop")
    second = await devices(server, room["links"]["practitioner"], "doctor phone")
    assert (await second.session)["resumed"] is None  # Nothing to take over yet.
    await eventually(lambda: first.told("replaced") == [{}])
    await eventually(lambda: not first.sio.connected)
    await second.open_consultation()
    patient = await devices(server, room["links"]["patient"], "patient")
    await patient.check_in()
    await second.wait_for_waiting(1)
    hub_room = await server.app[HUB].room(room_id_of(room["links"]["patient"]))
    assert hub_room is not None
    assert [p.role.value for p in hub_room.in_call] == ["practitioner"]
    assert first.told("waiting_list") == []
