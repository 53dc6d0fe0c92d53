"""A consultation room and the transitions that move it through its life.

Every transition takes a room and returns a `Transition` (the new room and
the events it caused) or raises `DomainError` leaving the given room as it
was. Nothing here reads a clock: `now` is always passed in.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

from rooms.appointment import Appointment, JoinWindow, JoinWindowPolicy, Person, check_slot
from rooms.errors import DomainError, ErrorCode
from rooms.events import (
    ConsultationStarted,
    EndReason,
    GuestInvited,
    ParticipantAway,
    ParticipantLeft,
    ParticipantResumed,
    PatientAdmitted,
    PatientCheckedIn,
    PatientDenied,
    PatientNoShow,
    PatientReturnedToWaiting,
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
    # As on WaitingEntry: kept through admission and return to the waiting room.
    resume_hash: str | None = None
    away_since: datetime | None = None
    connection: int = 0


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


def end_by_integration(room: Room, now: datetime) -> Transition:
    """The booking system (through the API) ends the consultation."""
    if room.lifecycle is Lifecycle.ENDED:
        return Transition(room)
    if room.lifecycle is Lifecycle.CANCELLED:
        raise DomainError(ErrorCode.ROOM_CANCELLED)
    return _end(room, EndReason.ENDED, Lifecycle.ENDED, now)


def mark_no_show(room: Room, now: datetime, after: timedelta) -> Transition:
    """Record that the patient did not come; the room stays open in case they still do."""
    if (
        room.lifecycle is not Lifecycle.SCHEDULED
        or room.first_check_in_at is not None
        or room.no_show_at is not None
        or now < room.appointment.starts_at + after
        or now >= room.window.closes_at
    ):
        return Transition(room)
    return Transition(_next(room, no_show_at=now), (PatientNoShow(room.id),))


MAX_GUESTS = 4


def invite_guest(room: Room, guest: Person, now: datetime) -> Transition:
    """Someone else may join (interpreter, relative); they wait and are admitted on their own."""
    if room.lifecycle is Lifecycle.CANCELLED:
        raise DomainError(ErrorCode.ROOM_CANCELLED)
    if room.lifecycle is Lifecycle.ENDED:
        raise DomainError(ErrorCode.ROOM_ENDED)
    if now >= room.window.closes_at:
        raise DomainError(ErrorCode.ROOM_CLOSED)
    if guest.id in (room.appointment.patient.id, room.appointment.practitioner.id) or room.guest(
        guest.id
    ):
        raise DomainError(ErrorCode.ALREADY_PRESENT, "This person is already invited.")
    if len(room.guests) >= MAX_GUESTS:
        raise DomainError(
            ErrorCode.INVALID_REQUEST, f"A consultation has at most {MAX_GUESTS} guests."
        )
    return Transition(_next(room, guests=(*room.guests, guest)), (GuestInvited(room.id, guest.id),))


def check_in(
    room: Room, actor: Actor, entry_id: str, now: datetime, resume_hash: str | None = None
) -> Transition:
    """A patient or an invited guest enters the waiting room.

    `resume_hash` (see `hash_resume_secret`) lets the same device take the
    entry back after a reload or a network loss.
    """
    person = room.visitor(actor)
    if person is None:
        raise DomainError(ErrorCode.NOT_ALLOWED)
    room.check_joinable(now)
    if entry_id in room.denied:
        raise DomainError(ErrorCode.NOT_ALLOWED, "The practitioner could not admit you.")
    if entry_id in room.waiting or room.participant(entry_id) is not None:
        raise DomainError(ErrorCode.ALREADY_PRESENT)
    if resume_hash is not None and not _is_resume_hash(resume_hash):
        raise DomainError(ErrorCode.INVALID_REQUEST, "The resume key is not valid.")
    entry = WaitingEntry(entry_id, person.id, person.name, now, actor.role, resume_hash)
    waiting = room.waiting.check_in(entry)
    first = room.first_check_in_at
    if first is None and actor.role is Role.PATIENT:
        first = now
    return Transition(
        _next(room, waiting=waiting, first_check_in_at=first),
        (PatientCheckedIn(room.id, entry_id, actor.role),),
    )


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
    participant = Participant(
        entry_id,
        entry.person_id,
        entry.name,
        entry.role,
        now,
        entry.resume_hash,
        entry.away_since,
        entry.connection,
    )
    events: list[RoomEvent] = [PatientAdmitted(room.id, entry_id, entry.role)]
    changes: dict[str, object] = {"waiting": waiting, "in_call": (*room.in_call, participant)}
    if room.lifecycle is Lifecycle.SCHEDULED:
        changes["lifecycle"] = Lifecycle.IN_CONSULTATION
        changes["started_at"] = now
        events.append(ConsultationStarted(room.id))
    return Transition(_next(room, **changes), tuple(events))


MAX_REASON_LENGTH = 300


def deny(
    room: Room, actor: Actor, entry_id: str, now: datetime, reason: str | None = None
) -> Transition:
    if not room.is_practitioner(actor):
        raise DomainError(ErrorCode.NOT_ALLOWED)
    if entry_id not in room.waiting:
        raise DomainError(ErrorCode.NOT_WAITING)
    if reason is not None:
        reason = reason.strip() or None
        if reason is not None and len(reason) > MAX_REASON_LENGTH:
            raise DomainError(
                ErrorCode.INVALID_REQUEST,
                f"The reason must be at most {MAX_REASON_LENGTH} characters.",
            )
    waiting, entry = room.waiting.remove(entry_id)
    return Transition(
        _next(room, waiting=waiting, denied=room.denied | {entry_id}),
        (PatientDenied(room.id, entry_id, reason, entry.role),),
    )


def return_to_waiting(room: Room, actor: Actor, entry_id: str, now: datetime) -> Transition:
    """The practitioner sends an admitted patient back to the head of the waiting room."""
    if not room.is_practitioner(actor):
        raise DomainError(ErrorCode.NOT_ALLOWED)
    room.check_joinable(now)
    participant = room.participant(entry_id)
    if participant is None or participant.role is Role.PRACTITIONER:
        raise DomainError(ErrorCode.NOT_IN_CALL, "This person is not in the call.")
    entry = WaitingEntry(
        entry_id,
        participant.person_id,
        participant.name,
        now,
        participant.role,
        participant.resume_hash,
        participant.away_since,
        participant.connection,
    )
    in_call = tuple(p for p in room.in_call if p.entry_id != entry_id)
    return Transition(
        _next(room, in_call=in_call, waiting=room.waiting.put_first(entry)),
        (PatientReturnedToWaiting(room.id, entry_id),),
    )


def leave(room: Room, entry_id: str, now: datetime) -> Transition:
    """Someone leaves the waiting room or the call; leaving twice changes nothing."""
    if entry_id in room.waiting:
        waiting, entry = room.waiting.remove(entry_id)
        return Transition(
            _next(room, waiting=waiting),
            (ParticipantLeft(room.id, entry_id, was_waiting=True, role=entry.role),),
        )
    leaving = room.participant(entry_id)
    if leaving is not None:
        role = leaving.role
        in_call = tuple(p for p in room.in_call if p.entry_id != entry_id)
        return Transition(
            _next(room, in_call=in_call),
            (ParticipantLeft(room.id, entry_id, was_waiting=False, role=role),),
        )
    return Transition(room)


# ------------------------------------------------------------------ resume
#
# A patient's or guest's device gets a random secret when it connects and
# keeps it (per browser tab). When its connection drops, its entry (waiting or
# in the call) is marked away instead of removed; a new connection presenting
# the secret within the grace period takes the entry over. Only a SHA-256 of
# the secret is stored: the secret is 256 random bits, so a plain hash is as
# good as a slow one, and whoever reads the store cannot take a place.

RESUME_HASH_LENGTH = 64  # hex SHA-256


def hash_resume_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _is_resume_hash(value: str) -> bool:
    return len(value) == RESUME_HASH_LENGTH and all(c in "0123456789abcdef" for c in value)


def _matches(stored: str | None, presented: str) -> bool:
    # Constant time: a timing difference must not reveal how much of a hash matched.
    return stored is not None and hmac.compare_digest(stored.encode(), presented.encode())


def step_away(room: Room, entry_id: str, connection: int, now: datetime) -> Transition:
    """A connection dropped: keep a resumable entry's place, remove any other at once.

    `connection` is the takeover count the dropping connection held; if the
    entry has been taken over since, this connection no longer speaks for it.
    """
    entry = room.waiting.get(entry_id)
    if entry is not None:
        if entry.connection != connection:
            return Transition(room)
        if entry.resume_hash is None:
            return leave(room, entry_id, now)
        if entry.away_since is not None:
            return Transition(room)
        return Transition(
            _next(room, waiting=room.waiting.replace(replace(entry, away_since=now))),
            (ParticipantAway(room.id, entry_id, was_waiting=True, role=entry.role),),
        )
    participant = room.participant(entry_id)
    if participant is None or participant.connection != connection:
        return Transition(room)
    if participant.resume_hash is None:
        return leave(room, entry_id, now)
    if participant.away_since is not None:
        return Transition(room)
    away = replace(participant, away_since=now)
    return Transition(
        _next(room, in_call=tuple(away if p.entry_id == entry_id else p for p in room.in_call)),
        (ParticipantAway(room.id, entry_id, was_waiting=False, role=participant.role),),
    )


def leave_from(room: Room, entry_id: str, connection: int, now: datetime) -> Transition:
    """`leave` sent by one connection: one replaced by a newer connection changes nothing."""
    found = room.waiting.get(entry_id) or room.participant(entry_id)
    if found is not None and found.connection != connection:
        return Transition(room)
    return leave(room, entry_id, now)


def resume(room: Room, actor: Actor, presented_hash: str, now: datetime) -> Transition:
    """A new connection of the same person presents the secret: it takes the entry over.

    Raises NOT_WAITING when no entry of this person has that secret (never
    had, already expired, left or denied): the caller then starts afresh.
    """
    room.check_joinable(now)
    if not _is_resume_hash(presented_hash):
        raise DomainError(ErrorCode.INVALID_REQUEST, "The resume key is not valid.")
    for entry in room.waiting.entries:
        if (
            entry.person_id == actor.person_id
            and entry.role is actor.role
            and _matches(entry.resume_hash, presented_hash)
        ):
            back = replace(entry, away_since=None, connection=entry.connection + 1)
            return Transition(
                _next(room, waiting=room.waiting.replace(back)),
                (ParticipantResumed(room.id, entry.entry_id, in_call=False, role=entry.role),),
            )
    for participant in room.in_call:
        if (
            participant.person_id == actor.person_id
            and participant.role is actor.role
            and _matches(participant.resume_hash, presented_hash)
        ):
            back_in = replace(participant, away_since=None, connection=participant.connection + 1)
            in_call = tuple(back_in if p.entry_id == back_in.entry_id else p for p in room.in_call)
            return Transition(
                _next(room, in_call=in_call),
                (
                    ParticipantResumed(
                        room.id, participant.entry_id, in_call=True, role=participant.role
                    ),
                ),
            )
    raise DomainError(ErrorCode.NOT_WAITING, "There is no place to take back.")


def expire_away(room: Room, now: datetime, grace: timedelta) -> Transition:
    """Remove everyone away for `grace` or longer, exactly as if they had left."""
    gone = [e.entry_id for e in room.waiting.entries if _expired(e.away_since, now, grace)]
    gone += [p.entry_id for p in room.in_call if _expired(p.away_since, now, grace)]
    current = room
    events: list[RoomEvent] = []
    for entry_id in gone:
        step = leave(current, entry_id, now)
        current = step.room
        events.extend(step.events)
    if not events:
        return Transition(room)
    # One version step for one stored change.
    return Transition(replace(current, version=room.version + 1), tuple(events))


def _expired(away_since: datetime | None, now: datetime, grace: timedelta) -> bool:
    return away_since is not None and now - away_since >= grace


def next_expiry(room: Room, grace: timedelta) -> datetime | None:
    """When the first away entry of this room runs out of grace, if any."""
    times = [e.away_since for e in room.waiting.entries if e.away_since is not None]
    times += [p.away_since for p in room.in_call if p.away_since is not None]
    return min(times) + grace if times else None
