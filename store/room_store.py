"""Where rooms live: a narrow interface and the in-memory implementation.

`update` is the only way to change a room: it applies a pure transition to
the current state under the store's own atomicity (a lock here; WATCH/MULTI
on the room's version in Redis), so concurrent admits cannot both win.

The store also holds the consultation event log, as an outbox: the events a
change produces (`outbox(transition)`) are appended to `event_log` in the same
atomic step as the room is written, so a failure can never keep the change and
lose its events, or log events for a change that was not stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from rooms.consultation_events import ConsultationEvent
from rooms.errors import DomainError, ErrorCode
from rooms.room import Room, Transition
from store.event_log import EventLog, InMemoryEventLog

# What a stored transition puts in the event log (pure: `rooms.consultation_events`).
Outbox = Callable[[Transition], Sequence[ConsultationEvent]]


class RoomStore(Protocol):
    @property
    def event_log(self) -> EventLog:
        """The log the outbox writes into, on the same backend as the rooms."""

    async def create(
        self, transition: Transition, *, outbox: Outbox | None = None
    ) -> tuple[Room, bool]:
        """Store a new room unless its appointment already has one.

        Returns the stored room and whether it was created by this call; if it
        was, `outbox(transition)` is logged with it, atomically.
        """

    async def get(self, room_id: str) -> Room | None: ...

    async def find_by_appointment(self, appointment_id: str) -> Room | None: ...

    async def update(
        self,
        room_id: str,
        change: Callable[[Room], Transition],
        *,
        outbox: Outbox | None = None,
    ) -> Transition:
        """Apply `change` atomically; raise DomainError(ROOM_NOT_FOUND) if absent.

        `outbox(transition)` is logged in the same atomic step: both are stored
        or neither is (the caller then gets the error, e.g. StoreUnavailable).
        """

    async def rooms(self) -> list[Room]: ...

    async def purge(self, before: datetime) -> int:
        """Forget rooms whose window closed before `before`; personal data goes with them."""


class InMemoryRoomStore:
    """One process, nothing to install: the default store."""

    def __init__(self, event_log: InMemoryEventLog | None = None) -> None:
        self._rooms: dict[str, Room] = {}
        self._by_appointment: dict[str, str] = {}
        self._lock = asyncio.Lock()
        self._event_log = event_log or InMemoryEventLog()

    @property
    def event_log(self) -> InMemoryEventLog:
        return self._event_log

    def _log(self, transition: Transition, outbox: Outbox | None) -> None:
        # Synchronous, like the room write before it: nothing runs in between.
        if outbox is not None:
            self._event_log.record(outbox(transition))

    async def create(
        self, transition: Transition, *, outbox: Outbox | None = None
    ) -> tuple[Room, bool]:
        room = transition.room
        async with self._lock:
            existing_id = self._by_appointment.get(room.appointment.id)
            if existing_id is not None:
                return self._rooms[existing_id], False
            if room.id in self._rooms:
                raise ValueError("room id collision")
            self._rooms[room.id] = room
            self._by_appointment[room.appointment.id] = room.id
            try:
                self._log(transition, outbox)
            except BaseException:
                del self._rooms[room.id]
                del self._by_appointment[room.appointment.id]
                raise
            return room, True

    async def get(self, room_id: str) -> Room | None:
        return self._rooms.get(room_id)

    async def find_by_appointment(self, appointment_id: str) -> Room | None:
        room_id = self._by_appointment.get(appointment_id)
        return None if room_id is None else self._rooms.get(room_id)

    async def update(
        self,
        room_id: str,
        change: Callable[[Room], Transition],
        *,
        outbox: Outbox | None = None,
    ) -> Transition:
        async with self._lock:
            room = self._rooms.get(room_id)
            if room is None:
                raise DomainError(ErrorCode.ROOM_NOT_FOUND)
            transition = change(room)
            if transition.room.id != room_id:
                raise ValueError("a transition cannot change the room id")
            self._rooms[room_id] = transition.room
            try:
                self._log(transition, outbox)
            except BaseException:
                self._rooms[room_id] = room  # events not logged: the change is undone
                raise
            return transition

    async def rooms(self) -> list[Room]:
        return list(self._rooms.values())

    async def purge(self, before: datetime) -> int:
        async with self._lock:
            gone = [room for room in self._rooms.values() if room.window.closes_at < before]
            for room in gone:
                del self._rooms[room.id]
                self._by_appointment.pop(room.appointment.id, None)
            return len(gone)
