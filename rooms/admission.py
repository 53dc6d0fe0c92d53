"""Entering a room: guests invited, check-in, the practitioner joining, admit, deny, return."""

from __future__ import annotations

from datetime import datetime

from rooms.appointment import Person
from rooms.errors import DomainError, ErrorCode
from rooms.events import (
    ConsultationStarted,
    GuestInvited,
    PatientAdmitted,
    PatientCheckedIn,
    PatientDenied,
    PatientReturnedToWaiting,
    PractitionerJoined,
    RoomEvent,
)
from rooms.resume_secret import is_resume_hash
from rooms.roles import Actor, Role
from rooms.room import Denial, Lifecycle, Participant, Room, Transition, changed
from rooms.waiting_queue import WaitingEntry

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
    return Transition(
        changed(room, guests=(*room.guests, guest)), (GuestInvited(room.id, guest.id),)
    )


def check_in(
    room: Room, actor: Actor, entry_id: str, now: datetime, resume_hash: str | None = None
) -> Transition:
    """A patient or an invited guest enters the waiting room.

    `resume_hash` (see `rooms.resume_secret`) lets the same device take the
    entry back after a reload or a network loss.
    """
    person = room.visitor(actor)
    if person is None:
        raise DomainError(ErrorCode.NOT_ALLOWED)
    room.check_joinable(now)
    if entry_id in room.denied or room.denial_of(actor) is not None:
        raise DomainError(ErrorCode.NOT_ALLOWED, "The practitioner could not admit you.")
    mine = room.entry_of(actor)
    if mine is not None and mine.entry_id == entry_id and entry_id in room.waiting:
        # Checking in again (a reconnection, a double click) is no new check-in: nothing changes,
        # so nobody is told twice (`consultation.patient_checked_in` once per arrival).
        return Transition(room)
    if entry_id in room.waiting or room.participant(entry_id) is not None:
        raise DomainError(ErrorCode.ALREADY_PRESENT)
    if mine is not None:
        # One entry per person: another connection of theirs holds it (it takes over on connect).
        raise DomainError(ErrorCode.ALREADY_PRESENT, "This consultation is open in another window.")
    if resume_hash is not None and not is_resume_hash(resume_hash):
        raise DomainError(ErrorCode.INVALID_REQUEST, "The resume key is not valid.")
    entry = WaitingEntry(entry_id, person.id, person.name, now, actor.role, resume_hash)
    waiting = room.waiting.check_in(entry)
    first = room.first_check_in_at
    if first is None and actor.role is Role.PATIENT:
        first = now
    return Transition(
        changed(room, waiting=waiting, first_check_in_at=first),
        (PatientCheckedIn(room.id, entry_id, actor.role),),
    )


def join_as_practitioner(room: Room, actor: Actor, entry_id: str, now: datetime) -> Transition:
    """The practitioner opens the consultation; they never wait."""
    if not room.is_practitioner(actor):
        raise DomainError(ErrorCode.NOT_ALLOWED)
    room.check_joinable(now)
    mine = room.entry_of(actor)
    if mine is not None and mine.entry_id == entry_id:
        # Already in: this connection took the call over (`presence.take_over`).
        return Transition(room)
    if mine is not None or room.participant(entry_id) is not None:
        # One practitioner in the call: a second device takes over on connect, never joins beside.
        raise DomainError(ErrorCode.ALREADY_PRESENT)
    name = room.appointment.practitioner.name
    participant = Participant(entry_id, actor.person_id, name, Role.PRACTITIONER, now)
    return Transition(
        changed(room, in_call=(*room.in_call, participant)),
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
    return Transition(changed(room, **changes), tuple(events))


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
    position = room.waiting.position(entry_id) - 1
    waiting, entry = room.waiting.remove(entry_id)
    denial = Denial(entry.person_id, entry.role, entry_id, reason, now, entry, position)
    # The person, not the connection: a new tab, device or resume secret finds them denied.
    denials = tuple(
        d for d in room.denials if (d.person_id, d.role) != (entry.person_id, entry.role)
    )
    return Transition(
        changed(room, waiting=waiting, denied=room.denied | {entry_id}, denials=(*denials, denial)),
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
        changed(room, in_call=in_call, waiting=room.waiting.put_first(entry)),
        (PatientReturnedToWaiting(room.id, entry_id),),
    )
