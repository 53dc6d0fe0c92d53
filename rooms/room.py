"""A consultation room's state: who waits, who is in the call, where it is in its life.

Transitions live beside it, one module per concern (`rooms.lifecycle`,
`rooms.admission`, `rooms.presence`). Each takes a room and returns a
`Transition` (the new room and the events it caused) or raises `DomainError`
leaving the given room as it was. Nothing here reads a clock: `now` is always
passed in.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from rooms.appointment import Appointment, JoinWindow, Person
from rooms.errors import DomainError, ErrorCode
from rooms.events import EndReason, RoomEvent
from rooms.roles import Actor, Role
from rooms.waiting_queue import WaitingEntry, WaitingQueue


class RoomStatus(StrEnum):
    SCHEDULED = "scheduled"
    OPEN = "open"
    IN_CONSULTATION = "in_consultation"
    ENDED = "ended"
    CANCELLED = "cancelled"


class Lifecycle(StrEnum):
    """What is stored; `open` and the end of the window are derived from the clock."""

    SCHEDULED = "scheduled"
    IN_CONSULTATION = "in_consultation"
    ENDED = "ended"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class Participant:
    """Someone in the call (the practitioner, or an admitted patient)."""

    entry_id: str
    person_id: str
    name: str
    role: Role
    joined_at: datetime
    # As on WaitingEntry: kept through admission and return to the waiting room.
    resume_hash: str | None = None
    away_since: datetime | None = None
    connection: int = 0


@dataclass(frozen=True, slots=True)
class Denial:
    """A person the practitioner turned away: they stay so, on any device, until re-opened.

    Keyed by the person (their link), not the connection. `entry` and
    `position` (0-based) are the place they had, given back by an undo.
    """

    person_id: str
    role: Role
    entry_id: str
    # The practitioner's words, shown to the denied person on every (re)connection;
    # deleted with the room, never logged nor sent to the booking system.
    reason: str | None
    denied_at: datetime
    entry: WaitingEntry
    position: int


@dataclass(frozen=True, slots=True)
class Room:
    id: str
    appointment: Appointment
    window: JoinWindow
    lifecycle: Lifecycle = Lifecycle.SCHEDULED
    waiting: WaitingQueue = field(default_factory=WaitingQueue)
    in_call: tuple[Participant, ...] = ()
    # Connections the practitioner turned away may not queue again.
    denied: frozenset[str] = frozenset()
    # People turned away (see Denial), whatever connection they come back on.
    denials: tuple[Denial, ...] = ()
    started_at: datetime | None = None
    ended_at: datetime | None = None
    # When the patient first checked in; a no-show is decided from it.
    first_check_in_at: datetime | None = None
    no_show_at: datetime | None = None
    guests: tuple[Person, ...] = ()
    end_reason: EndReason | None = None
    # Bumped by every transition so a shared store can detect lost updates.
    version: int = 0

    def status(self, now: datetime) -> RoomStatus:
        if self.lifecycle is Lifecycle.CANCELLED:
            return RoomStatus.CANCELLED
        if self.lifecycle is Lifecycle.ENDED or now >= self.window.closes_at:
            return RoomStatus.ENDED
        if self.lifecycle is Lifecycle.IN_CONSULTATION:
            return RoomStatus.IN_CONSULTATION
        if now < self.window.opens_at:
            return RoomStatus.SCHEDULED
        return RoomStatus.OPEN

    def is_practitioner(self, actor: Actor) -> bool:
        return (
            actor.role is Role.PRACTITIONER and actor.person_id == self.appointment.practitioner.id
        )

    def is_patient(self, actor: Actor) -> bool:
        return actor.role is Role.PATIENT and actor.person_id == self.appointment.patient.id

    def guest(self, guest_id: str) -> Person | None:
        for guest in self.guests:
            if guest.id == guest_id:
                return guest
        return None

    def is_guest(self, actor: Actor) -> bool:
        return actor.role is Role.GUEST and self.guest(actor.person_id) is not None

    def visitor(self, actor: Actor) -> Person | None:
        """The patient or invited guest the actor is, if any: those who wait to be admitted."""
        if self.is_patient(actor):
            return self.appointment.patient
        if actor.role is Role.GUEST:
            return self.guest(actor.person_id)
        return None

    def participant(self, entry_id: str) -> Participant | None:
        for participant in self.in_call:
            if participant.entry_id == entry_id:
                return participant
        return None

    def denial_of(self, actor: Actor) -> Denial | None:
        for denial in self.denials:
            if denial.person_id == actor.person_id and denial.role is actor.role:
                return denial
        return None

    def entry_of(self, actor: Actor) -> WaitingEntry | Participant | None:
        """The person's one live entry, waiting or in the call (one per person: see presence)."""
        for entry in self.waiting.entries:
            if entry.person_id == actor.person_id and entry.role is actor.role:
                return entry
        for participant in self.in_call:
            if participant.person_id == actor.person_id and participant.role is actor.role:
                return participant
        return None

    def check_joinable(self, now: datetime) -> None:
        """Raise the error that explains why nobody can enter now, if any."""
        if self.lifecycle is Lifecycle.CANCELLED:
            raise DomainError(ErrorCode.ROOM_CANCELLED)
        if self.lifecycle is Lifecycle.ENDED:
            raise DomainError(ErrorCode.ROOM_ENDED)
        if now >= self.window.closes_at:
            raise DomainError(ErrorCode.ROOM_CLOSED)
        if now < self.window.opens_at:
            raise DomainError(ErrorCode.ROOM_NOT_YET_OPEN)


@dataclass(frozen=True, slots=True)
class Transition:
    room: Room
    events: tuple[RoomEvent, ...] = ()


def changed(room: Room, **changes: object) -> Room:
    """The room with `changes`, one version on: every stored change bumps the version."""
    return replace(room, version=room.version + 1, **changes)  # type: ignore[arg-type]
