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
from signalling.socket_payloads import (
    KeyframeRequest,
    PrepareOffer,
    PublishOffer,
    SubscriptionAnswer,
    parse,
)
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


async def room_waiting(hub: RoomHub, session: SocketSession) -> Room:
    """The session's room, refusing (`not_waiting`) anyone not waiting in it on this
    connection."""
    room = await hub.room(session.room_id)
    if room is None:
        raise DomainError(ErrorCode.ROOM_NOT_FOUND)
    for entry in room.waiting.entries:
        if entry.entry_id == session.entry_id and entry.connection == session.connection:
            return room
    raise DomainError(ErrorCode.NOT_WAITING)


class MediaSignalling:
    def __init__(self, hub: RoomHub) -> None:
        self.hub = hub

    def handlers(self) -> dict[str, Handler[SocketSession]]:
        return {
            "publish": self.publish,
            "prepare_publish": self.prepare_publish,
            "subscription_answer": self.subscription_answer,
            "keyframe_request": self.keyframe_request,
        }

    async def publish(self, session: SocketSession, data: Any) -> Ack:
        await room_in_call(self.hub, session)
        offer = parse(PublishOffer, data)
        if offer.prepared:
            await self.hub.relay.publish_prepared(session.room_id, session.entry_id)
            return ok()
        answer = await self.hub.relay.publish(session.room_id, session.entry_id, offer.sdp)
        return ok(answer={"sdp": answer, "type": "answer"})

    async def prepare_publish(self, session: SocketSession, data: Any) -> Ack:
        """While waiting: the publish connection made ahead, carrying nothing to anyone
        until `publish {prepared: true}` once admitted (docs/protocol.md)."""
        await room_waiting(self.hub, session)
        offer = parse(PrepareOffer, data)
        answer = await self.hub.relay.prepare(session.room_id, session.entry_id, offer.sdp)
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
