"""The EventLog on Redis: every signalling node reads and delivers the same events.

Keys, under the configurable prefix (default `teleconsult:`):

- `event:<n>`: one event (hash): `event`, its immutable part as versioned
  JSON; `room`; the delivery state (`status`, `attempts`, `next_attempt` in
  microseconds since the epoch, `delivered_at`, `last_error`); and the claim
  (`claimed_by`, `claimed_until`) while a node is attempting it;
- `events:sequence`: the last `n` handed out;
- `events`: every event's `n` (a sorted set scored by `n`), for `after`;
- `events:occurred`: the same scored by when each occurred, for `purge`;
- `events:room:<room id>`: the pending events of a room, oldest first;
- `events:due`: rooms with a pending event, scored by when their oldest one
  may next be attempted (or when its claim ends).

Every change runs as one Lua script, so ids grow strictly across nodes, a room
is never claimed twice and the due index always agrees with the events. The
scripts name keys from the prefix rather than in KEYS: like the room store,
this needs one Redis (or a primary with replicas), not Redis Cluster.

Each key expires `retention` after its last write (events: after being
appended), so nothing outlives the 7-day retention even if no node ever runs
the sweeper. `n` starts from microseconds since the epoch, so a sequence key
that expired with everything else still never reuses an id.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta

import redis.asyncio as redis

from rooms.consultation_events import ConsultationEvent
from store import redis_event_scripts as scripts
from store.event_log import (
    DEFAULT_LEASE,
    EVENT_RETENTION,
    DeliveryStatus,
    LoggedEvent,
    cursor_sequence,
)
from store.redis_client import DEFAULT_PREFIX, redis_client, unavailable_on_failure

FORMAT_VERSION = 1
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
# Bounds the work of one script call: Redis serves no one else while a script runs.
DUE_SCAN = 1000
PURGE_BATCH = 500
# Fields returned for each event, in this order, by the scripts and by `after`.
FIELDS = ("event", "status", "attempts", "next_attempt", "delivered_at", "last_error")


class EventFormatError(ValueError):
    """A stored event is not in a format this release can read."""


def _micros(moment: datetime) -> int:
    # Exact integer arithmetic: `timestamp() * 1e6` can be off by a microsecond.
    return (moment - EPOCH) // MICROSECOND


def _from_micros(value: int) -> datetime:
    return EPOCH + value * MICROSECOND


def _text(value: object) -> str | None:
    # Clients made by `from_url` decode replies; a client passed in may not.
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode()
    raise TypeError(f"unexpected Redis reply {type(value).__name__}")


def _int(value: object) -> int:
    text = _text(value)
    if text is None:
        raise TypeError("unexpected empty Redis reply")
    return int(text)


def encode_event(event: ConsultationEvent) -> str:
    document = {
        "format": FORMAT_VERSION,
        "type": event.type.value,
        "room_id": event.room_id,
        "occurred_at": event.occurred_at.isoformat(),
        "data": event.data(),
    }
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False)


def decode_event(sequence: int, row: Sequence[object]) -> LoggedEvent:
    """An event from the `FIELDS` of its hash."""
    raw, status, attempts, next_attempt, delivered_at, last_error = (_text(v) for v in row)
    if raw is None or status is None:
        raise EventFormatError("stored event is incomplete")
    try:
        document = json.loads(raw)
    except ValueError:
        raise EventFormatError("stored event is not JSON") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT_VERSION:
        raise EventFormatError("unknown stored event format")
    try:
        return LoggedEvent(
            id=f"evt_{sequence}",
            sequence=sequence,
            type=document["type"],
            room_id=document["room_id"],
            occurred_at=datetime.fromisoformat(document["occurred_at"]),
            data=document["data"],
            status=DeliveryStatus(status),
            attempts=int(attempts or 0),
            next_attempt_at=_from_micros(int(next_attempt)) if next_attempt else None,
            delivered_at=datetime.fromisoformat(delivered_at) if delivered_at else None,
            last_error=last_error,
        )
    except (KeyError, TypeError, ValueError) as exc:
        # Names the kind of damage, never a value.
        raise EventFormatError(f"stored event is invalid ({type(exc).__name__})") from None


class RedisEventLog:
    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str = DEFAULT_PREFIX,
        retention: timedelta = EVENT_RETENTION,
    ) -> None:
        self._redis = client
        self._prefix = prefix
        self._ttl_ms = int(retention / timedelta(milliseconds=1))
        # Tells this node's claims from other nodes': only the holder may release one.
        self._claimant = secrets.token_hex(8)
        self._append = client.register_script(scripts.APPEND)
        self._due = client.register_script(scripts.DUE)
        self._delivered = client.register_script(scripts.DELIVERED)
        self._attempt_failed = client.register_script(scripts.ATTEMPT_FAILED)
        self._release = client.register_script(scripts.RELEASE)
        self._purge = client.register_script(scripts.PURGE)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        retention: timedelta = EVENT_RETENTION,
        timeout: float = 2.0,
    ) -> RedisEventLog:
        return cls(redis_client(url, timeout), prefix=prefix, retention=retention)

    async def close(self) -> None:
        await self._redis.aclose()

    def _available(self) -> AbstractAsyncContextManager[None]:
        return unavailable_on_failure("event log")

    # --- EventLog ----------------------------------------------------------------------------

    async def append(self, events: Sequence[ConsultationEvent]) -> list[LoggedEvent]:
        if not events:
            return []
        args: list[str | int] = [self._prefix, self._ttl_ms]
        for event in events:
            args += [_micros(event.occurred_at), event.room_id, encode_event(event)]
        async with self._available():
            sequences = await self._append(keys=[], args=args)
        return [
            LoggedEvent(
                id=f"evt_{sequence}",
                sequence=sequence,
                type=event.type.value,
                room_id=event.room_id,
                occurred_at=event.occurred_at,
                data=event.data(),
                next_attempt_at=event.occurred_at,
            )
            for sequence, event in zip((_int(s) for s in sequences), events, strict=True)
        ]

    async def after(self, cursor: str | None, limit: int) -> list[LoggedEvent]:
        start = cursor_sequence(cursor)
        index = f"{self._prefix}events"
        found: list[LoggedEvent] = []
        async with self._available():
            while len(found) < limit:
                wanted = limit - len(found)
                members = await self._redis.zrangebyscore(
                    index, f"({start}", "+inf", start=0, num=wanted
                )
                if not members:
                    break
                sequences = [_int(m) for m in members]
                async with self._redis.pipeline(transaction=False) as pipe:
                    for sequence in sequences:
                        pipe.hmget(self._event_key(sequence), FIELDS)
                    rows = await pipe.execute()
                gone = []
                for sequence, row in zip(sequences, rows, strict=True):
                    if row[0] is None:
                        gone.append(sequence)  # expired before the sweeper purged it
                    else:
                        found.append(decode_event(sequence, row))
                if gone:
                    await self._redis.zrem(index, *gone)
                start = sequences[-1]
                if len(members) < wanted:
                    break
        return found

    async def due(
        self, now: datetime, *, limit: int | None = None, lease: timedelta = DEFAULT_LEASE
    ) -> list[LoggedEvent]:
        args: list[str | int] = [
            self._prefix,
            _micros(now),
            limit or 0,
            _micros(now + lease),
            self._claimant,
            DUE_SCAN,
        ]
        async with self._available():
            rows = await self._due(keys=[], args=args)
        return [decode_event(_int(row[0]), row[1:]) for row in rows]

    async def next_attempt_at(self) -> datetime | None:
        async with self._available():
            first = await self._redis.zrange(f"{self._prefix}events:due", 0, 0, withscores=True)
        if not first:
            return None
        # [(room, score)]: the score is when that room's head may next be attempted.
        return _from_micros(int(float(first[0][1])))

    async def delivered(self, event_id: str, now: datetime) -> None:
        sequence = cursor_sequence(event_id)
        async with self._available():
            await self._delivered(keys=[], args=[self._prefix, sequence, now.isoformat()])

    async def attempt_failed(
        self, event_id: str, error: str, retry_at: datetime | None, now: datetime
    ) -> None:
        args: list[str | int] = [
            self._prefix,
            cursor_sequence(event_id),
            error,
            "" if retry_at is None else _micros(retry_at),
            _micros(now),
            self._claimant,
        ]
        async with self._available():
            await self._attempt_failed(keys=[], args=args)

    async def release(self, event_id: str) -> None:
        args: list[str | int] = [self._prefix, cursor_sequence(event_id), self._claimant]
        async with self._available():
            await self._release(keys=[], args=args)

    async def purge(self, before: datetime) -> int:
        purged = 0
        async with self._available():
            while True:
                batch = int(
                    await self._purge(keys=[], args=[self._prefix, _micros(before), PURGE_BATCH])
                )
                purged += batch
                if batch < PURGE_BATCH:
                    return purged

    def _event_key(self, sequence: int) -> str:
        return f"{self._prefix}event:{sequence}"
