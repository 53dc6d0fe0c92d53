"""The log of consultation events: what the delivery worker sends and the API replays.

Ids are `evt_<n>` with `n` strictly increasing (microseconds since the epoch,
bumped on collision), so they survive a restart without reuse and double as
the `after=` cursor of `GET /api/v1/events`.

Delivery is ordered per room: only the oldest undelivered event of a room is
ever due, so a booking system that is down sees its events later, never out of
order. An event that could not be delivered for `give_up_after` is marked
failed and the room's next event goes; it stays readable through the API.

`due` also claims what it returns, for `lease`: with several nodes sharing
one log, each pending event is in one delivery attempt at a time. The claim
ends with the attempt's outcome (`delivered`, `attempt_failed`) or `release`;
if its holder dies, it lapses and another node retries (at least once).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from rooms.consultation_events import ConsultationEvent

EVENT_ID = re.compile(r"^evt_([0-9]{1,20})$")
# Long enough for an integrator to catch up after a week-long outage, no longer:
# events name no one, but they still say who had a consultation when.
EVENT_RETENTION = timedelta(days=7)
# Longer than an attempt can take (its HTTP timeout), or a second node would retry mid-flight.
DEFAULT_LEASE = timedelta(minutes=1)


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    id: str
    sequence: int
    type: str
    room_id: str
    occurred_at: datetime
    data: dict[str, Any]
    status: DeliveryStatus = DeliveryStatus.PENDING
    attempts: int = 0
    next_attempt_at: datetime | None = None
    delivered_at: datetime | None = None
    last_error: str | None = None

    def body(self) -> bytes:
        """The Standard Webhooks payload: identical on every attempt."""
        document = {
            "type": self.type,
            "timestamp": self.occurred_at.isoformat(),
            "data": self.data,
        }
        return json.dumps(document, separators=(",", ":")).encode()

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "timestamp": self.occurred_at.isoformat(),
            "data": self.data,
            "delivery": {
                "status": self.status.value,
                "attempts": self.attempts,
                "delivered_at": None
                if self.delivered_at is None
                else self.delivered_at.isoformat(),
                "last_error": self.last_error,
            },
        }


class InvalidCursor(ValueError):
    pass


def cursor_sequence(cursor: str | None) -> int:
    if cursor is None:
        return 0
    match = EVENT_ID.match(cursor)
    if match is None:
        raise InvalidCursor("after must be an event id such as evt_1700000000000000")
    return int(match.group(1))


class EventLog(Protocol):
    async def append(self, events: Sequence[ConsultationEvent]) -> list[LoggedEvent]: ...

    async def after(self, cursor: str | None, limit: int) -> list[LoggedEvent]: ...

    async def due(
        self, now: datetime, *, limit: int | None = None, lease: timedelta = DEFAULT_LEASE
    ) -> list[LoggedEvent]:
        """Claim, until `now + lease`, the oldest pending event of each room whose next
        attempt is due and that no one else has claimed: at most `limit`, oldest first."""

    async def next_attempt_at(self) -> datetime | None:
        """When `due` may next return something (a claim's end counts as its attempt time)."""

    async def delivered(self, event_id: str, now: datetime) -> None:
        """Record a successful attempt; ends the claim, so the room's next event is due."""

    async def attempt_failed(
        self, event_id: str, error: str, retry_at: datetime | None, now: datetime
    ) -> None:
        """Record a failed attempt; `retry_at=None` gives up on this event.

        Ignored once the event is no longer pending. If another node holds a live
        claim on it (this one's lapsed), only the attempt is counted: the holder's
        outcome decides what happens next.
        """

    async def release(self, event_id: str) -> None:
        """End this node's claim without an outcome (the attempt never happened)."""

    async def purge(self, before: datetime) -> int:
        """Forget events that occurred before `before`."""


class InMemoryEventLog:
    def __init__(self) -> None:
        self._events: dict[str, LoggedEvent] = {}
        # Claims by event id, until when; one process is one claimant.
        self._claims: dict[str, datetime] = {}
        self._last_sequence = 0
        self._lock = asyncio.Lock()

    def _sequence(self, at: datetime) -> int:
        self._last_sequence = max(self._last_sequence + 1, int(at.timestamp() * 1_000_000))
        return self._last_sequence

    async def append(self, events: Sequence[ConsultationEvent]) -> list[LoggedEvent]:
        async with self._lock:
            logged = []
            for event in events:
                sequence = self._sequence(event.occurred_at)
                entry = LoggedEvent(
                    id=f"evt_{sequence}",
                    sequence=sequence,
                    type=event.type.value,
                    room_id=event.room_id,
                    occurred_at=event.occurred_at,
                    data=event.data(),
                    next_attempt_at=event.occurred_at,
                )
                self._events[entry.id] = entry
                logged.append(entry)
            return logged

    async def after(self, cursor: str | None, limit: int) -> list[LoggedEvent]:
        start = cursor_sequence(cursor)
        newer = (event for event in self._events.values() if event.sequence > start)
        return sorted(newer, key=lambda event: event.sequence)[:limit]

    def _heads(self) -> list[LoggedEvent]:
        heads: dict[str, LoggedEvent] = {}
        for event in self._events.values():
            if event.status is not DeliveryStatus.PENDING:
                continue
            head = heads.get(event.room_id)
            if head is None or event.sequence < head.sequence:
                heads[event.room_id] = event
        return sorted(heads.values(), key=lambda event: event.sequence)

    def _attempt_at(self, event: LoggedEvent) -> datetime | None:
        claimed_until = self._claims.get(event.id)
        if claimed_until is None:
            return event.next_attempt_at
        if event.next_attempt_at is None:
            return claimed_until
        return max(event.next_attempt_at, claimed_until)

    async def due(
        self, now: datetime, *, limit: int | None = None, lease: timedelta = DEFAULT_LEASE
    ) -> list[LoggedEvent]:
        async with self._lock:
            ready = []
            for event in self._heads():
                at = self._attempt_at(event)
                if at is None or at <= now:
                    ready.append(event)
            ready = ready[:limit]
            for event in ready:
                self._claims[event.id] = now + lease
            return ready

    async def next_attempt_at(self) -> datetime | None:
        times = [at for event in self._heads() if (at := self._attempt_at(event)) is not None]
        return min(times, default=None)

    async def delivered(self, event_id: str, now: datetime) -> None:
        async with self._lock:
            self._claims.pop(event_id, None)
            event = self._events.get(event_id)
            if event is None:
                return
            if event.status is DeliveryStatus.DELIVERED:
                # A second node's overlapping attempt: count it, the first delivery stands.
                self._events[event_id] = replace(event, attempts=event.attempts + 1)
                return
            self._events[event_id] = replace(
                event,
                status=DeliveryStatus.DELIVERED,
                attempts=event.attempts + 1,
                delivered_at=now,
                next_attempt_at=None,
                last_error=None,
            )

    async def attempt_failed(
        self, event_id: str, error: str, retry_at: datetime | None, now: datetime
    ) -> None:
        async with self._lock:
            self._claims.pop(event_id, None)
            event = self._events.get(event_id)
            if event is None or event.status is not DeliveryStatus.PENDING:
                return
            self._events[event_id] = replace(
                event,
                status=DeliveryStatus.PENDING if retry_at else DeliveryStatus.FAILED,
                attempts=event.attempts + 1,
                next_attempt_at=retry_at,
                last_error=error,
            )

    async def release(self, event_id: str) -> None:
        async with self._lock:
            self._claims.pop(event_id, None)

    async def purge(self, before: datetime) -> int:
        async with self._lock:
            old = [key for key, event in self._events.items() if event.occurred_at < before]
            for key in old:
                del self._events[key]
                self._claims.pop(key, None)
            return len(old)
