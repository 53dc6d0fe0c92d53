"""What people do in a room over the default namespace: check in, admit, deny, leave, end...

Thin calls into the domain (rooms.room) through the hub, which tells
everyone concerned; each answers the caller through its ack.
"""

from __future__ import annotations

import secrets
from typing import Any

import socketio

from rooms import admission, denials, lifecycle, presence
from rooms.appointment import Person
from rooms.errors import DomainError, ErrorCode
from rooms.roles import Role
from signalling.ack_namespace import Ack, Handler, ok
from signalling.config import Settings
from signalling.links import join_link
from signalling.room_hub import RoomHub, entry_channel, place_payload, waiting_list_payload
from signalling.socket_payloads import Denial, EntryAction, GuestInvitation, Undenial, parse
from signalling.socket_session import SocketSession


class RoomActions:
    def __init__(self, sio: socketio.AsyncServer, hub: RoomHub, settings: Settings) -> None:
        self.sio = sio
        self.hub = hub
        self.settings = settings

    def handlers(self) -> dict[str, Handler[SocketSession]]:
        return {
            "check_in": self.check_in,
            "open_consultation": self.open_consultation,
            "admit": self.admit,
            "deny": self.deny,
            "undeny": self.undeny,
            "end_consultation": self.end_consultation,
            "return_to_waiting": self.return_to_waiting,
            "invite_guest": self.invite_guest,
            "leave": self.leave,
        }

    async def check_in(self, session: SocketSession, data: Any) -> Ack:
        transition = await self.hub.apply(
            session.room_id,
            lambda room: admission.check_in(
                room, session.actor, session.entry_id, self.hub.clock(), session.resume_hash
            ),
        )
        place = (await self.hub.waiting_places(transition.room))[session.entry_id]
        return ok(**place_payload(place))

    async def open_consultation(self, session: SocketSession, data: Any) -> Ack:
        transition = await self.hub.apply(
            session.room_id,
            lambda room: admission.join_as_practitioner(
                room, session.actor, session.entry_id, self.hub.clock()
            ),
        )
        await self.sio.emit(
            "waiting_list",
            waiting_list_payload(transition.room),
            room=entry_channel(session.entry_id),
        )
        return ok()

    async def admit(self, session: SocketSession, data: Any) -> Ack:
        entry_id = parse(EntryAction, data).entry_id
        await self.hub.apply(
            session.room_id,
            lambda room: admission.admit(room, session.actor, entry_id, self.hub.clock()),
        )
        return ok()

    async def deny(self, session: SocketSession, data: Any) -> Ack:
        denial = parse(Denial, data)
        await self.hub.apply(
            session.room_id,
            lambda room: admission.deny(
                room, session.actor, denial.entry_id, self.hub.clock(), denial.reason
            ),
        )
        return ok()

    async def undeny(self, session: SocketSession, data: Any) -> Ack:
        """The practitioner's undo of a denial: the person gets their place back."""
        entry_id = parse(Undenial, data).entry_id
        await self.hub.apply(
            session.room_id,
            lambda room: denials.undeny(room, session.actor, entry_id, self.hub.clock()),
        )
        return ok()

    async def return_to_waiting(self, session: SocketSession, data: Any) -> Ack:
        entry_id = parse(EntryAction, data).entry_id
        await self.hub.apply(
            session.room_id,
            lambda room: admission.return_to_waiting(
                room, session.actor, entry_id, self.hub.clock()
            ),
        )
        return ok()

    async def invite_guest(self, session: SocketSession, data: Any) -> Ack:
        name = parse(GuestInvitation, data).name
        room = await self.hub.room(session.room_id)
        if room is None:
            raise DomainError(ErrorCode.ROOM_NOT_FOUND)
        if not room.is_practitioner(session.actor):
            raise DomainError(ErrorCode.NOT_ALLOWED)
        guest = Person("guest-" + secrets.token_urlsafe(9), name)
        now = self.hub.clock()
        transition = await self.hub.apply(
            session.room_id, lambda r: admission.invite_guest(r, guest, now)
        )
        return ok(
            guest_id=guest.id,
            link=join_link(self.settings, transition.room, Role.GUEST, guest),
        )

    async def end_consultation(self, session: SocketSession, data: Any) -> Ack:
        await self.hub.apply(
            session.room_id,
            lambda room: lifecycle.end(room, session.actor, self.hub.clock()),
        )
        return ok()

    async def leave(self, session: SocketSession, data: Any) -> Ack:
        # The hub tells those still in the call (`e2ee_peer_left`) to rotate their keys.
        await self.hub.apply(
            session.room_id,
            lambda room: presence.leave_from(
                room, session.entry_id, session.connection, self.hub.clock()
            ),
        )
        return ok()
