from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    PRACTITIONER = "practitioner"
    PATIENT = "patient"
    # Invited by the practitioner or the booking system: an interpreter, a relative.
    GUEST = "guest"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is acting, as proven by their join token."""

    person_id: str
    role: Role
