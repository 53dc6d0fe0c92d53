"""Consultation events on Redis: shared by every node, bounded in time, never pickled."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio as redis
from aiohttp import web
from aiohttp.test_utils import TestClient

from rooms.consultation_events import ConsultationEvent, ConsultationEventType
from signalling.app import HUB, make_app
from signalling.clock import utc_now
from signalling.event_delivery import EventDelivery
from store.errors import StoreUnavailable
from store.event_log import EVENT_RETENTION, DeliveryStatus
from store.redis_event_log import RedisEventLog
from tests.support import appointment_data, make_settings
from tests.support.polling import stays_true
from tests.support.redis_server import free_port

API_KEY = "k" * 32
PREFIX = "events-test:"
T0 = datetime(2030, 3, 4, 10, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)


def event(room_id: str = "room-a", at: datetime = T0) -> ConsultationEvent:
    return ConsultationEvent(ConsultationEventType.STARTED, room_id, f"apt-{room_id}", at)


@pytest.fixture
async def logs(redis_url: str) -> AsyncIterator[list[RedisEventLog]]:
    """Three nodes' handles on one log."""
    opened = [RedisEventLog.from_url(redis_url, prefix=PREFIX) for _ in range(3)]
    yield opened
    for log in opened:
        await log.close()


async def test_two_apps_on_one_redis_list_the_same_events(
    aiohttp_client: Callable[[web.Application], Awaitable[TestClient[Any, Any]]],
    redis_url: str,
) -> None:
    settings = make_settings(redis_url=redis_url, api_key=API_KEY)
    node_a = await aiohttp_client(make_app(settings))
    node_b = await aiohttp_client(make_app(settings))
    headers = {"Authorization": f"Bearer {API_KEY}"}
    assert isinstance(node_a.app[HUB].event_log, RedisEventLog)

    created = await node_a.post("/api/v1/appointments", json=appointment_data(), headers=headers)
    assert created.status == 201, await created.text()
    room_id = (await created.json())["room_id"]
    ended = await node_a.post(f"/api/v1/rooms/{room_id}/end", headers=headers)
    assert ended.status == 200, await ended.text()

    listed = await node_b.get("/api/v1/events", headers=headers)
    assert listed.status == 200
    page = await listed.json()
    [only] = page["events"]
    assert only["type"] == "consultation.ended"
    assert only["data"]["room_id"] == room_id
    assert only["delivery"]["status"] == "pending"
    assert page["next_after"] == only["id"]
    after = await node_b.get("/api/v1/events", params={"after": only["id"]}, headers=headers)
    assert (await after.json())["events"] == []


async def test_keys_stay_under_the_prefix_hold_json_and_expire_within_retention(
    logs: list[RedisEventLog], redis_url: str
) -> None:
    node = logs[0]
    logged = await node.append([event("room-a"), event("room-a"), event("room-b")])
    await node.due(T0)
    await node.attempt_failed(logged[0].id, "http_500", T0 + SECOND, T0)
    await node.delivered(logged[2].id, T0)

    async with redis.Redis.from_url(redis_url, decode_responses=True) as client:
        keys = [key async for key in client.scan_iter("*")]
        assert keys
        assert all(key.startswith(PREFIX) for key in keys)
        for key in keys:
            ttl_ms = await client.pttl(key)
            assert 0 < ttl_ms <= EVENT_RETENTION / timedelta(milliseconds=1), key
        stored = await client.hget(f"{PREFIX}event:{logged[0].sequence}", "event")
    assert stored is not None
    document = json.loads(stored)  # plain JSON: another release, or a person, can read it
    assert document["format"] == 1
    assert document["data"]["room_id"] == "room-a"


async def test_a_lapsed_claimant_cannot_undo_the_new_holders_claim(
    logs: list[RedisEventLog],
) -> None:
    node_a, node_b, node_c = logs
    a1, a2 = await node_a.append([event(), event()])
    assert [e.id for e in await node_a.due(T0, lease=10 * SECOND)] == [a1.id]
    # A stalls past its lease; B takes over until T0 + 20 s.
    assert [e.id for e in await node_b.due(T0 + 10 * SECOND, lease=10 * SECOND)] == [a1.id]

    await node_a.release(a1.id)
    assert await node_c.due(T0 + 11 * SECOND) == []

    await node_a.attempt_failed(a1.id, "timeout", T0 + 12 * SECOND, T0 + 11 * SECOND)
    [counted] = await node_c.after(None, 1)
    assert (counted.attempts, counted.last_error) == (1, "timeout")
    assert counted.status is DeliveryStatus.PENDING
    assert await node_c.due(T0 + 15 * SECOND) == []  # still B's

    await node_b.delivered(a1.id, T0 + 16 * SECOND)
    assert [e.id for e in await node_c.due(T0 + 16 * SECOND)] == [a2.id]


async def test_an_event_whose_key_expired_is_skipped(
    logs: list[RedisEventLog], redis_url: str
) -> None:
    node = logs[0]
    a1, a2 = await node.append([event(), event()])
    async with redis.Redis.from_url(redis_url) as client:
        await client.delete(f"{PREFIX}event:{a1.sequence}")  # as its TTL would

    assert [e.id for e in await node.after(None, 1)] == [a2.id]
    assert [e.id for e in await node.due(T0)] == [a2.id]


async def test_an_unreachable_redis_is_store_unavailable_and_the_url_stays_out_of_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"redis://:hunter2secret@127.0.0.1:{free_port()}/0"
    log = RedisEventLog.from_url(url, timeout=0.5)
    caplog.set_level(logging.DEBUG)
    try:
        with pytest.raises(StoreUnavailable):
            await log.append([event()])
        with pytest.raises(StoreUnavailable):
            await log.after(None, 10)
        with pytest.raises(StoreUnavailable):
            await log.due(T0)
        with pytest.raises(StoreUnavailable):
            await log.next_attempt_at()

        # The delivery worker outlives the outage instead of dying on its first look.
        worker = EventDelivery(log, "http://127.0.0.1:1/events", (b"k" * 32,), utc_now)
        task = asyncio.ensure_future(worker.run())
        await stays_true(lambda: not task.done(), for_seconds=0.5)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    finally:
        await log.close()
    assert "unavailable" in caplog.text
    assert "hunter2secret" not in caplog.text
