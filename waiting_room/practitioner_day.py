"""A practitioner's day across their rooms: the desk's rows and each patient's expected start.

Pure functions over rooms; the caller picks the rooms (one practitioner, one
day) and passes the clock. The practitioner sees patients in appointment
order; a consultation that runs over pushes everyone after it back, and a
patient who is not there does not hold the queue up.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from rooms.roles import Role
from rooms.room import Lifecycle, Room

# "The day" without knowing the practice's time zone: appointments starting
# within this much of now, either side.
DAY_SPAN = timedelta(hours=14)


def days_rooms(rooms: Iterable[Room], practitioner_id: str, now: datetime) -> list[Room]:
    return [
        room
        for room in rooms
        if room.appointment.practitioner.id == practitioner_id
        and abs(room.appointment.starts_at - now) <= DAY_SPAN
    ]


class DeskState(StrEnum):
    SCHEDULED = "scheduled"
    WAITING = "waiting"
    IN_CONSULTATION = "in_consultation"
    ENDED = "ended"
    NO_SHOW = "no_show"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class DeskRow:
    room_id: str
    appointment_id: str
    patient_name: str
    starts_at: datetime
    ends_at: datetime
    state: DeskState
    waiting_since: datetime | None
    expected_start: datetime | None


def desk_state(room: Room, now: datetime) -> DeskState:
    if room.lifecycle is Lifecycle.CANCELLED:
        return DeskState.CANCELLED
    if room.lifecycle is Lifecycle.ENDED or now >= room.window.closes_at:
        return DeskState.ENDED
    if any(p.role is Role.PATIENT for p in room.in_call):
        return DeskState.IN_CONSULTATION
    if any(entry.role is Role.PATIENT for entry in room.waiting.entries):
        return DeskState.WAITING
    if room.lifecycle is Lifecycle.IN_CONSULTATION:
        # The patient left the call but the practitioner has not ended it yet.
        return DeskState.IN_CONSULTATION
    if room.no_show_at is not None:
        return DeskState.NO_SHOW
    return DeskState.SCHEDULED


def _in_order(rooms: Iterable[Room]) -> list[Room]:
    return sorted(rooms, key=lambda room: (room.appointment.starts_at, room.id))


def expected_starts(rooms: Iterable[Room], now: datetime) -> dict[str, datetime]:
    """When each not-yet-started consultation should begin, given how late the day runs."""
    ordered = _in_order(rooms)
    states = {room.id: desk_state(room, now) for room in ordered}
    free_at = now
    for room in ordered:
        if states[room.id] is DeskState.IN_CONSULTATION:
            started = room.started_at or now
            planned = room.appointment.ends_at - room.appointment.starts_at
            # Overrunning: it ends "now" at the earliest, we cannot know more.
            free_at = max(free_at, started + planned)
    expected: dict[str, datetime] = {}
    for room in ordered:
        state = states[room.id]
        if state not in (DeskState.WAITING, DeskState.SCHEDULED):
            continue
        start = max(room.appointment.starts_at, free_at)
        expected[room.id] = start
        if state is DeskState.WAITING or room.appointment.starts_at > now:
            # A patient late for a slot already begun does not hold the waiting ones up;
            # later appointments are expected on time.
            free_at = start + (room.appointment.ends_at - room.appointment.starts_at)
    return expected


def desk_rows(rooms: Iterable[Room], now: datetime) -> list[DeskRow]:
    ordered = _in_order(rooms)
    expected = expected_starts(ordered, now)
    rows = []
    for room in ordered:
        patients = [e for e in room.waiting.entries if e.role is Role.PATIENT]
        first = patients[0] if patients else None
        rows.append(
            DeskRow(
                room_id=room.id,
                appointment_id=room.appointment.id,
                patient_name=room.appointment.patient.name,
                starts_at=room.appointment.starts_at,
                ends_at=room.appointment.ends_at,
                state=desk_state(room, now),
                waiting_since=None if first is None else first.checked_in_at,
                expected_start=expected.get(room.id),
            )
        )
    return rows


def queue_position(rooms: Iterable[Room], room_id: str, now: datetime) -> int | None:
    """1-based place of a room's waiting patient among the practitioner's waiting patients."""
    waiting = [room.id for room in _in_order(rooms) if desk_state(room, now) is DeskState.WAITING]
    return waiting.index(room_id) + 1 if room_id in waiting else None


@dataclass(frozen=True, slots=True)
class WaitingPlace:
    position: int
    expected_start: datetime | None


def waiting_places(rooms: Iterable[Room], now: datetime) -> dict[str, WaitingPlace]:
    """Where each waiting entry stands in the practitioner's queue, across their rooms.

    Appointment order first, then check-in order within a room (a guest, a
    second device); a patient learns only their own place.
    """
    ordered = _in_order(rooms)
    expected = expected_starts(ordered, now)
    places: dict[str, WaitingPlace] = {}
    for room in ordered:
        for entry in room.waiting.entries:
            places[entry.entry_id] = WaitingPlace(len(places) + 1, expected.get(room.id))
    return places
