"""A first-come, first-served queue of checked-in patients.

Immutable: every operation returns a new queue, so a store can apply it
inside one atomic read-modify-write.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from rooms.roles import Role


@dataclass(frozen=True, slots=True)
class WaitingEntry:
    """One person waiting to be admitted.

    One entry per person (their link): a second device or tab on the same link
    takes this entry over (`rooms.presence.take_over`) rather than queue again.
    """

    entry_id: str
    person_id: str
    name: str
    checked_in_at: datetime
    role: Role = Role.PATIENT
    # SHA-256 of the secret the device keeps to take its place back after a
    # reload or a network loss; never the secret itself (rooms/resume_secret.py).
    resume_hash: str | None = None
    # Set while the device is disconnected: the place is kept for a grace period.
    away_since: datetime | None = None
    # Counts takeovers, so that the late disconnect of a replaced connection
    # cannot mark the entry away.
    connection: int = 0


@dataclass(frozen=True, slots=True)
class PractitionerView:
    """What a practitioner sees of one waiting entry."""

    entry_id: str
    name: str
    waiting_since: datetime
    role: Role = Role.PATIENT
    away_since: datetime | None = None


@dataclass(frozen=True, slots=True)
class WaitingQueue:
    entries: tuple[WaitingEntry, ...] = ()

    def __contains__(self, entry_id: object) -> bool:
        return any(entry.entry_id == entry_id for entry in self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def check_in(self, entry: WaitingEntry) -> WaitingQueue:
        if entry.entry_id in self:
            raise KeyError(entry.entry_id)
        return replace(self, entries=(*self.entries, entry))

    def put_first(self, entry: WaitingEntry) -> WaitingQueue:
        """Back at the head: someone sent back from the call was already being seen."""
        if entry.entry_id in self:
            raise KeyError(entry.entry_id)
        return replace(self, entries=(entry, *self.entries))

    def insert(self, entry: WaitingEntry, index: int) -> WaitingQueue:
        """Back at a given place (0-based, clamped): an undone denial."""
        if entry.entry_id in self:
            raise KeyError(entry.entry_id)
        index = max(0, min(index, len(self.entries)))
        return replace(self, entries=(*self.entries[:index], entry, *self.entries[index:]))

    def get(self, entry_id: str) -> WaitingEntry | None:
        for entry in self.entries:
            if entry.entry_id == entry_id:
                return entry
        return None

    def replace(self, entry: WaitingEntry) -> WaitingQueue:
        """The same place in the queue, with the entry's new state."""
        if entry.entry_id not in self:
            raise KeyError(entry.entry_id)
        return replace(
            self,
            entries=tuple(entry if e.entry_id == entry.entry_id else e for e in self.entries),
        )

    def remove(self, entry_id: str) -> tuple[WaitingQueue, WaitingEntry]:
        for index, entry in enumerate(self.entries):
            if entry.entry_id == entry_id:
                rest = self.entries[:index] + self.entries[index + 1 :]
                return replace(self, entries=rest), entry
        raise KeyError(entry_id)

    def position(self, entry_id: str) -> int:
        """1-based place in the queue: the only thing a waiting patient learns."""
        for index, entry in enumerate(self.entries):
            if entry.entry_id == entry_id:
                return index + 1
        raise KeyError(entry_id)

    def positions(self) -> dict[str, int]:
        return {entry.entry_id: index + 1 for index, entry in enumerate(self.entries)}

    def practitioner_view(self) -> tuple[PractitionerView, ...]:
        return tuple(
            PractitionerView(
                entry.entry_id, entry.name, entry.checked_in_at, entry.role, entry.away_since
            )
            for entry in self.entries
        )
