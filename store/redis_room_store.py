"""The RoomStore on Redis: several signalling nodes share rooms.

Keys, under a configurable prefix (default `teleconsult:`):

- `room:<room id>`: the room as versioned JSON (`store.room_codec`);
- `appointment:<appointment id>`: the id of that appointment's room;
- `rooms`: a sorted set of room ids scored by when their window closes
  (microseconds since the epoch), for listing and purging.

Webhook receipts share the prefix but not this store (`store.redis_webhook_receipts`).

Every write that depends on what was read runs under WATCH/MULTI and is
retried when another node got there first, so concurrent transitions on two
nodes are serialised exactly like the in-memory store's lock serialises them.
Room and index keys also expire on their own some time after the window
closes, so personal data is gone even if no node ever runs the sweeper.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from typing import Any, TypeVar

import redis.asyncio as redis
from redis.exceptions import WatchError

from rooms.errors import DomainError, ErrorCode
from rooms.room import Room, Transition
from store.errors import StoreUnavailable
from store.redis_client import DEFAULT_PREFIX, redis_client, reply_text, unavailable_on_failure
from store.room_codec import decode_room, encode_room

logger = logging.getLogger(__name__)

T = TypeVar("T")

# A floor on key lifetimes: rooms whose window already closed (by the app's
# clock) still live long enough for the sweeper to end them cleanly.
MIN_KEY_LIFETIME = timedelta(minutes=10)
MAX_ATTEMPTS = 200


def _micros(moment: datetime) -> int:
    # Whole microseconds are exact in a sorted-set score (a double) until year 2255.
    return int(moment.timestamp() * 1_000_000)


class RedisRoomStore:
    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str = DEFAULT_PREFIX,
        retention_after_close: timedelta = timedelta(hours=24),
    ) -> None:
        self._redis = client
        self._prefix = prefix
        self._retention = retention_after_close
        self._rooms_key = f"{prefix}rooms"

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        retention_after_close: timedelta = timedelta(hours=24),
        timeout: float = 2.0,
    ) -> RedisRoomStore:
        return cls(
            redis_client(url, timeout), prefix=prefix, retention_after_close=retention_after_close
        )

    @property
    def client(self) -> redis.Redis:
        return self._redis

    async def close(self) -> None:
        await self._redis.aclose()

    async def ping(self) -> None:
        """Raise StoreUnavailable unless Redis answers."""
        async with self._available():
            await self._redis.ping()

    # --- keys --------------------------------------------------------------------------------

    def _room_key(self, room_id: str) -> str:
        return f"{self._prefix}room:{room_id}"

    def _appointment_key(self, appointment_id: str) -> str:
        return f"{self._prefix}appointment:{appointment_id}"

    def _expires_at_ms(self, room: Room) -> int:
        deadline = room.window.closes_at + self._retention
        floor = time.time() + MIN_KEY_LIFETIME.total_seconds()
        return int(max(deadline.timestamp(), floor) * 1000)

    # --- plumbing ----------------------------------------------------------------------------

    def _available(self) -> AbstractAsyncContextManager[None]:
        return unavailable_on_failure("store")

    async def _optimistic(self, attempt: Callable[[Any], Awaitable[T]], watch: str) -> T:
        """Run `attempt(pipe)` under WATCH `watch`, again and again until no one raced it."""
        async with self._available():
            for tries in range(MAX_ATTEMPTS):
                async with self._redis.pipeline(transaction=True) as pipe:
                    try:
                        await pipe.watch(watch)
                        return await attempt(pipe)
                    except WatchError:
                        # Jitter so the losers of one race do not collide again in lockstep.
                        await asyncio.sleep(random.uniform(0, 0.002 * min(tries + 1, 10)))
            # Losing this many races in a row means an overload: answer "try again", like an outage.
            logger.warning("redis store gave up after %d conflicting attempts", MAX_ATTEMPTS)
            raise StoreUnavailable()

    def _write_room(self, pipe: Any, room: Room) -> None:
        expires_at = self._expires_at_ms(room)
        pipe.set(self._room_key(room.id), encode_room(room), pxat=expires_at)
        pipe.set(self._appointment_key(room.appointment.id), room.id, pxat=expires_at)
        pipe.zadd(self._rooms_key, {room.id: _micros(room.window.closes_at)})

    # --- RoomStore ---------------------------------------------------------------------------

    async def create(self, transition: Transition) -> tuple[Room, bool]:
        room = transition.room
        room_key = self._room_key(room.id)

        async def attempt(pipe: Any) -> tuple[Room, bool]:
            existing_id = await pipe.get(self._appointment_key(room.appointment.id))
            if existing_id is not None:
                raw = await pipe.get(self._room_key(existing_id))
                if raw is not None:
                    return decode_room(raw), False
                # Index without its room: the room expired, the appointment may be booked again.
            if await pipe.exists(room_key):
                raise ValueError("room id collision")
            pipe.multi()
            self._write_room(pipe, room)
            await pipe.execute()
            return room, True

        # Watching the appointment index is what keeps two nodes from both creating a room.
        return await self._optimistic(attempt, self._appointment_key(room.appointment.id))

    async def get(self, room_id: str) -> Room | None:
        async with self._available():
            raw = await self._redis.get(self._room_key(room_id))
        return None if raw is None else decode_room(raw)

    async def find_by_appointment(self, appointment_id: str) -> Room | None:
        async with self._available():
            room_id = await self._redis.get(self._appointment_key(appointment_id))
        return None if room_id is None else await self.get(reply_text(room_id))

    async def update(self, room_id: str, change: Callable[[Room], Transition]) -> Transition:
        key = self._room_key(room_id)

        async def attempt(pipe: Any) -> Transition:
            raw = await pipe.get(key)
            if raw is None:
                raise DomainError(ErrorCode.ROOM_NOT_FOUND)
            transition = change(decode_room(raw))
            if transition.room.id != room_id:
                raise ValueError("a transition cannot change the room id")
            pipe.multi()
            self._write_room(pipe, transition.room)
            await pipe.execute()
            return transition

        return await self._optimistic(attempt, key)

    async def rooms(self) -> list[Room]:
        async with self._available():
            room_ids = [reply_text(id_) for id_ in await self._redis.zrange(self._rooms_key, 0, -1)]
            if not room_ids:
                return []
            raws = await self._redis.mget([self._room_key(room_id) for room_id in room_ids])
            expired = [room_id for room_id, raw in zip(room_ids, raws, strict=True) if raw is None]
            if expired:
                # Their keys lapsed on their own; drop the stale index entries too.
                await self._redis.zrem(self._rooms_key, *expired)
        return [decode_room(raw) for raw in raws if raw is not None]

    async def purge(self, before: datetime) -> int:
        cutoff = _micros(before)
        async with self._available():
            candidates = [
                reply_text(id_)
                for id_ in await self._redis.zrangebyscore(self._rooms_key, "-inf", f"({cutoff}")
            ]
        purged = 0
        for room_id in candidates:
            if await self._purge_one(room_id, cutoff):
                purged += 1
        return purged

    async def _purge_one(self, room_id: str, cutoff: int) -> bool:
        key = self._room_key(room_id)

        async def attempt(pipe: Any) -> bool:
            raw = await pipe.get(key)
            if raw is None:
                pipe.multi()
                pipe.zrem(self._rooms_key, room_id)
                await pipe.execute()
                return False
            room = decode_room(raw)
            if _micros(room.window.closes_at) >= cutoff:
                return False  # rescheduled since we listed it
            pipe.multi()
            pipe.delete(key)
            pipe.zrem(self._rooms_key, room_id)
            await pipe.execute()
            # The index may meanwhile point at a newer room of the same appointment: keep that one.
            await self._delete_if_equal(self._appointment_key(room.appointment.id), room_id)
            return True

        return await self._optimistic(attempt, key)

    async def _delete_if_equal(self, key: str, expected: str) -> None:
        async def attempt(pipe: Any) -> None:
            if await pipe.get(key) == expected:
                pipe.multi()
                pipe.delete(key)
                await pipe.execute()

        await self._optimistic(attempt, key)
