"""In-call text chat, forwarded between participants in the call as ciphertext (docs/e2ee.md).

Each message is sealed in the sender's browser with a key derived from its
current media key; we check only its shape and size, forward it to the
others in the call, and never log or store it, as for E2EE key messages.
"""

from __future__ import annotations

from typing import Any

import socketio

from signalling.ack_namespace import Ack, Handler, ok
from signalling.media_signalling import room_in_call
from signalling.room_hub import RoomHub, entry_channel
from signalling.socket_payloads import ChatMessage, parse
from signalling.socket_session import SocketSession


class CallChat:
    def __init__(self, sio: socketio.AsyncServer, hub: RoomHub) -> None:
        self.sio = sio
        self.hub = hub

    def handlers(self) -> dict[str, Handler[SocketSession]]:
        return {"chat": self.chat}

    async def chat(self, session: SocketSession, data: Any) -> Ack:
        room = await room_in_call(self.hub, session)
        message = parse(ChatMessage, data)
        forwarded = {
            "from": session.entry_id,
            "kid": message.kid,
            "iv": message.iv,
            "data": message.data,
        }
        others = [p.entry_id for p in room.in_call if p.entry_id != session.entry_id]
        for entry_id in others:
            await self.sio.emit("chat", forwarded, room=entry_channel(entry_id))
        return ok(recipients=len(others))
