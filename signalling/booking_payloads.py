"""The booking webhook's message schema (validated with pydantic)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter

Text = Annotated[str, Field(min_length=1, max_length=200, pattern=r"\S")]
# Machine ids (UUIDs, numbers, slugs, e-mail addresses): they end up in URL paths
# of the API, so no spaces, slashes or control characters.
ID_PATTERN = r"^[A-Za-z0-9._:@+=~-]{1,200}$"
Identifier = Annotated[str, Field(min_length=1, max_length=200, pattern=ID_PATTERN)]
# As people dial it: digits, spaces, +, dots, dashes and brackets.
Phone = Annotated[str, Field(min_length=3, max_length=40, pattern=r"^[0-9+().\s-]+$")]

# pydantic also takes "2026-01-01 10:00Z" or a Unix number; the contract says RFC 3339,
# and an integrator is better told at once than surprised by a lenient parse.
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,6})?([Zz]|[+-]\d{2}:\d{2})$")


def _rfc3339(value: Any) -> Any:
    if not isinstance(value, str) or not RFC3339.match(value):
        raise ValueError("must be an RFC 3339 date-time with an offset, e.g. 2026-05-04T09:30:00Z")
    try:
        return datetime.fromisoformat(value.upper())
    except ValueError:
        raise ValueError("is not a valid date-time (check the day and hour)") from None


Rfc3339 = Annotated[AwareDatetime, BeforeValidator(_rfc3339)]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True, str_strip_whitespace=True)


class PersonIn(_Strict):
    id: Identifier
    name: Text


class PracticeIn(_Strict):
    name: Text
    phone: Phone | None = None


class CreatedData(_Strict):
    appointment_id: Identifier
    practitioner: PersonIn
    patient: PersonIn
    starts_at: Rfc3339
    ends_at: Rfc3339
    # Optional: the web client's language for this appointment, and the practice's contact.
    locale: Literal["fr", "en"] | None = None
    practice: PracticeIn | None = None


class RescheduledData(_Strict):
    appointment_id: Identifier
    starts_at: Rfc3339
    ends_at: Rfc3339


class CancelledData(_Strict):
    appointment_id: Identifier


class AppointmentCreated(_Strict):
    type: Literal["appointment.created"]
    data: CreatedData


class AppointmentRescheduled(_Strict):
    type: Literal["appointment.rescheduled"]
    data: RescheduledData


class AppointmentCancelled(_Strict):
    type: Literal["appointment.cancelled"]
    data: CancelledData


BookingMessage = Annotated[
    AppointmentCreated | AppointmentRescheduled | AppointmentCancelled,
    Field(discriminator="type"),
]
booking_message = TypeAdapter[AppointmentCreated | AppointmentRescheduled | AppointmentCancelled](
    BookingMessage
)
