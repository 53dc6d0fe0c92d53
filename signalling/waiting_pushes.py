"""What a change to a practitioner's day sends, and to whom: coalesced, and only what changed.

The hub tells this module which rooms changed (`RoomHub.publish_waiting` for a
waiting room's change, the desk for any change); each practitioner's day is
then pushed at most once every `PUSH_INTERVAL` (the first change at once, the
next at the end of the window, with the state as it is then), and a push sends
a waiting patient `waiting` only when their own position or the minute of
their expected start moved, the practitioner's room screen `waiting_list` for
the rooms whose list changed, and the desk listeners one `DayChange`
(docs/protocol.md, "Pushes"). Places come from a `DayQueue` kept between
changes, so a check-in costs an ordered insert, not a sort of the day.

With several signalling nodes (a pub/sub manager), another node changes rooms
this one did not hear of: each push reads the day from the store, and a room
changed elsewhere makes it tell everyone their place again so every screen
converges. One node alone re-reads the day only now and then (rooms purged, or
entering the day's 14 hours).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from socketio.async_pubsub_manager import AsyncPubSubManager

from rooms.room import Room
from signalling.room_hub import (
    RoomHub,
    entry_channel,
    place_payload,
    practitioners_channel,
    waiting_list_payload,
)
from waiting_room.day_queue import DayQueue, Standing, place_of
from waiting_room.practitioner_day import WaitingPlace

logger = logging.getLogger(__name__)

# At most this often per practitioner's day (seconds): about seven pushes a second per screen.
PUSH_INTERVAL = 0.15
# How often one node alone re-reads a day from the store (seconds).
RESYNC_INTERVAL = 5.0


# Never a minute: a row whose expected start must be sent at the next push.
UNSHOWN = -(2**62)


def minute(seconds: float | None) -> int | None:
    """What a screen shows of a time (HH:MM): a change below it is not worth a push."""
    return None if seconds is None else int(seconds // 60)


def instant(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


@dataclass(frozen=True, slots=True)
class DayChange:
    """One push of a practitioner's day, for the desk."""

    practitioner_id: str
    now: datetime
    queue: DayQueue  # the whole day, in slot order
    expected: dict[str, float]  # every row's expected start (POSIX seconds)
    changed: list[Room]  # rows added or changed
    removed: list[str]  # rows gone from the day
    moved: dict[str, float | None]  # other rows whose expected start changed (to the minute)


DayListener = Callable[[DayChange], Awaitable[None]]


@dataclass
class _Day:
    practitioner_id: str
    queue: DayQueue = field(default_factory=DayQueue)
    # room id -> the version this node stored and noted (a newer one came from elsewhere).
    noted: dict[str, int] = field(default_factory=dict)
    # entry id -> (connection, position, minute) last sent as `waiting`.
    told: dict[str, tuple[int, int, int | None]] = field(default_factory=dict)
    # room id -> minute of the expected start the desks hold.
    desk_told: dict[str, int | None] = field(default_factory=dict)
    lists: set[str] = field(default_factory=set)  # rooms whose `waiting_list` is due
    rows: set[str] = field(default_factory=set)  # rooms whose desk row is due
    removed: set[str] = field(default_factory=set)
    synced_at: float | None = None
    pushed_at: float = float("-inf")
    scheduled: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class WaitingPushes:
    """The hub's pushes of waiting places, waiting lists and desk changes (one per hub)."""

    def __init__(self, hub: RoomHub) -> None:
        self._hub = hub
        self._days: dict[str, _Day] = {}
        self.listeners: list[DayListener] = []
        self._tasks: set[asyncio.Task[None]] = set()
        # Counted for the bench and /metrics-minded readers: pushes sent, by event.
        self.sent: dict[str, int] = {}

    @property
    def _shared(self) -> bool:
        return isinstance(self._hub.sio.manager, AsyncPubSubManager)

    def _day(self, practitioner_id: str) -> _Day:
        day = self._days.get(practitioner_id)
        if day is None:
            day = self._days[practitioner_id] = _Day(practitioner_id)
        return day

    def _note(self, room: Room) -> _Day:
        day = self._day(room.appointment.practitioner.id)
        if room.version >= day.noted.get(room.id, -1):
            day.noted[room.id] = room.version
        before = day.queue.room(room.id)
        if day.queue.update(room) and before is not None:
            # Back in the queue since the last version (sent back from the call): their
            # screen is told its place again, even where it is the same as before.
            was_there = {entry.entry_id for entry in before.waiting.entries}
            for entry in room.waiting.entries:
                if entry.entry_id not in was_there:
                    day.told.pop(entry.entry_id, None)
        return day

    async def waiting_changed(self, room: Room) -> None:
        """A room's waiting room changed (stored): its list and everyone's places are due."""
        day = self._note(room)
        day.lists.add(room.id)
        day.rows.add(room.id)
        self._schedule(day)

    async def room_changed(self, room: Room) -> None:
        """A room changed (stored): its desk row is due."""
        day = self._note(room)
        day.rows.add(room.id)
        self._schedule(day)

    def desk_joined(self, practitioner_id: str, shown: dict[str, float]) -> None:
        """A desk took a whole document showing these expected starts (POSIX seconds).

        The desks of a practitioner share one record of what they were told: where this
        one was shown otherwise, the next push gives that row's expected start.
        """
        desk_told = self._day(practitioner_id).desk_told
        for room_id, at in shown.items():
            if room_id in desk_told and desk_told[room_id] != minute(at):
                desk_told[room_id] = UNSHOWN

    async def place(self, room: Room, entry_id: str) -> WaitingPlace | None:
        """Where `entry_id` of `room` (just stored) stands now, for an ack."""
        day = self._note(room)
        if day.synced_at is None:
            await self._sync(day)
        standing = day.queue.standing(room.id, entry_id, self._hub.clock())
        return None if standing is None else place_of(standing)

    async def places(self, room: Room) -> dict[str, WaitingPlace]:
        """Every waiting entry's place in `room`'s practitioner's day."""
        day = self._note(room)
        if day.synced_at is None:
            await self._sync(day)
        return {
            entry_id: place_of(standing)
            for entry_id, standing in day.queue.standings(self._hub.clock()).items()
        }

    def _schedule(self, day: _Day) -> None:
        if day.scheduled:
            return  # The push already due takes this change with it.
        day.scheduled = True
        loop = asyncio.get_running_loop()
        # The first change goes at the next turn of the loop (what else the same
        # transition changes goes with it), later ones at the end of the window.
        delay = max(0.0, day.pushed_at + PUSH_INTERVAL - loop.time())
        loop.call_later(delay, self._start, day)

    def _start(self, day: _Day) -> None:
        task = asyncio.ensure_future(self._push(day))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _sync(self, day: _Day) -> bool:
        """Read the day from the store; True when a room changed that this node did not note."""
        now = self._hub.clock()
        rooms = await self._hub.practitioner_rooms(day.practitioner_id, now)
        first = day.synced_at is None
        changed, dropped = day.queue.replace_all(rooms)
        day.synced_at = asyncio.get_running_loop().time()
        foreign = [room for room in changed if day.noted.get(room.id) != room.version]
        for room in changed:
            day.noted[room.id] = room.version
            day.rows.add(room.id)
        if not first:
            day.lists.update(room.id for room in foreign)
        for room_id in dropped:
            day.noted.pop(room_id, None)
            day.rows.discard(room_id)
            day.removed.add(room_id)
        # One node alone stored every change itself: a version it has not noted yet is
        # one whose announcement is on its way, not another node's.
        return bool(foreign) and not first and self._shared

    async def _push(self, day: _Day) -> None:
        async with day.lock:
            loop = asyncio.get_running_loop()
            day.scheduled = False
            day.pushed_at = loop.time()
            try:
                await self._push_day(day, loop.time())
            except Exception:
                # A push that fails must not stop the next ones; the next change resends.
                logger.exception("waiting push failed")
                day.told.clear()
                day.desk_told.clear()
            if not day.queue and not day.scheduled:
                self._days.pop(day.practitioner_id, None)

    async def _push_day(self, day: _Day, at: float) -> None:
        hub = self._hub
        foreign = False
        if self._shared or day.synced_at is None or at - day.synced_at >= RESYNC_INTERVAL:
            foreign = await self._sync(day)
        if foreign:
            # Another node told people things this one does not know: tell all again.
            day.told.clear()
            day.desk_told.clear()
        now = hub.clock()
        expected = day.queue.expected(now)
        standings = day.queue.standings(now, expected)
        # The practitioner's screens first: theirs is the one a check-in waits on.
        await self._tell_desks(day, now, expected)
        lists, day.lists = day.lists, set()
        sends = [
            ("waiting_list", waiting_list_payload(room), practitioners_channel(room.id))
            for room_id in lists
            if (room := day.queue.room(room_id)) is not None
        ]
        sends += self._places(day, standings)
        # All at once: awaited one by one, thousands of sends take as many turns of the loop.
        await asyncio.gather(*(self._emit(*send) for send in sends))

    def _places(
        self, day: _Day, standings: dict[str, Standing]
    ) -> list[tuple[str, dict[str, object], str]]:
        """The `waiting` due: to those whose position or minute of expected start moved."""
        told = day.told
        for entry_id in [entry_id for entry_id in told if entry_id not in standings]:
            del told[entry_id]  # No longer waiting: a return to the queue is told afresh.
        sends = []
        for entry_id, standing in standings.items():
            position, expected, connection = standing
            now_told = (connection, position, minute(expected))
            if told.get(entry_id) == now_told:
                continue
            told[entry_id] = now_told
            sends.append(("waiting", place_payload(place_of(standing)), entry_channel(entry_id)))
        return sends

    async def _tell_desks(self, day: _Day, now: datetime, expected: dict[str, float]) -> None:
        rows, day.rows = day.rows, set()
        removed, day.removed = day.removed, set()
        changed = [room for room_id in rows if (room := day.queue.room(room_id)) is not None]
        moved: dict[str, float | None] = {}
        desk_told = day.desk_told
        for room_id in removed:
            desk_told.pop(room_id, None)
        for room in day.queue.rooms():
            shown = minute(expected.get(room.id))
            if desk_told.get(room.id, -1) != shown:
                desk_told[room.id] = shown
                if room.id not in rows:
                    moved[room.id] = expected.get(room.id)
        if not (changed or removed or moved):
            return
        change = DayChange(
            day.practitioner_id, now, day.queue, expected, changed, sorted(removed), moved
        )
        for listener in self.listeners:
            try:
                await listener(change)
            except Exception:
                logger.exception("day listener failed")

    async def _emit(self, event: str, payload: dict[str, object], channel: str) -> None:
        self.sent[event] = self.sent.get(event, 0) + 1
        await self._hub.sio.emit(event, payload, room=channel)

    async def settle(self) -> None:
        """Wait until every push due has gone out (tests, shutdown)."""
        while self._tasks or any(day.scheduled for day in self._days.values()):
            if self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)
            else:
                await asyncio.sleep(PUSH_INTERVAL / 4)


_PUSHES: weakref.WeakKeyDictionary[RoomHub, WaitingPushes] = weakref.WeakKeyDictionary()


def pushes_of(hub: RoomHub) -> WaitingPushes:
    """The hub's one `WaitingPushes` (made on first use, so the hub needs no new field)."""
    pushes = _PUSHES.get(hub)
    if pushes is None:
        pushes = _PUSHES[hub] = WaitingPushes(hub)
    return pushes
