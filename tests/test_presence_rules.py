"""One person, one entry, and decisions that stick: the domain rules, pure (no I/O, fixed times)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from rooms.admission import admit, check_in, deny, invite_guest, join_as_practitioner
from rooms.appointment import Appointment, JoinWindowPolicy, Person
from rooms.consultation_events import consultation_events
from rooms.denials import reopen, undeny
from rooms.errors import DomainError, ErrorCode
from rooms.events import ParticipantResumed, PatientUndenied, RoomReopened
from rooms.lifecycle import create_room, end
from rooms.presence import step_away, take_over
from rooms.resume_secret import hash_resume_secret
from rooms.roles import Actor, Role
from rooms.room import Room, Transition
from store.room_codec import decode_room, encode_room, room_to_dict

START = datetime(2030, 3, 4, 10, 0, tzinfo=UTC)
INSIDE = START + timedelta(minutes=5)
DOCTOR = Actor("prac-1", Role.PRACTITIONER)
ALICE = Actor("pat-1", Role.PATIENT)
GUEST = Actor("g-1", Role.GUEST)
FIRST, SECOND = hash_resume_secret("s" * 43), hash_resume_secret("t" * 43)


def fresh_room() -> Room:
    appointment = Appointment(
        "apt-1",
        Person("prac-1", "Dr Bernard"),
        Person("pat-1", "Alice Martin"),
        START,
        START + timedelta(minutes=30),
    )
    return create_room("room-1", appointment, JoinWindowPolicy()).room


def alice_then_guest() -> Room:
    room = check_in(fresh_room(), ALICE, "a1", INSIDE, FIRST).room
    room = invite_guest(room, Person("g-1", "Ines"), INSIDE).room
    return check_in(room, GUEST, "g1", INSIDE).room


def test_a_new_connection_takes_the_persons_entry_over_at_its_place() -> None:
    room = step_away(alice_then_guest(), "a1", 0, INSIDE).room
    transition = take_over(room, ALICE, SECOND, INSIDE)
    assert transition.events == (ParticipantResumed("room-1", "a1", in_call=False),)
    entry = transition.room.waiting.entries[0]
    assert (entry.entry_id, entry.away_since, entry.connection) == ("a1", None, 1)
    assert entry.resume_hash == SECOND  # The old tab's secret takes nothing any more.
    assert [e.entry_id for e in transition.room.waiting.entries] == ["a1", "g1"]
    # The replaced connection's late drop changes nothing.
    assert step_away(transition.room, "a1", 0, INSIDE).room == transition.room


def test_the_practitioner_takes_their_call_over_and_never_joins_twice() -> None:
    room = join_as_practitioner(alice_then_guest(), DOCTOR, "doc", INSIDE).room
    room = admit(room, DOCTOR, "a1", INSIDE).room
    transition = take_over(room, DOCTOR, None, INSIDE)
    assert transition.events == (
        ParticipantResumed("room-1", "doc", in_call=True, role=Role.PRACTITIONER),
    )
    assert [p.entry_id for p in transition.room.in_call] == ["doc", "a1"]
    # The taken-over connection opening the consultation changes nothing; another is refused.
    assert join_as_practitioner(transition.room, DOCTOR, "doc", INSIDE) == Transition(
        transition.room
    )
    with pytest.raises(DomainError) as caught:
        join_as_practitioner(transition.room, DOCTOR, "doc-2", INSIDE)
    assert caught.value.code is ErrorCode.ALREADY_PRESENT


def test_nothing_to_take_over_is_not_waiting() -> None:
    with pytest.raises(DomainError) as caught:
        take_over(fresh_room(), ALICE, FIRST, INSIDE)
    assert caught.value.code is ErrorCode.NOT_WAITING
    with pytest.raises(DomainError) as caught:
        take_over(alice_then_guest(), ALICE, "not a hash", INSIDE)
    assert caught.value.code is ErrorCode.INVALID_REQUEST


def test_checking_in_again_logs_no_second_check_in() -> None:
    room = alice_then_guest()
    again = check_in(room, ALICE, "a1", INSIDE + timedelta(minutes=1))
    assert again == Transition(room)
    assert consultation_events(again, INSIDE) == []


def test_a_denial_is_the_persons_with_its_reason() -> None:
    room = deny(alice_then_guest(), DOCTOR, "a1", INSIDE, " Wrong day ").room
    denial = room.denial_of(ALICE)
    assert denial is not None
    assert (denial.entry_id, denial.reason, denial.position) == ("a1", "Wrong day", 0)
    assert room.denial_of(GUEST) is None
    # Whatever the connection, the person may not queue again.
    for entry_id in ("a1", "a-new-tab"):
        with pytest.raises(DomainError) as caught:
            check_in(room, ALICE, entry_id, INSIDE)
        assert caught.value.code is ErrorCode.NOT_ALLOWED


def test_undeny_gives_the_place_back_marked_away() -> None:
    room = deny(alice_then_guest(), DOCTOR, "a1", INSIDE).room
    later = INSIDE + timedelta(seconds=5)
    transition = undeny(room, DOCTOR, "a1", later)
    assert transition.events == (PatientUndenied("room-1", "a1", restored=True),)
    assert [e.entry_id for e in transition.room.waiting.entries] == ["a1", "g1"]
    assert transition.room.waiting.entries[0].away_since == later
    assert transition.room.denials == ()
    assert transition.room.denied == frozenset()
    # Her page comes back on the link and takes the place over.
    back = take_over(transition.room, ALICE, SECOND, later)
    assert back.room.waiting.position("a1") == 1


def test_only_the_practitioner_undoes_and_only_a_denial() -> None:
    room = deny(alice_then_guest(), DOCTOR, "a1", INSIDE).room
    for actor, entry_id, code in (
        (ALICE, "a1", ErrorCode.NOT_ALLOWED),
        (Actor("prac-2", Role.PRACTITIONER), "a1", ErrorCode.NOT_ALLOWED),
        (DOCTOR, "g1", ErrorCode.NOT_DENIED),
        (DOCTOR, "nobody", ErrorCode.NOT_DENIED),
    ):
        with pytest.raises(DomainError) as caught:
            undeny(room, actor, entry_id, INSIDE)
        assert caught.value.code is code


def test_reopen_clears_every_denial_and_is_idempotent() -> None:
    room = deny(alice_then_guest(), DOCTOR, "a1", INSIDE).room
    room = deny(room, DOCTOR, "g1", INSIDE).room
    transition = reopen(room, INSIDE)
    assert transition.events == (RoomReopened("room-1", ("a1", "g1")),)
    assert transition.room.denials == ()
    assert transition.room.waiting.entries == ()  # Nobody is queued for them: they check in.
    assert check_in(transition.room, ALICE, "a2", INSIDE).room.waiting.position("a2") == 1
    assert reopen(transition.room, INSIDE) == Transition(transition.room)
    ended = end(room, DOCTOR, INSIDE).room
    with pytest.raises(DomainError) as caught:
        reopen(ended, INSIDE)
    assert caught.value.code is ErrorCode.ROOM_ENDED


def test_denials_survive_the_codec_and_older_rooms_have_none() -> None:
    room = deny(alice_then_guest(), DOCTOR, "a1", INSIDE, "Rappelez le cabinet").room
    assert decode_room(encode_room(room)) == room
    older = room_to_dict(fresh_room())
    del older["denials"]
    assert decode_room(json.dumps(older)).denials == ()
