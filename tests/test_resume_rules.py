"""Coming back after a reload or a network loss: the domain rules, pure (no I/O, fixed times)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rooms.admission import (
    admit,
    check_in,
    deny,
    invite_guest,
    join_as_practitioner,
    return_to_waiting,
)
from rooms.appointment import Appointment, JoinWindowPolicy, Person
from rooms.errors import DomainError, ErrorCode
from rooms.events import ParticipantAway, ParticipantLeft, ParticipantResumed
from rooms.lifecycle import create_room, end
from rooms.presence import expire_away, leave, leave_from, next_expiry, resume, step_away
from rooms.resume_secret import hash_resume_secret
from rooms.roles import Actor, Role
from rooms.room import Room
from signalling.config import ConfigError, settings_from_env
from store.room_codec import decode_room, encode_room

START = datetime(2030, 3, 4, 10, 0, tzinfo=UTC)
INSIDE = START + timedelta(minutes=5)
GRACE = timedelta(minutes=2)
DOCTOR = Actor("prac-1", Role.PRACTITIONER)
ALICE = Actor("pat-1", Role.PATIENT)
GUEST = Actor("g-1", Role.GUEST)
SECRET = "s" * 43
OTHER_SECRET = "t" * 43


def fresh_room() -> Room:
    appointment = Appointment(
        "apt-1",
        Person("prac-1", "Dr Bernard"),
        Person("pat-1", "Alice Martin"),
        START,
        START + timedelta(minutes=30),
    )
    return create_room("room-1", appointment, JoinWindowPolicy()).room


def two_waiting() -> Room:
    """Alice resumable (SECRET), then her interpreter, a guest, too (OTHER_SECRET)."""
    room = check_in(fresh_room(), ALICE, "e1", INSIDE, hash_resume_secret(SECRET)).room
    room = invite_guest(room, Person("g-1", "Ines"), INSIDE).room
    return check_in(room, GUEST, "e2", INSIDE, hash_resume_secret(OTHER_SECRET)).room


def test_only_the_hash_of_the_secret_is_in_the_room_and_in_what_is_stored() -> None:
    room = two_waiting()
    stored = encode_room(room)
    assert SECRET not in stored
    assert SECRET not in repr(room)
    assert hash_resume_secret(SECRET) in stored
    assert decode_room(stored) == room


def test_a_dropped_connection_keeps_the_place_and_marks_it_away() -> None:
    room = two_waiting()
    later = INSIDE + timedelta(seconds=10)
    transition = step_away(room, "e1", 0, later)
    assert transition.events == (ParticipantAway("room-1", "e1", was_waiting=True),)
    assert [e.entry_id for e in transition.room.waiting.entries] == ["e1", "e2"]
    assert transition.room.waiting.entries[0].away_since == later
    assert transition.room.waiting.practitioner_view()[0].away_since == later
    # Dropping again changes nothing.
    assert step_away(transition.room, "e1", 0, later).room == transition.room


def test_the_right_secret_takes_the_same_place_back() -> None:
    room = step_away(two_waiting(), "e1", 0, INSIDE).room
    transition = resume(room, ALICE, hash_resume_secret(SECRET), INSIDE + timedelta(minutes=1))
    assert transition.events == (ParticipantResumed("room-1", "e1", in_call=False),)
    entry = transition.room.waiting.entries[0]
    assert (entry.entry_id, entry.away_since, entry.connection) == ("e1", None, 1)
    assert transition.room.waiting.position("e1") == 1


def test_a_wrong_secret_or_another_person_takes_nothing_and_changes_nothing() -> None:
    room = step_away(two_waiting(), "e1", 0, INSIDE)
    for actor, secret in [
        (ALICE, "u" * 43),
        (Actor("pat-2", Role.PATIENT), SECRET),
        (Actor("pat-1", Role.GUEST), SECRET),
    ]:
        with pytest.raises(DomainError) as refused:
            resume(room.room, actor, hash_resume_secret(secret), INSIDE)
        assert refused.value.code is ErrorCode.NOT_WAITING
    with pytest.raises(DomainError) as refused:
        resume(room.room, ALICE, "not a hash", INSIDE)
    assert refused.value.code is ErrorCode.INVALID_REQUEST
    with pytest.raises(DomainError) as refused:
        check_in(fresh_room(), ALICE, "e9", INSIDE, "not a hash")
    assert refused.value.code is ErrorCode.INVALID_REQUEST


def test_the_late_disconnect_of_a_replaced_connection_does_not_mark_the_entry_away() -> None:
    # The new connection took over before the old one was seen to drop.
    room = resume(two_waiting(), ALICE, hash_resume_secret(SECRET), INSIDE).room
    assert step_away(room, "e1", 0, INSIDE).room == room
    assert step_away(room, "e1", 1, INSIDE).room.waiting.entries[0].away_since == INSIDE
    # Nor can it make the entry leave; the connection holding it can.
    assert leave_from(room, "e1", 0, INSIDE).room == room
    assert "e1" not in leave_from(room, "e1", 1, INSIDE).room.waiting


def test_away_longer_than_the_grace_is_removed_like_a_leave() -> None:
    away_at = INSIDE
    room = step_away(two_waiting(), "e1", 0, away_at).room
    assert next_expiry(room, GRACE) == away_at + GRACE
    assert expire_away(room, away_at + GRACE - timedelta(seconds=1), GRACE).room == room
    transition = expire_away(room, away_at + GRACE, GRACE)
    assert transition.events == leave(room, "e1", away_at + GRACE).events
    assert transition.events == (ParticipantLeft("room-1", "e1", was_waiting=True),)
    assert [e.entry_id for e in transition.room.waiting.entries] == ["e2"]
    assert transition.room.version == room.version + 1
    assert next_expiry(transition.room, GRACE) is None
    with pytest.raises(DomainError):
        resume(transition.room, ALICE, hash_resume_secret(SECRET), away_at + GRACE)


def test_without_a_secret_a_dropped_connection_leaves_at_once() -> None:
    room = check_in(fresh_room(), ALICE, "e1", INSIDE).room
    transition = step_away(room, "e1", 0, INSIDE)
    assert transition.events == (ParticipantLeft("room-1", "e1", was_waiting=True),)
    assert len(transition.room.waiting) == 0
    doctor = join_as_practitioner(fresh_room(), DOCTOR, "d1", INSIDE).room
    assert step_away(doctor, "d1", 0, INSIDE).room.in_call == ()


def test_explicit_leave_removes_an_away_entry_at_once() -> None:
    room = step_away(two_waiting(), "e1", 0, INSIDE).room
    assert "e1" not in leave(room, "e1", INSIDE).room.waiting


def test_an_admitted_patient_comes_back_into_the_call() -> None:
    room = join_as_practitioner(fresh_room(), DOCTOR, "d1", INSIDE).room
    room = check_in(room, ALICE, "e1", INSIDE, hash_resume_secret(SECRET)).room
    room = admit(room, DOCTOR, "e1", INSIDE).room
    away = step_away(room, "e1", 0, INSIDE)
    assert away.events == (ParticipantAway("room-1", "e1", was_waiting=False),)
    assert away.room.participant("e1") is not None
    back = resume(away.room, ALICE, hash_resume_secret(SECRET), INSIDE + timedelta(seconds=30))
    assert back.events == (ParticipantResumed("room-1", "e1", in_call=True),)
    participant = back.room.participant("e1")
    assert participant is not None
    assert participant.away_since is None
    assert participant.connection == 1
    # Sent back to the waiting room, the entry is still theirs to take back.
    returned = return_to_waiting(back.room, DOCTOR, "e1", INSIDE).room
    again = resume(returned, ALICE, hash_resume_secret(SECRET), INSIDE)
    assert again.events == (ParticipantResumed("room-1", "e1", in_call=False),)


def test_an_admitted_patient_away_too_long_leaves_the_call() -> None:
    room = join_as_practitioner(fresh_room(), DOCTOR, "d1", INSIDE).room
    room = check_in(room, ALICE, "e1", INSIDE, hash_resume_secret(SECRET)).room
    room = step_away(admit(room, DOCTOR, "e1", INSIDE).room, "e1", 0, INSIDE).room
    transition = expire_away(room, INSIDE + GRACE, GRACE)
    assert transition.events == (ParticipantLeft("room-1", "e1", was_waiting=False),)
    assert [p.entry_id for p in transition.room.in_call] == ["d1"]


def test_nothing_to_take_back_after_a_denial_or_the_end() -> None:
    room = join_as_practitioner(two_waiting(), DOCTOR, "d1", INSIDE).room
    denied = deny(room, DOCTOR, "e1", INSIDE).room
    with pytest.raises(DomainError) as refused:
        resume(denied, ALICE, hash_resume_secret(SECRET), INSIDE)
    assert refused.value.code is ErrorCode.NOT_WAITING
    ended = end(room, DOCTOR, INSIDE).room
    with pytest.raises(DomainError) as refused:
        resume(ended, ALICE, hash_resume_secret(OTHER_SECRET), INSIDE)
    assert refused.value.code is ErrorCode.ROOM_ENDED


def test_the_grace_is_configurable_in_minutes() -> None:
    assert settings_from_env({}).resume_grace == timedelta(minutes=2)
    assert settings_from_env({"TELECONSULT_RESUME_GRACE_MINUTES": "5"}).resume_grace == timedelta(
        minutes=5
    )
    for bad in ("-1", "two"):
        with pytest.raises(ConfigError, match="TELECONSULT_RESUME_GRACE_MINUTES"):
            settings_from_env({"TELECONSULT_RESUME_GRACE_MINUTES": bad})
