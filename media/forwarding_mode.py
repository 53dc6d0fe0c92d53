"""The seam between the relay's bookkeeping and how media gets from a publisher to subscribers.

The production relay has one mode, the RTP fast path (`media.rtp_mode`). The
benchmark plugs its baselines in through this same interface (bench/), so
the relay knows nothing of them.
"""

from __future__ import annotations

from typing import Any, Protocol

from aiortc import RTCPeerConnection

from media.latency import LatencyHistogram


class PublishedMedia(Protocol):
    """What a mode keeps for one publish connection."""

    @property
    def kinds(self) -> set[str]: ...

    def close(self) -> None: ...


class SubscribedMedia(Protocol):
    """What a mode keeps for one subscription connection."""

    def close(self) -> None: ...


class ForwardingMode(Protocol):
    name: str
    # True: a publisher that publishes again keeps its subscribers' connections.
    keeps_subscriptions: bool
    # From a datagram leaving the socket to its last copy being sent (if the mode measures it).
    latency: LatencyHistogram

    async def accept(self, pc: RTCPeerConnection) -> PublishedMedia:
        """The offer is applied: set up forwarding and the local answer."""
        ...

    async def offer(self, pc: RTCPeerConnection, published: Any) -> SubscribedMedia:
        """Add what a subscription sends, and the local offer."""
        ...

    def answered(self, pc: RTCPeerConnection, subscribed: Any) -> None:
        """The subscriber's answer is applied."""
        ...

    def carry_over(self, previous: Any, published: Any, subscribed: Any) -> bool:
        """Move a subscription to a restarted publisher's media; False if it cannot be."""
        ...

    def request_keyframe(self, subscribed: Any) -> None:
        """The subscriber needs a key frame of what this subscription carries (rate-limited)."""
        ...

    def counters(self, published: list[Any], subscribed: list[Any]) -> dict[str, int]:
        """The mode's packet counters over the given publications and subscriptions."""
        ...
