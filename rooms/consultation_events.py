"""What the booking system is told about a consultation (pure: no I/O, no clock).

Room events are internal and carry connection ids; these are the integrator's
vocabulary. They carry no names and no connection ids: the booking system
already knows who the appointment is for, and needs only what happened when.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from rooms.events import (
    ConsultationStarted,
    EndReason,
    ParticipantLeft,
    PatientAdmitted,
    PatientCheckedIn,
    PatientDenied,
    PatientNoShow,
    RoomEnded,
)
from rooms.roles import Role
from rooms.room import Transition


class ConsultationEventType(StrEnum):
    PATIENT_CHECKED_IN = "consultation.patient_checked_in"
    PATIENT_ADMITTED = "consultation.patient_admitted"
    PATIENT_DENIED = "consultation.patient_denied"
    STARTED = "consultation.started"
    ENDED = "consultation.ended"
    NO_SHOW = "consultation.no_show"
    PARTICIPANT_LEFT = "consultation.participant_left"


@dataclass(frozen=True, slots=True)
class ConsultationEvent:
    """An event before the log gives it its id."""

    type: ConsultationEventType
    room_id: str
    appointment_id: str
    occurred_at: datetime
    details: tuple[tuple[str, Any], ...] = ()

    def data(self) -> dict[str, Any]:
        return {
            "appointment_id": self.appointment_id,
            "room_id": self.room_id,
            "occurred_at": self.occurred_at.isoformat(),
            **dict(self.details),
        }


def consultation_events(transition: Transition, now: datetime) -> list[ConsultationEvent]:
    room = transition.room
    out: list[ConsultationEvent] = []

    def add(kind: ConsultationEventType, **details: Any) -> None:
        out.append(
            ConsultationEvent(
                kind, room.id, room.appointment.id, now, tuple(sorted(details.items()))
            )
        )

    for event in transition.events:
        match event:
            # Guests come and go without a booking-system event: the booking is the patient's.
            case PatientCheckedIn(role=Role.PATIENT):
                add(ConsultationEventType.PATIENT_CHECKED_IN)
            case PatientAdmitted(role=Role.PATIENT):
                add(ConsultationEventType.PATIENT_ADMITTED)
            case PatientDenied(role=Role.PATIENT):
                add(ConsultationEventType.PATIENT_DENIED)
            case ConsultationStarted():
                add(ConsultationEventType.STARTED)
            case PatientNoShow():
                add(ConsultationEventType.NO_SHOW)
            case ParticipantLeft(was_waiting=was_waiting, role=role):
                add(
                    ConsultationEventType.PARTICIPANT_LEFT,
                    role=role.value,
                    was_waiting=was_waiting,
                )
            case RoomEnded(reason=reason) if reason is not EndReason.CANCELLED:
                # A cancellation came from the booking system itself: nothing to tell it.
                started = room.started_at
                duration = 0 if started is None else (now - started).total_seconds()
                add(
                    ConsultationEventType.ENDED,
                    reason=reason.value,
                    started_at=None if started is None else started.isoformat(),
                    duration_seconds=round(max(duration, 0.0)),
                )
    return out
