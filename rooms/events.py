"""What a transition changed, for transports to tell the people concerned."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from rooms.roles import Role


class EndReason(StrEnum):
    ENDED = "ended"
    CANCELLED = "cancelled"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class RoomCreated:
    room_id: str


@dataclass(frozen=True, slots=True)
class RoomRescheduled:
    room_id: str


@dataclass(frozen=True, slots=True)
class PatientCheckedIn:
    """A patient, or a guest (`role`), entered the waiting room."""

    room_id: str
    entry_id: str
    role: Role = Role.PATIENT


@dataclass(frozen=True, slots=True)
class GuestInvited:
    room_id: str
    guest_id: str


@dataclass(frozen=True, slots=True)
class PractitionerJoined:
    room_id: str
    entry_id: str


@dataclass(frozen=True, slots=True)
class PatientAdmitted:
    room_id: str
    entry_id: str
    role: Role = Role.PATIENT


@dataclass(frozen=True, slots=True)
class PatientDenied:
    room_id: str
    entry_id: str
    # Shown to the denied person only (kept with the room's denial until re-opened);
    # never logged or sent to the booking system.
    reason: str | None = None
    role: Role = Role.PATIENT


@dataclass(frozen=True, slots=True)
class PatientUndenied:
    """The practitioner undid a denial; `restored`: the person is back at their place."""

    room_id: str
    entry_id: str
    restored: bool
    role: Role = Role.PATIENT


@dataclass(frozen=True, slots=True)
class RoomReopened:
    """The booking system re-opened the appointment: those denied (`entry_ids`) may come back."""

    room_id: str
    entry_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PatientReturnedToWaiting:
    room_id: str
    entry_id: str


@dataclass(frozen=True, slots=True)
class ParticipantLeft:
    room_id: str
    entry_id: str
    was_waiting: bool
    role: Role = Role.PATIENT


@dataclass(frozen=True, slots=True)
class ParticipantAway:
    """A patient's or guest's connection dropped; their place is kept for a grace period."""

    room_id: str
    entry_id: str
    was_waiting: bool
    role: Role = Role.PATIENT


@dataclass(frozen=True, slots=True)
class ParticipantResumed:
    """A new connection took over an entry (a reload, a network come back)."""

    room_id: str
    entry_id: str
    in_call: bool
    role: Role = Role.PATIENT


@dataclass(frozen=True, slots=True)
class PatientNoShow:
    """The patient had not checked in a while after the start."""

    room_id: str


@dataclass(frozen=True, slots=True)
class ConsultationStarted:
    room_id: str


@dataclass(frozen=True, slots=True)
class RoomEnded:
    """The room will admit nobody again; `entry_ids` were still inside it."""

    room_id: str
    reason: EndReason
    entry_ids: tuple[str, ...]


RoomEvent = (
    RoomCreated
    | RoomRescheduled
    | PatientCheckedIn
    | GuestInvited
    | PractitionerJoined
    | PatientAdmitted
    | PatientDenied
    | PatientUndenied
    | RoomReopened
    | PatientReturnedToWaiting
    | ParticipantLeft
    | ParticipantAway
    | ParticipantResumed
    | ConsultationStarted
    | PatientNoShow
    | RoomEnded
)
