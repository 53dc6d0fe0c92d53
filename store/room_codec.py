"""Rooms as versioned JSON for shared stores.

Written field by field rather than by reflection or pickle: a stored room is
data another node (maybe running a newer release) reads back, so the format
is explicit, versioned, and refuses what it does not know instead of guessing.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from rooms.appointment import Appointment, JoinWindow, Person, Practice
from rooms.events import EndReason
from rooms.roles import Role
from rooms.room import Denial, Lifecycle, Participant, Room
from rooms.waiting_queue import WaitingEntry, WaitingQueue

FORMAT_VERSION = 1


class RoomFormatError(ValueError):
    """A stored room is not in a format this release can read."""


def _time(value: datetime) -> str:
    return value.isoformat()


def _optional_str(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _parse_time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise RoomFormatError("a time must be an ISO 8601 string")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise RoomFormatError("a stored time lacks its UTC offset")
    return parsed


def _optional_time(value: Any) -> datetime | None:
    return None if value is None else _parse_time(value)


def _person(person: Person) -> dict[str, str]:
    return {"id": person.id, "name": person.name}


def _parse_person(data: dict[str, Any]) -> Person:
    return Person(id=data["id"], name=data["name"])


def _practice(practice: Practice | None) -> dict[str, Any] | None:
    return None if practice is None else {"name": practice.name, "phone": practice.phone}


def _parse_practice(data: Any) -> Practice | None:
    # Added within format 1: rooms stored before have none.
    if data is None:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        raise RoomFormatError("a practice must be {name, phone}")
    phone = data.get("phone")
    if phone is not None and not isinstance(phone, str):
        raise RoomFormatError("a practice's phone must be a string")
    return Practice(name=data["name"], phone=phone)


def _resume_fields(
    resume_hash: str | None, away_since: datetime | None, connection: int
) -> dict[str, Any]:
    # Only the hash of a resume secret is ever in a room, so only that is stored.
    return {
        "resume_hash": resume_hash,
        "away_since": _optional_str(away_since),
        "connection": connection,
    }


def _parse_resume_fields(data: dict[str, Any]) -> dict[str, Any]:
    # Added within format 1: entries stored before have none (not resumable, present).
    resume_hash = data.get("resume_hash")
    if resume_hash is not None and not isinstance(resume_hash, str):
        raise RoomFormatError("a resume hash must be a string")
    connection = data.get("connection", 0)
    if not isinstance(connection, int) or isinstance(connection, bool):
        raise RoomFormatError("a connection count must be an integer")
    return {
        "resume_hash": resume_hash,
        "away_since": _optional_time(data.get("away_since")),
        "connection": connection,
    }


def _entry(entry: WaitingEntry) -> dict[str, Any]:
    return {
        "entry_id": entry.entry_id,
        "person_id": entry.person_id,
        "name": entry.name,
        "checked_in_at": _time(entry.checked_in_at),
        "role": entry.role.value,
        **_resume_fields(entry.resume_hash, entry.away_since, entry.connection),
    }


def _parse_entry(entry: dict[str, Any]) -> WaitingEntry:
    return WaitingEntry(
        entry_id=entry["entry_id"],
        person_id=entry["person_id"],
        name=entry["name"],
        checked_in_at=_parse_time(entry["checked_in_at"]),
        role=Role(entry.get("role", Role.PATIENT.value)),
        **_parse_resume_fields(entry),
    )


def _denial(denial: Denial) -> dict[str, Any]:
    return {
        "person_id": denial.person_id,
        "role": denial.role.value,
        "entry_id": denial.entry_id,
        "reason": denial.reason,
        "denied_at": _time(denial.denied_at),
        "entry": _entry(denial.entry),
        "position": denial.position,
    }


def _parse_denial(data: Any) -> Denial:
    if not isinstance(data, dict):
        raise RoomFormatError("a denial must be an object")
    reason, position = data["reason"], data["position"]
    if reason is not None and not isinstance(reason, str):
        raise RoomFormatError("a denial's reason must be a string")
    if not isinstance(position, int) or isinstance(position, bool):
        raise RoomFormatError("a denial's position must be an integer")
    return Denial(
        person_id=data["person_id"],
        role=Role(data["role"]),
        entry_id=data["entry_id"],
        reason=reason,
        denied_at=_parse_time(data["denied_at"]),
        entry=_parse_entry(data["entry"]),
        position=position,
    )


def room_to_dict(room: Room) -> dict[str, Any]:
    appointment = room.appointment
    return {
        "format": FORMAT_VERSION,
        "id": room.id,
        "appointment": {
            "id": appointment.id,
            "practitioner": _person(appointment.practitioner),
            "patient": _person(appointment.patient),
            "starts_at": _time(appointment.starts_at),
            "ends_at": _time(appointment.ends_at),
            "locale": appointment.locale,
            "practice": _practice(appointment.practice),
        },
        "window": {
            "opens_at": _time(room.window.opens_at),
            "closes_at": _time(room.window.closes_at),
        },
        "lifecycle": room.lifecycle.value,
        "waiting": [_entry(entry) for entry in room.waiting.entries],
        "in_call": [
            {
                "entry_id": participant.entry_id,
                "person_id": participant.person_id,
                "name": participant.name,
                "role": participant.role.value,
                "joined_at": _time(participant.joined_at),
                **_resume_fields(
                    participant.resume_hash, participant.away_since, participant.connection
                ),
            }
            for participant in room.in_call
        ],
        "denied": sorted(room.denied),
        "denials": [_denial(denial) for denial in room.denials],
        "guests": [_person(guest) for guest in room.guests],
        "started_at": _optional_str(room.started_at),
        "ended_at": _optional_str(room.ended_at),
        "first_check_in_at": _optional_str(room.first_check_in_at),
        "no_show_at": _optional_str(room.no_show_at),
        "end_reason": None if room.end_reason is None else room.end_reason.value,
        "version": room.version,
    }


def room_from_dict(data: dict[str, Any]) -> Room:
    if data.get("format") != FORMAT_VERSION:
        raise RoomFormatError(f"unknown stored room format {data.get('format')!r}")
    try:
        appointment = data["appointment"]
        end_reason = data["end_reason"]
        return Room(
            id=data["id"],
            appointment=Appointment(
                id=appointment["id"],
                practitioner=_parse_person(appointment["practitioner"]),
                patient=_parse_person(appointment["patient"]),
                starts_at=_parse_time(appointment["starts_at"]),
                ends_at=_parse_time(appointment["ends_at"]),
                locale=appointment.get("locale"),
                practice=_parse_practice(appointment.get("practice")),
            ),
            window=JoinWindow(
                opens_at=_parse_time(data["window"]["opens_at"]),
                closes_at=_parse_time(data["window"]["closes_at"]),
            ),
            lifecycle=Lifecycle(data["lifecycle"]),
            waiting=WaitingQueue(tuple(_parse_entry(entry) for entry in data["waiting"])),
            in_call=tuple(
                Participant(
                    entry_id=participant["entry_id"],
                    person_id=participant["person_id"],
                    name=participant["name"],
                    role=Role(participant["role"]),
                    joined_at=_parse_time(participant["joined_at"]),
                    **_parse_resume_fields(participant),
                )
                for participant in data["in_call"]
            ),
            denied=frozenset(data["denied"]),
            # Added within format 1: rooms stored before remember no person as denied.
            denials=tuple(_parse_denial(denial) for denial in data.get("denials", ())),
            guests=tuple(_parse_person(guest) for guest in data.get("guests", ())),
            started_at=_optional_time(data["started_at"]),
            ended_at=_optional_time(data["ended_at"]),
            # Added within format 1 (guests, check-in and no-show times): older rooms lack them.
            first_check_in_at=_optional_time(data.get("first_check_in_at")),
            no_show_at=_optional_time(data.get("no_show_at")),
            end_reason=None if end_reason is None else EndReason(end_reason),
            version=int(data["version"]),
        )
    except (KeyError, TypeError) as exc:
        # The message names the missing part, never a value: values are personal data.
        raise RoomFormatError(f"stored room is incomplete ({type(exc).__name__})") from None


def encode_room(room: Room) -> str:
    return json.dumps(room_to_dict(room), separators=(",", ":"), ensure_ascii=False)


def decode_room(raw: str | bytes) -> Room:
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise RoomFormatError("stored room is not JSON") from exc
    if not isinstance(data, dict):
        raise RoomFormatError("stored room is not a JSON object")
    return room_from_dict(data)
