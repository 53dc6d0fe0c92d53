"""Consultation events reach the booking system: signed, in order, at least once.

A real aiohttp receiver on a real port plays the booking system; the
consultation is driven over Socket.IO by synthetic participants, as browsers
would.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer

from rooms.admission import admit, check_in, join_as_practitioner
from rooms.appointment import Appointment, JoinWindowPolicy, Person
from rooms.consultation_events import consultation_events
from rooms.lifecycle import create_room, end
from rooms.presence import leave
from rooms.roles import Actor, Role
from signalling import webhook_signature
from signalling.app import HUB, make_app
from signalling.event_delivery import RetryPolicy
from store.event_log import InMemoryEventLog
from tests.conftest import LiveServer
from tests.support import WEBHOOK_SECRET, make_settings
from tests.support.polling import eventually
from tests.support.synthetic import SyntheticParticipant

EVENTS_SECRET = "whsec_" + base64.b64encode(b"e" * 32).decode()
API_KEY = "k" * 32


@dataclass
class Receiver:
    """The booking system's endpoint: verifies each delivery, can be made to fail."""

    failures_left: int = 0
    accepted: list[dict[str, Any]] = field(default_factory=list)
    attempts: list[str] = field(default_factory=list)
    bad_signatures: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        key = base64.b64decode(EVENTS_SECRET.removeprefix("whsec_"))
        try:
            webhook_signature.verify(
                key,
                webhook_id=request.headers.get("webhook-id"),
                timestamp=request.headers.get("webhook-timestamp"),
                signature=request.headers.get("webhook-signature"),
                body=body,
                now=datetime.now(UTC),
                tolerance=timedelta(minutes=5),
            )
        except webhook_signature.SignatureError:
            self.bad_signatures += 1
            return web.Response(status=400)
        self.attempts.append(request.headers["webhook-id"])
        if self.failures_left > 0:
            self.failures_left -= 1
            return web.Response(status=503)
        self.accepted.append({"id": request.headers["webhook-id"], **json.loads(body)})
        self.arrived.set()
        return web.Response(status=204)

    def types_for(self, room_id: str) -> list[str]:
        return [e["type"] for e in self.accepted if e["data"]["room_id"] == room_id]


@pytest.fixture
async def receiver(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> tuple[Receiver, str]:
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/events", receiver.handle)
    server = await aiohttp_server(app, host="127.0.0.1")
    return receiver, str(server.make_url("/events"))


async def start_server(
    aiohttp_server: Callable[..., Awaitable[TestServer]], events_url: str
) -> LiveServer:
    settings = make_settings(
        events_url=events_url,
        events_secret=EVENTS_SECRET,
        events_first_retry=timedelta(milliseconds=50),
        api_key=API_KEY,
    )
    return LiveServer(await aiohttp_server(make_app(settings), host="127.0.0.1"))


async def full_consultation(server: LiveServer, room: dict[str, Any]) -> None:
    doctor = SyntheticParticipant(server.base_url, room["links"]["practitioner"], "doctor")
    patient = SyntheticParticipant(server.base_url, room["links"]["patient"], "patient")
    try:
        await doctor.connect()
        await doctor.open_consultation()
        await patient.connect()
        await patient.check_in()
        [entry] = await doctor.wait_for_waiting(1)
        await doctor.admit(entry["entry_id"])
        await asyncio.wait_for(patient.admitted.wait(), 10)
        await patient.call("leave")
        await doctor.call("end_consultation")
    finally:
        await patient.close()
        await doctor.close()


EXPECTED = [
    "consultation.patient_checked_in",
    "consultation.patient_admitted",
    "consultation.started",
    "consultation.participant_left",
    "consultation.ended",
]


async def test_a_full_consultation_is_reported_signed_and_in_order(
    aiohttp_server: Callable[..., Awaitable[TestServer]], receiver: tuple[Receiver, str]
) -> None:
    sink, url = receiver
    server = await start_server(aiohttp_server, url)
    room = await server.book(patient_name="Zephyrine Quatremain")

    await full_consultation(server, room)
    await eventually(lambda: len(sink.types_for(room["room_id"])) == len(EXPECTED), timeout=15)

    assert sink.bad_signatures == 0
    assert sink.types_for(room["room_id"]) == EXPECTED
    ids = [event["id"] for event in sink.accepted]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids, key=lambda i: int(i.removeprefix("evt_")))
    for event in sink.accepted:
        assert event["data"]["appointment_id"] == room["appointment_id"]
        datetime.fromisoformat(event["timestamp"])
        assert "Quatremain" not in json.dumps(event)
    ended = sink.accepted[-1]["data"]
    assert ended["reason"] == "ended"
    assert ended["duration_seconds"] >= 0
    left = sink.accepted[3]["data"]
    assert left == {**left, "role": "patient", "was_waiting": False}


async def test_a_receiver_down_for_a_while_gets_every_event_once_in_order(
    aiohttp_server: Callable[..., Awaitable[TestServer]], receiver: tuple[Receiver, str]
) -> None:
    sink, url = receiver
    sink.failures_left = 6
    server = await start_server(aiohttp_server, url)
    first = await server.book()
    second = await server.book()

    await full_consultation(server, first)
    await full_consultation(server, second)
    await eventually(lambda: len(sink.accepted) == 2 * len(EXPECTED), timeout=15)

    assert sink.failures_left == 0
    assert len(sink.attempts) > len(sink.accepted)  # it really was retried
    assert sink.types_for(first["room_id"]) == EXPECTED
    assert sink.types_for(second["room_id"]) == EXPECTED
    accepted_ids = [event["id"] for event in sink.accepted]
    assert len(set(accepted_ids)) == len(accepted_ids)
    # The API agrees: every event delivered, with the attempts it took.
    async with (
        ClientSession() as session,
        session.get(
            server.base_url + "/api/v1/events",
            headers={"Authorization": f"Bearer {API_KEY}"},
        ) as response,
    ):
        page = await response.json()
    assert [e["id"] for e in page["events"]] == sorted(
        accepted_ids, key=lambda i: int(i.removeprefix("evt_"))
    )
    assert {e["delivery"]["status"] for e in page["events"]} == {"delivered"}
    assert sum(e["delivery"]["attempts"] for e in page["events"]) == len(sink.attempts)


async def test_a_refused_connection_is_retried_and_later_events_wait_their_turn(
    aiohttp_server: Callable[..., Awaitable[TestServer]], unused_tcp_port: int
) -> None:
    # Nothing listens on this port: every attempt is refused.
    server = await start_server(aiohttp_server, f"http://127.0.0.1:{unused_tcp_port}/events")
    room = await server.book()
    await full_consultation(server, room)
    log = server.app[HUB].event_log

    async def retried() -> bool:
        return (await log.after(None, 1))[0].attempts >= 3

    await eventually(retried, timeout=15, what="the head event was retried")

    events = await log.after(None, 100)
    assert [event.type for event in events] == EXPECTED
    assert events[0].status.value == "pending"
    assert events[0].last_error is not None
    assert events[0].last_error.startswith("connection_failed")
    assert all(event.attempts == 0 for event in events[1:])


# --- pure parts --------------------------------------------------------------------------------

NOW = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)
DOCTOR = Actor("doc", Role.PRACTITIONER)
PATIENT = Actor("pat", Role.PATIENT)


def a_room() -> Any:
    appointment = Appointment(
        "apt-1", Person("doc", "Dr A"), Person("pat", "Pat B"), NOW, NOW + timedelta(minutes=30)
    )
    return create_room("room-0001", appointment, JoinWindowPolicy()).room


def test_events_name_nobody_and_end_carries_the_duration() -> None:
    room = a_room()
    steps: list[Callable[[Any], Any]] = [
        lambda r: check_in(r, PATIENT, "e-pat", NOW),
        lambda r: join_as_practitioner(r, DOCTOR, "e-doc", NOW),
        lambda r: admit(r, DOCTOR, "e-pat", NOW + timedelta(minutes=1)),
        lambda r: leave(r, "e-pat", NOW + timedelta(minutes=20)),
        lambda r: end(r, DOCTOR, NOW + timedelta(minutes=21)),
    ]
    out = []
    for minute, step in enumerate(steps):
        transition = step(room)
        room = transition.room
        out += consultation_events(transition, NOW + timedelta(minutes=minute))
    assert [event.type.value for event in out] == EXPECTED
    ended = out[-1].data()
    assert ended["duration_seconds"] == 3 * 60  # started at minute 1, ended at minute 4
    assert "Pat B" not in json.dumps([event.data() for event in out])
    assert "e-pat" not in json.dumps([event.data() for event in out])


async def test_ids_grow_strictly_and_only_the_oldest_pending_event_of_a_room_is_due() -> None:
    log = InMemoryEventLog()
    room = a_room()
    transition = check_in(room, PATIENT, "e-pat", NOW)
    events = consultation_events(transition, NOW) * 3
    logged = await log.append(events)
    assert [e.sequence for e in logged] == sorted({e.sequence for e in logged})
    due = await log.due(NOW)
    assert [e.id for e in due] == [logged[0].id]
    await log.attempt_failed(logged[0].id, "http_500", NOW + timedelta(seconds=5), NOW)
    assert await log.due(NOW) == []  # the room waits for its head: order holds
    assert await log.due(NOW + timedelta(seconds=5)) != []
    await log.delivered(logged[0].id, NOW)
    assert [e.id for e in await log.due(NOW)] == [logged[1].id]
    await log.attempt_failed(logged[1].id, "http_500", None, NOW)  # given up
    assert [e.id for e in await log.due(NOW)] == [logged[2].id]


def test_backoff_grows_with_jitter_and_gives_up_after_a_day() -> None:
    policy = RetryPolicy(first_delay=timedelta(seconds=5), max_delay=timedelta(hours=1))

    class Old:
        occurred_at = NOW

    delays = []
    for attempts in range(1, 15):
        retry_at = policy.retry_at(Old(), attempts, NOW)  # type: ignore[arg-type]
        assert retry_at is not None
        delays.append((retry_at - NOW).total_seconds())
    assert 2.5 <= delays[0] <= 5
    assert 40 <= delays[4] <= 80
    assert all(delay <= 3600 for delay in delays)
    assert max(delays) >= 1800
    assert policy.retry_at(Old(), 3, NOW + timedelta(hours=24)) is None  # type: ignore[arg-type]


def test_webhook_secret_signs_events_when_no_events_secret_is_set() -> None:
    settings = make_settings(events_url="http://127.0.0.1:1/x")
    assert settings.events_key == base64.b64decode(WEBHOOK_SECRET.removeprefix("whsec_"))
