"""No-show: a patient who has not checked in a while after the start."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from rooms.admission import check_in
from rooms.appointment import Appointment, JoinWindowPolicy, Person
from rooms.events import PatientNoShow
from rooms.lifecycle import cancel, create_room, mark_no_show
from rooms.roles import Actor, Role
from rooms.room import Room
from signalling.app import HUB, make_app
from tests.support import make_settings

START = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)
AFTER = timedelta(minutes=10)
PATIENT = Actor("pat", Role.PATIENT)


def a_room() -> Room:
    appointment = Appointment(
        "apt-1", Person("doc", "Dr A"), Person("pat", "Pat B"), START, START + timedelta(minutes=30)
    )
    return create_room("room-0001", appointment, JoinWindowPolicy()).room


def test_not_a_no_show_before_the_grace_period_ends() -> None:
    transition = mark_no_show(a_room(), START + AFTER - timedelta(seconds=1), AFTER)
    assert transition.events == ()
    assert transition.room.no_show_at is None


def test_a_no_show_once_the_grace_period_is_over_and_only_once() -> None:
    now = START + AFTER
    transition = mark_no_show(a_room(), now, AFTER)
    assert transition.events == (PatientNoShow("room-0001"),)
    assert transition.room.no_show_at == now
    again = mark_no_show(transition.room, now + timedelta(minutes=5), AFTER)
    assert again.events == ()
    assert again.room == transition.room


def test_a_patient_who_checked_in_and_left_is_not_a_no_show() -> None:
    room = check_in(a_room(), PATIENT, "e1", START - timedelta(minutes=5)).room
    assert room.first_check_in_at == START - timedelta(minutes=5)
    assert mark_no_show(room, START + timedelta(hours=1), AFTER).events == ()


def test_a_late_patient_can_still_check_in_after_being_marked() -> None:
    room = mark_no_show(a_room(), START + AFTER, AFTER).room
    transition = check_in(room, PATIENT, "e1", START + AFTER + timedelta(minutes=2))
    assert "e1" in transition.room.waiting


def test_a_cancelled_room_has_no_no_show() -> None:
    room = cancel(a_room(), START).room
    assert mark_no_show(room, START + AFTER, AFTER).events == ()


async def test_the_sweeper_marks_no_shows_and_logs_the_event(aiohttp_client: Any) -> None:
    now = [START - timedelta(minutes=20)]
    app = make_app(make_settings(no_show_after=AFTER), clock=lambda: now[0])
    await aiohttp_client(app)
    hub = app[HUB]
    room = a_room()
    await hub.create(create_room(room.id, room.appointment, JoinWindowPolicy()))

    now[0] = START + AFTER - timedelta(seconds=1)
    await hub.sweep(timedelta(hours=24))
    assert await hub.event_log.after(None, 10) == []

    now[0] = START + AFTER
    await hub.sweep(timedelta(hours=24))
    await hub.sweep(timedelta(hours=24))
    events = await hub.event_log.after(None, 10)
    assert [event.type for event in events] == ["consultation.no_show"]
    stored = await hub.room(room.id)
    assert stored is not None
    assert stored.no_show_at == START + AFTER
