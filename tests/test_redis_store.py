"""What the Redis store does beyond the shared contract: several nodes, keys, expiry, outages.

Each "node" is its own RedisRoomStore with its own connection pool, on one
real redis-server, as two signalling processes would be.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as redis

from rooms.admission import admit, check_in, join_as_practitioner
from rooms.appointment import Appointment, JoinWindowPolicy, Person
from rooms.consultation_events import ConsultationEvent, ConsultationEventType
from rooms.errors import DomainError, ErrorCode
from rooms.events import EndReason
from rooms.lifecycle import create_room
from rooms.roles import Actor, Role
from rooms.room import Denial, Lifecycle, Participant, Room, Transition, changed
from rooms.waiting_queue import WaitingEntry, WaitingQueue
from store.errors import StoreUnavailable
from store.redis_room_store import RedisRoomStore
from store.redis_webhook_receipts import RedisWebhookReceipts
from store.room_codec import (
    FORMAT_VERSION,
    RoomFormatError,
    decode_room,
    encode_room,
    room_to_dict,
)
from store.room_store import Outbox
from store.webhook_receipts import WebhookReceipt
from tests.support.redis_server import RedisServer

START = datetime(2030, 3, 4, 10, 0, tzinfo=UTC)
INSIDE = START + timedelta(minutes=5)
ALICE = Actor("pat-1", Role.PATIENT)
DOCTOR = Actor("prac-1", Role.PRACTITIONER)
RETENTION = timedelta(hours=24)


def creation(room_id: str, appointment_id: str) -> Transition:
    appointment = Appointment(
        appointment_id,
        Person("prac-1", "Dr Bernard"),
        Person("pat-1", "Alice Martin"),
        START,
        START + timedelta(minutes=30),
    )
    return create_room(room_id, appointment, JoinWindowPolicy())


@pytest.fixture
async def nodes(redis_url: str) -> AsyncIterator[tuple[RedisRoomStore, RedisRoomStore]]:
    one = RedisRoomStore.from_url(redis_url, retention_after_close=RETENTION)
    two = RedisRoomStore.from_url(redis_url, retention_after_close=RETENTION)
    assert one.client is not two.client
    # Both pools hold an open connection, so neither node starts the race late.
    await one.ping()
    await two.ping()
    yield one, two
    await one.close()
    await two.close()


async def waiting_room(store: RedisRoomStore, room_id: str, appointment_id: str) -> Room:
    room, _ = await store.create(creation(room_id, appointment_id))
    await store.update(room.id, lambda r: join_as_practitioner(r, DOCTOR, "doc", INSIDE))
    transition = await store.update(room.id, lambda r: check_in(r, ALICE, "alice", INSIDE))
    return transition.room


async def admit_from(store: RedisRoomStore, room_id: str) -> ErrorCode | None:
    try:
        await store.update(room_id, lambda r: admit(r, DOCTOR, "alice", INSIDE))
    except DomainError as exc:
        return exc.code
    return None


# --- two nodes at once -----------------------------------------------------------------------


async def test_two_nodes_admitting_the_same_patient_admit_once(
    nodes: tuple[RedisRoomStore, RedisRoomStore],
) -> None:
    one, two = nodes
    for n in range(25):
        room = await waiting_room(one, f"room-{n}", f"apt-{n}")

        outcomes = await asyncio.gather(admit_from(one, room.id), admit_from(two, room.id))

        assert sorted(outcomes, key=str) == [None, ErrorCode.NOT_WAITING], outcomes
        final = await two.get(room.id)
        assert final is not None
        assert [p.entry_id for p in final.in_call] == ["doc", "alice"]
        assert len(final.waiting) == 0
        # check-in, join, admit: one admission, nothing lost or doubled.
        assert final.version == room.version + 1


async def test_two_nodes_creating_one_appointment_make_one_room(
    nodes: tuple[RedisRoomStore, RedisRoomStore],
) -> None:
    one, two = nodes
    for n in range(25):
        results = await asyncio.gather(
            one.create(creation(f"a-{n}", f"apt-{n}")),
            two.create(creation(f"b-{n}", f"apt-{n}")),
        )

        assert sorted(created for _, created in results) == [False, True]
        assert results[0][0] == results[1][0]
    assert len(await one.rooms()) == 25
    assert len(await two.rooms()) == 25


async def test_two_nodes_changing_one_room_log_its_events_in_the_order_of_the_changes(
    nodes: tuple[RedisRoomStore, RedisRoomStore],
) -> None:
    one, two = nodes
    room, _ = await one.create(creation("room-1", "apt-1"))

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
            node.update(room.id, lambda r: Transition(changed(r)), outbox=version_event)
            for _ in range(20)
            for node in (one, two)
        ),
        # Plain appends (marked with the version before any change) race the outbox for ids.
        *(one.event_log.append(version_event(Transition(room, ()))) for _ in range(10)),
    )

    events = await two.event_log.after(None, 1000)
    assert [e.sequence for e in events] == sorted({e.sequence for e in events})
    versions = [e.data["version"] for e in events if e.data["version"] != room.version]
    # Each stored change logged once, in the order the changes were stored.
    assert versions == list(range(room.version + 1, room.version + 41))


class UnguardedStore(RedisRoomStore):
    """Read, change, write, without WATCH: what the tests above must catch."""

    async def update(
        self,
        room_id: str,
        change: Callable[[Room], Transition],
        *,
        outbox: Outbox | None = None,
    ) -> Transition:
        room = await self.get(room_id)
        assert room is not None
        transition = change(room)
        await self.client.set(f"teleconsult:room:{room_id}", encode_room(transition.room))
        return transition


async def test_the_race_is_real_an_unguarded_store_admits_twice(redis_url: str) -> None:
    one = UnguardedStore.from_url(redis_url)
    two = UnguardedStore.from_url(redis_url)
    await one.ping()
    await two.ping()
    doubles = 0
    try:
        for n in range(25):
            room = await waiting_room(one, f"room-{n}", f"apt-{n}")
            outcomes = await asyncio.gather(admit_from(one, room.id), admit_from(two, room.id))
            doubles += all(outcome is None for outcome in outcomes)
    finally:
        await one.close()
        await two.close()
    # Both "win": the double admission the WATCH/MULTI store prevents under the same race.
    assert doubles > 0


# --- keys, format, expiry --------------------------------------------------------------------


async def test_keys_live_under_the_prefix_and_prefixes_do_not_mix(redis_url: str) -> None:
    blue = RedisRoomStore.from_url(redis_url, prefix="blue:")
    green = RedisRoomStore.from_url(redis_url, prefix="green:")
    try:
        await blue.create(creation("room-1", "apt-1"))
        blue_receipts = RedisWebhookReceipts(blue.client, prefix="blue:")
        await blue_receipts.remember(WebhookReceipt("msg_1", "apt-1", START))

        assert await green.get("room-1") is None
        assert await green.find_by_appointment("apt-1") is None
        assert await green.rooms() == []
        green_receipts = RedisWebhookReceipts(green.client, prefix="green:")
        assert await green_receipts.recall("msg_1", START - timedelta(days=1)) is None
        _, created = await green.create(creation("room-2", "apt-1"))
        assert created is True
        keys = sorted(await blue.client.keys("*"))
    finally:
        await blue.close()
        await green.close()
    assert keys == [
        "blue:appointment:apt-1",
        "blue:room:room-1",
        "blue:rooms",
        "blue:webhook:msg_1",
        "green:appointment:apt-1",
        "green:room:room-2",
        "green:rooms",
    ]


async def test_rooms_are_stored_as_versioned_json(
    nodes: tuple[RedisRoomStore, RedisRoomStore],
) -> None:
    one, _ = nodes
    room = await waiting_room(one, "room-1", "apt-1")

    raw = await one.client.get("teleconsult:room:room-1")
    assert isinstance(raw, str)

    document = json.loads(raw)
    assert document["format"] == FORMAT_VERSION
    assert document["id"] == "room-1"
    assert document["waiting"][0]["entry_id"] == "alice"
    assert document["appointment"]["starts_at"] == "2030-03-04T10:00:00+00:00"
    assert decode_room(raw) == room


async def test_room_and_index_keys_expire_after_the_window_plus_retention(
    nodes: tuple[RedisRoomStore, RedisRoomStore],
) -> None:
    one, _ = nodes
    room, _ = await one.create(creation("room-1", "apt-1"))
    expected_ms = int((room.window.closes_at + RETENTION).timestamp() * 1000)

    assert await one.client.pexpiretime("teleconsult:room:room-1") == expected_ms
    assert await one.client.pexpiretime("teleconsult:appointment:apt-1") == expected_ms
    # An update (here a check-in) keeps the deadline instead of dropping the expiry.
    await one.update(room.id, lambda r: check_in(r, ALICE, "alice", INSIDE))
    assert await one.client.pexpiretime("teleconsult:room:room-1") == expected_ms


async def test_webhook_receipts_expire_in_redis_and_the_first_one_stands(
    nodes: tuple[RedisRoomStore, RedisRoomStore],
) -> None:
    one, two = (RedisWebhookReceipts(node.client) for node in nodes)
    first = WebhookReceipt("msg_1", "apt-1", START + timedelta(days=1))
    await one.remember(first)
    await two.remember(WebhookReceipt("msg_1", "apt-other", START + timedelta(days=2)))

    assert await two.recall("msg_1", START) == first
    expiry_ms = await nodes[0].client.pexpiretime("teleconsult:webhook:msg_1")
    assert expiry_ms == int(first.expires_at.timestamp() * 1000)


async def test_a_lapsed_room_key_leaves_no_trace(
    nodes: tuple[RedisRoomStore, RedisRoomStore],
) -> None:
    one, _ = nodes
    await one.create(creation("room-1", "apt-1"))
    # What Redis does on its own once the expiry passes.
    await one.client.delete("teleconsult:room:room-1", "teleconsult:appointment:apt-1")

    assert await one.rooms() == []
    assert await one.client.zcard("teleconsult:rooms") == 0
    assert await one.purge(START + timedelta(days=30)) == 0


def test_the_codec_knows_every_field_of_a_room() -> None:
    # A new Room field must be added to signalling/room_codec.py, or stored rooms lose it.
    room = creation("room-1", "apt-1").room
    written = set(room_to_dict(room)) - {"format"}
    assert written == {field.name for field in fields(Room)}


def test_the_codec_round_trips_a_room_with_every_field_set() -> None:
    room = creation("room-1", "apt-1").room
    full = replace(
        room,
        lifecycle=Lifecycle.ENDED,
        waiting=WaitingQueue((WaitingEntry("e2", "pat-1", "Alice Martin", INSIDE),)),
        in_call=(Participant("doc", "prac-1", "Dr Bernard", Role.PRACTITIONER, INSIDE),),
        denied=frozenset({"e3", "e4"}),
        denials=(
            Denial(
                "pat-1",
                Role.PATIENT,
                "e3",
                "Rappelez le cabinet",
                INSIDE,
                WaitingEntry("e3", "pat-1", "Alice Martin", INSIDE, resume_hash="a" * 64),
                2,
            ),
        ),
        started_at=INSIDE,
        ended_at=INSIDE + timedelta(minutes=20),
        end_reason=EndReason.ENDED,
        first_check_in_at=INSIDE,
        no_show_at=INSIDE + timedelta(minutes=1),
        guests=(Person("guest-1", "Interprète Zoé"),),
        version=42,
    )
    # Every field but the identity ones differs from a fresh room, so each is really stored.
    unset = [f.name for f in fields(Room) if getattr(full, f.name) == getattr(room, f.name)]
    assert unset == ["id", "appointment", "window"]

    assert decode_room(encode_room(full)) == full


def test_the_codec_refuses_what_it_cannot_read() -> None:
    room = creation("room-1", "apt-1").room
    document = room_to_dict(room)
    with pytest.raises(RoomFormatError, match="format"):
        decode_room(json.dumps({**document, "format": FORMAT_VERSION + 1}))
    with pytest.raises(RoomFormatError, match="incomplete"):
        decode_room(json.dumps({k: v for k, v in document.items() if k != "window"}))
    with pytest.raises(RoomFormatError, match="not JSON"):
        decode_room(b"\x80\x04\x95")  # what a pickle looks like
    assert decode_room(encode_room(room)) == room


# --- outages ---------------------------------------------------------------------------------


async def test_an_unreachable_redis_is_a_store_unavailable_error(
    redis_server: RedisServer, redis_url: str
) -> None:
    store = RedisRoomStore.from_url(redis_url, timeout=1.0)
    receipts = RedisWebhookReceipts(store.client)
    try:
        await store.create(creation("room-1", "apt-1"))
        redis_server.stop()
        calls: list[Callable[[], object]] = [
            lambda: store.get("room-1"),
            lambda: store.find_by_appointment("apt-1"),
            lambda: store.update("room-1", lambda r: check_in(r, ALICE, "alice", INSIDE)),
            lambda: store.create(creation("room-2", "apt-2")),
            lambda: store.rooms(),
            lambda: store.purge(START),
            lambda: receipts.recall("msg", START),
            lambda: receipts.remember(WebhookReceipt("msg", "apt-1", START)),
            lambda: store.ping(),
        ]
        for call in calls:
            with pytest.raises(StoreUnavailable):
                await call()  # type: ignore[misc]

        redis_server.start()
        await store.ping()
        # Without persistence a restarted Redis is empty; the store works again at once.
        _, created = await store.create(creation("room-3", "apt-3"))
        assert created is True
    finally:
        await store.close()


async def test_values_come_back_as_text(redis_url: str) -> None:
    store = RedisRoomStore.from_url(redis_url)
    try:
        assert isinstance(store.client, redis.Redis)
        await store.create(creation("room-1", "apt-1"))
        assert await store.client.get("teleconsult:appointment:apt-1") == "room-1"
    finally:
        await store.close()
