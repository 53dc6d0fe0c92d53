"""The relay's interface, as signalling sees it, whichever relay runs the media.

Three implementations: `media.relay.Relay` (in this process),
`media.worker_relay.WorkerRelay` (worker processes) and
`media.relay_node_client.NodeRelay` (relay nodes placed through Redis).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from media.errors import MediaError

__all__ = ["IceServerConfig", "MediaError", "RelayService", "SubscriberListener"]


class SubscriberListener(Protocol):
    """How the relay reaches a participant's browser (through signalling)."""

    async def subscription_offer(
        self, subscription_id: str, publisher_id: str, publisher_info: Mapping[str, str], sdp: str
    ) -> None: ...

    async def subscription_closed(self, subscription_id: str) -> None: ...


class RelayService(Protocol):
    """What signalling uses; errors are `MediaError` with a stable code."""

    async def join(
        self,
        room_id: str,
        participant_id: str,
        listener: SubscriberListener,
        info: Mapping[str, str] | None = None,
    ) -> None: ...

    async def publish(self, room_id: str, participant_id: str, offer_sdp: object) -> str: ...

    async def prepare(self, room_id: str, participant_id: str, offer_sdp: object) -> str:
        """Answer the publish offer of someone still waiting, for a connection that comes
        up but carries nothing to anyone until `publish_prepared`; returns the answer."""
        ...

    async def publish_prepared(self, room_id: str, participant_id: str) -> None:
        """Publish the connection `prepare` made, now that its owner is in the call.

        `not_prepared` when there is none (or it failed): the owner sends an offer.
        """
        ...

    async def answer(
        self, room_id: str, participant_id: str, subscription_id: object, answer_sdp: object
    ) -> None: ...

    async def request_keyframe(
        self, room_id: str, participant_id: str, subscription_id: object
    ) -> None:
        """Ask the publisher of one of the participant's subscriptions for a key frame.

        For a subscriber that just got the key of a publisher's frames: the key
        frame it saw before could not be decrypted (docs/e2ee.md).
        """
        ...

    async def leave(self, room_id: str, participant_id: str) -> None: ...

    async def close_room(self, room_id: str) -> None: ...

    async def close(self) -> None: ...

    async def echo(self, room_id: str, offer_sdp: object) -> str:
        """Answer a pre-call connection test (`media.echo_test`) on the relay `room_id` would use.

        The echo peer is nothing of the room: no media, no subscription; it closes by itself.
        """
        ...


@dataclass(frozen=True, slots=True)
class IceServerConfig:
    """A STUN or TURN server the relay's peer connections use."""

    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = None
