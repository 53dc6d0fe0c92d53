"""How each participant's media is doing, forwarded to the others in the call (docs/protocol.md).

A page measures its own connection (web_client/quality.js) and says whether it
sends video; the others show "the patient's connection is poor" or an avatar
instead of a frozen or black picture. Nothing is stored or logged: it is a
hint between screens, bounded by its rate limit (`signalling.socket_limits`).
"""

from __future__ import annotations

from typing import Any

import socketio

from signalling.ack_namespace import Ack, Handler, ok
from signalling.media_signalling import room_in_call
from signalling.room_hub import RoomHub, entry_channel
from signalling.socket_payloads import MediaState, parse
from signalling.socket_session import SocketSession


class MediaStateForwarding:
    def __init__(self, sio: socketio.AsyncServer, hub: RoomHub) -> None:
        self.sio = sio
        self.hub = hub

    def handlers(self) -> dict[str, Handler[SocketSession]]:
        return {"media_state": self.media_state}

    async def media_state(self, session: SocketSession, data: Any) -> Ack:
        """Forward `{quality, video}` to everyone else in the call, saying from whom.

        Each recipient also gets how the sender receives *them* (`receiving_you`,
        from `receiving`): that is their uplink as seen from the other end.
        """
        room = await room_in_call(self.hub, session)
        state = parse(MediaState, data)
        for participant in room.in_call:
            if participant.entry_id == session.entry_id:
                continue
            forwarded = {
                "from": session.entry_id,
                "quality": state.quality,
                "video": state.video,
                "receiving_you": state.receiving.get(participant.entry_id, "unknown"),
            }
            await self.sio.emit("media_state", forwarded, room=entry_channel(participant.entry_id))
        return ok()
