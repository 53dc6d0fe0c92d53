"""A ready appointment for `teleconsult serve` with no booking system attached."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from rooms.appointment import Appointment, Person
from rooms.lifecycle import create_room
from rooms.roles import Role
from rooms.room import Room
from signalling import tokens
from signalling.config import Settings
from signalling.links import join_link
from signalling.room_hub import RoomHub


async def create_demo_room(hub: RoomHub, settings: Settings, now: datetime) -> Room:
    appointment = Appointment(
        id=f"demo-{secrets.token_hex(4)}",
        practitioner=Person("demo-practitioner", "Dr Demo"),
        patient=Person("demo-patient", "Demo Patient"),
        starts_at=now + timedelta(minutes=5),
        ends_at=now + timedelta(minutes=35),
    )
    room, _ = await hub.create(
        create_room(
            tokens.room_id_for(settings.token_secret, appointment.id),
            appointment,
            settings.join_window,
        )
    )
    return room


def demo_banner(settings: Settings, room: Room) -> str:
    return "\n".join(
        [
            "",
            "Demo appointment ready (the room is open now):",
            f"  patient link:      {join_link(settings, room, Role.PATIENT)}",
            f"  practitioner link: {join_link(settings, room, Role.PRACTITIONER)}",
            "Open each link in its own browser window.",
            "",
        ]
    )
