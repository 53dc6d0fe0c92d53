"""The RoomStore contract, run against every implementation.

To run it against another store, add to `STORES` a function of the pytest
request returning an async context manager that yields a fresh, empty store,
and to `FAULTY` one that yields it with a way to make it fail between writing
a room and logging that change's events (the outbox must store neither).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest

from rooms.admission import admit, check_in, deny, invite_guest, join_as_practitioner
from rooms.appointment import Appointment, JoinWindowPolicy, Person
from rooms.consultation_events import (
    ConsultationEvent,
    ConsultationEventType,
    consultation_events,
)
from rooms.errors import DomainError, ErrorCode
from rooms.events import PatientCheckedIn
from rooms.lifecycle import create_room, end
from rooms.presence import resume, step_away
from rooms.resume_secret import hash_resume_secret
from rooms.roles import Actor, Role
from rooms.room import Room, Transition, changed
from rooms.waiting_queue import WaitingEntry
from store.errors import StoreUnavailable
from store.event_log import LoggedEvent
from store.redis_room_store import RedisRoomStore
from store.room_store import InMemoryRoomStore, RoomStore
from tests.support.redis_proxy import FailingRedisProxy
from tests.support.redis_server import RedisServer

START = datetime(2030, 3, 4, 10, 0, tzinfo=UTC)
INSIDE = START + timedelta(minutes=5)
POLICY = JoinWindowPolicy()
ALICE = Actor("pat-1", Role.PATIENT)
DOCTOR = Actor("prac-1", Role.PRACTITIONER)


@asynccontextmanager
async def memory_store(request: pytest.FixtureRequest) -> AsyncIterator[RoomStore]:
    yield InMemoryRoomStore()


@asynccontextmanager
async def redis_store(request: pytest.FixtureRequest) -> AsyncIterator[RoomStore]:
    # Asked for lazily so the memory runs never start redis-server.
    url: str = request.getfixturevalue("redis_url")
    store = RedisRoomStore.from_url(url, prefix="contract:")
    try:
        yield store
    finally:
        await store.close()


STORES: list[object] = [
    pytest.param(memory_store, id="memory"),
    pytest.param(redis_store, id="redis"),
]


@pytest.fixture(params=STORES)
async def store(request: pytest.FixtureRequest) -> AsyncIterator[RoomStore]:
    factory: Callable[[pytest.FixtureRequest], AbstractAsyncContextManager[RoomStore]] = (
        request.param
    )
    async with factory(request) as fresh:
        yield fresh


def creation(
    room_id: str,
    appointment_id: str = "apt-1",
    starts_at: datetime = START,
    duration: timedelta = timedelta(minutes=30),
) -> Transition:
    appointment = Appointment(
        appointment_id,
        Person("prac-1", "Dr Bernard"),
        Person("pat-1", "Alice Martin"),
        starts_at,
        starts_at + duration,
    )
    return create_room(room_id, appointment, POLICY)


def arrives(entry_id: str, resume_hash: str | None = None) -> Callable[[Room], Transition]:
    """Someone else queues (a person of their own: one entry per person); any queue is stored."""

    def change(current: Room) -> Transition:
        entry = WaitingEntry(entry_id, f"person-{entry_id}", "Someone", INSIDE, Role.PATIENT)
        entry = replace(entry, resume_hash=resume_hash)
        return Transition(
            changed(current, waiting=current.waiting.check_in(entry)),
            (PatientCheckedIn(current.id, entry_id),),
        )

    return change


async def stored(store: RoomStore, room_id: str = "room-1", appointment_id: str = "apt-1") -> Room:
    room, created = await store.create(creation(room_id, appointment_id))
    assert created
    return room


# --- create / get / find ---------------------------------------------------------------------


async def test_create_stores_a_new_room(store: RoomStore) -> None:
    transition = creation("room-1")

    room, created = await store.create(transition)

    assert created is True
    assert room == transition.room
    assert await store.get("room-1") == transition.room
    assert await store.rooms() == [transition.room]


async def test_create_for_a_known_appointment_returns_the_existing_room(store: RoomStore) -> None:
    first = await stored(store, "room-1", "apt-1")

    room, created = await store.create(creation("room-2", "apt-1"))

    assert created is False
    assert room == first
    assert room.id == "room-1"
    assert await store.get("room-2") is None
    assert [r.id for r in await store.rooms()] == ["room-1"]


async def test_concurrent_creates_for_one_appointment_make_one_room(store: RoomStore) -> None:
    results = await asyncio.gather(
        *(store.create(creation(f"room-{n}", "apt-1")) for n in range(20))
    )

    winners = [room for room, created in results if created]
    assert len(winners) == 1
    assert {room.id for room, _ in results} == {winners[0].id}
    assert len(await store.rooms()) == 1


async def test_get_and_find_by_appointment(store: RoomStore) -> None:
    one = await stored(store, "room-1", "apt-1")
    two = await stored(store, "room-2", "apt-2")

    assert await store.get("room-1") == one
    assert await store.get("room-2") == two
    assert await store.find_by_appointment("apt-1") == one
    assert await store.find_by_appointment("apt-2") == two
    assert await store.get("room-3") is None
    assert await store.get("apt-1") is None
    assert await store.find_by_appointment("apt-3") is None
    assert await store.find_by_appointment("room-1") is None
    assert sorted(r.id for r in await store.rooms()) == ["room-1", "room-2"]


async def test_an_empty_store_has_no_rooms(store: RoomStore) -> None:
    assert await store.rooms() == []
    assert await store.purge(START + timedelta(days=365)) == 0


# --- update ----------------------------------------------------------------------------------


async def test_update_applies_the_transition_and_returns_it(store: RoomStore) -> None:
    room = await stored(store)

    transition = await store.update(room.id, lambda r: check_in(r, ALICE, "e1", INSIDE))

    assert transition.events == (PatientCheckedIn(room.id, "e1"),)
    assert transition.room.version == room.version + 1
    assert "e1" in transition.room.waiting
    assert await store.get(room.id) == transition.room
    assert await store.find_by_appointment("apt-1") == transition.room


async def test_update_hands_the_change_the_current_room(store: RoomStore) -> None:
    room = await stored(store)
    await store.update(room.id, lambda r: check_in(r, ALICE, "e1", INSIDE))
    seen: list[Room] = []

    def change(current: Room) -> Transition:
        seen.append(current)
        return arrives("e2")(current)

    transition = await store.update(room.id, change)

    assert [entry.entry_id for entry in seen[-1].waiting.entries] == ["e1"]
    assert [entry.entry_id for entry in transition.room.waiting.entries] == ["e1", "e2"]


async def test_update_of_a_missing_room_is_room_not_found(store: RoomStore) -> None:
    await stored(store)
    calls: list[Room] = []

    def change(room: Room) -> Transition:
        calls.append(room)
        return Transition(room)

    with pytest.raises(DomainError) as caught:
        await store.update("no-such-room", change)

    assert caught.value.code is ErrorCode.ROOM_NOT_FOUND
    assert calls == []
    assert await store.get("no-such-room") is None


async def test_a_refused_change_leaves_the_room_unchanged(store: RoomStore) -> None:
    room = await stored(store)
    await store.update(room.id, lambda r: check_in(r, ALICE, "e1", INSIDE))
    before = await store.get(room.id)

    with pytest.raises(DomainError) as caught:
        # The practitioner may not check in as a patient.
        await store.update(room.id, lambda r: check_in(r, DOCTOR, "e2", INSIDE))

    assert caught.value.code is ErrorCode.NOT_ALLOWED
    assert await store.get(room.id) == before


async def test_a_change_that_crashes_leaves_the_room_unchanged(store: RoomStore) -> None:
    room = await stored(store)

    def crash(current: Room) -> Transition:
        check_in(current, ALICE, "e1", INSIDE)  # computed, then thrown away
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await store.update(room.id, crash)

    after = await store.get(room.id)
    assert after == room
    assert after is not None
    assert after.version == room.version
    assert len(after.waiting) == 0


async def test_concurrent_updates_are_not_lost(store: RoomStore) -> None:
    room = await stored(store)
    entry_ids = [f"entry-{n:02d}" for n in range(50)]

    def checking_in(entry_id: str) -> Callable[[Room], Transition]:
        return arrives(entry_id)

    transitions = await asyncio.gather(
        *(store.update(room.id, checking_in(entry_id)) for entry_id in entry_ids)
    )

    final = await store.get(room.id)
    assert final is not None
    assert sorted(entry.entry_id for entry in final.waiting.entries) == entry_ids
    assert final.version == room.version + 50
    # Each update saw the previous one: fifty distinct versions, no two built on the same state.
    assert sorted(t.room.version for t in transitions) == list(
        range(room.version + 1, room.version + 51)
    )


# --- purge -----------------------------------------------------------------------------------


async def test_purge_forgets_rooms_whose_window_closed_before_the_cutoff(store: RoomStore) -> None:
    # Windows close 60 min after the end: 11:30, 12:30 and 13:30.
    early, _ = await store.create(creation("room-early", "apt-early", START))
    at_cutoff, _ = await store.create(creation("room-cut", "apt-cut", START + timedelta(hours=1)))
    late, _ = await store.create(creation("room-late", "apt-late", START + timedelta(hours=2)))
    cutoff = at_cutoff.window.closes_at

    purged = await store.purge(cutoff)

    assert purged == 1
    assert await store.get("room-early") is None
    assert await store.find_by_appointment("apt-early") is None
    assert await store.get("room-cut") == at_cutoff
    assert await store.find_by_appointment("apt-cut") == at_cutoff
    assert await store.get("room-late") == late
    assert await store.find_by_appointment("apt-late") == late
    assert sorted(room.id for room in await store.rooms()) == ["room-cut", "room-late"]
    # The appointment index went with the room: the appointment can be booked afresh.
    room, created = await store.create(creation("room-again", "apt-early", START))
    assert created is True
    assert room.id == "room-again"
    assert early.id != room.id


async def test_purge_before_anything_closed_keeps_everything(store: RoomStore) -> None:
    room = await stored(store)

    assert await store.purge(room.window.opens_at) == 0
    assert await store.get(room.id) == room


async def test_purge_counts_every_room_it_forgets(store: RoomStore) -> None:
    for n in range(3):
        await stored(store, f"room-{n}", f"apt-{n}")

    assert await store.purge(START + timedelta(days=1)) == 3
    assert await store.rooms() == []
    assert await store.purge(START + timedelta(days=2)) == 0


async def test_every_part_of_a_room_survives_storage(store: RoomStore) -> None:
    room = await stored(store)
    await store.update(room.id, lambda r: join_as_practitioner(r, DOCTOR, "doc", INSIDE))
    await store.update(room.id, lambda r: check_in(r, ALICE, "e1", INSIDE))
    await store.update(room.id, arrives("e2"))
    await store.update(room.id, arrives("e3"))
    await store.update(room.id, lambda r: admit(r, DOCTOR, "e1", INSIDE))
    await store.update(room.id, lambda r: deny(r, DOCTOR, "e2", INSIDE, "Wrong day"))
    await store.update(room.id, lambda r: invite_guest(r, Person("g-1", "Ines"), INSIDE))
    guest = Actor("g-1", Role.GUEST)
    latest = await store.update(room.id, lambda r: check_in(r, guest, "g1", INSIDE))
    busy = await store.get(room.id)
    assert busy == latest.room
    assert busy is not None
    assert [e.role for e in busy.waiting.entries] == [Role.PATIENT, Role.GUEST]
    assert [p.entry_id for p in busy.in_call] == ["doc", "e1"]
    assert [e.entry_id for e in busy.waiting.entries] == ["e3", "g1"]
    assert busy.denied == frozenset({"e2"})
    [denial] = busy.denials
    assert (denial.person_id, denial.entry_id, denial.reason) == ("person-e2", "e2", "Wrong day")
    assert (denial.entry.entry_id, denial.position) == ("e2", 0)
    assert busy.started_at == INSIDE

    last = await store.update(room.id, lambda r: end(r, DOCTOR, INSIDE + timedelta(minutes=9)))

    assert await store.get(room.id) == last.room
    assert last.room.end_reason is not None
    assert last.room.ended_at == INSIDE + timedelta(minutes=9)


async def test_away_entries_and_resume_hashes_survive_storage(store: RoomStore) -> None:
    secret = "r" * 43
    away_at = INSIDE + timedelta(seconds=7)
    room = await stored(store)
    await store.update(room.id, lambda r: join_as_practitioner(r, DOCTOR, "doc", INSIDE))
    await store.update(
        room.id, lambda r: check_in(r, ALICE, "e1", INSIDE, hash_resume_secret(secret))
    )
    await store.update(room.id, arrives("e2", hash_resume_secret("q" * 43)))
    await store.update(room.id, lambda r: admit(r, DOCTOR, "e2", INSIDE))
    await store.update(room.id, lambda r: step_away(r, "e1", 0, away_at))
    latest = await store.update(room.id, lambda r: step_away(r, "e2", 0, away_at))

    kept = await store.get(room.id)
    assert kept == latest.room
    assert kept is not None
    assert kept.waiting.entries[0].away_since == away_at
    participant = kept.participant("e2")
    assert participant is not None
    assert participant.away_since == away_at
    assert participant.resume_hash == hash_resume_secret("q" * 43)

    # Another node reads it back and lets the device take its place again.
    back = await store.update(
        room.id, lambda r: resume(r, ALICE, hash_resume_secret(secret), away_at)
    )
    assert await store.get(room.id) == back.room
    assert back.room.waiting.entries[0].connection == 1


# --- the outbox: a change and its events, together or not at all ------------------------------


def outbox(transition: Transition) -> list[ConsultationEvent]:
    return consultation_events(transition, INSIDE)


def types(events: Sequence[LoggedEvent]) -> list[str]:
    return [event.type for event in events]


async def logged(store: RoomStore) -> list[LoggedEvent]:
    return await store.event_log.after(None, 1000)


async def waiting_patient(store: RoomStore) -> Room:
    room = await stored(store)
    await store.update(
        room.id, lambda r: join_as_practitioner(r, DOCTOR, "doc", INSIDE), outbox=outbox
    )
    transition = await store.update(
        room.id, lambda r: check_in(r, ALICE, "e1", INSIDE), outbox=outbox
    )
    return transition.room


async def test_an_update_logs_its_outbox_events_with_the_room(store: RoomStore) -> None:
    room = await waiting_patient(store)

    transition = await store.update(
        room.id, lambda r: admit(r, DOCTOR, "e1", INSIDE), outbox=outbox
    )

    assert await store.get(room.id) == transition.room
    events = await logged(store)
    assert types(events) == [
        "consultation.patient_checked_in",
        "consultation.patient_admitted",
        "consultation.started",
    ]
    assert [e.data() for e in outbox(transition)] == [e.data for e in events[1:]]
    assert [e.sequence for e in events] == sorted({e.sequence for e in events})
    # Logged is pending delivery like any appended event: the room's oldest goes first.
    assert [e.id for e in await store.event_log.due(INSIDE)] == [events[0].id]


async def test_a_create_logs_its_outbox_events_only_when_it_creates(store: RoomStore) -> None:
    def one_event(transition: Transition) -> list[ConsultationEvent]:
        room = transition.room
        return [
            ConsultationEvent(ConsultationEventType.STARTED, room.id, room.appointment.id, INSIDE)
        ]

    await store.create(creation("room-1", "apt-1"), outbox=one_event)
    await store.create(creation("room-2", "apt-1"), outbox=one_event)  # exists: nothing new

    assert [e.room_id for e in await logged(store)] == ["room-1"]


async def test_a_refused_or_crashing_change_logs_nothing(store: RoomStore) -> None:
    room = await waiting_patient(store)
    before = await logged(store)

    with pytest.raises(DomainError):
        await store.update(room.id, lambda r: admit(r, DOCTOR, "nobody", INSIDE), outbox=outbox)

    def crash(transition: Transition) -> list[ConsultationEvent]:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await store.update(room.id, lambda r: admit(r, DOCTOR, "e1", INSIDE), outbox=crash)

    assert await logged(store) == before
    assert await store.get(room.id) == room


async def test_concurrent_changes_log_their_events_in_the_order_they_were_stored(
    store: RoomStore,
) -> None:
    room = await stored(store)

    def version_event(transition: Transition) -> list[ConsultationEvent]:
        current = transition.room
        return [
            ConsultationEvent(
                ConsultationEventType.PATIENT_CHECKED_IN,
                current.id,
                current.appointment.id,
                INSIDE,
                (("version", current.version),),
            )
        ]

    await asyncio.gather(
        *(
            store.update(room.id, lambda r: Transition(changed(r)), outbox=version_event)
            for _ in range(30)
        )
    )

    events = await logged(store)
    # Ids follow the order the changes were stored in: each change's event, once.
    assert [e.data["version"] for e in events] == list(range(room.version + 1, room.version + 31))
    assert [e.sequence for e in events] == sorted({e.sequence for e in events})


@dataclass
class Faulty:
    """A store, and a switch making its writes fail between the room and its events."""

    store: RoomStore
    fail_between: Callable[[], None]
    recover: Callable[[], None]


@asynccontextmanager
async def faulty_memory_store(request: pytest.FixtureRequest) -> AsyncIterator[Faulty]:
    store = InMemoryRoomStore()
    patch = pytest.MonkeyPatch()

    def broken(events: Sequence[ConsultationEvent]) -> list[LoggedEvent]:
        raise StoreUnavailable()

    try:
        yield Faulty(
            store,
            # The room is already written when the log fails: the store must take it back.
            lambda: patch.setattr(store.event_log, "record", broken),
            patch.undo,
        )
    finally:
        patch.undo()


@asynccontextmanager
async def faulty_redis_store(request: pytest.FixtureRequest) -> AsyncIterator[Faulty]:
    request.getfixturevalue("redis_url")
    server: RedisServer = request.getfixturevalue("redis_server")
    proxy = FailingRedisProxy(server.port)
    await proxy.start()
    store = RedisRoomStore.from_url(proxy.url, prefix="contract:", timeout=1.0)

    def recover() -> None:
        assert proxy.failed.is_set(), "the write never reached the point of failure"
        proxy.restore()

    try:
        # Redis has queued the room's writes, not yet the events' script, when it goes away.
        yield Faulty(store, lambda: proxy.fail_before(b"$4\r\nEVAL\r\n"), recover)
    finally:
        await store.close()
        await proxy.close()


FAULTY: list[object] = [
    pytest.param(faulty_memory_store, id="memory"),
    pytest.param(faulty_redis_store, id="redis"),
]


@pytest.fixture(params=FAULTY)
async def faulty(request: pytest.FixtureRequest) -> AsyncIterator[Faulty]:
    factory: Callable[[pytest.FixtureRequest], AbstractAsyncContextManager[Faulty]] = request.param
    async with factory(request) as fresh:
        yield fresh


async def test_a_failure_between_the_room_and_its_events_stores_neither(faulty: Faulty) -> None:
    store = faulty.store
    room = await waiting_patient(store)
    before = await logged(store)

    faulty.fail_between()
    with pytest.raises(StoreUnavailable):
        await store.update(room.id, lambda r: admit(r, DOCTOR, "e1", INSIDE), outbox=outbox)
    faulty.recover()

    assert await store.get(room.id) == room
    assert await logged(store) == before
    # Asked again once the store is back: the change and its events, each once.
    retried = await store.update(room.id, lambda r: admit(r, DOCTOR, "e1", INSIDE), outbox=outbox)
    assert await store.get(room.id) == retried.room
    events = await logged(store)
    assert events[: len(before)] == before
    assert types(events[len(before) :]) == [
        "consultation.patient_admitted",
        "consultation.started",
    ]
