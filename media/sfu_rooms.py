"""The relay's bookkeeping: rooms, their members, publications and subscriptions."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCPeerConnection

from media.relay_service import SubscriberListener


@dataclass(eq=False)
class Member:
    """A participant that receives the room's publications."""

    participant_id: str
    listener: SubscriberListener
    info: Mapping[str, str]


@dataclass(eq=False)
class Publication:
    """One participant's publish connection and what its forwarding mode keeps for it."""

    publisher_id: str
    pc: RTCPeerConnection
    media: Any = None
    # Made ahead while its publisher waited (`Relay.prepare`), published when they
    # joined, and not yet confirmed by them (`Relay.publish_prepared`).
    unconfirmed: bool = False

    @property
    def kinds(self) -> set[str]:
        return set() if self.media is None else set(self.media.kinds)


@dataclass(eq=False)
class Subscription:
    """One subscriber's connection receiving one publisher."""

    id: str
    subscriber_id: str
    publisher_id: str
    pc: RTCPeerConnection
    media: Any = None


@dataclass(eq=False)
class RelayRoom:
    room_id: str
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    members: dict[str, Member] = field(default_factory=dict)
    publications: dict[str, Publication] = field(default_factory=dict)
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    # Publish connections made while their owners wait (`Relay.prepare`): connected,
    # forwarded to nobody until their owner is in the call and publishes them.
    prepared: dict[str, Publication] = field(default_factory=dict)

    def empty(self) -> bool:
        return not self.members and not self.publications and not self.prepared
