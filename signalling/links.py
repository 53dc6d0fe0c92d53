"""Join links: `{public_url}/c/{room_id}#{token}`, the token kept out of logs by the fragment."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from rooms.appointment import Person
from rooms.roles import Actor, Role
from rooms.room import Room
from signalling import tokens
from signalling.config import Settings
from waiting_room.practitioner_day import DAY_SPAN


def join_link(settings: Settings, room: Room, role: Role, guest: Person | None = None) -> str:
    if role is Role.GUEST:
        if guest is None:
            raise ValueError("a guest link names its guest")
        person = guest
    elif role is Role.PRACTITIONER:
        person = room.appointment.practitioner
    else:
        person = room.appointment.patient
    token = tokens.mint(
        settings.token_secret,
        room_id=room.id,
        person_id=person.id,
        role=role,
        not_before=room.window.opens_at,
        expires_at=room.window.closes_at,
    )
    return f"{settings.public_url}/c/{room.id}#{token}"


def room_document(settings: Settings, room: Room, now_status: str) -> dict[str, object]:
    """What the booking system gets back about a room."""
    return {
        "room_id": room.id,
        "appointment_id": room.appointment.id,
        "status": now_status,
        "starts_at": room.appointment.starts_at.isoformat(),
        "ends_at": room.appointment.ends_at.isoformat(),
        "opens_at": room.window.opens_at.isoformat(),
        "closes_at": room.window.closes_at.isoformat(),
        "links": {
            "patient": join_link(settings, room, Role.PATIENT),
            "practitioner": join_link(settings, room, Role.PRACTITIONER),
            "desk": appointment_desk_link(settings, room),
        },
    }


def desk_link(settings: Settings, token: str) -> str:
    return f"{settings.public_url}/d#{token}"


def appointment_desk_link(settings: Settings, room: Room) -> str:
    """The practitioner's desk for the day of this appointment (its start, 14 hours either side).

    The same span as the desk's rows (waiting_room.practitioner_day.DAY_SPAN):
    opened any time that day, it lists this appointment among the others.
    """
    starts_at = room.appointment.starts_at
    token = tokens.mint_desk(
        settings.token_secret,
        practitioner_id=room.appointment.practitioner.id,
        not_before=starts_at - DAY_SPAN,
        expires_at=starts_at + DAY_SPAN,
    )
    return desk_link(settings, token)


# As long as a desk link from the API: a working day.
DESK_TOKEN_LIFETIME = timedelta(hours=14)


def session_extras(settings: Settings, room: Room, actor: Actor, now: datetime) -> dict[str, Any]:
    """What the day screen adds to `session`: the desk token (practitioners) and the grace."""
    extras: dict[str, Any] = {
        "resume_grace_seconds": int(settings.resume_grace.total_seconds()),
    }
    if actor.role is Role.PRACTITIONER:
        extras["desk_token"] = tokens.mint_desk(
            settings.token_secret,
            practitioner_id=room.appointment.practitioner.id,
            not_before=now - timedelta(minutes=1),
            expires_at=now + DESK_TOKEN_LIFETIME,
        )
    return extras
