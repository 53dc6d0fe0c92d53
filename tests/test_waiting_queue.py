"""The waiting room queue: first come, first served, and what each side gets to see."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rooms.waiting_queue import PractitionerView, WaitingEntry, WaitingQueue

T0 = datetime(2030, 3, 4, 9, 50, tzinfo=UTC)


def entry(entry_id: str, minute: int, name: str = "Alice Martin") -> WaitingEntry:
    return WaitingEntry(entry_id, f"person-{entry_id}", name, T0 + timedelta(minutes=minute))


def queue_of(*entries: WaitingEntry) -> WaitingQueue:
    queue = WaitingQueue()
    for item in entries:
        queue = queue.check_in(item)
    return queue


def ids(queue: WaitingQueue) -> list[str]:
    return [item.entry_id for item in queue.entries]


def test_an_empty_queue() -> None:
    queue = WaitingQueue()

    assert len(queue) == 0
    assert "anyone" not in queue
    assert queue.positions() == {}
    assert queue.practitioner_view() == ()


def test_first_come_first_served() -> None:
    queue = queue_of(entry("c", 0), entry("a", 1), entry("b", 2))

    assert ids(queue) == ["c", "a", "b"]
    assert [queue.position(i) for i in ("c", "a", "b")] == [1, 2, 3]
    assert queue.positions() == {"c": 1, "a": 2, "b": 3}
    assert len(queue) == 3
    assert "a" in queue
    assert "z" not in queue


def test_order_is_arrival_order_not_the_check_in_timestamp() -> None:
    # A slow device may report an earlier time; the queue keeps arrival order.
    queue = queue_of(entry("late-clock", 5), entry("early-clock", 1))

    assert ids(queue) == ["late-clock", "early-clock"]


def test_check_in_returns_a_new_queue_and_leaves_the_old_one_alone() -> None:
    before = queue_of(entry("a", 0))

    after = before.check_in(entry("b", 1))

    assert ids(before) == ["a"]
    assert ids(after) == ["a", "b"]


def test_the_same_entry_cannot_be_queued_twice() -> None:
    queue = queue_of(entry("a", 0), entry("b", 1))

    with pytest.raises(KeyError):
        queue.check_in(entry("a", 5, name="Someone Else"))
    assert ids(queue) == ["a", "b"]


def test_positions_close_up_after_removals() -> None:
    queue = queue_of(entry("a", 0), entry("b", 1), entry("c", 2), entry("d", 3))

    queue, removed = queue.remove("b")
    assert removed == entry("b", 1)
    assert queue.positions() == {"a": 1, "c": 2, "d": 3}

    queue, removed = queue.remove("a")
    assert removed == entry("a", 0)
    assert queue.positions() == {"c": 1, "d": 2}
    assert queue.position("d") == 2

    queue, _ = queue.remove("d")
    assert queue.positions() == {"c": 1}

    queue = queue.check_in(entry("e", 9))
    assert queue.positions() == {"c": 1, "e": 2}


def test_remove_returns_a_new_queue_and_leaves_the_old_one_alone() -> None:
    before = queue_of(entry("a", 0), entry("b", 1))

    after, _ = before.remove("a")

    assert ids(before) == ["a", "b"]
    assert ids(after) == ["b"]


def test_unknown_entries_have_no_position_and_cannot_be_removed() -> None:
    queue = queue_of(entry("a", 0))

    with pytest.raises(KeyError):
        queue.position("ghost")
    with pytest.raises(KeyError):
        queue.remove("ghost")
    removed_queue, _ = queue.remove("a")
    with pytest.raises(KeyError):
        removed_queue.position("a")


def test_practitioner_view_carries_names_and_times_in_queue_order() -> None:
    queue = queue_of(
        entry("e2", 3, name="Bob Durand"),
        entry("e1", 1, name="Alice Martin"),
        entry("e3", 7, name="Chloé Petit"),
    )

    assert queue.practitioner_view() == (
        PractitionerView("e2", "Bob Durand", T0 + timedelta(minutes=3)),
        PractitionerView("e1", "Alice Martin", T0 + timedelta(minutes=1)),
        PractitionerView("e3", "Chloé Petit", T0 + timedelta(minutes=7)),
    )


def test_practitioner_view_follows_removals() -> None:
    queue = queue_of(entry("e1", 0, name="Alice"), entry("e2", 1, name="Bob"))

    queue, _ = queue.remove("e1")

    assert queue.practitioner_view() == (PractitionerView("e2", "Bob", T0 + timedelta(minutes=1)),)


def test_a_patients_position_is_a_bare_number() -> None:
    queue = queue_of(entry("a", 0), entry("b", 1, name="Bob Durand"))

    position = queue.position("b")

    assert type(position) is int
    assert position == 2


def test_a_position_reveals_nothing_about_who_else_is_waiting() -> None:
    # Two queues with the same number of people ahead, but different people,
    # names and times: the patient-facing answer is identical.
    one = queue_of(entry("x1", 0, name="Alice Martin"), entry("me", 4, name="Me"))
    other = queue_of(entry("y9", 3, name="Zoé Laurent"), entry("me", 4, name="Me"))

    assert one.position("me") == other.position("me") == 2
    # The per-entry answers carry no other entry's id, name or time either.
    assert one.positions()["me"] == other.positions()["me"]
    positions = one.positions()
    assert set(positions) == {"x1", "me"}
    assert all(type(value) is int for value in positions.values())
    rendered = repr(positions["me"])
    for leaked in ("x1", "Alice", "Martin", "09:50"):
        assert leaked not in rendered
