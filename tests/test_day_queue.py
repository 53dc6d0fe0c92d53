"""`DayQueue` gives exactly what `waiting_places` and `expected_starts` give, incrementally."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from rooms.lifecycle import cancel, end
from rooms.room import Room
from tests.test_practitioner_day import DAY, DOCTOR, MIN, arrive, in_consultation, room
from waiting_room.day_queue import DayQueue, place_of
from waiting_room.practitioner_day import expected_starts, waiting_places


def same_as_practitioner_day(queue: DayQueue, rooms: list[Room], now: datetime) -> None:
    expected = {
        room_id: datetime.fromtimestamp(at, UTC) for room_id, at in queue.expected(now).items()
    }
    assert expected == expected_starts(rooms, now)
    standings = queue.standings(now)
    places = {entry: place_of(standing) for entry, standing in standings.items()}
    assert places == waiting_places(rooms, now)
    for r in rooms:
        for entry in r.waiting.entries:
            assert queue.standing(r.id, entry.entry_id, now) == standings[entry.entry_id]
        assert queue.standing(r.id, "nobody", now) is None


def a_day(seed: int) -> list[Room]:
    pick = random.Random(seed)
    rooms = []
    for index in range(40):
        r = room(index)
        at = r.appointment.starts_at + pick.randrange(-5, 15) * MIN
        kind = pick.random()
        if kind < 0.4:
            r = arrive(r, at)
            # A second device on the same link takes the entry over (rooms.presence): no
            # second place, nothing new for the queue.
            pick.random()
        elif kind < 0.5:
            r = in_consultation(r, at)
        elif kind < 0.55:
            r = end(in_consultation(r, at), DOCTOR, at + 5 * MIN).room
        elif kind < 0.6:
            r = cancel(r, at).room
        rooms.append(r)
    return rooms


def test_a_queue_fed_change_by_change_agrees_with_the_whole_day() -> None:
    for seed in range(30):
        rooms = a_day(seed)
        queue = DayQueue()
        held: dict[str, Room] = {}
        for r in random.Random(seed).sample(rooms, len(rooms)):
            queue.update(r)
            held[r.id] = r
            now = DAY + random.Random(seed + len(held)).randrange(-60, 900) * MIN
            same_as_practitioner_day(queue, list(held.values()), now)
        # An older version never replaces a newer one.
        assert not queue.update(room(0))


def test_rooms_dropped_and_replaced_are_forgotten() -> None:
    rooms = a_day(7)
    queue = DayQueue()
    queue.replace_all(rooms)
    kept = rooms[::2]
    changed, dropped = queue.replace_all(kept)
    assert changed == []
    assert sorted(dropped) == sorted(r.id for r in rooms[1::2])
    same_as_practitioner_day(queue, kept, DAY + 90 * MIN)


def test_a_queue_of_two_thousand_gives_the_whole_days_answer() -> None:
    # What it costs is measured by `teleconsult bench signalling` (docs/benchmarks.md),
    # not timed here: a timed assertion fails on a busy machine and proves nothing.
    now = DAY + 5 * MIN
    rooms = [arrive(r, r.appointment.starts_at) for r in map(room, range(2000))]
    queue = DayQueue()
    queue.replace_all(rooms)
    standings = queue.standings(now)
    places = waiting_places(rooms, now)
    assert standings[f"e-{rooms[-1].id}"][0] == 2000
    assert {entry: place.position for entry, place in places.items()} == {
        entry: standing[0] for entry, standing in standings.items()
    }


def test_a_new_version_takes_its_new_place() -> None:
    later = room(5)
    queue = DayQueue()
    queue.update(room(1))
    queue.update(later)
    moved = arrive(later, later.appointment.starts_at)
    assert queue.update(moved)
    assert [r.id for r in queue.rooms()] == [room(1).id, later.id]
    assert queue.room(later.id) is moved
    assert queue.version(later.id) == moved.version
    assert len(queue) == 2
    assert later.id in queue
    assert queue.remove(later.id)
    assert not queue.remove(later.id)


def test_a_consultation_that_ends_stops_holding_the_queue_up() -> None:
    running = in_consultation(room(0), DAY)
    waiting = arrive(room(1), DAY + 15 * MIN)
    queue = DayQueue()
    queue.replace_all([running, waiting])
    now = DAY + 30 * MIN  # running over: the next one is expected "now"
    same_as_practitioner_day(queue, [running, waiting], now)
    ended = end(running, DOCTOR, now).room
    queue.update(ended)
    same_as_practitioner_day(queue, [ended, waiting], now)
