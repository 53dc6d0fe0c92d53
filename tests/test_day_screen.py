"""The practitioner's day from their own link, over real sockets (docs/protocol.md).

`links.desk` in the booking answers, the desk token in a practitioner's
`session`, moving into another room of the same practitioner (`room_token`),
a waiting patient's answer (`reply`) reaching the practitioner and nobody
else, and the in-call chat forwarded as opaque ciphertext (`chat`).
"""

from __future__ import annotations

import base64
import logging
import os
from datetime import timedelta
from typing import Any

import pytest
import socketio
from aiohttp import ClientSession

from signalling.config import Settings
from tests.conftest import LiveServer
from tests.support import appointment_data, make_settings
from tests.support.polling import eventually, stays_true
from tests.support.synthetic import SignallingError, SyntheticParticipant
from tests.test_desk import API_KEY, Desk, book_for

PRACTITIONER = "prac-day-screen"
REPLY = "I'm in the car park, two minutes"


@pytest.fixture
def settings() -> Settings:
    return make_settings(api_key=API_KEY)


class DeskListener(Desk):
    """A `/desk` connection that also records the patients' answers."""

    def __init__(self, server: LiveServer, token: str) -> None:
        super().__init__(server, "x#" + token)
        self.replies: list[dict[str, Any]] = []
        self.sio.on("patient_reply", self._on_reply, namespace="/desk")

    async def _on_reply(self, data: dict[str, Any]) -> None:
        self.replies.append(data)


def recorder(participant: SyntheticParticipant, *events: str) -> list[tuple[str, Any]]:
    """Everything of these events that reaches this participant."""
    seen: list[tuple[str, Any]] = []
    for event in events:

        async def record(data: Any, event: str = event) -> None:
            seen.append((event, data))

        participant.sio.on(event, record)
    return seen


async def test_links_desk_in_the_webhook_answer_opens_the_desk(
    live_server: LiveServer, settings: Settings
) -> None:
    booked = await book_for(live_server, PRACTITIONER, patient_name="Alice Martin")
    desk_url = booked["links"]["desk"]
    assert desk_url.startswith(settings.public_url + "/d#")
    desk = Desk(live_server, desk_url)
    await desk.connect()
    try:
        document = await desk.until(lambda d: bool(d["rows"]))
        assert [row["room_id"] for row in document["rows"]] == [booked["room_id"]]
        assert document["rows"][0]["patient_name"] == "Alice Martin"
    finally:
        await desk.close()

    # The API's answer carries it too, for the same practitioner's day.
    data = appointment_data(starts_in=timedelta(minutes=20))
    data["practitioner"]["id"] = PRACTITIONER
    async with (
        ClientSession() as session,
        session.post(
            f"{live_server.base_url}/api/v1/appointments",
            json=data,
            headers={"Authorization": f"Bearer {API_KEY}"},
        ) as response,
    ):
        assert response.status == 201
        created = await response.json()
    desk = Desk(live_server, created["links"]["desk"])
    await desk.connect()
    try:
        document = await desk.until(lambda d: len(d["rows"]) == 2)
        assert [row["room_id"] for row in document["rows"]] == [
            booked["room_id"],
            created["room_id"],
        ]
    finally:
        await desk.close()


async def test_the_practitioners_session_opens_their_desk_and_a_patients_none(
    live_server: LiveServer,
) -> None:
    booked = await book_for(live_server, PRACTITIONER)
    doctor = SyntheticParticipant(live_server.base_url, booked["links"]["practitioner"])
    patient = SyntheticParticipant(live_server.base_url, booked["links"]["patient"])
    try:
        session = await doctor.connect()
        assert session["resume_grace_seconds"] == 120
        desk = DeskListener(live_server, session["desk_token"])
        await desk.connect()
        document = await desk.until(lambda d: bool(d["rows"]))
        assert document["rows"][0]["room_id"] == booked["room_id"]
        await desk.close()
        patient_session = await patient.connect()
        assert "desk_token" not in patient_session
        # A desk token is not a room token, either way.
        intruder = SyntheticParticipant(
            live_server.base_url,
            f"{live_server.base_url}/c/{booked['room_id']}#{session['desk_token']}",
        )
        with pytest.raises(socketio.exceptions.ConnectionError):
            await intruder.connect(timeout=5)
        assert intruder.connect_error is not None
        assert intruder.connect_error["code"] == "token_invalid"
    finally:
        await doctor.close()
        await patient.close()


async def test_a_room_token_moves_the_practitioner_only_into_their_own_rooms(
    live_server: LiveServer,
) -> None:
    first = await book_for(live_server, PRACTITIONER)
    second = await book_for(live_server, PRACTITIONER, starts_in=timedelta(minutes=15))
    foreign = await book_for(live_server, "prac-other")
    doctor = SyntheticParticipant(live_server.base_url, first["links"]["practitioner"])
    patient = SyntheticParticipant(live_server.base_url, second["links"]["patient"])
    moved: SyntheticParticipant | None = None
    try:
        await doctor.connect()
        ack = await doctor.call("room_token", {"room_id": second["room_id"]})
        assert ack["room_id"] == second["room_id"]
        moved = SyntheticParticipant(
            live_server.base_url,
            f"{live_server.base_url}/c/{second['room_id']}#{ack['token']}",
        )
        session = await moved.connect()
        assert session["role"] == "practitioner"
        assert session["room"]["id"] == second["room_id"]
        await moved.open_consultation()

        # Another practitioner's room looks like no room; a bad id is refused alike.
        for room_id in (foreign["room_id"], "no-such-room-00", 42):
            with pytest.raises(SignallingError) as refused:
                await doctor.call("room_token", {"room_id": room_id})
            assert refused.value.code == "room_not_found"
        # Only a practitioner moves between rooms.
        await patient.connect()
        with pytest.raises(SignallingError) as refused:
            await patient.call("room_token", {"room_id": second["room_id"]})
        assert refused.value.code == "not_allowed"
    finally:
        for participant in (doctor, patient, moved):
            if participant is not None:
                await participant.close()


async def test_a_patients_answer_reaches_the_practitioner_and_nobody_else(
    live_server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    first = await book_for(live_server, PRACTITIONER, patient_name="Alice Martin")
    second = await book_for(live_server, PRACTITIONER, starts_in=timedelta(minutes=15))
    foreign = await book_for(live_server, "prac-other")
    doctor = SyntheticParticipant(live_server.base_url, first["links"]["practitioner"])
    other_doctor = SyntheticParticipant(live_server.base_url, foreign["links"]["practitioner"])
    alice = SyntheticParticipant(live_server.base_url, first["links"]["patient"], "alice")
    bruno = SyntheticParticipant(live_server.base_url, second["links"]["patient"], "bruno")
    stranger = SyntheticParticipant(live_server.base_url, foreign["links"]["patient"])
    desks: list[DeskListener] = []
    everyone = (doctor, other_doctor, alice, bruno, stranger)
    try:
        doctor_session = await doctor.connect()
        other_session = await other_doctor.connect()
        for token in (doctor_session["desk_token"], other_session["desk_token"]):
            desks.append(DeskListener(live_server, token))
            await desks[-1].connect()
        mine, theirs = desks
        for participant in (alice, bruno, stranger):
            await participant.connect()
            await participant.check_in()
        await doctor.open_consultation()
        heard = {p.label: recorder(p, "patient_reply", "practitioner_message") for p in everyone}

        with pytest.raises(SignallingError) as refused:
            await doctor.call("reply", {"text": "a practitioner does not reply"})
        assert refused.value.code == "not_allowed"
        for bad in ({}, {"text": ""}, {"text": "   "}, {"text": "x" * 201}, {"text": 7}, "hi"):
            with pytest.raises(SignallingError) as refused:
                await stranger.call("reply", bad)  # type: ignore[arg-type]
            assert refused.value.code == "invalid_request"

        await alice.call("reply", {"text": f"  {REPLY}  "})

        async def delivered() -> None:
            assert len(mine.replies) == 1

        await eventually(delivered, timeout=5)
        [reply] = mine.replies
        assert reply["room_id"] == first["room_id"]
        assert reply["name"] == "Alice Martin"
        assert reply["text"] == REPLY
        assert reply["entry_id"] == (await doctor.wait_for_waiting(1))[0]["entry_id"]

        async def nobody_else() -> bool:
            return not theirs.replies and all(not seen for seen in heard.values())

        await stays_true(nobody_else, for_seconds=0.5)
        assert REPLY not in caplog.text

        # Short and few: the seventh in a minute is refused, and only answers while waiting.
        for _ in range(5):
            await alice.call("reply", {"text": "ok"})
        with pytest.raises(SignallingError) as refused:
            await alice.call("reply", {"text": "one too many"})
        assert refused.value.code == "rate_limited"
        await doctor.admit(reply["entry_id"])
        await alice.admitted.wait()
        await bruno.call("reply", {"text": "still here"})
        await eventually(lambda: len(mine.replies) == 7, timeout=5)
    finally:
        for desk in desks:
            await desk.close()
        for participant in everyone:
            await participant.close()


async def test_a_reply_after_admission_is_refused(live_server: LiveServer) -> None:
    booked = await book_for(live_server, PRACTITIONER)
    doctor = SyntheticParticipant(live_server.base_url, booked["links"]["practitioner"])
    alice = SyntheticParticipant(live_server.base_url, booked["links"]["patient"])
    try:
        await doctor.connect()
        await alice.connect()
        with pytest.raises(SignallingError) as refused:
            await alice.call("reply", {"text": "before checking in"})
        assert refused.value.code == "not_waiting"
        await alice.check_in()
        await doctor.open_consultation()
        [entry] = await doctor.wait_for_waiting(1)
        await doctor.admit(entry["entry_id"])
        await alice.admitted.wait()
        with pytest.raises(SignallingError) as refused:
            await alice.call("reply", {"text": "in the call"})
        assert refused.value.code == "not_waiting"
    finally:
        await doctor.close()
        await alice.close()


def sealed(size: int = 40) -> dict[str, Any]:
    """A chat message as a page sends it: opaque bytes to the server."""
    return {
        "kid": 3,
        "iv": base64.b64encode(os.urandom(12)).decode(),
        "data": base64.b64encode(os.urandom(size)).decode(),
    }


async def test_the_chat_goes_to_the_others_in_the_call_as_it_came(
    live_server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    booked = await book_for(live_server, PRACTITIONER)
    doctor = SyntheticParticipant(live_server.base_url, booked["links"]["practitioner"], "doctor")
    alice = SyntheticParticipant(live_server.base_url, booked["links"]["patient"], "alice")
    try:
        await doctor.connect()
        guest_link = (await doctor.call("invite_guest", {"name": "Ines Interprete"}))["link"]
        guest = SyntheticParticipant(live_server.base_url, guest_link, "guest")
        await alice.connect()
        await guest.connect()
        await alice.check_in()
        await guest.check_in()
        await doctor.open_consultation()
        entries = await doctor.wait_for_waiting(2)
        await doctor.admit(entries[0]["entry_id"])
        await alice.admitted.wait()
        heard = {p.label: recorder(p, "chat") for p in (doctor, alice, guest)}

        message = sealed()
        ack = await doctor.call("chat", message)
        assert ack["recipients"] == 1

        async def arrived() -> None:
            assert len(heard["alice"]) == 1

        await eventually(arrived, timeout=5)
        [(_, forwarded)] = heard["alice"]
        assert forwarded == {"from": forwarded["from"], **message}
        assert forwarded["from"] != entries[0]["entry_id"]
        # The waiting guest hears nothing of the call, the sender not its own echo.
        await stays_true(lambda: not heard["guest"] and not heard["doctor"], for_seconds=0.3)
        with pytest.raises(SignallingError) as refused:
            await guest.call("chat", sealed())
        assert refused.value.code == "not_in_call"

        bad_messages: list[Any] = [
            {},
            "text",
            {**message, "kid": 0},
            {**message, "kid": True},
            {**message, "iv": "not base64!"},
            {**message, "iv": base64.b64encode(os.urandom(16)).decode()},
            {**message, "data": base64.b64encode(os.urandom(8)).decode()},
            sealed(5000),
            {**message, "text": "plain text is not a field"},
        ]
        for bad in bad_messages:
            with pytest.raises(SignallingError) as refused:
                await alice.call("chat", bad)
            assert refused.value.code == "invalid_request"
            assert message["data"] not in str(refused.value)
        assert message["data"] not in caplog.text
    finally:
        for participant in (doctor, alice, guest):
            await participant.close()


async def test_a_subscription_offer_names_the_publisher(live_server: LiveServer) -> None:
    booked = await book_for(live_server, PRACTITIONER, patient_name="Alice Martin")
    doctor = SyntheticParticipant(live_server.base_url, booked["links"]["practitioner"], "doctor")
    alice = SyntheticParticipant(live_server.base_url, booked["links"]["patient"], "alice")
    offered: list[dict[str, Any]] = []
    accept = alice.sio.handlers["/"]["subscription_offer"]

    async def record(data: dict[str, Any]) -> None:
        offered.append(data["publisher"])
        await accept(data)

    alice.sio.on("subscription_offer", record)
    try:
        await doctor.connect()
        await alice.connect()
        await alice.check_in()
        await doctor.open_consultation()
        [entry] = await doctor.wait_for_waiting(1)
        await doctor.admit(entry["entry_id"])
        await alice.admitted.wait()
        await doctor.publish()

        async def offered_once() -> None:
            assert len(offered) == 1

        await eventually(offered_once, timeout=10)
        assert offered[0]["role"] == "practitioner"
        assert offered[0]["name"] == "Dr Bernard"
    finally:
        await doctor.close()
        await alice.close()
