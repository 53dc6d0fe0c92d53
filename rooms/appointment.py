"""Appointments as the booking system describes them, and their join window."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from rooms.errors import DomainError, ErrorCode

MAX_NAME_LENGTH = 200
MAX_ID_LENGTH = 200
MAX_PHONE_LENGTH = 40
# The languages of the web client; the booking system may set one per appointment.
LOCALES = ("fr", "en")


@dataclass(frozen=True, slots=True)
class Person:
    """Someone named by the booking system; `id` is the booking system's own id."""

    id: str
    name: str

    def __post_init__(self) -> None:
        if not self.id.strip() or len(self.id) > MAX_ID_LENGTH:
            raise DomainError(ErrorCode.INVALID_APPOINTMENT, "A person needs an id.")
        if not self.name.strip() or len(self.name) > MAX_NAME_LENGTH:
            raise DomainError(ErrorCode.INVALID_APPOINTMENT, "A person needs a name.")


@dataclass(frozen=True, slots=True)
class Practice:
    """Who people contact about the appointment: shown on every screen of the web client."""

    name: str
    phone: str | None = None

    def __post_init__(self) -> None:
        if not self.name.strip() or len(self.name) > MAX_NAME_LENGTH:
            raise DomainError(ErrorCode.INVALID_APPOINTMENT, "A practice needs a name.")
        if self.phone is not None and (
            not self.phone.strip() or len(self.phone) > MAX_PHONE_LENGTH
        ):
            raise DomainError(ErrorCode.INVALID_APPOINTMENT, "The practice's phone is not valid.")


@dataclass(frozen=True, slots=True)
class Appointment:
    id: str
    practitioner: Person
    patient: Person
    starts_at: datetime
    ends_at: datetime
    # Optional, set by the booking system: the page's language and the practice.
    locale: str | None = None
    practice: Practice | None = None

    def __post_init__(self) -> None:
        if not self.id.strip() or len(self.id) > MAX_ID_LENGTH:
            raise DomainError(ErrorCode.INVALID_APPOINTMENT, "The appointment needs an id.")
        if self.locale is not None and self.locale not in LOCALES:
            raise DomainError(ErrorCode.INVALID_APPOINTMENT, "The locale must be fr or en.")
        check_slot(self.starts_at, self.ends_at)


# Appointments outside these years are a sender's mistake, and their join window,
# retention and link expiry would not fit in a datetime.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def check_slot(starts_at: datetime, ends_at: datetime) -> None:
    if starts_at.tzinfo is None or ends_at.tzinfo is None:
        raise DomainError(
            ErrorCode.INVALID_APPOINTMENT, "Times must carry a UTC offset (RFC 3339)."
        )
    try:
        in_range = starts_at >= EARLIEST and ends_at <= LATEST
    except OverflowError:
        # An offset that pushes year 1 or 9999 past what a datetime holds.
        in_range = False
    if not in_range:
        raise DomainError(
            ErrorCode.INVALID_APPOINTMENT, "The appointment's times are out of range."
        )
    if ends_at <= starts_at:
        raise DomainError(ErrorCode.INVALID_APPOINTMENT, "The appointment ends before it starts.")
    if ends_at - starts_at > timedelta(hours=12):
        raise DomainError(ErrorCode.INVALID_APPOINTMENT, "An appointment lasts at most 12 hours.")


@dataclass(frozen=True, slots=True)
class JoinWindowPolicy:
    """How long before the start the room opens and after the end it closes."""

    opens_before: timedelta = timedelta(minutes=15)
    closes_after: timedelta = timedelta(minutes=60)

    def __post_init__(self) -> None:
        if self.opens_before < timedelta(0) or self.closes_after < timedelta(0):
            raise ValueError("join window margins cannot be negative")


@dataclass(frozen=True, slots=True)
class JoinWindow:
    opens_at: datetime
    closes_at: datetime

    @classmethod
    def for_slot(
        cls, starts_at: datetime, ends_at: datetime, policy: JoinWindowPolicy
    ) -> JoinWindow:
        return cls(starts_at - policy.opens_before, ends_at + policy.closes_after)

    def contains(self, now: datetime) -> bool:
        return self.opens_at <= now < self.closes_at
