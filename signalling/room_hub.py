"""Applies domain transitions and tells everyone concerned: the one write path.

The hub is the only holder of the room store. Transports (the booking
webhook, the API, Socket.IO handlers, the desk, the demo) and the sweeper
are given the hub, never the store: they create a room with `RoomHub.create`
and change one with `RoomHub.apply`, and the hub then fans the resulting
events out to browsers, the desk and the relay. Socket.IO rooms are used only
to address people: `entry:<id>` is one connection, `practitioners:<room>` the
practitioner side of a room, `room:<room>` everyone inside it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta

import socketio

from media.relay_service import RelayService
from rooms.consultation_events import ConsultationEvent, consultation_events
from rooms.events import (
    ParticipantAway,
    ParticipantLeft,
    ParticipantResumed,
    PatientAdmitted,
    PatientCheckedIn,
    PatientDenied,
    PatientReturnedToWaiting,
    PatientUndenied,
    PractitionerJoined,
    RoomEnded,
    RoomEvent,
    RoomReopened,
)
from rooms.lifecycle import close_if_over, mark_no_show
from rooms.presence import expire_away, next_expiry
from rooms.room import Lifecycle, Room, Transition
from signalling.clock import Clock
from signalling.media_recovery import GuardedRelay, MediaRecovery
from store.errors import StoreUnavailable
from store.event_log import EVENT_RETENTION, EventLog
from store.room_store import RoomStore
from waiting_room.practitioner_day import WaitingPlace, days_rooms

logger = logging.getLogger(__name__)

OPEN_LIFECYCLES = (Lifecycle.SCHEDULED, Lifecycle.IN_CONSULTATION)
# How long a disconnected patient's or guest's place is kept for them (docs/protocol.md).
AWAY_GRACE = timedelta(minutes=2)


def entry_channel(entry_id: str) -> str:
    return f"entry:{entry_id}"


def practitioners_channel(room_id: str) -> str:
    return f"practitioners:{room_id}"


def room_channel(room_id: str) -> str:
    return f"room:{room_id}"


def waiting_list_payload(room: Room) -> dict[str, object]:
    return {
        "entries": [
            {
                "entry_id": view.entry_id,
                "name": view.name,
                "role": view.role.value,
                "waiting_since": view.waiting_since.isoformat(),
                "away_since": None if view.away_since is None else view.away_since.isoformat(),
            }
            for view in room.waiting.practitioner_view()
        ]
    }


def place_payload(place: WaitingPlace) -> dict[str, object]:
    expected = place.expected_start
    return {
        "position": place.position,
        "expected_start": None if expected is None else expected.isoformat(),
    }


class EntryListener:
    """Relays media offers to one participant's connection."""

    def __init__(
        self,
        sio: socketio.AsyncServer,
        entry_id: str,
        name_of: Callable[[str], Awaitable[str | None]] | None = None,
    ) -> None:
        self._sio = sio
        self._channel = entry_channel(entry_id)
        # The publisher's name for its tile, looked up here: names never go to the relay.
        self._name_of = name_of

    async def subscription_offer(
        self, subscription_id: str, publisher_id: str, publisher_info: Mapping[str, str], sdp: str
    ) -> None:
        publisher = {"entry_id": publisher_id, **publisher_info}
        name = None if self._name_of is None else await self._name_of(publisher_id)
        if name:
            publisher["name"] = name
        await self._sio.emit(
            "subscription_offer",
            {
                "subscription_id": subscription_id,
                "publisher": publisher,
                "sdp": sdp,
                "type": "offer",
            },
            room=self._channel,
        )

    async def subscription_closed(self, subscription_id: str) -> None:
        await self._sio.emit(
            "subscription_closed", {"subscription_id": subscription_id}, room=self._channel
        )


class PendingAnnouncement:
    """A change already stored whose announcement waits for its transport (`RoomHub.stage`)."""

    def __init__(self, hub: RoomHub, transition: Transition) -> None:
        self.transition = transition
        self._hub: RoomHub | None = hub

    async def announce(self) -> None:
        """Tell everyone concerned; once only."""
        hub, self._hub = self._hub, None
        if hub is not None:
            await hub._announce(self.transition)


class RoomHub:
    def __init__(
        self,
        store: RoomStore,
        sio: socketio.AsyncServer,
        relay: RelayService,
        clock: Clock,
        *,
        no_show_after: timedelta | None = None,
        away_grace: timedelta = AWAY_GRACE,
    ) -> None:
        self._store = store
        self.sio = sio
        self.relay = relay
        self.clock = clock
        # Announcements reach the relay through this: its failures never stop the
        # announcements; the room's media is rebuilt instead (signalling/media_recovery.py).
        self.media_recovery = MediaRecovery(
            relay, self.room, lambda entry_id: EntryListener(sio, entry_id), self.media_restart
        )
        self._media = GuardedRelay(relay, self.media_recovery)
        # The store writes each change's consultation events into it, atomically (the outbox).
        self.event_log: EventLog = store.event_log
        self.no_show_after = no_show_after
        self.away_grace = away_grace
        # Called after events are logged (the delivery worker's wake-up).
        self.on_logged: Callable[[], None] = lambda: None
        # Told of every changed room after the people concerned (the desk).
        self.listeners: list[Callable[[Room], Awaitable[None]]] = []

    async def create(self, transition: Transition) -> tuple[Room, bool]:
        """Store a new room unless its appointment has one, and announce it if created.

        Returns the stored room and whether this call created it.
        """
        room, created = await self._store.create(transition, outbox=self._outbox)
        if created:
            await self._announce(transition)
        return room, created

    async def apply(self, room_id: str, change: Callable[[Room], Transition]) -> Transition:
        """Change a room atomically (`change` is a domain transition), then announce it."""
        transition = await self._store.update(room_id, change, outbox=self._outbox)
        await self._announce(transition)
        return transition

    async def stage(
        self, room_id: str, change: Callable[[Room], Transition]
    ) -> PendingAnnouncement:
        """Store a change now and announce it when the transport says (`announce()`).

        For a connection taking its entry back: it must get its `session` before
        what the change sends it (its place, subscription offers).
        """
        return PendingAnnouncement(
            self, await self._store.update(room_id, change, outbox=self._outbox)
        )

    async def room(self, room_id: str) -> Room | None:
        return await self._store.get(room_id)

    async def room_of_appointment(self, appointment_id: str) -> Room | None:
        return await self._store.find_by_appointment(appointment_id)

    async def rooms(self) -> list[Room]:
        """Every room held (until purged after its window)."""
        return await self._store.rooms()

    async def practitioner_rooms(self, practitioner_id: str, now: datetime) -> list[Room]:
        """The practitioner's rooms of the day around `now` (waiting_room.practitioner_day)."""
        return days_rooms(await self._store.rooms(), practitioner_id, now)

    def _outbox(self, transition: Transition) -> list[ConsultationEvent]:
        """What the store logs with the transition, in the same atomic write."""
        return consultation_events(transition, self.clock())

    async def _announce(self, transition: Transition) -> None:
        """Tell everyone concerned about a transition already stored with its events."""
        if self._outbox(transition):
            self.on_logged()
        await self._dispatch(transition)

    async def _dispatch(self, transition: Transition) -> None:
        room = transition.room
        waiting_changed = False
        for event in transition.events:
            waiting_changed |= await self._handle(room, event)
        if waiting_changed:
            await self.publish_waiting(room)
        if transition.events:
            for listener in self.listeners:
                try:
                    await listener(room)
                except Exception:
                    # A desk that cannot be refreshed must not undo an admission.
                    logger.exception("room listener failed")

    async def waiting_places(self, room: Room) -> dict[str, WaitingPlace]:
        """Places in the practitioner's queue, across their rooms of the day."""
        # Imported here: signalling/waiting_pushes.py builds on this module.
        from signalling.waiting_pushes import pushes_of

        return await pushes_of(self).places(room)

    async def publish_waiting(self, room: Room) -> None:
        # Coalesced, and to each screen only what changed: signalling/waiting_pushes.py.
        from signalling.waiting_pushes import pushes_of

        await pushes_of(self).waiting_changed(room)

    async def _handle(self, room: Room, event: RoomEvent) -> bool:
        match event:
            case PractitionerJoined(entry_id=entry_id):
                await self._join_media(room, entry_id)
                return False
            case PatientAdmitted(entry_id=entry_id):
                # Told first: their page starts publishing while the relay makes their
                # subscription offers (a publish that overtakes the join waits on the
                # relay room's lock, and a failed join is recovered like any other).
                await self.sio.emit("admitted", {}, room=entry_channel(entry_id))
                await self._join_media(room, entry_id)
                return True
            case PatientDenied(entry_id=entry_id, reason=reason):
                await self._drop_prepared(room, entry_id)
                payload = {} if reason is None else {"reason": reason}
                await self.sio.emit("denied", payload, room=entry_channel(entry_id))
                return True
            case PatientReturnedToWaiting(entry_id=entry_id):
                await self._leave_call(room, entry_id)
                await self.sio.emit("returned_to_waiting", {}, room=entry_channel(entry_id))
                return True
            case ParticipantAway(entry_id=entry_id, was_waiting=was_waiting):
                # Their connections are dead: stop forwarding to them, and the others
                # rotate keys; coming back means a fresh publish and a rekey.
                if not was_waiting:
                    await self._leave_call(room, entry_id)
                else:
                    await self._drop_prepared(room, entry_id)
                return was_waiting
            case ParticipantResumed(entry_id=entry_id, in_call=in_call):
                if in_call:
                    # A takeover may come before the old connection was seen to drop.
                    await self._leave_call(room, entry_id)
                    await self._join_media(room, entry_id)
                else:
                    # The old device's connection made ahead: the new one makes its own.
                    await self._drop_prepared(room, entry_id)
                return not in_call
            case ParticipantLeft(entry_id=entry_id, was_waiting=was_waiting):
                if not was_waiting:
                    await self._leave_call(room, entry_id)
                else:
                    await self._drop_prepared(room, entry_id)
                return was_waiting
            case RoomEnded(reason=reason):
                await self._media.close_room(room.id)
                await self.sio.emit(
                    "room_ended", {"reason": reason.value}, room=room_channel(room.id)
                )
                return True
            case PatientCheckedIn():
                return True
            case PatientUndenied(entry_id=entry_id, restored=restored):
                # A page still open on its denial comes back (docs/protocol.md, `undenied`).
                await self.sio.emit("undenied", {}, room=entry_channel(entry_id))
                return restored
            case RoomReopened(entry_ids=entry_ids):
                for reopened in entry_ids:
                    await self.sio.emit("undenied", {}, room=entry_channel(reopened))
                return False
        return False

    async def _leave_call(self, room: Room, entry_id: str) -> None:
        """The relay stops serving them, and the others are told to rekey."""
        await self._media.leave(room.id, entry_id)
        await self._peer_left(room, entry_id)

    async def _drop_prepared(self, room: Room, entry_id: str) -> None:
        """A waiting person's publish connection made ahead (`prepare_publish`) closes
        with their wait: the relay's `leave` closes it."""
        await self._media.leave(room.id, entry_id)

    async def _peer_left(self, room: Room, entry_id: str) -> None:
        # Those still in the call rotate their media keys, so whoever left cannot
        # decrypt what follows (docs/e2ee.md).
        for participant in room.in_call:
            if participant.entry_id == entry_id:
                continue  # Themselves, back on a new connection.
            await self.sio.emit(
                "e2ee_peer_left", {"from": entry_id}, room=entry_channel(participant.entry_id)
            )

    async def _join_media(self, room: Room, entry_id: str) -> None:
        participant = room.participant(entry_id)
        if participant is None:
            return
        await self._media.join(
            room.id,
            entry_id,
            EntryListener(self.sio, entry_id, lambda publisher: self._name_in(room.id, publisher)),
            {"role": participant.role.value},
        )

    async def _name_in(self, room_id: str, entry_id: str) -> str | None:
        """The name of someone in a room's call, for the others' tiles (docs/protocol.md)."""
        try:
            room = await self._store.get(room_id)
        except StoreUnavailable:
            return None  # The tile says the role instead.
        participant = None if room is None else room.participant(entry_id)
        return None if participant is None else participant.name

    async def media_restart(self, room_id: str, entry_ids: list[str]) -> None:
        """The room's relay moved (docs/protocol.md): these pages publish and subscribe again."""
        for entry_id in entry_ids:
            await self.sio.emit("media_restart", {}, room=entry_channel(entry_id))

    async def still_in_call(self, room_id: str, entry_ids: list[str]) -> list[str]:
        room = await self._store.get(room_id)
        if room is None:
            return []
        return [entry_id for entry_id in entry_ids if room.participant(entry_id) is not None]

    async def sweep(self, retention: timedelta) -> int:
        """End rooms whose window closed, expire the long away, forget those past retention."""
        now = self.clock()
        no_show_after = self.no_show_after
        for room in await self._store.rooms():
            if room.lifecycle in OPEN_LIFECYCLES and now >= room.window.closes_at:
                await self.apply(room.id, lambda r: close_if_over(r, now))
            elif (
                no_show_after is not None
                and room.lifecycle is Lifecycle.SCHEDULED
                and room.first_check_in_at is None
                and room.no_show_at is None
                and now >= room.appointment.starts_at + no_show_after
            ):
                await self.apply(room.id, lambda r: mark_no_show(r, now, no_show_after))
            expiry = next_expiry(room, self.away_grace)
            if expiry is not None and now >= expiry:
                # Away too long: removed with the same events as a leave.
                await self.apply(room.id, lambda r: expire_away(r, now, self.away_grace))
        await self.event_log.purge(now - EVENT_RETENTION)
        return await self._store.purge(now - retention)
