"""Join links: `{public_url}/c/{room_id}#{token}`, the token kept out of logs by the fragment."""

from __future__ import annotations

from rooms.appointment import Person
from rooms.roles import Role
from rooms.room import Room
from signalling import tokens
from signalling.config import Settings


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
        },
    }
