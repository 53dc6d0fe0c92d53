"""Applies domain transitions and tells everyone concerned.

Transports (the booking webhook, Socket.IO handlers, the sweeper) change a
room only through `RoomHub.apply`; the hub then fans the resulting events out
to browsers and the relay. Socket.IO rooms are used only to address people:
`entry:<id>` is one connection, `practitioners:<room>` the practitioner side
of a room, `room:<room>` everyone inside it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import timedelta

import socketio

from media.relay import Relay
from rooms.events import (
    ParticipantLeft,
    PatientAdmitted,
    PatientCheckedIn,
    PatientDenied,
    PractitionerJoined,
    RoomEnded,
    RoomEvent,
)
from rooms.room import Lifecycle, Room, Transition, close_if_over
from rooms.store import RoomStore
from signalling.clock import Clock

logger = logging.getLogger(__name__)

OPEN_LIFECYCLES = (Lifecycle.SCHEDULED, Lifecycle.IN_CONSULTATION)


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
                "waiting_since": view.waiting_since.isoformat(),
            }
            for view in room.waiting.practitioner_view()
        ]
    }


class EntryListener:
    """Relays media offers to one participant's connection."""

    def __init__(self, sio: socketio.AsyncServer, entry_id: str) -> None:
        self._sio = sio
        self._channel = entry_channel(entry_id)

    async def subscription_offer(
        self, subscription_id: str, publisher_id: str, publisher_info: Mapping[str, str], sdp: str
    ) -> None:
        await self._sio.emit(
            "subscription_offer",
            {
                "subscription_id": subscription_id,
                "publisher": {"entry_id": publisher_id, **publisher_info},
                "sdp": sdp,
                "type": "offer",
            },
            room=self._channel,
        )

    async def subscription_closed(self, subscription_id: str) -> None:
        await self._sio.emit(
            "subscription_closed", {"subscription_id": subscription_id}, room=self._channel
        )


class RoomHub:
    def __init__(
        self, store: RoomStore, sio: socketio.AsyncServer, relay: Relay, clock: Clock
    ) -> None:
        self.store = store
        self.sio = sio
        self.relay = relay
        self.clock = clock

    async def apply(self, room_id: str, change: Callable[[Room], Transition]) -> Transition:
        transition = await self.store.update(room_id, change)
        await self.dispatch(transition)
        return transition

    async def dispatch(self, transition: Transition) -> None:
        room = transition.room
        waiting_changed = False
        for event in transition.events:
            waiting_changed |= await self._handle(room, event)
        if waiting_changed:
            await self.publish_waiting(room)

    async def publish_waiting(self, room: Room) -> None:
        await self.sio.emit(
            "waiting_list", waiting_list_payload(room), room=practitioners_channel(room.id)
        )
        for entry_id, position in room.waiting.positions().items():
            await self.sio.emit("waiting", {"position": position}, room=entry_channel(entry_id))

    async def _handle(self, room: Room, event: RoomEvent) -> bool:
        match event:
            case PractitionerJoined(entry_id=entry_id):
                await self._join_media(room, entry_id)
                return False
            case PatientAdmitted(entry_id=entry_id):
                await self._join_media(room, entry_id)
                await self.sio.emit("admitted", {}, room=entry_channel(entry_id))
                return True
            case PatientDenied(entry_id=entry_id):
                await self.sio.emit("denied", {}, room=entry_channel(entry_id))
                return True
            case ParticipantLeft(entry_id=entry_id, was_waiting=was_waiting):
                if not was_waiting:
                    await self.relay.leave(room.id, entry_id)
                return was_waiting
            case RoomEnded(reason=reason):
                await self.relay.close_room(room.id)
                await self.sio.emit(
                    "room_ended", {"reason": reason.value}, room=room_channel(room.id)
                )
                return True
            case PatientCheckedIn():
                return True
        return False

    async def _join_media(self, room: Room, entry_id: str) -> None:
        participant = room.participant(entry_id)
        if participant is None:
            return
        await self.relay.join(
            room.id,
            entry_id,
            EntryListener(self.sio, entry_id),
            {"role": participant.role.value},
        )

    async def sweep(self, retention: timedelta) -> int:
        """End rooms whose window closed and forget those past retention."""
        now = self.clock()
        for room in await self.store.rooms():
            if room.lifecycle in OPEN_LIFECYCLES and now >= room.window.closes_at:
                await self.apply(room.id, lambda r: close_if_over(r, now))
        return await self.store.purge(now - retention)
