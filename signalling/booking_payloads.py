"""The booking webhook's message schema (validated with pydantic)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter

Text = Annotated[str, Field(min_length=1, max_length=200, pattern=r"\S")]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True, str_strip_whitespace=True)


class PersonIn(_Strict):
    id: Text
    name: Text


class CreatedData(_Strict):
    appointment_id: Text
    practitioner: PersonIn
    patient: PersonIn
    starts_at: AwareDatetime
    ends_at: AwareDatetime


class RescheduledData(_Strict):
    appointment_id: Text
    starts_at: AwareDatetime
    ends_at: AwareDatetime


class CancelledData(_Strict):
    appointment_id: Text


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
