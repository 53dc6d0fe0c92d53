"""The practitioner's day: desk states, queue order and expected starts."""

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
from rooms.events import PatientDenied, PatientReturnedToWaiting
from rooms.lifecycle import cancel, create_room, end, mark_no_show
from rooms.roles import Actor, Role
from rooms.room import Room
from waiting_room.practitioner_day import (
    DeskState,
    desk_rows,
    expected_starts,
    queue_position,
    waiting_places,
)

DAY = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)
SLOT = timedelta(minutes=20)
DOCTOR = Actor("doc", Role.PRACTITIONER)
MIN = timedelta(minutes=1)


def room(index: int, name: str = "Patient") -> Room:
    """The index-th 20-minute slot of the day, from 09:00."""
    starts = DAY + index * SLOT
    appointment = Appointment(
        f"apt-{index}",
        Person("doc", "Dr A"),
        Person(f"p{index}", f"{name} {index}"),
        starts,
        starts + SLOT,
    )
    return create_room(f"room-{index:04d}", appointment, JoinWindowPolicy()).room


def arrive(r: Room, at: datetime) -> Room:
    return check_in(r, Actor(r.appointment.patient.id, Role.PATIENT), f"e-{r.id}", at).room


def in_consultation(r: Room, at: datetime) -> Room:
    r = arrive(r, at)
    r = join_as_practitioner(r, DOCTOR, f"doc-{r.id}", at).room
    return admit(r, DOCTOR, f"e-{r.id}", at).room


def test_on_time_day_expects_everyone_at_their_slot() -> None:
    now = DAY - 10 * MIN
    rooms = [arrive(room(0), now), room(1), room(2)]
    assert expected_starts(rooms, now) == {r.id: r.appointment.starts_at for r in rooms}


def test_an_overrun_pushes_the_waiting_patients_back() -> None:
    # The 09:00 consultation started 10 minutes late: it should end 09:30, not 09:20.
    first = in_consultation(room(0), DAY + 10 * MIN)
    second = arrive(room(1), DAY + 15 * MIN)
    third = arrive(room(2), DAY + 26 * MIN)  # its room opens 09:25
    now = DAY + 28 * MIN

    expected = expected_starts([third, first, second], now)

    assert expected[second.id] == DAY + 30 * MIN
    assert expected[third.id] == DAY + 50 * MIN


def test_a_consultation_running_past_its_planned_end_means_any_minute_now() -> None:
    first = in_consultation(room(0), DAY)
    second = arrive(room(1), DAY + 15 * MIN)
    now = DAY + 27 * MIN  # planned end was 09:20

    assert expected_starts([first, second], now)[second.id] == now


def test_a_late_absent_patient_does_not_hold_up_the_waiting_one() -> None:
    absent = room(0)
    waiting = arrive(room(1), DAY + 5 * MIN)
    now = DAY + 10 * MIN

    expected = expected_starts([absent, waiting], now)

    assert expected[waiting.id] == waiting.appointment.starts_at
    assert queue_position([absent, waiting], waiting.id, now) == 1


def test_queue_position_follows_appointment_order_not_arrival() -> None:
    now = DAY + 28 * MIN
    early_bird = arrive(room(2), now - 2 * MIN)
    on_time = arrive(room(1), now - 1 * MIN)
    rooms = [early_bird, on_time]
    assert queue_position(rooms, on_time.id, now) == 1
    assert queue_position(rooms, early_bird.id, now) == 2
    assert queue_position(rooms, "room-9999", now) is None


def test_desk_rows_show_every_state_in_slot_order() -> None:
    now = DAY + 70 * MIN
    done = end(in_consultation(room(0), DAY), DOCTOR, DAY + 18 * MIN).room
    no_show = mark_no_show(room(1), DAY + 30 * MIN, timedelta(minutes=10)).room
    cancelled = cancel(room(2), DAY).room
    current = in_consultation(room(3), DAY + 60 * MIN)
    waiting = arrive(room(4), DAY + 66 * MIN)
    later = room(5)

    rows = desk_rows([later, waiting, current, cancelled, no_show, done], now)

    assert [row.state for row in rows] == [
        DeskState.ENDED,
        DeskState.NO_SHOW,
        DeskState.CANCELLED,
        DeskState.IN_CONSULTATION,
        DeskState.WAITING,
        DeskState.SCHEDULED,
    ]
    assert rows[4].waiting_since == DAY + 66 * MIN
    assert rows[4].patient_name == "Patient 4"
    # The 10:00 consultation began on time: the 10:20 patient is on time, 10:40 too.
    assert rows[4].expected_start == DAY + 80 * MIN
    assert rows[5].expected_start == DAY + 100 * MIN
    assert rows[0].expected_start is None


def test_return_to_waiting_puts_the_patient_first_and_leaves_the_call() -> None:
    current = in_consultation(room(0), DAY)
    # Someone else waiting (one entry per person): the patient's interpreter.
    current = invite_guest(current, Person("g-1", "Ines"), DAY).room
    current = check_in(current, Actor("g-1", Role.GUEST), "second-device", DAY + MIN).room

    transition = return_to_waiting(current, DOCTOR, f"e-{current.id}", DAY + 2 * MIN)

    assert transition.events == (PatientReturnedToWaiting(current.id, f"e-{current.id}"),)
    assert [e.entry_id for e in transition.room.waiting.entries] == [
        f"e-{current.id}",
        "second-device",
    ]
    assert [p.role for p in transition.room.in_call] == [Role.PRACTITIONER]


def test_only_the_practitioner_returns_only_an_admitted_patient() -> None:
    current = in_consultation(room(0), DAY)
    patient = Actor(current.appointment.patient.id, Role.PATIENT)
    with pytest.raises(DomainError) as refused:
        return_to_waiting(current, patient, f"e-{current.id}", DAY)
    assert refused.value.code is ErrorCode.NOT_ALLOWED
    with pytest.raises(DomainError) as refused:
        return_to_waiting(current, DOCTOR, f"doc-{current.id}", DAY)
    assert refused.value.code is ErrorCode.NOT_IN_CALL


def test_a_deny_reason_is_trimmed_and_bounded() -> None:
    waiting = arrive(room(0), DAY)
    entry = f"e-{waiting.id}"
    assert deny(waiting, DOCTOR, entry, DAY, "  Please call the desk.  ").events == (
        PatientDenied(waiting.id, entry, "Please call the desk."),
    )
    assert deny(waiting, DOCTOR, entry, DAY, "   ").events == (PatientDenied(waiting.id, entry),)
    with pytest.raises(DomainError) as refused:
        deny(waiting, DOCTOR, entry, DAY, "x" * 301)
    assert refused.value.code is ErrorCode.INVALID_REQUEST


def test_waiting_places_span_the_practitioners_rooms_in_slot_order() -> None:
    now = DAY + 28 * MIN
    later = arrive(room(2), now - 2 * MIN)
    sooner = arrive(room(1), now - 1 * MIN)
    with_guest = invite_guest(sooner, Person("g-1", "Ines"), now).room
    second_device = check_in(with_guest, Actor("g-1", Role.GUEST), "other-device", now).room

    places = waiting_places([later, second_device], now)

    assert {entry: place.position for entry, place in places.items()} == {
        f"e-{sooner.id}": 1,
        "other-device": 2,
        f"e-{later.id}": 3,
    }
    # The 09:20 patient is seen late, from 09:28: the 09:40 one waits until 09:48.
    assert places[f"e-{sooner.id}"].expected_start == now
    assert places[f"e-{later.id}"].expected_start == now + SLOT
