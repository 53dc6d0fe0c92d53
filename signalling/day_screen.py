"""The practitioner's day from their own link, and the waiting room's answers (docs/protocol.md).

A practitioner's join page is also their desk: its `session` hands it a desk
token (`desk_token`, from signalling.links.session_extras) for the `/desk`
namespace, so the page lists the day across rooms beside the call with what
the desk already computes. To move
into another of their rooms the page asks for that room's practitioner token
(`room_token`), minted here for the same practitioner only, and connects a
second time with it: the camera and microphone keep running.

A waiting patient may answer (`reply`): a short text that goes to their
practitioner's desks (their join page included) and nowhere else. It is
never stored, logged or sent to the booking system.
"""

from __future__ import annotations

from typing import Any

import socketio

from rooms.errors import DomainError, ErrorCode
from rooms.roles import Role
from signalling import tokens
from signalling.ack_namespace import Ack, Handler, ok
from signalling.config import Settings
from signalling.desk import NAMESPACE as DESK_NAMESPACE
from signalling.desk import desk_channel
from signalling.room_hub import RoomHub
from signalling.socket_payloads import PatientReply, RoomTokenRequest, parse
from signalling.socket_session import SocketSession


class DayScreen:
    def __init__(self, sio: socketio.AsyncServer, hub: RoomHub, settings: Settings) -> None:
        self.sio = sio
        self.hub = hub
        self.settings = settings

    def handlers(self) -> dict[str, Handler[SocketSession]]:
        return {"room_token": self.room_token, "reply": self.reply}

    async def room_token(self, session: SocketSession, data: Any) -> Ack:
        """A practitioner token for another of this practitioner's rooms, to move into it."""
        if session.actor.role is not Role.PRACTITIONER:
            raise DomainError(ErrorCode.NOT_ALLOWED)
        room_id = parse(RoomTokenRequest, data).room_id
        room = await self.hub.room(room_id)
        if room is None or not room.is_practitioner(session.actor):
            # Someone else's room looks exactly like no room (as on the desk).
            raise DomainError(ErrorCode.ROOM_NOT_FOUND)
        room.check_joinable(self.hub.clock())
        token = tokens.mint(
            self.settings.token_secret,
            room_id=room.id,
            person_id=session.actor.person_id,
            role=Role.PRACTITIONER,
            not_before=room.window.opens_at,
            expires_at=room.window.closes_at,
        )
        return ok(room_id=room.id, token=token)

    async def reply(self, session: SocketSession, data: Any) -> Ack:
        """A waiting patient's (or guest's) answer, to their practitioner's desks only."""
        if session.actor.role is Role.PRACTITIONER:
            raise DomainError(ErrorCode.NOT_ALLOWED)
        text = parse(PatientReply, data).text
        room = await self.hub.room(session.room_id)
        if room is None:
            raise DomainError(ErrorCode.ROOM_NOT_FOUND)
        entry = room.waiting.get(session.entry_id)
        if entry is None:
            raise DomainError(ErrorCode.NOT_WAITING)
        payload = {
            "room_id": room.id,
            "entry_id": entry.entry_id,
            "name": entry.name,
            "text": text,
            "sent_at": self.hub.clock().isoformat(),
        }
        await self.sio.emit(
            "patient_reply",
            payload,
            room=desk_channel(room.appointment.practitioner.id),
            namespace=DESK_NAMESPACE,
        )
        return ok()
