"""What a transition changed, for transports to tell the people concerned."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


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
    room_id: str
    entry_id: str


@dataclass(frozen=True, slots=True)
class PractitionerJoined:
    room_id: str
    entry_id: str


@dataclass(frozen=True, slots=True)
class PatientAdmitted:
    room_id: str
    entry_id: str


@dataclass(frozen=True, slots=True)
class PatientDenied:
    room_id: str
    entry_id: str


@dataclass(frozen=True, slots=True)
class ParticipantLeft:
    room_id: str
    entry_id: str
    was_waiting: bool


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
    | PractitionerJoined
    | PatientAdmitted
    | PatientDenied
    | ParticipantLeft
    | ConsultationStarted
    | RoomEnded
)
