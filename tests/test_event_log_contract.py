"""The EventLog contract, run against every implementation.

Each implementation is a function of the pytest request returning an async
context manager that yields `open_node`: each call gives one node's handle on
one fresh, shared log (for the in-memory log, one process, so always the same
object; for Redis, a new client each time, like another signalling node).
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from rooms.consultation_events import ConsultationEvent, ConsultationEventType
from signalling.clock import utc_now
from signalling.event_delivery import EventDelivery, RetryPolicy
from store.event_log import (
    DeliveryStatus,
    EventLog,
    InMemoryEventLog,
    InvalidCursor,
    LoggedEvent,
)
from store.redis_event_log import RedisEventLog
from tests.support.polling import eventually

T0 = datetime(2030, 3, 4, 10, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)

OpenNode = Callable[[], EventLog]


@asynccontextmanager
async def memory_log(request: pytest.FixtureRequest) -> AsyncIterator[OpenNode]:
    log = InMemoryEventLog()
    yield lambda: log


@asynccontextmanager
async def redis_log(request: pytest.FixtureRequest) -> AsyncIterator[OpenNode]:
    # Asked for lazily so the memory runs never start redis-server.
    url: str = request.getfixturevalue("redis_url")
    opened: list[RedisEventLog] = []

    def open_node() -> EventLog:
        log = RedisEventLog.from_url(url, prefix="contract:")
        opened.append(log)
        return log

    try:
        yield open_node
    finally:
        for log in opened:
            await log.close()


LOGS: list[object] = [
    pytest.param(memory_log, id="memory"),
    pytest.param(redis_log, id="redis"),
]


@pytest.fixture(params=LOGS)
async def open_node(request: pytest.FixtureRequest) -> AsyncIterator[OpenNode]:
    factory: Callable[[pytest.FixtureRequest], AbstractAsyncContextManager[OpenNode]] = (
        request.param
    )
    async with factory(request) as opener:
        yield opener


@pytest.fixture
def log(open_node: OpenNode) -> EventLog:
    return open_node()


def event(
    room_id: str = "room-a",
    at: datetime = T0,
    kind: ConsultationEventType = ConsultationEventType.PATIENT_CHECKED_IN,
    **details: Any,
) -> ConsultationEvent:
    return ConsultationEvent(kind, room_id, f"apt-{room_id}", at, tuple(sorted(details.items())))


def ids(events: Sequence[LoggedEvent]) -> list[str]:
    return [e.id for e in events]


async def one(log: EventLog, event_id: str) -> LoggedEvent:
    [found] = [e for e in await log.after(None, 1000) if e.id == event_id]
    return found


# --- append / after ----------------------------------------------------------------------------


async def test_appended_events_read_back_unchanged_with_growing_ids(log: EventLog) -> None:
    logged = await log.append(
        [
            event("room-a"),
            event("room-b", kind=ConsultationEventType.ENDED, reason="ended", duration_seconds=61),
            event("room-a", kind=ConsultationEventType.PARTICIPANT_LEFT, was_waiting=True),
        ]
    )

    sequences = [e.sequence for e in logged]
    assert sequences == sorted(set(sequences))
    assert ids(logged) == [f"evt_{s}" for s in sequences]
    assert [e.status for e in logged] == [DeliveryStatus.PENDING] * 3
    assert [e.next_attempt_at for e in logged] == [T0] * 3
    assert logged[1].data == {
        "appointment_id": "apt-room-b",
        "room_id": "room-b",
        "occurred_at": T0.isoformat(),
        "duration_seconds": 61,
        "reason": "ended",
    }
    assert logged[2].data["was_waiting"] is True
    assert await log.after(None, 10) == logged
    assert json.loads(logged[1].body())["type"] == "consultation.ended"


async def test_ids_keep_growing_when_the_clock_goes_back(log: EventLog) -> None:
    [late] = await log.append([event(at=T0 + timedelta(hours=1))])
    [early] = await log.append([event(at=T0)])

    assert early.sequence > late.sequence
    assert ids(await log.after(None, 10)) == [late.id, early.id]
    assert (await one(log, early.id)).occurred_at == T0


async def test_the_cursor_pages_through_every_event_once_oldest_first(log: EventLog) -> None:
    logged = await log.append([event(f"room-{i % 3}", T0 + i * SECOND) for i in range(7)])

    seen: list[str] = []
    cursor: str | None = None
    while page := await log.after(cursor, 3):
        assert len(page) <= 3
        seen += ids(page)
        cursor = page[-1].id

    assert seen == ids(logged)
    assert await log.after(logged[-1].id, 3) == []
    assert ids(await log.after("evt_0", 100)) == ids(logged)
    assert ids(await log.after(logged[4].id, 100)) == ids(logged[5:])
    with pytest.raises(InvalidCursor):
        await log.after("bogus", 10)


# --- due, ordered per room ---------------------------------------------------------------------


async def test_due_is_the_oldest_pending_event_of_each_room_in_id_order(log: EventLog) -> None:
    a1, b1, a2, c1, b2 = await log.append(
        [event("room-a"), event("room-b"), event("room-a"), event("room-c"), event("room-b")]
    )

    assert ids(await log.due(T0)) == [a1.id, b1.id, c1.id]

    await log.delivered(a1.id, T0)
    # b1 and c1 are still being attempted: only the room that moved on has something new.
    assert ids(await log.due(T0)) == [a2.id]
    await log.delivered(b1.id, T0)
    await log.delivered(c1.id, T0)
    await log.delivered(a2.id, T0)
    assert ids(await log.due(T0)) == [b2.id]


async def test_nothing_is_due_before_it_occurred(log: EventLog) -> None:
    [later] = await log.append([event(at=T0 + timedelta(minutes=1))])

    assert await log.due(T0) == []
    assert await log.next_attempt_at() == T0 + timedelta(minutes=1)
    assert ids(await log.due(T0 + timedelta(minutes=1))) == [later.id]


async def test_a_room_waits_for_its_head_while_it_is_retried(log: EventLog) -> None:
    a1, a2 = await log.append([event("room-a"), event("room-a")])
    [head] = await log.due(T0)
    assert head.id == a1.id

    await log.attempt_failed(a1.id, "http_503", T0 + 5 * SECOND, T0 + SECOND)

    failed = await one(log, a1.id)
    assert failed.status is DeliveryStatus.PENDING
    assert (failed.attempts, failed.last_error) == (1, "http_503")
    assert failed.next_attempt_at == T0 + 5 * SECOND
    assert await log.due(T0 + 4 * SECOND) == []
    assert await log.next_attempt_at() == T0 + 5 * SECOND

    [retried] = await log.due(T0 + 5 * SECOND)
    assert (retried.id, retried.attempts) == (a1.id, 1)
    await log.delivered(a1.id, T0 + 6 * SECOND)

    delivered = await one(log, a1.id)
    assert delivered.status is DeliveryStatus.DELIVERED
    assert (delivered.attempts, delivered.last_error) == (2, None)
    assert delivered.delivered_at == T0 + 6 * SECOND
    assert delivered.public()["delivery"]["status"] == "delivered"
    assert ids(await log.due(T0 + 6 * SECOND)) == [a2.id]


async def test_giving_up_marks_the_event_failed_and_the_room_moves_on(log: EventLog) -> None:
    a1, a2, b1 = await log.append([event("room-a"), event("room-a"), event("room-b")])
    await log.due(T0)

    await log.attempt_failed(a1.id, "timeout", None, T0)

    failed = await one(log, a1.id)
    assert (failed.status, failed.attempts, failed.last_error) == (
        DeliveryStatus.FAILED,
        1,
        "timeout",
    )
    assert failed.next_attempt_at is None
    assert ids(await log.due(T0)) == [a2.id]  # b1 is still claimed from the first call

    # Late outcomes of overlapping attempts never bring a settled event back.
    await log.attempt_failed(a1.id, "http_500", T0 + SECOND, T0)
    await log.delivered(b1.id, T0)
    await log.attempt_failed(b1.id, "http_500", T0 + SECOND, T0)
    assert (await one(log, a1.id)).status is DeliveryStatus.FAILED
    assert (await one(log, b1.id)).status is DeliveryStatus.DELIVERED
    assert ids(await log.after(None, 10)) == [a1.id, a2.id, b1.id]


async def test_next_attempt_at_is_the_earliest_head(log: EventLog) -> None:
    assert await log.next_attempt_at() is None
    a1, b1 = await log.append([event("room-a", T0), event("room-b", T0 + 30 * SECOND)])
    assert await log.next_attempt_at() == T0

    await log.due(T0)
    await log.attempt_failed(a1.id, "http_500", T0 + 60 * SECOND, T0)
    assert await log.next_attempt_at() == T0 + 30 * SECOND

    await log.due(T0 + 30 * SECOND)
    await log.delivered(b1.id, T0 + 30 * SECOND)
    assert await log.next_attempt_at() == T0 + 60 * SECOND

    await log.due(T0 + 60 * SECOND)
    await log.delivered(a1.id, T0 + 60 * SECOND)
    assert await log.next_attempt_at() is None
    assert await log.due(T0 + timedelta(days=1)) == []


# --- purge -------------------------------------------------------------------------------------


async def test_purge_forgets_what_occurred_before_the_cutoff(log: EventLog) -> None:
    _a1, a2, b1 = await log.append(
        [event("room-a", T0), event("room-a", T0 + 60 * SECOND), event("room-b", T0 + 120 * SECOND)]
    )

    assert await log.purge(T0 + 60 * SECOND) == 1
    assert await log.purge(T0 + 60 * SECOND) == 0

    assert ids(await log.after(None, 10)) == [a2.id, b1.id]
    # The purged head no longer holds its room back.
    assert ids(await log.due(T0 + 120 * SECOND)) == [a2.id, b1.id]
    assert await log.purge(T0 + timedelta(days=1)) == 2
    assert await log.after(None, 10) == []
    assert await log.next_attempt_at() is None


# --- claims: one attempt at a time across nodes ------------------------------------------------


async def test_a_claimed_event_is_not_handed_out_again_until_its_lease_ends(
    open_node: OpenNode,
) -> None:
    node_a, node_b = open_node(), open_node()
    a1, b1 = await node_a.append([event("room-a"), event("room-b")])

    assert ids(await node_a.due(T0, lease=30 * SECOND)) == [a1.id, b1.id]

    assert await node_b.due(T0) == []
    assert await node_b.due(T0 + 29 * SECOND) == []
    assert await node_b.next_attempt_at() == T0 + 30 * SECOND
    # Node A died mid-attempt: its claims lapse and B retries (at least once).
    assert ids(await node_b.due(T0 + 30 * SECOND)) == [a1.id, b1.id]
    assert (await one(node_b, a1.id)).attempts == 0


async def test_releasing_a_claim_hands_the_event_out_at_once(open_node: OpenNode) -> None:
    node_a, node_b = open_node(), open_node()
    [a1] = await node_a.append([event("room-a")])
    await node_a.due(T0)

    await node_a.release(a1.id)

    [again] = await node_b.due(T0)
    assert (again.id, again.attempts) == (a1.id, 0)


async def test_the_outcome_ends_the_claim_so_the_next_event_goes(open_node: OpenNode) -> None:
    node_a, node_b = open_node(), open_node()
    a1, a2 = await node_a.append([event("room-a"), event("room-a")])
    await node_a.due(T0)

    await node_a.delivered(a1.id, T0)

    assert ids(await node_b.due(T0)) == [a2.id]
    await node_b.attempt_failed(a2.id, "http_502", T0 + SECOND, T0)
    assert ids(await node_a.due(T0 + SECOND)) == [a2.id]


async def test_due_claims_at_most_limit_oldest_first(open_node: OpenNode) -> None:
    node_a, node_b = open_node(), open_node()
    logged = await node_a.append([event(f"room-{i}") for i in range(5)])

    assert ids(await node_a.due(T0, limit=2)) == ids(logged[:2])
    assert ids(await node_b.due(T0, limit=2)) == ids(logged[2:4])
    assert ids(await node_a.due(T0)) == ids(logged[4:])
    assert await node_b.due(T0) == []


async def test_ids_grow_strictly_with_two_nodes_appending_at_once(open_node: OpenNode) -> None:
    nodes = [open_node(), open_node()]
    issued: dict[int, list[LoggedEvent]] = defaultdict(list)

    async def keep_appending(number: int) -> None:
        for i in range(40):
            # The same instant everywhere: every id after the first is a collision to resolve.
            batch = [event(f"room-{number}-{i % 4}", T0) for _ in range(1 + i % 3)]
            issued[number] += await nodes[number].append(batch)

    await asyncio.gather(keep_appending(0), keep_appending(1))

    every = issued[0] + issued[1]
    assert len({e.id for e in every}) == len(every) == 2 * sum(1 + i % 3 for i in range(40))
    for mine in issued.values():
        # Each node sees its own ids grow, batch after batch.
        sequences = [e.sequence for e in mine]
        assert sequences == sorted(set(sequences))
    listed = await nodes[1].after(None, 1000)
    assert [e.sequence for e in listed] == sorted(e.sequence for e in every)


# --- two delivery workers on one log -----------------------------------------------------------


class Receiver:
    """The booking system: always 2xx, slow enough for attempts to overlap if they could."""

    def __init__(self) -> None:
        self.received: list[tuple[str, str]] = []
        self.in_flight: dict[str, int] = defaultdict(int)
        self.max_in_flight_per_room = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        room_id = body["data"]["room_id"]
        self.in_flight[room_id] += 1
        self.max_in_flight_per_room = max(self.max_in_flight_per_room, self.in_flight[room_id])
        try:
            await asyncio.sleep(random.uniform(0.002, 0.02))
            self.received.append((room_id, request.headers["webhook-id"]))
        finally:
            self.in_flight[room_id] -= 1
        return web.Response(status=204)


class CountingLog:
    """A node's log, counting what this node's worker claimed."""

    def __init__(self, log: EventLog) -> None:
        self.log = log
        self.claimed = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.log, name)

    async def due(self, now: datetime, **options: Any) -> list[LoggedEvent]:
        claimed = await self.log.due(now, **options)
        self.claimed += len(claimed)
        return claimed


async def test_two_delivery_workers_post_each_event_once_in_room_order(
    open_node: OpenNode, aiohttp_server: Callable[..., Awaitable[TestServer]]
) -> None:
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/events", receiver.handle)
    server = await aiohttp_server(app, host="127.0.0.1")
    url = str(server.make_url("/events"))
    nodes = [CountingLog(open_node()), CountingLog(open_node())]
    workers = [
        EventDelivery(node, url, (b"k" * 32,), utc_now, RetryPolicy(), concurrency=2)
        for node in nodes
    ]
    tasks = [asyncio.ensure_future(worker.run()) for worker in workers]
    expected: dict[str, list[str]] = defaultdict(list)
    try:
        for i in range(12):
            # Appended while the workers run, by either node, every room a few times.
            batch = [event(f"room-{(i + j) % 6}", utc_now()) for j in range(3)]
            for logged in await nodes[i % 2].append(batch):
                expected[logged.room_id].append(logged.id)
            for worker in workers:
                worker.notify()
            await asyncio.sleep(random.uniform(0, 0.01))
        total = sum(len(v) for v in expected.values())

        async def all_delivered() -> bool:
            events = await nodes[0].log.after(None, 1000)
            return len(events) == total and all(
                e.status is DeliveryStatus.DELIVERED for e in events
            )

        await eventually(all_delivered, timeout=20)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    delivered = [webhook_id for _, webhook_id in receiver.received]
    assert sorted(delivered) == sorted(i for room in expected.values() for i in room)
    assert len(set(delivered)) == len(delivered) == total
    for room_id, room_ids in expected.items():
        assert [w for r, w in receiver.received if r == room_id] == room_ids
    assert receiver.max_in_flight_per_room == 1
    assert {e.attempts for e in await nodes[1].log.after(None, 1000)} == {1}
    assert all(node.claimed > 0 for node in nodes), "one worker did everything"
