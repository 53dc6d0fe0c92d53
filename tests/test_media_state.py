"""`media_state`: a participant's connection quality and video, forwarded to the others in
the call with how the sender receives each of them; refused when malformed, out of the call,
or too frequent (docs/protocol.md, "Media state")."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from signalling.socket_limits import MEDIA_STATE
from tests.conftest import LiveServer
from tests.support.polling import stays_true
from tests.test_e2ee_signalling import Person, person, refused


@dataclass
class Call:
    doctor: Person
    patient: Person
    waiting: Person


@pytest.fixture
async def call(live_server: LiveServer) -> AsyncIterator[Call]:
    room = await live_server.book()
    doctor = await person(live_server, room["links"]["practitioner"], "doctor")
    patient = await person(live_server, room["links"]["patient"], "patient")
    await doctor.client.open_consultation()
    # Someone else in the queue: a second connection on the patient's link would be the
    # patient taking their own entry over (one person, one entry).
    invited = await doctor.client.call("invite_guest", {"name": "Ines Interprète"})
    waiting = await person(live_server, invited["link"], "waiting")
    try:
        await patient.client.check_in()
        patient.entry_id = (await doctor.client.wait_for_waiting(1))[0]["entry_id"]
        await doctor.client.admit(patient.entry_id)
        await asyncio.wait_for(patient.client.admitted.wait(), 5)
        await waiting.client.check_in()
        await doctor.client.wait_for_waiting(1)
        yield Call(doctor, patient, waiting)
    finally:
        for someone in (waiting, patient, doctor):
            await someone.client.close()


def states(someone: Person) -> list[Any]:
    return [data for name, data in someone.received if name == "media_state"]


async def test_the_others_in_the_call_learn_quality_video_and_how_they_are_received(
    call: Call,
) -> None:
    await call.patient.client.call("media_state", {"quality": "poor", "video": False})
    got = await call.doctor.next("media_state")
    assert got == {
        "from": call.patient.entry_id,
        "quality": "poor",
        "video": False,
        "receiving_you": "unknown",
    }
    # The doctor says how it receives the patient: only the patient hears of it.
    await call.doctor.client.call(
        "media_state",
        {"quality": "good", "video": True, "receiving": {call.patient.entry_id: "poor"}},
    )
    got = await call.patient.next("media_state")
    assert got["quality"] == "good"
    assert got["video"] is True
    assert got["receiving_you"] == "poor"
    assert "receiving" not in got

    def nothing_to_others() -> None:
        assert states(call.waiting) == []
        assert states(call.doctor) == []
        assert states(call.patient) == []

    await stays_true(nothing_to_others, for_seconds=0.3)


@pytest.mark.parametrize(
    "data",
    [
        None,
        "poor",
        {},
        {"quality": "bad", "video": True},
        {"quality": "good"},
        {"quality": "good", "video": "yes"},
        {"quality": "good", "video": True, "extra": 1},
        {"quality": "good", "video": True, "receiving": {"../x": "good"}},
        {"quality": "good", "video": True, "receiving": {"abc": "great"}},
        {"quality": "good", "video": True, "receiving": {f"p{i}": "good" for i in range(17)}},
        {"quality": "good", "video": True, "receiving": ["abc"]},
    ],
)
async def test_malformed_reports_are_refused_and_not_forwarded(call: Call, data: Any) -> None:
    assert await refused(call.patient, "media_state", data) == "invalid_request"
    await stays_true(lambda: states(call.doctor) == [], for_seconds=0.1)


async def test_only_participants_in_the_call_report(call: Call) -> None:
    assert (
        await refused(call.waiting, "media_state", {"quality": "good", "video": True})
        == "not_in_call"
    )
    await stays_true(lambda: states(call.doctor) == [], for_seconds=0.1)


async def test_reports_are_rate_limited(call: Call) -> None:
    report = {"quality": "fair", "video": True}
    # The burst of signalling/socket_limits.py's MEDIA_STATE, then refused.
    for _ in range(MEDIA_STATE.budget.burst):
        await call.patient.client.call("media_state", report)
    assert await refused(call.patient, "media_state", report) == "rate_limited"
