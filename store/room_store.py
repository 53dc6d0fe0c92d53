"""Where rooms live: a narrow interface and the in-memory implementation.

`update` is the only way to change a room: it applies a pure transition to
the current state under the store's own atomicity (a lock here; WATCH/MULTI
on the room's version in Redis), so concurrent admits cannot both win.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from rooms.errors import DomainError, ErrorCode
from rooms.room import Room, Transition


class RoomStore(Protocol):
    async def create(self, transition: Transition) -> tuple[Room, bool]:
        """Store a new room unless its appointment already has one.

        Returns the stored room and whether it was created by this call.
        """

    async def get(self, room_id: str) -> Room | None: ...

    async def find_by_appointment(self, appointment_id: str) -> Room | None: ...

    async def update(self, room_id: str, change: Callable[[Room], Transition]) -> Transition:
        """Apply `change` atomically; raise DomainError(ROOM_NOT_FOUND) if absent."""

    async def rooms(self) -> list[Room]: ...

    async def purge(self, before: datetime) -> int:
        """Forget rooms whose window closed before `before`; personal data goes with them."""


class InMemoryRoomStore:
    """One process, nothing to install: the default store."""

    def __init__(self) -> None:
        self._rooms: dict[str, Room] = {}
        self._by_appointment: dict[str, str] = {}
        self._lock = asyncio.Lock()

    async def create(self, transition: Transition) -> tuple[Room, bool]:
        room = transition.room
        async with self._lock:
            existing_id = self._by_appointment.get(room.appointment.id)
            if existing_id is not None:
                return self._rooms[existing_id], False
            if room.id in self._rooms:
                raise ValueError("room id collision")
            self._rooms[room.id] = room
            self._by_appointment[room.appointment.id] = room.id
            return room, True

    async def get(self, room_id: str) -> Room | None:
        return self._rooms.get(room_id)

    async def find_by_appointment(self, appointment_id: str) -> Room | None:
        room_id = self._by_appointment.get(appointment_id)
        return None if room_id is None else self._rooms.get(room_id)

    async def update(self, room_id: str, change: Callable[[Room], Transition]) -> Transition:
        async with self._lock:
            room = self._rooms.get(room_id)
            if room is None:
                raise DomainError(ErrorCode.ROOM_NOT_FOUND)
            transition = change(room)
            if transition.room.id != room_id:
                raise ValueError("a transition cannot change the room id")
            self._rooms[room_id] = transition.room
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
