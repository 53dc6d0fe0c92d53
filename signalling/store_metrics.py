"""The room store as the hub holds it, and the event log as delivery uses it, both measured.

Each call is timed and a `StoreUnavailable` counted (`teleconsult_store_*`);
stored transitions are counted by what they did (admissions, denials, no-shows,
the wait before an admission), and recorded delivery outcomes by outcome and
lag. Counting what was stored, not what was asked, keeps a retried or refused
change from being counted.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import TypeVar

from rooms.consultation_events import ConsultationEvent
from rooms.room import Room, Transition
from signalling.metrics import SignallingMetrics
from store.errors import StoreUnavailable
from store.event_log import DEFAULT_LEASE, EventLog, LoggedEvent
from store.room_store import Outbox, RoomStore

T = TypeVar("T")


class _Timed:
    def __init__(self, metrics: SignallingMetrics, store: str) -> None:
        self._metrics = metrics
        self._label = store

    async def _timed(self, operation: str, call: Awaitable[T]) -> T:
        started = time.perf_counter()
        try:
            return await call
        except StoreUnavailable:
            self._metrics.store_errors.labels(self._label, operation).inc()
            raise
        finally:
            elapsed = time.perf_counter() - started
            self._metrics.store_latency.labels(self._label, operation).observe(elapsed)


class MeasuredRoomStore(_Timed):
    """A `RoomStore` that times its calls and counts the transitions it stores."""

    def __init__(self, store: RoomStore, metrics: SignallingMetrics) -> None:
        super().__init__(metrics, "rooms")
        self.inner = store

    @property
    def event_log(self) -> EventLog:
        return self.inner.event_log

    async def create(
        self, transition: Transition, *, outbox: Outbox | None = None
    ) -> tuple[Room, bool]:
        room, created = await self._timed("create", self.inner.create(transition, outbox=outbox))
        if created:
            self._metrics.transition(None, transition)
        return room, created

    async def get(self, room_id: str) -> Room | None:
        return await self._timed("get", self.inner.get(room_id))

    async def find_by_appointment(self, appointment_id: str) -> Room | None:
        return await self._timed(
            "find_by_appointment", self.inner.find_by_appointment(appointment_id)
        )

    async def update(
        self,
        room_id: str,
        change: Callable[[Room], Transition],
        *,
        outbox: Outbox | None = None,
    ) -> Transition:
        # The room the stored change was applied to (a shared store may retry `change`).
        before: list[Room] = []

        def watched(room: Room) -> Transition:
            before[:] = [room]
            return change(room)

        transition = await self._timed("update", self.inner.update(room_id, watched, outbox=outbox))
        self._metrics.transition(before[0] if before else None, transition)
        return transition

    async def rooms(self) -> list[Room]:
        return await self._timed("rooms", self.inner.rooms())

    async def purge(self, before: datetime) -> int:
        return await self._timed("purge", self.inner.purge(before))


class MeasuredDeliveryLog(_Timed):
    """The `EventLog` event delivery works on: timed, and each recorded outcome counted."""

    def __init__(self, log: EventLog, metrics: SignallingMetrics) -> None:
        super().__init__(metrics, "events")
        self.inner = log
        # When each event this node claimed occurred: its delivery lag.
        self._claimed: dict[str, datetime] = {}

    async def append(self, events: Sequence[ConsultationEvent]) -> list[LoggedEvent]:
        return await self.inner.append(events)

    async def after(self, cursor: str | None, limit: int) -> list[LoggedEvent]:
        return await self.inner.after(cursor, limit)

    async def due(
        self, now: datetime, *, limit: int | None = None, lease: timedelta = DEFAULT_LEASE
    ) -> list[LoggedEvent]:
        due = await self._timed("due", self.inner.due(now, limit=limit, lease=lease))
        for event in due:
            self._claimed[event.id] = event.occurred_at
        return due

    async def next_attempt_at(self) -> datetime | None:
        return await self._timed("next_attempt_at", self.inner.next_attempt_at())

    async def delivered(self, event_id: str, now: datetime) -> None:
        await self._timed("delivered", self.inner.delivered(event_id, now))
        occurred_at = self._claimed.pop(event_id, None)
        lag = None if occurred_at is None else (now - occurred_at).total_seconds()
        self._metrics.delivered(lag)

    async def attempt_failed(
        self, event_id: str, error: str, retry_at: datetime | None, now: datetime
    ) -> None:
        await self._timed(
            "attempt_failed", self.inner.attempt_failed(event_id, error, retry_at, now)
        )
        self._claimed.pop(event_id, None)
        self._metrics.delivery_failed(error, given_up=retry_at is None)

    async def release(self, event_id: str) -> None:
        self._claimed.pop(event_id, None)
        await self._timed("release", self.inner.release(event_id))

    async def purge(self, before: datetime) -> int:
        return await self.inner.purge(before)
