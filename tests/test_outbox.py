"""A room change and its consultation events: both stored or neither, whatever Redis does.

Between a signalling node and a real Redis sits a proxy that fails at a chosen
byte of the change's transaction: after the room's writes are queued but
before the events' script, before EXEC, or after EXEC with the reply lost.
Another node, straight on Redis, looks at what was kept. The caller gets
StoreUnavailable (`store_unavailable` over Socket.IO); asked again once Redis
is back, the change and its events are there exactly once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp.test_utils import TestServer

from rooms.admission import admit, check_in, join_as_practitioner
from rooms.appointment import Appointment, JoinWindowPolicy, Person
from rooms.consultation_events import ConsultationEvent, consultation_events
from rooms.errors import DomainError, ErrorCode
from rooms.lifecycle import create_room
from rooms.roles import Actor, Role
from rooms.room import Room, Transition
from signalling.app import make_app
from store.errors import StoreUnavailable
from store.event_log import LoggedEvent
from store.redis_room_store import RedisRoomStore
from tests.conftest import LiveServer
from tests.support import make_settings
from tests.support.polling import eventually
from tests.support.redis_proxy import FailingRedisProxy
from tests.support.redis_server import RedisServer
from tests.support.synthetic import SignallingError, SyntheticParticipant

START = datetime(2030, 3, 4, 10, 0, tzinfo=UTC)
INSIDE = START + timedelta(minutes=5)
ALICE = Actor("pat-1", Role.PATIENT)
DOCTOR = Actor("prac-1", Role.PRACTITIONER)
ADMISSION = ["consultation.patient_admitted", "consultation.started"]

# RESP as redis-py sends it: the events' script inside the MULTI, and the EXEC.
EVAL = b"$4\r\nEVAL\r\n"
EXEC = b"*1\r\n$4\r\nEXEC\r\n"


@pytest.fixture
async def proxy(redis_server: RedisServer, redis_url: str) -> AsyncIterator[FailingRedisProxy]:
    proxy = FailingRedisProxy(redis_server.port)
    await proxy.start()
    yield proxy
    await proxy.close()


@pytest.fixture
async def observer(redis_url: str) -> AsyncIterator[RedisRoomStore]:
    """Another node, straight on Redis: what everyone else sees."""
    store = RedisRoomStore.from_url(redis_url)
    yield store
    await store.close()


def outbox(transition: Transition) -> list[ConsultationEvent]:
    return consultation_events(transition, INSIDE)


def types(events: Sequence[LoggedEvent]) -> list[str]:
    return [event.type for event in events]


async def waiting_room(store: RedisRoomStore) -> Room:
    appointment = Appointment(
        "apt-1",
        Person("prac-1", "Dr Bernard"),
        Person("pat-1", "Alice Martin"),
        START,
        START + timedelta(minutes=30),
    )
    room, _ = await store.create(create_room("room-1", appointment, JoinWindowPolicy()))
    await store.update(
        room.id, lambda r: join_as_practitioner(r, DOCTOR, "doc", INSIDE), outbox=outbox
    )
    transition = await store.update(
        room.id, lambda r: check_in(r, ALICE, "alice", INSIDE), outbox=outbox
    )
    return transition.room


async def kept(observer: RedisRoomStore, room_id: str, after: str) -> tuple[bool, list[str]]:
    """Whether the admission is stored, and the events logged since `after`."""
    room = await observer.get(room_id)
    assert room is not None
    admitted = any(p.entry_id == "alice" for p in room.in_call)
    return admitted, types(await observer.event_log.after(after, 100))


@pytest.mark.parametrize(
    ("marker", "delivered"),
    [
        pytest.param(EVAL, False, id="room-queued-events-not"),
        pytest.param(EXEC, False, id="all-queued-exec-never-sent"),
        pytest.param(EXEC, True, id="exec-run-reply-lost"),
    ],
)
async def test_a_redis_failure_inside_a_change_keeps_the_change_and_its_events_or_neither(
    proxy: FailingRedisProxy, observer: RedisRoomStore, marker: bytes, delivered: bool
) -> None:
    node = RedisRoomStore.from_url(proxy.url, timeout=1.0)
    try:
        room = await waiting_room(node)
        [*_, last] = await observer.event_log.after(None, 100)

        if delivered:
            proxy.fail_after(marker)
        else:
            proxy.fail_before(marker)
        with pytest.raises(StoreUnavailable):
            await node.update(room.id, lambda r: admit(r, DOCTOR, "alice", INSIDE), outbox=outbox)
        assert proxy.failed.is_set()

        if delivered:
            # Redis ran the EXEC it got; only its answer was lost. Both stand.
            async def both() -> bool:
                return await kept(observer, room.id, last.id) == (True, ADMISSION)

            await eventually(both, what="the admission and its events, both stored")
        else:
            assert await kept(observer, room.id, last.id) == (False, [])

        proxy.restore()
        # The caller asks again: applied now, or already there (and not applied twice).
        if delivered:
            with pytest.raises(DomainError) as refused:
                await node.update(
                    room.id, lambda r: admit(r, DOCTOR, "alice", INSIDE), outbox=outbox
                )
            assert refused.value.code is ErrorCode.NOT_WAITING
        else:
            await node.update(room.id, lambda r: admit(r, DOCTOR, "alice", INSIDE), outbox=outbox)
        assert await kept(observer, room.id, last.id) == (True, ADMISSION)
    finally:
        await node.close()


async def test_an_admission_cut_short_by_redis_is_store_unavailable_and_lands_once_retried(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    proxy: FailingRedisProxy,
    observer: RedisRoomStore,
    redis_url: str,
) -> None:
    # The node's store goes through the proxy; its Socket.IO manager straight to Redis.
    store = RedisRoomStore.from_url(proxy.url, timeout=1.0)
    server = LiveServer(
        await aiohttp_server(make_app(make_settings(redis_url=redis_url), store=store))
    )
    booked = await server.book()
    doctor = SyntheticParticipant(server.base_url, booked["links"]["practitioner"], "doctor")
    patient = SyntheticParticipant(server.base_url, booked["links"]["patient"], "patient")
    try:
        await doctor.connect()
        await doctor.open_consultation()
        await patient.connect()
        await patient.check_in()
        [entry] = await doctor.wait_for_waiting(1)
        [*_, checked_in] = await observer.event_log.after(None, 100)
        assert checked_in.type == "consultation.patient_checked_in"

        proxy.fail_before(EVAL)
        with pytest.raises(SignallingError) as caught:
            await doctor.admit(entry["entry_id"])
        assert caught.value.code == "store_unavailable"
        proxy.restore()

        room = await observer.get(booked["room_id"])
        assert room is not None
        assert [p.role for p in room.in_call] == [Role.PRACTITIONER]
        assert await observer.event_log.after(checked_in.id, 100) == []

        await doctor.admit(entry["entry_id"])
        await asyncio.wait_for(patient.admitted.wait(), 10)
        assert types(await observer.event_log.after(checked_in.id, 100)) == ADMISSION
    finally:
        await patient.close()
        await doctor.close()
        await store.close()
