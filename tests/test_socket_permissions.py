"""Socket.IO over a real socket: who may do what, and what each side learns."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import socketio

from rooms.roles import Role
from signalling import tokens
from tests.conftest import LiveServer
from tests.support import TOKEN_SECRET, room_id_of, token_of
from tests.support.polling import eventually, stays_true
from tests.support.synthetic import SignallingError, SyntheticParticipant


async def connected(server: LiveServer, link: str, label: str) -> SyntheticParticipant:
    participant = SyntheticParticipant(server.base_url, link, label)
    await participant.connect()
    return participant


async def someone_else(
    server: LiveServer, practitioner: SyntheticParticipant, label: str, name: str = "Zoé Secret"
) -> SyntheticParticipant:
    """Another person waiting, a guest: a second device on the patient's link would take over."""
    invited = await practitioner.call("invite_guest", {"name": name})
    return await connected(server, invited["link"], label)


async def refused(server: LiveServer, link: str) -> dict[str, object]:
    participant = SyntheticParticipant(server.base_url, link, "refused")
    with pytest.raises(socketio.exceptions.ConnectionError):
        await participant.connect(timeout=5)
    assert participant.connect_error is not None
    return participant.connect_error


async def test_patient_cannot_admit_deny_end_or_open(live_server: LiveServer) -> None:
    room = await live_server.book()
    patient = await connected(live_server, room["links"]["patient"], "patient")
    try:
        await patient.check_in()
        for event, data in [
            ("admit", {"entry_id": "x" * 12}),
            ("deny", {"entry_id": "x" * 12}),
            ("end_consultation", {}),
            ("open_consultation", {}),
        ]:
            with pytest.raises(SignallingError) as refusal:
                await patient.call(event, data)
            assert refusal.value.code == "not_allowed", event
    finally:
        await patient.close()


async def test_patient_cannot_admit_even_with_a_real_entry_id(live_server: LiveServer) -> None:
    room = await live_server.book()
    practitioner = await connected(live_server, room["links"]["practitioner"], "practitioner")
    first = await connected(live_server, room["links"]["patient"], "first")
    second = await someone_else(live_server, practitioner, "second")
    try:
        await practitioner.open_consultation()
        await first.check_in()
        await second.check_in()
        entries = await practitioner.wait_for_waiting(2)
        with pytest.raises(SignallingError) as refusal:
            await first.admit(entries[1]["entry_id"])
        assert refusal.value.code == "not_allowed"
        assert not second.admitted.is_set()
        assert [e["entry_id"] for e in practitioner.waiting_list] == [
            e["entry_id"] for e in entries
        ]
    finally:
        for participant in (second, first, practitioner):
            await participant.close()


async def test_waiting_patient_learns_only_their_position(live_server: LiveServer) -> None:
    room = await live_server.book(patient_name="Zoé Secret")
    practitioner = await connected(live_server, room["links"]["practitioner"], "practitioner")
    first = await connected(live_server, room["links"]["patient"], "first")
    second = await someone_else(live_server, practitioner, "second")
    received: list[tuple[str, object]] = []
    second.sio.on("*", lambda event, data: received.append((event, data)))
    try:
        await practitioner.open_consultation()
        assert await first.check_in() == 1
        assert await second.check_in() == 2
        entries = await practitioner.wait_for_waiting(2)
        assert [e["name"] for e in entries] == ["Zoé Secret", "Zoé Secret"]
        assert all("waiting_since" in e for e in entries)
        await first.call("leave")
        await eventually(lambda: second.position == 1)
        assert second.waiting_list == []
        # The catch-all saw every event the second patient got: positions only.
        assert {event for event, _ in received} <= {"waiting"}
        assert all(data == {"position": 1} for _, data in received)
    finally:
        for participant in (second, first, practitioner):
            await participant.close()


async def test_practitioner_cannot_check_in_as_a_patient(live_server: LiveServer) -> None:
    room = await live_server.book()
    practitioner = await connected(live_server, room["links"]["practitioner"], "practitioner")
    try:
        with pytest.raises(SignallingError) as refusal:
            await practitioner.check_in()
        assert refusal.value.code == "not_allowed"
    finally:
        await practitioner.close()


async def test_waiting_patient_cannot_publish_or_receive_media(live_server: LiveServer) -> None:
    room = await live_server.book()
    practitioner = await connected(live_server, room["links"]["practitioner"], "practitioner")
    patient = await connected(live_server, room["links"]["patient"], "patient")
    try:
        await practitioner.open_consultation()
        await practitioner.publish()
        await patient.check_in()
        with pytest.raises(SignallingError) as refusal:
            await patient.publish()
        assert refusal.value.code == "not_in_call"
        await stays_true(lambda: patient.receptions == {}, for_seconds=0.5)
    finally:
        await patient.close()
        await practitioner.close()


async def test_admit_and_deny_reach_the_right_patient(live_server: LiveServer) -> None:
    room = await live_server.book()
    practitioner = await connected(live_server, room["links"]["practitioner"], "practitioner")
    first = await connected(live_server, room["links"]["patient"], "first")
    second = await someone_else(live_server, practitioner, "second")
    try:
        await practitioner.open_consultation()
        await first.check_in()
        await second.check_in()
        entries = await practitioner.wait_for_waiting(2)
        await practitioner.admit(entries[0]["entry_id"])
        await practitioner.deny(entries[1]["entry_id"])
        await asyncio.wait_for(first.admitted.wait(), 5)
        await asyncio.wait_for(second.denied.wait(), 5)
        assert not first.denied.is_set()
        assert not second.admitted.is_set()
        with pytest.raises(SignallingError) as refusal:
            await practitioner.admit(entries[1]["entry_id"])
        assert refusal.value.code == "not_waiting"
        with pytest.raises(SignallingError) as refusal:
            await second.check_in()
        assert refusal.value.code == "not_allowed"
        await practitioner.call("end_consultation")
        await asyncio.wait_for(first.ended.wait(), 5)
    finally:
        for participant in (second, first, practitioner):
            await participant.close()


async def test_malformed_events_get_an_error_ack(live_server: LiveServer) -> None:
    room = await live_server.book()
    practitioner = await connected(live_server, room["links"]["practitioner"], "practitioner")
    try:
        await practitioner.open_consultation()
        attempts: list[tuple[str, dict[str, Any]]] = [
            ("admit", {}),
            ("admit", {"entry_id": 5}),
            ("publish", {"sdp": "not sdp", "type": "offer"}),
            ("publish", {"type": "answer"}),
            ("subscription_answer", {"subscription_id": "nope", "sdp": "x", "type": "answer"}),
        ]
        for event, data in attempts:
            with pytest.raises(SignallingError) as refusal:
                await practitioner.call(event, data)
            assert refusal.value.code in {
                "not_waiting",
                "invalid_request",
                "media_failed",
                "unknown_subscription",
            }, (event, refusal.value.code)
        # Still usable afterwards.
        await practitioner.call("leave")
    finally:
        await practitioner.close()


def _link_with(room: dict[str, object], token: str) -> str:
    links = room["links"]
    assert isinstance(links, dict)
    return str(links["patient"]).split("#", 1)[0] + "#" + token


async def test_connection_refusals_name_the_problem(live_server: LiveServer) -> None:
    room = await live_server.book()
    other = await live_server.book()
    link = room["links"]["patient"]
    assert (await refused(live_server, link.split("#")[0] + "#"))["code"] == "token_missing"
    tampered = token_of(link)[:-3] + ("AAA" if not token_of(link).endswith("AAA") else "BBB")
    assert (await refused(live_server, _link_with(room, tampered)))["code"] == "token_invalid"
    wrong_room = _link_with(room, token_of(other["links"]["patient"]))
    assert (await refused(live_server, wrong_room))["code"] == "token_wrong_room"
    now = datetime.now(UTC)
    ghost = tokens.mint(
        TOKEN_SECRET,
        room_id="ghost-room-0001",
        person_id="p",
        role=Role.PATIENT,
        not_before=now - timedelta(minutes=1),
        expires_at=now + timedelta(hours=1),
    )
    ghost_link = f"{live_server.base_url}/c/ghost-room-0001#{ghost}"
    assert (await refused(live_server, ghost_link))["code"] == "room_not_found"
    assert room_id_of(link) == room["room_id"]


async def test_early_late_and_cancelled_rooms_are_refused(live_server: LiveServer) -> None:
    early = await live_server.book(starts_in=timedelta(hours=2))
    error = await refused(live_server, early["links"]["patient"])
    assert error["code"] == "room_not_yet_open"
    announced = datetime.fromisoformat(str(error["opens_at"]))
    assert abs(announced - datetime.fromisoformat(early["opens_at"])) < timedelta(seconds=1)

    late = await live_server.book(starts_in=timedelta(hours=-3))
    assert (await refused(live_server, late["links"]["patient"]))["code"] == "room_closed"

    cancelled = await live_server.book()
    status, _ = await live_server.send(
        "appointment.cancelled", {"appointment_id": cancelled["appointment_id"]}
    )
    assert status == 200
    assert (await refused(live_server, cancelled["links"]["patient"]))["code"] == "room_cancelled"


async def test_cancellation_ends_the_wait_of_connected_patients(live_server: LiveServer) -> None:
    room = await live_server.book()
    patient = await connected(live_server, room["links"]["patient"], "patient")
    try:
        await patient.check_in()
        status, _ = await live_server.send(
            "appointment.cancelled", {"appointment_id": room["appointment_id"]}
        )
        assert status == 200
        await asyncio.wait_for(patient.ended.wait(), 5)
    finally:
        await patient.close()
