"""Decisions that stick: undoing a denial, and the booking system re-opening an appointment.

A denial (`rooms.admission.deny`) is kept by person in `Room.denials`, so
whoever opens that link again, on any device or with a resume secret, is
told they were declined, with the practitioner's reason, until one of these
clears it.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from rooms.errors import DomainError, ErrorCode
from rooms.events import PatientUndenied, RoomReopened
from rooms.roles import Actor
from rooms.room import Room, Transition, changed


def undeny(room: Room, actor: Actor, entry_id: str, now: datetime) -> Transition:
    """The practitioner's undo: the person is back at the place they had, if they have none.

    The place is marked away: their page left on the denial and comes back on
    `undenied` (or on the link, within the grace) to take it over.
    """
    if not room.is_practitioner(actor):
        raise DomainError(ErrorCode.NOT_ALLOWED)
    room.check_joinable(now)
    denial = next((d for d in room.denials if d.entry_id == entry_id), None)
    if denial is None:
        raise DomainError(ErrorCode.NOT_DENIED)
    denials = tuple(d for d in room.denials if d is not denial)
    person = Actor(denial.person_id, denial.role)
    restored = room.entry_of(person) is None and entry_id not in room.waiting
    waiting = room.waiting
    if restored:
        waiting = waiting.insert(replace(denial.entry, away_since=now), denial.position)
    return Transition(
        changed(room, denials=denials, denied=room.denied - {entry_id}, waiting=waiting),
        (PatientUndenied(room.id, entry_id, restored, denial.role),),
    )


def reopen(room: Room, now: datetime) -> Transition:
    """The booking system re-opens the appointment: everyone denied may check in again.

    Nothing to clear changes nothing (a retried call); a room nobody can enter
    again cannot be re-opened.
    """
    try:
        room.check_joinable(now)
    except DomainError as exc:
        if exc.code is not ErrorCode.ROOM_NOT_YET_OPEN:
            raise
    if not room.denials and not room.denied:
        return Transition(room)
    entry_ids = tuple(sorted({d.entry_id for d in room.denials} | room.denied))
    return Transition(
        changed(room, denials=(), denied=frozenset()), (RoomReopened(room.id, entry_ids),)
    )
