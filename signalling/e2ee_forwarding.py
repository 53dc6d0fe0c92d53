"""End-to-end encryption key messages, forwarded between participants in the call (docs/e2ee.md).

They are opaque to us: we check their shape and size (socket_payloads), forward
them only between participants in the call, and never log or store them.
"""

from __future__ import annotations

from typing import Any

import socketio

from rooms.errors import DomainError, ErrorCode
from signalling.ack_namespace import Ack, Handler, ok
from signalling.media_signalling import room_in_call
from signalling.room_hub import RoomHub, entry_channel
from signalling.socket_payloads import E2eeHello, E2eeKey, parse
from signalling.socket_session import SocketSession


def _recipient(to: str, others: list[str]) -> str:
    if to not in others:
        raise DomainError(ErrorCode.NOT_IN_CALL, "That participant is not in the call.")
    return to


class E2eeForwarding:
    def __init__(self, sio: socketio.AsyncServer, hub: RoomHub) -> None:
        self.sio = sio
        self.hub = hub

    def handlers(self) -> dict[str, Handler[SocketSession]]:
        return {"e2ee_hello": self.hello, "e2ee_key": self.key}

    async def _others_in_call(self, session: SocketSession) -> list[str]:
        room = await room_in_call(self.hub, session)
        return [p.entry_id for p in room.in_call if p.entry_id != session.entry_id]

    async def hello(self, session: SocketSession, data: Any) -> Ack:
        """Forward our public key to the others in the call, or to one of them (`to`)."""
        others = await self._others_in_call(session)
        hello = parse(E2eeHello, data)
        if hello.to:
            others = [_recipient(hello.to, others)]
        for entry_id in others:
            await self.sio.emit(
                "e2ee_hello",
                {"from": session.entry_id, "public_key": hello.public_key},
                room=entry_channel(entry_id),
            )
        return ok()

    async def key(self, session: SocketSession, data: Any) -> Ack:
        """Forward a wrapped media key to exactly one other participant in the call."""
        others = await self._others_in_call(session)
        message = parse(E2eeKey, data)
        to = _recipient(message.to, others)
        forwarded = {"public_key": message.public_key, "wrapped": message.wrapped}
        await self.sio.emit(
            "e2ee_key", {"from": session.entry_id, **forwarded}, room=entry_channel(to)
        )
        return ok()
