"""The current state of the rooms this node's sockets follow, sent again to them.

Run when the fan-out listener subscribes again after losing Redis
(signalling/socket_fanout.py): whatever other nodes published meanwhile is
lost, so each screen here is given the state it would be showing now. Every
message is one a screen already takes more than once (a waiting list, a
place, `admitted` to someone in the call, `denied`, `room_ended`), so sending
it to a screen that missed nothing changes nothing. Only this node's sockets
are addressed (`ignore_queue`): every node does the same for its own.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import socketio

from rooms.roles import Role
from rooms.room import Room
from signalling.desk import DeskNamespace
from signalling.room_hub import (
    OPEN_LIFECYCLES,
    RoomHub,
    entry_channel,
    place_payload,
    room_channel,
    waiting_list_payload,
)
from signalling.socket_session import SocketSession
from store.errors import StoreUnavailable

logger = logging.getLogger(__name__)


class ScreenResync:
    def __init__(
        self,
        sio: socketio.AsyncServer,
        hub: RoomHub,
        sessions: Mapping[str, SocketSession],
        desk: DeskNamespace | None = None,
    ) -> None:
        self.sio = sio
        self.hub = hub
        self.sessions = sessions
        self.desk = desk
        # How many times the state was re-sent (tests and operators can tell).
        self.runs = 0

    async def resend(self) -> None:
        followed: dict[str, list[SocketSession]] = {}
        for session in list(self.sessions.values()):
            followed.setdefault(session.room_id, []).append(session)
        sent = 0
        for room_id, sessions in followed.items():
            try:
                room = await self.hub.room(room_id)
            except StoreUnavailable:
                logger.warning("room state re-send skipped: store unavailable room=%s", room_id)
                continue
            if room is not None:
                await self._resend_room(room, sessions)
                sent += 1
        if self.desk is not None:
            await self.desk.resend_all()
        self.runs += 1
        logger.info("room state re-sent for %d rooms", sent)

    async def _resend_room(self, room: Room, sessions: list[SocketSession]) -> None:
        if room.lifecycle not in OPEN_LIFECYCLES or self.hub.clock() >= room.window.closes_at:
            reason = room.end_reason.value if room.end_reason is not None else "closed"
            await self._emit("room_ended", {"reason": reason}, room_channel(room.id))
            return
        places = None
        for session in sessions:
            channel = entry_channel(session.entry_id)
            if session.actor.role is Role.PRACTITIONER:
                await self._emit("waiting_list", waiting_list_payload(room), channel)
            elif room.participant(session.entry_id) is not None:
                await self._emit("admitted", {}, channel)
            elif room.waiting.get(session.entry_id) is not None:
                if places is None:
                    places = await self.hub.waiting_places(room)
                place = places.get(session.entry_id)
                if place is not None:
                    await self._emit("waiting", place_payload(place), channel)
            elif session.entry_id in room.denied:
                await self._emit("denied", {}, channel)

    async def _emit(self, event: str, payload: dict[str, object], channel: str) -> None:
        await self.sio.emit(event, payload, room=channel, ignore_queue=True)
