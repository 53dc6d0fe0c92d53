"""A consultation room and the transitions that move it through its life.

Every transition takes a room and returns a `Transition` (the new room and
the events it caused) or raises `DomainError` leaving the given room as it
was. Nothing here reads a clock: `now` is always passed in.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from rooms.appointment import Appointment, JoinWindow, JoinWindowPolicy, check_slot
from rooms.errors import DomainError, ErrorCode
from rooms.events import (
    ConsultationStarted,
    EndReason,
    ParticipantLeft,
    PatientAdmitted,
    PatientCheckedIn,
    PatientDenied,
    PractitionerJoined,
    RoomCreated,
    RoomEnded,
    RoomEvent,
    RoomRescheduled,
)
from rooms.roles import Actor, Role
from waiting_room.queue import WaitingEntry, WaitingQueue


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
    started_at: datetime | None = None
    ended_at: datetime | None = None
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

    def participant(self, entry_id: str) -> Participant | None:
        for participant in self.in_call:
            if participant.entry_id == entry_id:
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


def _next(room: Room, **changes: object) -> Room:
    return replace(room, version=room.version + 1, **changes)  # type: ignore[arg-type]


def create_room(room_id: str, appointment: Appointment, policy: JoinWindowPolicy) -> Transition:
    window = JoinWindow.for_slot(appointment.starts_at, appointment.ends_at, policy)
    room = Room(id=room_id, appointment=appointment, window=window, version=1)
    return Transition(room, (RoomCreated(room_id),))


def reschedule(
    room: Room, starts_at: datetime, ends_at: datetime, policy: JoinWindowPolicy
) -> Transition:
    if room.lifecycle is Lifecycle.CANCELLED:
        raise DomainError(ErrorCode.ROOM_CANCELLED)
    if room.lifecycle is Lifecycle.ENDED:
        raise DomainError(ErrorCode.ROOM_ENDED)
    check_slot(starts_at, ends_at)
    appointment = replace(room.appointment, starts_at=starts_at, ends_at=ends_at)
    window = JoinWindow.for_slot(starts_at, ends_at, policy)
    if appointment == room.appointment and window == room.window:
        return Transition(room)
    return Transition(
        _next(room, appointment=appointment, window=window), (RoomRescheduled(room.id),)
    )


def _end(room: Room, reason: EndReason, lifecycle: Lifecycle, now: datetime) -> Transition:
    inside = tuple(entry.entry_id for entry in room.waiting.entries) + tuple(
        participant.entry_id for participant in room.in_call
    )
    ended = _next(
        room,
        lifecycle=lifecycle,
        waiting=WaitingQueue(),
        in_call=(),
        ended_at=now,
        end_reason=reason,
    )
    return Transition(ended, (RoomEnded(room.id, reason, inside),))


def cancel(room: Room, now: datetime) -> Transition:
    if room.lifecycle is Lifecycle.CANCELLED:
        return Transition(room)
    if room.lifecycle is Lifecycle.ENDED:
        raise DomainError(ErrorCode.ROOM_ENDED)
    return _end(room, EndReason.CANCELLED, Lifecycle.CANCELLED, now)


def end(room: Room, actor: Actor, now: datetime) -> Transition:
    if not room.is_practitioner(actor):
        raise DomainError(ErrorCode.NOT_ALLOWED)
    if room.lifecycle is Lifecycle.ENDED:
        return Transition(room)
    if room.lifecycle is Lifecycle.CANCELLED:
        raise DomainError(ErrorCode.ROOM_CANCELLED)
    return _end(room, EndReason.ENDED, Lifecycle.ENDED, now)


def close_if_over(room: Room, now: datetime) -> Transition:
    """End a room whose join window has passed, so nobody lingers in it."""
    if room.lifecycle in (Lifecycle.ENDED, Lifecycle.CANCELLED) or now < room.window.closes_at:
        return Transition(room)
    return _end(room, EndReason.CLOSED, Lifecycle.ENDED, now)


def check_in(room: Room, actor: Actor, entry_id: str, now: datetime) -> Transition:
    """A patient enters the waiting room."""
    if not room.is_patient(actor):
        raise DomainError(ErrorCode.NOT_ALLOWED)
    room.check_joinable(now)
    if entry_id in room.denied:
        raise DomainError(ErrorCode.NOT_ALLOWED, "The practitioner could not admit you.")
    if entry_id in room.waiting or room.participant(entry_id) is not None:
        raise DomainError(ErrorCode.ALREADY_PRESENT)
    name = room.appointment.patient.name
    waiting = room.waiting.check_in(WaitingEntry(entry_id, actor.person_id, name, now))
    return Transition(_next(room, waiting=waiting), (PatientCheckedIn(room.id, entry_id),))


def join_as_practitioner(room: Room, actor: Actor, entry_id: str, now: datetime) -> Transition:
    """The practitioner opens the consultation; they never wait."""
    if not room.is_practitioner(actor):
        raise DomainError(ErrorCode.NOT_ALLOWED)
    room.check_joinable(now)
    if room.participant(entry_id) is not None:
        raise DomainError(ErrorCode.ALREADY_PRESENT)
    name = room.appointment.practitioner.name
    participant = Participant(entry_id, actor.person_id, name, Role.PRACTITIONER, now)
    return Transition(
        _next(room, in_call=(*room.in_call, participant)),
        (PractitionerJoined(room.id, entry_id),),
    )


def admit(room: Room, actor: Actor, entry_id: str, now: datetime) -> Transition:
    if not room.is_practitioner(actor):
        raise DomainError(ErrorCode.NOT_ALLOWED)
    room.check_joinable(now)
    if entry_id not in room.waiting:
        raise DomainError(ErrorCode.NOT_WAITING)
    waiting, entry = room.waiting.remove(entry_id)
    participant = Participant(entry_id, entry.person_id, entry.name, Role.PATIENT, now)
    events: list[RoomEvent] = [PatientAdmitted(room.id, entry_id)]
    changes: dict[str, object] = {"waiting": waiting, "in_call": (*room.in_call, participant)}
    if room.lifecycle is Lifecycle.SCHEDULED:
        changes["lifecycle"] = Lifecycle.IN_CONSULTATION
        changes["started_at"] = now
        events.append(ConsultationStarted(room.id))
    return Transition(_next(room, **changes), tuple(events))


def deny(room: Room, actor: Actor, entry_id: str, now: datetime) -> Transition:
    if not room.is_practitioner(actor):
        raise DomainError(ErrorCode.NOT_ALLOWED)
    if entry_id not in room.waiting:
        raise DomainError(ErrorCode.NOT_WAITING)
    waiting, _ = room.waiting.remove(entry_id)
    return Transition(
        _next(room, waiting=waiting, denied=room.denied | {entry_id}),
        (PatientDenied(room.id, entry_id),),
    )


def leave(room: Room, entry_id: str, now: datetime) -> Transition:
    """Someone leaves the waiting room or the call; leaving twice changes nothing."""
    if entry_id in room.waiting:
        waiting, _ = room.waiting.remove(entry_id)
        return Transition(
            _next(room, waiting=waiting), (ParticipantLeft(room.id, entry_id, was_waiting=True),)
        )
    if room.participant(entry_id) is not None:
        in_call = tuple(p for p in room.in_call if p.entry_id != entry_id)
        return Transition(
            _next(room, in_call=in_call), (ParticipantLeft(room.id, entry_id, was_waiting=False),)
        )
    return Transition(room)
