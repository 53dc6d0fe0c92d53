"""SDP between a participant in the call and the media relay (docs/protocol.md, "In the call").

The relay checks the session descriptions and subscriptions itself; a
MediaError it raises is answered through the error table.
"""

from __future__ import annotations

from typing import Any

from rooms.errors import DomainError, ErrorCode
from rooms.room import Room
from signalling.ack_namespace import Ack, Handler, ok
from signalling.room_hub import RoomHub
from signalling.socket_payloads import KeyframeRequest, PublishOffer, SubscriptionAnswer, parse
from signalling.socket_session import SocketSession


async def room_in_call(hub: RoomHub, session: SocketSession) -> Room:
    """The session's room, refusing (`not_in_call`) anyone not in its call."""
    room = await hub.room(session.room_id)
    if room is None:
        raise DomainError(ErrorCode.ROOM_NOT_FOUND)
    participant = room.participant(session.entry_id)
    if participant is None:
        raise DomainError(ErrorCode.NOT_IN_CALL)
    if participant.connection != session.connection:
        # Taken over by a newer connection of the same person, maybe on another node: this one
        # is told `replaced` and gets nothing of the call any more (docs/protocol.md).
        raise DomainError(ErrorCode.NOT_IN_CALL, "This consultation is open in another window.")
    return room


class MediaSignalling:
    def __init__(self, hub: RoomHub) -> None:
        self.hub = hub

    def handlers(self) -> dict[str, Handler[SocketSession]]:
        return {
            "publish": self.publish,
            "subscription_answer": self.subscription_answer,
            "keyframe_request": self.keyframe_request,
        }

    async def publish(self, session: SocketSession, data: Any) -> Ack:
        await room_in_call(self.hub, session)
        offer = parse(PublishOffer, data)
        answer = await self.hub.relay.publish(session.room_id, session.entry_id, offer.sdp)
        return ok(answer={"sdp": answer, "type": "answer"})

    async def subscription_answer(self, session: SocketSession, data: Any) -> Ack:
        await room_in_call(self.hub, session)
        answer = parse(SubscriptionAnswer, data)
        await self.hub.relay.answer(
            session.room_id, session.entry_id, answer.subscription_id, answer.sdp
        )
        return ok()

    async def keyframe_request(self, session: SocketSession, data: Any) -> Ack:
        """A key frame from the publisher of one of our subscriptions (docs/e2ee.md)."""
        await room_in_call(self.hub, session)
        request = parse(KeyframeRequest, data)
        await self.hub.relay.request_keyframe(
            session.room_id, session.entry_id, request.subscription_id
        )
        return ok()
