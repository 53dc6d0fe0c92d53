"""Over Socket.IO: guests, sending a patient back to the waiting room, deny with a reason."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.conftest import LiveServer
from tests.support.polling import eventually
from tests.support.synthetic import SignallingError, SyntheticParticipant


async def connected(server: LiveServer, link: str, label: str) -> SyntheticParticipant:
    participant = SyntheticParticipant(server.base_url, link, label)
    await participant.connect()
    return participant


def record(participant: SyntheticParticipant, event: str) -> list[Any]:
    seen: list[Any] = []
    participant.sio.on(event, seen.append)
    return seen


async def test_a_guest_invited_by_the_practitioner_waits_and_is_admitted_on_their_own(
    live_server: LiveServer,
) -> None:
    room = await live_server.book()
    doctor = await connected(live_server, room["links"]["practitioner"], "doctor")
    patient = await connected(live_server, room["links"]["patient"], "patient")
    guest: SyntheticParticipant | None = None
    try:
        await doctor.open_consultation()
        with pytest.raises(SignallingError) as refused:
            await patient.call("invite_guest", {"name": "Cousin"})
        assert refused.value.code == "not_allowed"
        with pytest.raises(SignallingError) as refused:
            await doctor.call("invite_guest", {"name": "   "})
        assert refused.value.code == "invalid_request"

        ack = await doctor.call("invite_guest", {"name": "Ines Interprete"})
        guest = await connected(live_server, ack["link"], "guest")
        session = await guest.session
        assert session["role"] == "guest"
        assert session["participant"]["name"] == "Ines Interprete"
        await patient.check_in()
        assert await guest.check_in() == 2

        entries = await doctor.wait_for_waiting(2)
        assert [(e["name"], e["role"]) for e in entries] == [
            ("Alice Martin", "patient"),
            ("Ines Interprete", "guest"),
        ]
        await doctor.admit(entries[1]["entry_id"])
        await asyncio.wait_for(guest.admitted.wait(), 10)
        assert not patient.admitted.is_set()
        await eventually(lambda: patient.position == 1)
    finally:
        for participant in (guest, patient, doctor):
            if participant is not None:
                await participant.close()


async def test_sending_an_admitted_patient_back_to_the_waiting_room(
    live_server: LiveServer,
) -> None:
    room = await live_server.book()
    doctor = await connected(live_server, room["links"]["practitioner"], "doctor")
    patient = await connected(live_server, room["links"]["patient"], "patient")
    returned = record(patient, "returned_to_waiting")
    peer_left = record(doctor, "e2ee_peer_left")
    try:
        await doctor.open_consultation()
        await patient.check_in()
        [entry] = await doctor.wait_for_waiting(1)
        with pytest.raises(SignallingError) as refused:
            await doctor.call("return_to_waiting", {"entry_id": entry["entry_id"]})
        assert refused.value.code == "not_in_call"
        await doctor.admit(entry["entry_id"])
        await asyncio.wait_for(patient.admitted.wait(), 10)
        await eventually(lambda: doctor.waiting_list == [])
        with pytest.raises(SignallingError) as refused:
            await patient.call("return_to_waiting", {"entry_id": entry["entry_id"]})
        assert refused.value.code == "not_allowed"

        await doctor.call("return_to_waiting", {"entry_id": entry["entry_id"]})

        await eventually(lambda: returned == [{}])
        await eventually(
            lambda: [e["entry_id"] for e in doctor.waiting_list] == [entry["entry_id"]]
        )
        assert peer_left == [{"from": entry["entry_id"]}]
        with pytest.raises(SignallingError) as refused:
            await patient.call("publish", {"sdp": "v=0", "type": "offer"})
        assert refused.value.code == "not_in_call"
        await doctor.admit(entry["entry_id"])  # and admitted again
    finally:
        await patient.close()
        await doctor.close()


async def test_a_deny_reason_reaches_the_patient_and_only_text_is_accepted(
    live_server: LiveServer,
) -> None:
    room = await live_server.book()
    doctor = await connected(live_server, room["links"]["practitioner"], "doctor")
    patient = await connected(live_server, room["links"]["patient"], "patient")
    denied = record(patient, "denied")
    try:
        await doctor.open_consultation()
        await patient.check_in()
        [entry] = await doctor.wait_for_waiting(1)
        with pytest.raises(SignallingError) as refused:
            await doctor.call("deny", {"entry_id": entry["entry_id"], "reason": 42})
        assert refused.value.code == "invalid_request"
        with pytest.raises(SignallingError) as refused:
            await doctor.call("deny", {"entry_id": entry["entry_id"], "reason": "x" * 301})
        assert refused.value.code == "invalid_request"
        assert len(doctor.waiting_list) == 1

        await doctor.call(
            "deny", {"entry_id": entry["entry_id"], "reason": "Please call the practice"}
        )

        await eventually(lambda: denied == [{"reason": "Please call the practice"}])
    finally:
        await patient.close()
        await doctor.close()
