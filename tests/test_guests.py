"""Guests: invited with their own link, they wait and are admitted on their own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rooms.admission import admit, check_in, invite_guest
from rooms.appointment import Appointment, JoinWindowPolicy, Person
from rooms.consultation_events import consultation_events
from rooms.errors import DomainError, ErrorCode
from rooms.events import PatientAdmitted, PatientCheckedIn
from rooms.lifecycle import cancel, create_room
from rooms.presence import leave
from rooms.roles import Actor, Role
from rooms.room import Room

NOW = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)
DOCTOR = Actor("doc", Role.PRACTITIONER)
INTERPRETER = Person("guest-1", "Ines Interprete")


def a_room() -> Room:
    appointment = Appointment(
        "apt-1", Person("doc", "Dr A"), Person("pat", "Pat B"), NOW, NOW + timedelta(minutes=30)
    )
    return create_room("room-0001", appointment, JoinWindowPolicy()).room


def with_guest() -> Room:
    return invite_guest(a_room(), INTERPRETER, NOW).room


def test_an_invited_guest_waits_under_their_own_name_and_role() -> None:
    transition = check_in(with_guest(), Actor("guest-1", Role.GUEST), "e-guest", NOW)

    assert transition.events == (PatientCheckedIn("room-0001", "e-guest", Role.GUEST),)
    [view] = transition.room.waiting.practitioner_view()
    assert (view.name, view.role) == ("Ines Interprete", Role.GUEST)
    # A guest arriving says nothing about whether the patient came.
    assert transition.room.first_check_in_at is None
    assert consultation_events(transition, NOW) == []


def test_an_uninvited_guest_token_cannot_check_in() -> None:
    with pytest.raises(DomainError) as refused:
        check_in(with_guest(), Actor("guest-2", Role.GUEST), "e-x", NOW)
    assert refused.value.code is ErrorCode.NOT_ALLOWED


def test_guest_and_patient_are_admitted_separately() -> None:
    room = check_in(with_guest(), Actor("guest-1", Role.GUEST), "e-guest", NOW).room
    room = check_in(room, Actor("pat", Role.PATIENT), "e-pat", NOW).room

    transition = admit(room, DOCTOR, "e-guest", NOW)

    assert PatientAdmitted("room-0001", "e-guest", Role.GUEST) in transition.events
    assert [p.role for p in transition.room.in_call] == [Role.GUEST]
    assert [e.entry_id for e in transition.room.waiting.entries] == ["e-pat"]
    types = [event.type.value for event in consultation_events(transition, NOW)]
    assert "consultation.patient_admitted" not in types
    left = leave(transition.room, "e-guest", NOW)
    [event] = consultation_events(left, NOW)
    assert event.data()["role"] == "guest"


def test_invitations_are_bounded_unique_and_only_for_live_rooms() -> None:
    room = with_guest()
    with pytest.raises(DomainError) as refused:
        invite_guest(room, INTERPRETER, NOW)
    assert refused.value.code is ErrorCode.ALREADY_PRESENT
    with pytest.raises(DomainError) as refused:
        invite_guest(room, Person("pat", "Someone"), NOW)
    assert refused.value.code is ErrorCode.ALREADY_PRESENT
    for index in range(2, 5):
        room = invite_guest(room, Person(f"guest-{index}", f"Guest {index}"), NOW).room
    with pytest.raises(DomainError) as refused:
        invite_guest(room, Person("guest-9", "Guest 9"), NOW)
    assert refused.value.code is ErrorCode.INVALID_REQUEST
    with pytest.raises(DomainError) as refused:
        invite_guest(cancel(a_room(), NOW).room, INTERPRETER, NOW)
    assert refused.value.code is ErrorCode.ROOM_CANCELLED
