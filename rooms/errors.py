"""Domain errors as named values; transports map them to statuses once, at the edge."""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    INVALID_APPOINTMENT = "invalid_appointment"
    NOT_ALLOWED = "not_allowed"
    NOT_WAITING = "not_waiting"
    NOT_IN_CALL = "not_in_call"
    NOT_DENIED = "not_denied"
    ALREADY_PRESENT = "already_present"
    ROOM_NOT_YET_OPEN = "room_not_yet_open"
    ROOM_CLOSED = "room_closed"
    ROOM_ENDED = "room_ended"
    ROOM_CANCELLED = "room_cancelled"
    ROOM_NOT_FOUND = "room_not_found"
    APPOINTMENT_NOT_FOUND = "appointment_not_found"
    INVALID_REQUEST = "invalid_request"


_MESSAGES: dict[ErrorCode, str] = {
    ErrorCode.INVALID_APPOINTMENT: "The appointment is not valid.",
    ErrorCode.NOT_ALLOWED: "Your role in this room does not allow this action.",
    ErrorCode.NOT_WAITING: "This person is not in the waiting room.",
    ErrorCode.NOT_IN_CALL: "You are not in the consultation.",
    ErrorCode.NOT_DENIED: "This person was not declined.",
    ErrorCode.ALREADY_PRESENT: "You are already in this room.",
    ErrorCode.ROOM_NOT_YET_OPEN: "The consultation room is not open yet.",
    ErrorCode.ROOM_CLOSED: "The consultation room is closed.",
    ErrorCode.ROOM_ENDED: "The consultation has ended.",
    ErrorCode.ROOM_CANCELLED: "The appointment was cancelled.",
    ErrorCode.ROOM_NOT_FOUND: "No such consultation room.",
    ErrorCode.APPOINTMENT_NOT_FOUND: "No such appointment.",
    ErrorCode.INVALID_REQUEST: "The request is not valid.",
}


class DomainError(Exception):
    """A rule refused a transition; the state it was given is unchanged."""

    def __init__(self, code: ErrorCode, message: str | None = None) -> None:
        self.code = code
        self.message = message or _MESSAGES[code]
        super().__init__(f"{code}: {self.message}")
