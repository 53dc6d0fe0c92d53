"""One practitioner's queue kept between changes: places and expected starts in one cheap pass.

`waiting_places` and `expected_starts` (practitioner_day) sort every room and
work out each room's state on every call. A `DayQueue` keeps, per room, what
the queue needs of it (a `Slot`, made once per room version) in slot order, so
a change costs one ordered insert and a computation is one pass over plain
numbers: the same answers (tests/test_day_queue.py checks them against
`waiting_places` and `expected_starts`), a fraction of the work.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from rooms.room import Room
from waiting_room.practitioner_day import DeskState, WaitingPlace, desk_state

# Before every window closes: `desk_state` at this instant is a room's state by its
# content alone; the time only ever turns an open room into an ended one.
_EARLIEST = datetime.min.replace(tzinfo=UTC)
_QUEUED = (DeskState.WAITING, DeskState.SCHEDULED)


@dataclass(frozen=True, slots=True)
class Slot:
    """What one room gives the queue, times as POSIX seconds."""

    room: Room
    room_id: str
    key: tuple[float, str]
    state: DeskState  # its state while its window is open
    starts: float
    duration: float
    closes: float
    started: float | None  # in consultation since
    entries: tuple[tuple[str, int], ...]  # waiting entries: id, connection number


def slot_of(room: Room) -> Slot:
    appointment = room.appointment
    starts = appointment.starts_at.timestamp()
    return Slot(
        room=room,
        room_id=room.id,
        key=(starts, room.id),
        state=desk_state(room, _EARLIEST),
        starts=starts,
        duration=(appointment.ends_at - appointment.starts_at).total_seconds(),
        closes=room.window.closes_at.timestamp(),
        started=None if room.started_at is None else room.started_at.timestamp(),
        entries=tuple((entry.entry_id, entry.connection) for entry in room.waiting.entries),
    )


# One waiting entry's place: (position, expected start in POSIX seconds or None, connection
# number). A plain tuple: thousands are made on each push.
Standing = tuple[int, float | None, int]


def place_of(standing: Standing) -> WaitingPlace:
    position, expected, _ = standing
    return WaitingPlace(
        position, None if expected is None else datetime.fromtimestamp(expected, UTC)
    )


class DayQueue:
    """The rooms of one practitioner's day, kept in slot order (appointment start, room id)."""

    def __init__(self) -> None:
        self._keys: list[tuple[float, str]] = []
        self._slots: list[Slot] = []
        self._by_id: dict[str, Slot] = {}
        # The rooms in consultation: they decide when the practitioner is next free.
        self._busy: dict[str, Slot] = {}

    def __len__(self) -> int:
        return len(self._slots)

    def __contains__(self, room_id: object) -> bool:
        return room_id in self._by_id

    def rooms(self) -> Iterator[Room]:
        """In slot order."""
        return (slot.room for slot in self._slots)

    def room(self, room_id: str) -> Room | None:
        slot = self._by_id.get(room_id)
        return None if slot is None else slot.room

    def version(self, room_id: str) -> int | None:
        slot = self._by_id.get(room_id)
        return None if slot is None else slot.room.version

    def update(self, room: Room) -> bool:
        """Hold `room`'s latest version; False when an equal or newer one was already held."""
        old = self._by_id.get(room.id)
        if old is not None and old.room.version >= room.version:
            return False
        slot = slot_of(room)
        if old is not None and old.key == slot.key:
            self._slots[bisect_left(self._keys, old.key)] = slot
        else:
            if old is not None:
                self._drop(old)
            index = bisect_left(self._keys, slot.key)
            self._keys.insert(index, slot.key)
            self._slots.insert(index, slot)
        self._by_id[room.id] = slot
        if slot.state is DeskState.IN_CONSULTATION:
            self._busy[room.id] = slot
        else:
            self._busy.pop(room.id, None)
        return True

    def remove(self, room_id: str) -> bool:
        old = self._by_id.pop(room_id, None)
        self._busy.pop(room_id, None)
        if old is None:
            return False
        self._drop(old)
        return True

    def _drop(self, slot: Slot) -> None:
        index = bisect_left(self._keys, slot.key)
        del self._keys[index]
        del self._slots[index]

    def replace_all(self, rooms: Iterable[Room]) -> tuple[list[Room], list[str]]:
        """Hold exactly `rooms`: returns the rooms new or changed, and the ids dropped."""
        held = list(rooms)
        changed = [room for room in held if self.update(room)]
        seen = {room.id for room in held}
        dropped = [room_id for room_id in self._by_id if room_id not in seen]
        for room_id in dropped:
            self.remove(room_id)
        return changed, dropped

    def _free_at(self, t: float) -> float:
        """When the practitioner is free of the consultations under way (POSIX seconds)."""
        free_at = t
        for slot in self._busy.values():
            if t < slot.closes:
                started = t if slot.started is None else slot.started
                # Overrunning: it ends "now" at the earliest, we cannot know more.
                busy_until = started + slot.duration
                if busy_until > free_at:
                    free_at = busy_until
        return free_at

    def expected(self, now: datetime) -> dict[str, float]:
        """`expected_starts` over the held rooms, as POSIX seconds by room id."""
        t = now.timestamp()
        free_at = self._free_at(t)
        expected: dict[str, float] = {}
        for slot in self._slots:
            if slot.state not in _QUEUED or t >= slot.closes:
                continue
            start = slot.starts if slot.starts > free_at else free_at
            expected[slot.room_id] = start
            if slot.state is DeskState.WAITING or slot.starts > t:
                # A patient late for a slot already begun does not hold the waiting ones up.
                free_at = start + slot.duration
        return expected

    def standing(self, room_id: str, entry_id: str, now: datetime) -> Standing | None:
        """One entry's item of `standings`, without working out everyone's (a check-in's ack)."""
        t = now.timestamp()
        free_at = self._free_at(t)
        position = 0
        for slot in self._slots:
            queued = slot.state in _QUEUED and t < slot.closes
            start = (slot.starts if slot.starts > free_at else free_at) if queued else None
            if slot.room_id == room_id:
                for index, (waiting_id, connection) in enumerate(slot.entries):
                    if waiting_id == entry_id:
                        return (position + index + 1, start, connection)
                return None
            position += len(slot.entries)
            if start is not None and (slot.state is DeskState.WAITING or slot.starts > t):
                free_at = start + slot.duration
        return None

    def standings(
        self, now: datetime, expected: dict[str, float] | None = None
    ) -> dict[str, Standing]:
        """`waiting_places` over the held rooms: appointment order, then check-in order."""
        if expected is None:
            expected = self.expected(now)
        standings: dict[str, Standing] = {}
        position = 0
        for slot in self._slots:
            entries = slot.entries
            if not entries:
                continue
            start = expected.get(slot.room_id)
            for entry_id, connection in entries:
                position += 1
                standings[entry_id] = (position, start, connection)
        return standings
