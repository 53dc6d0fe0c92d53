"""The domain rules of a consultation room, pure: fixed datetimes, no I/O."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from rooms.admission import admit, check_in, deny, join_as_practitioner
from rooms.appointment import Appointment, JoinWindow, JoinWindowPolicy, Person
from rooms.denials import reopen, undeny
from rooms.errors import DomainError, ErrorCode
from rooms.events import (
    ConsultationStarted,
    EndReason,
    ParticipantLeft,
    PatientAdmitted,
    PatientCheckedIn,
    PatientDenied,
    PractitionerJoined,
    RoomCreated,
    RoomEnded,
    RoomRescheduled,
)
from rooms.lifecycle import cancel, close_if_over, create_room, end, reschedule
from rooms.presence import leave
from rooms.roles import Actor, Role
from rooms.room import Lifecycle, Participant, Room, RoomStatus, Transition
from rooms.waiting_queue import WaitingEntry

ROOM_ID = "room-1"
START = datetime(2030, 3, 4, 10, 0, tzinfo=UTC)
END = datetime(2030, 3, 4, 10, 30, tzinfo=UTC)
OPENS = datetime(2030, 3, 4, 9, 45, tzinfo=UTC)
CLOSES = datetime(2030, 3, 4, 11, 30, tzinfo=UTC)
INSIDE = datetime(2030, 3, 4, 10, 5, tzinfo=UTC)
TINY = timedelta(microseconds=1)

PRACTITIONER = Person("prac-1", "Dr Bernard")
PATIENT = Person("pat-1", "Alice Martin")
DOCTOR = Actor("prac-1", Role.PRACTITIONER)
ALICE = Actor("pat-1", Role.PATIENT)
POLICY = JoinWindowPolicy()

# Everyone who is not this room's practitioner, for the practitioner-only actions.
NOT_THE_PRACTITIONER = [
    pytest.param(ALICE, id="the-patient"),
    pytest.param(Actor("prac-2", Role.PRACTITIONER), id="another-practitioner"),
    pytest.param(Actor("prac-1", Role.PATIENT), id="practitioner-id-with-patient-role"),
    pytest.param(Actor("pat-1", Role.PRACTITIONER), id="patient-id-with-practitioner-role"),
]
# Everyone who is not this room's patient, for check-in.
NOT_THE_PATIENT = [
    pytest.param(DOCTOR, id="the-practitioner"),
    pytest.param(Actor("pat-2", Role.PATIENT), id="another-patient"),
    pytest.param(Actor("pat-1", Role.PRACTITIONER), id="patient-id-with-practitioner-role"),
    pytest.param(Actor("prac-1", Role.PATIENT), id="practitioner-id-with-patient-role"),
]


def appointment(
    starts_at: datetime = START,
    ends_at: datetime = END,
    *,
    appointment_id: str = "apt-1",
    practitioner: Person = PRACTITIONER,
    patient: Person = PATIENT,
) -> Appointment:
    return Appointment(appointment_id, practitioner, patient, starts_at, ends_at)


def new_room(policy: JoinWindowPolicy = POLICY) -> Room:
    return create_room(ROOM_ID, appointment(), policy).room


def queued(room: Room, entry_id: str, now: datetime) -> Room:
    """`entry_id` waiting: Alice's own entry first, then others' (one entry per person)."""
    if room.entry_of(ALICE) is None:
        return check_in(room, ALICE, entry_id, now).room
    other = WaitingEntry(entry_id, f"other-{entry_id}", "Alice Martin", now)
    return replace(room, waiting=room.waiting.check_in(other), version=room.version + 1)


def with_waiting(*entry_ids: str, now: datetime = INSIDE) -> Room:
    room = new_room()
    for entry_id in entry_ids:
        room = queued(room, entry_id, now)
    return room


def in_consultation(*waiting: str) -> Room:
    """The practitioner (`doc`) and the patient (`a1`) in the call, `waiting` queued."""
    room = join_as_practitioner(new_room(), DOCTOR, "doc", INSIDE).room
    room = check_in(room, ALICE, "a1", INSIDE).room
    room = admit(room, DOCTOR, "a1", INSIDE).room
    for entry_id in waiting:
        room = queued(room, entry_id, INSIDE)
    return room


def ended_room() -> Room:
    return end(new_room(), DOCTOR, INSIDE).room


def cancelled_room() -> Room:
    return cancel(new_room(), INSIDE).room


def refused(room: Room, code: ErrorCode, action: Callable[[Room], Transition]) -> None:
    """`action` raises `code` and the room it was given is exactly as before."""
    snapshot = copy.deepcopy(room)
    with pytest.raises(DomainError) as caught:
        action(room)
    assert caught.value.code is code
    assert room == snapshot
    assert room.version == snapshot.version


def assert_bumped(before: Room, transition: Transition) -> None:
    assert transition.room.version == before.version + 1


def assert_no_op(before: Room, transition: Transition) -> None:
    assert transition.events == ()
    assert transition.room == before
    assert transition.room.version == before.version


# --- the join window -----------------------------------------------------------------------


def test_default_window_opens_15_minutes_before_and_closes_60_minutes_after() -> None:
    transition = create_room(ROOM_ID, appointment(), POLICY)

    assert transition.room.window == JoinWindow(OPENS, CLOSES)
    assert transition.events == (RoomCreated(ROOM_ID),)
    assert transition.room.version == 1
    assert transition.room.lifecycle is Lifecycle.SCHEDULED
    assert len(transition.room.waiting) == 0
    assert transition.room.in_call == ()


def test_custom_join_window_policy() -> None:
    policy = JoinWindowPolicy(opens_before=timedelta(minutes=5), closes_after=timedelta(0))

    room = new_room(policy)

    assert room.window == JoinWindow(START - timedelta(minutes=5), END)
    assert room.status(START - timedelta(minutes=5) - TINY) is RoomStatus.SCHEDULED
    assert room.status(START - timedelta(minutes=5)) is RoomStatus.OPEN
    assert room.status(END - TINY) is RoomStatus.OPEN
    assert room.status(END) is RoomStatus.ENDED
    refused(room, ErrorCode.ROOM_NOT_YET_OPEN, lambda r: check_in(r, ALICE, "e", OPENS))
    refused(room, ErrorCode.ROOM_CLOSED, lambda r: check_in(r, ALICE, "e", END))


def test_join_window_policy_margins_cannot_be_negative() -> None:
    with pytest.raises(ValueError, match="negative"):
        JoinWindowPolicy(opens_before=timedelta(minutes=-1))
    with pytest.raises(ValueError, match="negative"):
        JoinWindowPolicy(closes_after=timedelta(seconds=-1))


def test_window_includes_its_opening_and_excludes_its_closing_instant() -> None:
    window = JoinWindow.for_slot(START, END, POLICY)

    assert not window.contains(OPENS - TINY)
    assert window.contains(OPENS)
    assert window.contains(CLOSES - TINY)
    assert not window.contains(CLOSES)


# --- status ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        pytest.param(OPENS - timedelta(days=1), RoomStatus.SCHEDULED, id="day-before"),
        pytest.param(OPENS - TINY, RoomStatus.SCHEDULED, id="just-before-window"),
        pytest.param(OPENS, RoomStatus.OPEN, id="window-opens"),
        pytest.param(START, RoomStatus.OPEN, id="start"),
        pytest.param(END, RoomStatus.OPEN, id="end-of-slot"),
        pytest.param(CLOSES - TINY, RoomStatus.OPEN, id="just-before-close"),
        pytest.param(CLOSES, RoomStatus.ENDED, id="window-closes"),
        pytest.param(CLOSES + timedelta(days=1), RoomStatus.ENDED, id="day-after"),
    ],
)
def test_status_of_an_untouched_room(now: datetime, expected: RoomStatus) -> None:
    assert new_room().status(now) is expected


def test_status_is_in_consultation_after_an_admit_until_the_window_closes() -> None:
    room = admit(with_waiting("a1"), DOCTOR, "a1", INSIDE).room

    assert room.status(INSIDE) is RoomStatus.IN_CONSULTATION
    assert room.status(CLOSES - TINY) is RoomStatus.IN_CONSULTATION
    assert room.status(CLOSES) is RoomStatus.ENDED


def test_status_stays_open_while_the_practitioner_is_alone() -> None:
    room = join_as_practitioner(new_room(), DOCTOR, "doc", INSIDE).room

    assert room.status(INSIDE) is RoomStatus.OPEN


def test_status_is_ended_after_end_even_inside_the_window() -> None:
    room = ended_room()

    assert room.status(INSIDE) is RoomStatus.ENDED
    assert room.status(OPENS - timedelta(hours=1)) is RoomStatus.ENDED


@pytest.mark.parametrize("now", [OPENS - timedelta(hours=1), INSIDE, CLOSES + timedelta(hours=1)])
def test_status_is_cancelled_at_any_time_once_cancelled(now: datetime) -> None:
    assert cancelled_room().status(now) is RoomStatus.CANCELLED


# --- appointment validation ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("starts_at", "ends_at"),
    [
        pytest.param(START, START - timedelta(minutes=1), id="ends-before-start"),
        pytest.param(START, START, id="ends-at-start"),
        pytest.param(START, START + timedelta(hours=12, seconds=1), id="longer-than-12h"),
        pytest.param(START.replace(tzinfo=None), END, id="naive-start"),
        pytest.param(START, END.replace(tzinfo=None), id="naive-end"),
        pytest.param(START.replace(tzinfo=None), END.replace(tzinfo=None), id="both-naive"),
        pytest.param(
            datetime(2030, 3, 4, 12, 0, tzinfo=timezone(timedelta(hours=2))),
            datetime(2030, 3, 4, 11, 0, tzinfo=timezone(timedelta(hours=1))),
            id="ends-before-start-across-offsets",
        ),
    ],
)
def test_appointment_with_an_invalid_slot_is_refused(
    starts_at: datetime, ends_at: datetime
) -> None:
    with pytest.raises(DomainError) as caught:
        appointment(starts_at, ends_at)
    assert caught.value.code is ErrorCode.INVALID_APPOINTMENT


def test_appointment_slot_limits_that_are_accepted() -> None:
    twelve_hours = appointment(START, START + timedelta(hours=12))
    one_second = appointment(START, START + timedelta(seconds=1))
    # 12:00+02:00 is 10:00Z, so ending at 10:30Z is thirty minutes later.
    across_offsets = appointment(
        datetime(2030, 3, 4, 12, 0, tzinfo=timezone(timedelta(hours=2))), END
    )

    assert twelve_hours.ends_at - twelve_hours.starts_at == timedelta(hours=12)
    assert one_second.ends_at - one_second.starts_at == timedelta(seconds=1)
    assert across_offsets.ends_at - across_offsets.starts_at == timedelta(minutes=30)


@pytest.mark.parametrize(
    ("person_id", "name"),
    [
        pytest.param("", "Alice Martin", id="empty-id"),
        pytest.param("   ", "Alice Martin", id="blank-id"),
        pytest.param("x" * 201, "Alice Martin", id="id-too-long"),
        pytest.param("pat-1", "", id="empty-name"),
        pytest.param("pat-1", " \t\n ", id="blank-name"),
        pytest.param("pat-1", "A" * 201, id="name-too-long"),
    ],
)
def test_person_without_a_usable_id_or_name_is_refused(person_id: str, name: str) -> None:
    with pytest.raises(DomainError) as caught:
        Person(person_id, name)
    assert caught.value.code is ErrorCode.INVALID_APPOINTMENT


def test_person_id_and_name_of_200_characters_are_accepted() -> None:
    person = Person("i" * 200, "N" * 200)

    assert (len(person.id), len(person.name)) == (200, 200)


@pytest.mark.parametrize("appointment_id", ["", "  ", "a" * 201])
def test_appointment_without_a_usable_id_is_refused(appointment_id: str) -> None:
    with pytest.raises(DomainError) as caught:
        appointment(appointment_id=appointment_id)
    assert caught.value.code is ErrorCode.INVALID_APPOINTMENT


# --- check-in --------------------------------------------------------------------------------


def test_patient_checks_in_inside_the_window() -> None:
    room = new_room()

    transition = check_in(room, ALICE, "a1", INSIDE)

    assert transition.events == (PatientCheckedIn(ROOM_ID, "a1"),)
    assert transition.room.waiting.entries == (WaitingEntry("a1", "pat-1", "Alice Martin", INSIDE),)
    assert_bumped(room, transition)
    assert transition.room.lifecycle is Lifecycle.SCHEDULED


def test_check_in_is_allowed_from_the_instant_the_window_opens() -> None:
    transition = check_in(new_room(), ALICE, "a1", OPENS)

    assert "a1" in transition.room.waiting


@pytest.mark.parametrize("actor", NOT_THE_PATIENT)
def test_only_the_rooms_patient_may_check_in(actor: Actor) -> None:
    refused(new_room(), ErrorCode.NOT_ALLOWED, lambda r: check_in(r, actor, "e1", INSIDE))


def test_check_in_before_the_window_opens_is_refused() -> None:
    refused(
        new_room(), ErrorCode.ROOM_NOT_YET_OPEN, lambda r: check_in(r, ALICE, "a1", OPENS - TINY)
    )


@pytest.mark.parametrize("now", [CLOSES, CLOSES + timedelta(hours=3)])
def test_check_in_once_the_window_closed_is_refused(now: datetime) -> None:
    refused(new_room(), ErrorCode.ROOM_CLOSED, lambda r: check_in(r, ALICE, "a1", now))


def test_check_in_to_an_ended_room_is_refused() -> None:
    refused(ended_room(), ErrorCode.ROOM_ENDED, lambda r: check_in(r, ALICE, "a1", INSIDE))


def test_check_in_to_a_cancelled_room_is_refused() -> None:
    refused(cancelled_room(), ErrorCode.ROOM_CANCELLED, lambda r: check_in(r, ALICE, "a1", INSIDE))


def test_checking_in_again_changes_nothing_and_tells_nobody() -> None:
    room = with_waiting("a1")

    assert check_in(room, ALICE, "a1", END) == Transition(room)


def test_an_entry_already_in_the_call_cannot_check_in() -> None:
    refused(in_consultation(), ErrorCode.ALREADY_PRESENT, lambda r: check_in(r, ALICE, "a1", END))


def test_a_second_device_of_the_patient_never_queues_a_second_entry() -> None:
    # One person, one entry: the second device takes the first's over when it connects.
    refused(
        with_waiting("phone"),
        ErrorCode.ALREADY_PRESENT,
        lambda r: check_in(r, ALICE, "laptop", END),
    )


def test_a_denied_entry_cannot_check_in_again() -> None:
    room = deny(with_waiting("a1"), DOCTOR, "a1", INSIDE).room

    refused(room, ErrorCode.NOT_ALLOWED, lambda r: check_in(r, ALICE, "a1", INSIDE))


# --- practitioner-only actions ---------------------------------------------------------------


@pytest.mark.parametrize("actor", NOT_THE_PRACTITIONER)
def test_only_the_rooms_practitioner_may_admit(actor: Actor) -> None:
    refused(with_waiting("a1"), ErrorCode.NOT_ALLOWED, lambda r: admit(r, actor, "a1", INSIDE))


@pytest.mark.parametrize("actor", NOT_THE_PRACTITIONER)
def test_only_the_rooms_practitioner_may_deny(actor: Actor) -> None:
    refused(with_waiting("a1"), ErrorCode.NOT_ALLOWED, lambda r: deny(r, actor, "a1", INSIDE))


@pytest.mark.parametrize("actor", NOT_THE_PRACTITIONER)
def test_only_the_rooms_practitioner_may_end(actor: Actor) -> None:
    refused(in_consultation("w1"), ErrorCode.NOT_ALLOWED, lambda r: end(r, actor, INSIDE))


@pytest.mark.parametrize("actor", NOT_THE_PRACTITIONER)
def test_only_the_rooms_practitioner_may_join_as_practitioner(actor: Actor) -> None:
    refused(
        new_room(), ErrorCode.NOT_ALLOWED, lambda r: join_as_practitioner(r, actor, "x", INSIDE)
    )


def test_practitioner_joins_the_call_without_waiting() -> None:
    room = new_room()

    transition = join_as_practitioner(room, DOCTOR, "doc", INSIDE)

    assert transition.events == (PractitionerJoined(ROOM_ID, "doc"),)
    assert transition.room.in_call == (
        Participant("doc", "prac-1", "Dr Bernard", Role.PRACTITIONER, INSIDE),
    )
    assert len(transition.room.waiting) == 0
    assert_bumped(room, transition)


# --- admit -----------------------------------------------------------------------------------


def test_admit_of_an_entry_that_is_not_waiting_is_refused() -> None:
    refused(with_waiting("a1"), ErrorCode.NOT_WAITING, lambda r: admit(r, DOCTOR, "ghost", INSIDE))


def test_admit_of_an_entry_already_in_the_call_is_refused() -> None:
    refused(in_consultation(), ErrorCode.NOT_WAITING, lambda r: admit(r, DOCTOR, "a1", INSIDE))


def test_admit_after_the_window_closed_is_refused() -> None:
    refused(with_waiting("a1"), ErrorCode.ROOM_CLOSED, lambda r: admit(r, DOCTOR, "a1", CLOSES))


def test_first_admit_moves_the_entry_into_the_call_and_starts_the_consultation() -> None:
    room = with_waiting("a1", "a2")
    admitted_at = INSIDE + timedelta(minutes=2)

    transition = admit(room, DOCTOR, "a1", admitted_at)

    assert transition.events == (PatientAdmitted(ROOM_ID, "a1"), ConsultationStarted(ROOM_ID))
    after = transition.room
    assert [entry.entry_id for entry in after.waiting.entries] == ["a2"]
    assert after.in_call == (Participant("a1", "pat-1", "Alice Martin", Role.PATIENT, admitted_at),)
    assert after.lifecycle is Lifecycle.IN_CONSULTATION
    assert after.started_at == admitted_at
    assert_bumped(room, transition)


def test_consultation_starts_on_the_first_admit_even_after_the_practitioner_joined() -> None:
    room = join_as_practitioner(with_waiting("a1"), DOCTOR, "doc", INSIDE).room

    transition = admit(room, DOCTOR, "a1", INSIDE)

    assert transition.events == (PatientAdmitted(ROOM_ID, "a1"), ConsultationStarted(ROOM_ID))
    assert [p.entry_id for p in transition.room.in_call] == ["doc", "a1"]


def test_later_admits_do_not_start_the_consultation_again() -> None:
    room = in_consultation("a2")
    first_start = room.started_at

    transition = admit(room, DOCTOR, "a2", END)

    assert transition.events == (PatientAdmitted(ROOM_ID, "a2"),)
    assert transition.room.started_at == first_start == INSIDE
    assert [p.entry_id for p in transition.room.in_call] == ["doc", "a1", "a2"]
    assert len(transition.room.waiting) == 0
    assert_bumped(room, transition)


# --- deny ------------------------------------------------------------------------------------


def test_deny_removes_the_entry_and_remembers_it() -> None:
    room = in_consultation("w1", "w2", "w3")

    transition = deny(room, DOCTOR, "w2", INSIDE)

    assert transition.events == (PatientDenied(ROOM_ID, "w2"),)
    assert [entry.entry_id for entry in transition.room.waiting.entries] == ["w1", "w3"]
    assert transition.room.denied == frozenset({"w2"})
    assert transition.room.in_call == room.in_call
    assert_bumped(room, transition)


def test_deny_of_an_entry_that_is_not_waiting_is_refused() -> None:
    refused(in_consultation("w1"), ErrorCode.NOT_WAITING, lambda r: deny(r, DOCTOR, "a1", INSIDE))


# --- leave -----------------------------------------------------------------------------------


def test_leaving_the_waiting_room() -> None:
    room = with_waiting("w1", "w2")

    transition = leave(room, "w1", INSIDE)

    assert transition.events == (ParticipantLeft(ROOM_ID, "w1", was_waiting=True),)
    assert [entry.entry_id for entry in transition.room.waiting.entries] == ["w2"]
    assert transition.room.waiting.position("w2") == 1
    assert_bumped(room, transition)


def test_leaving_the_call() -> None:
    room = in_consultation("w1")

    transition = leave(room, "a1", INSIDE)

    assert transition.events == (ParticipantLeft(ROOM_ID, "a1", was_waiting=False),)
    assert [p.entry_id for p in transition.room.in_call] == ["doc"]
    assert [entry.entry_id for entry in transition.room.waiting.entries] == ["w1"]
    assert transition.room.lifecycle is Lifecycle.IN_CONSULTATION
    assert_bumped(room, transition)


def test_leaving_when_unknown_changes_nothing() -> None:
    room = in_consultation("w1")

    assert_no_op(room, leave(room, "stranger", INSIDE))


def test_leaving_twice_changes_nothing_the_second_time() -> None:
    once = leave(with_waiting("w1"), "w1", INSIDE).room

    assert_no_op(once, leave(once, "w1", INSIDE))


# --- end -------------------------------------------------------------------------------------


def test_end_clears_the_room_and_names_everyone_who_was_inside() -> None:
    room = in_consultation("w1", "w2")
    ended_at = END + timedelta(minutes=3)

    transition = end(room, DOCTOR, ended_at)

    after = transition.room
    assert len(after.waiting) == 0
    assert after.in_call == ()
    assert after.lifecycle is Lifecycle.ENDED
    assert after.ended_at == ended_at
    assert after.end_reason is EndReason.ENDED
    assert len(transition.events) == 1
    event = transition.events[0]
    assert isinstance(event, RoomEnded)
    assert (event.room_id, event.reason) == (ROOM_ID, EndReason.ENDED)
    assert sorted(event.entry_ids) == ["a1", "doc", "w1", "w2"]
    assert_bumped(room, transition)


def test_end_of_an_ended_room_changes_nothing() -> None:
    room = ended_room()

    assert_no_op(room, end(room, DOCTOR, END))


def test_end_of_a_cancelled_room_is_refused() -> None:
    refused(cancelled_room(), ErrorCode.ROOM_CANCELLED, lambda r: end(r, DOCTOR, INSIDE))


# --- cancel ----------------------------------------------------------------------------------


def test_cancel_ends_the_room_and_names_everyone_who_was_inside() -> None:
    room = in_consultation("w1")

    transition = cancel(room, INSIDE)

    after = transition.room
    assert after.lifecycle is Lifecycle.CANCELLED
    assert after.end_reason is EndReason.CANCELLED
    assert after.ended_at == INSIDE
    assert len(after.waiting) == 0
    assert after.in_call == ()
    assert len(transition.events) == 1
    event = transition.events[0]
    assert isinstance(event, RoomEnded)
    assert event.reason is EndReason.CANCELLED
    assert sorted(event.entry_ids) == ["a1", "doc", "w1"]
    assert_bumped(room, transition)


def test_cancel_before_anyone_came_lists_nobody() -> None:
    transition = cancel(new_room(), OPENS - timedelta(days=2))

    assert transition.events == (RoomEnded(ROOM_ID, EndReason.CANCELLED, ()),)


def test_cancel_is_idempotent() -> None:
    room = cancelled_room()

    assert_no_op(room, cancel(room, END))


def test_cancel_of_an_ended_room_is_refused() -> None:
    refused(ended_room(), ErrorCode.ROOM_ENDED, lambda r: cancel(r, INSIDE))


# --- reschedule ------------------------------------------------------------------------------


def test_reschedule_moves_the_slot_and_the_window() -> None:
    room = new_room()
    new_start, new_end = START + timedelta(days=1), END + timedelta(days=1, minutes=15)

    transition = reschedule(room, new_start, new_end, POLICY)

    after = transition.room
    assert transition.events == (RoomRescheduled(ROOM_ID),)
    assert (after.appointment.starts_at, after.appointment.ends_at) == (new_start, new_end)
    assert after.window == JoinWindow(
        new_start - timedelta(minutes=15), new_end + timedelta(minutes=60)
    )
    assert after.appointment.patient == PATIENT
    assert after.appointment.practitioner == PRACTITIONER
    assert after.appointment.id == "apt-1"
    assert_bumped(room, transition)
    # The old window no longer lets anyone in.
    refused(after, ErrorCode.ROOM_NOT_YET_OPEN, lambda r: check_in(r, ALICE, "a1", INSIDE))


def test_reschedule_uses_the_policy_it_is_given() -> None:
    policy = JoinWindowPolicy(opens_before=timedelta(minutes=2), closes_after=timedelta(minutes=7))

    after = reschedule(new_room(), START, END, policy).room

    assert after.window == JoinWindow(START - timedelta(minutes=2), END + timedelta(minutes=7))


def test_reschedule_to_the_same_slot_changes_nothing() -> None:
    room = new_room()

    assert_no_op(room, reschedule(room, START, END, POLICY))


def test_reschedule_of_a_cancelled_room_is_refused() -> None:
    later = START + timedelta(days=1)
    refused(
        cancelled_room(),
        ErrorCode.ROOM_CANCELLED,
        lambda r: reschedule(r, later, later + timedelta(minutes=30), POLICY),
    )


def test_reschedule_of_an_ended_room_is_refused() -> None:
    later = START + timedelta(days=1)
    refused(
        ended_room(),
        ErrorCode.ROOM_ENDED,
        lambda r: reschedule(r, later, later + timedelta(minutes=30), POLICY),
    )


@pytest.mark.parametrize(
    ("starts_at", "ends_at"),
    [
        pytest.param(END, START, id="ends-before-start"),
        pytest.param(START, START + timedelta(hours=13), id="too-long"),
        pytest.param(START.replace(tzinfo=None), END, id="naive"),
    ],
)
def test_reschedule_to_an_invalid_slot_is_refused(starts_at: datetime, ends_at: datetime) -> None:
    refused(
        new_room(),
        ErrorCode.INVALID_APPOINTMENT,
        lambda r: reschedule(r, starts_at, ends_at, POLICY),
    )


# --- close_if_over ---------------------------------------------------------------------------


def test_close_if_over_leaves_a_room_whose_window_is_still_open() -> None:
    room = in_consultation("w1")

    assert_no_op(room, close_if_over(room, CLOSES - TINY))


def test_close_if_over_ends_a_room_once_its_window_closed() -> None:
    room = in_consultation("w1")

    transition = close_if_over(room, CLOSES)

    assert transition.room.lifecycle is Lifecycle.ENDED
    assert transition.room.end_reason is EndReason.CLOSED
    assert transition.room.ended_at == CLOSES
    assert transition.room.in_call == ()
    assert len(transition.room.waiting) == 0
    assert len(transition.events) == 1
    event = transition.events[0]
    assert isinstance(event, RoomEnded)
    assert event.reason is EndReason.CLOSED
    assert sorted(event.entry_ids) == ["a1", "doc", "w1"]
    assert_bumped(room, transition)


@pytest.mark.parametrize("make", [ended_room, cancelled_room], ids=["ended", "cancelled"])
def test_close_if_over_leaves_finished_rooms_alone(make: Callable[[], Room]) -> None:
    room = make()

    assert_no_op(room, close_if_over(room, CLOSES + timedelta(hours=1)))


# --- versions --------------------------------------------------------------------------------


def test_every_transition_bumps_the_version_once() -> None:
    room = new_room()
    steps: list[Callable[[Room], Transition]] = [
        lambda r: join_as_practitioner(r, DOCTOR, "doc", INSIDE),
        lambda r: check_in(r, ALICE, "a1", INSIDE),
        lambda r: Transition(queued(r, "a2", INSIDE), (PatientCheckedIn(ROOM_ID, "a2"),)),
        lambda r: Transition(queued(r, "a3", INSIDE), (PatientCheckedIn(ROOM_ID, "a3"),)),
        lambda r: admit(r, DOCTOR, "a1", INSIDE),
        lambda r: deny(r, DOCTOR, "a2", INSIDE),
        lambda r: undeny(r, DOCTOR, "a2", INSIDE),
        lambda r: deny(r, DOCTOR, "a2", INSIDE),
        lambda r: reopen(r, INSIDE),
        lambda r: leave(r, "a3", INSIDE),
        lambda r: leave(r, "a1", INSIDE),
        lambda r: reschedule(r, START, END + timedelta(minutes=10), POLICY),
        lambda r: end(r, DOCTOR, INSIDE),
    ]
    versions = [room.version]
    for step in steps:
        transition = step(room)
        assert transition.events, "each of these steps is a real change"
        room = transition.room
        versions.append(room.version)

    assert versions == list(range(1, len(steps) + 2))
