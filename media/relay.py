"""The relay: one publish connection per participant, one subscription per pair.

Each participant in a call sends its audio and video on a publish peer
connection (it offers, the relay answers) and receives each other
participant on a subscription connection (the relay offers). Connections are
never renegotiated, which keeps both ends simple.

The relay knows participants only by opaque ids; who may take part is decided
by signalling, which calls `join` only for people admitted to the call. How
media gets from a publication to its subscriptions is the forwarding mode's
business (`media.forwarding_mode`): the RTP fast path (`media.rtp_mode`)
unless the benchmark plugs in one of its baselines.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Collection, Mapping
from typing import Any

from media.aiortc_internals import check_internals
from media.echo_test import EchoPeers
from media.errors import MediaError
from media.forwarding_mode import ForwardingMode
from media.latency import LatencyHistogram
from media.peer_connections import (
    apply_answer,
    check_sdp,
    new_peer_connection,
    receive_offer,
    with_opus_protection,
)
from media.relay_metrics import ForwardingTotals
from media.relay_service import IceServerConfig, RelayService, SubscriberListener
from media.rtp_mode import RtpForwarding
from media.sfu_rooms import Member, Publication, RelayRoom, Subscription

# The interface's names stay importable from here, where they used to live.
__all__ = ["IceServerConfig", "MediaError", "Relay", "RelayService", "SubscriberListener"]

logger = logging.getLogger(__name__)

# Publish connections made ahead per room: each holds a connection on the relay for
# someone who may wait long, so a long queue gets them for its head only.
MAX_PREPARED_PER_ROOM = 8


class Relay:
    """An in-process SFU; one instance serves every room of this process."""

    def __init__(
        self,
        ice_servers: tuple[IceServerConfig, ...] = (),
        forwarding: ForwardingMode | None = None,
    ) -> None:
        # Fails here, at start-up, when an aiortc upgrade moved what the fast path uses.
        check_internals()
        self._ice_servers = ice_servers
        self.forwarding: ForwardingMode = forwarding or RtpForwarding()
        self._rooms: dict[str, RelayRoom] = {}
        self.closed_totals = ForwardingTotals()
        self.echoes = EchoPeers(ice_servers)

    @property
    def mode(self) -> str:
        return self.forwarding.name

    @property
    def latency(self) -> LatencyHistogram:
        return self.forwarding.latency

    def _room(self, room_id: str) -> RelayRoom:
        room = self._rooms.get(room_id)
        if room is None:
            room = self._rooms[room_id] = RelayRoom(room_id)
        return room

    def stats(self) -> dict[str, int]:
        return {
            "rooms": len(self._rooms),
            "publications": sum(len(r.publications) for r in self._rooms.values()),
            "subscriptions": sum(len(r.subscriptions) for r in self._rooms.values()),
            "prepared": sum(len(r.prepared) for r in self._rooms.values()),
        }

    def forwarding_stats(self) -> dict[str, Any]:
        """Packet counters of the forwarding mode, for benchmarks and operators."""
        published = [p.media for r in self._rooms.values() for p in r.publications.values()]
        subscribed = [s.media for r in self._rooms.values() for s in r.subscriptions.values()]
        return {
            "mode": self.mode,
            **self.forwarding.counters(published, subscribed),
            "latency_ms_p50": self.latency.percentile_ms(0.5),
            "latency_ms_p99": self.latency.percentile_ms(0.99),
            "latency_samples": self.latency.samples,
        }

    def forwarding_totals(self) -> dict[str, int]:
        """The forwarding counters since start: closed media's and the live media's."""
        published = [p.media for r in self._rooms.values() for p in r.publications.values()]
        subscribed = [s.media for r in self._rooms.values() for s in r.subscriptions.values()]
        live = self.forwarding.counters(
            [m for m in published if m is not None], [m for m in subscribed if m is not None]
        )
        return self.closed_totals.with_live(live)

    def publication(self, room_id: str, participant_id: str) -> Publication | None:
        room = self._rooms.get(room_id)
        return None if room is None else room.publications.get(participant_id)

    async def join(
        self,
        room_id: str,
        participant_id: str,
        listener: SubscriberListener,
        info: Mapping[str, str] | None = None,
    ) -> None:
        """Let a participant receive everyone already publishing, and everyone after.

        A publish connection they made while waiting (`prepare`) is published now: the
        others are offered it at once, while their page switches its encodings on.
        """
        room = self._room(room_id)
        async with room.lock:
            if participant_id in room.members:
                return
            room.members[participant_id] = Member(participant_id, listener, dict(info or {}))
            prepared = room.prepared.pop(participant_id, None)
            for publication in list(room.publications.values()):
                if publication.publisher_id != participant_id:
                    await self._subscribe(room, participant_id, publication)
            if prepared is not None:
                await self._publish_ahead(room, prepared)

    async def publish(self, room_id: str, participant_id: str, offer_sdp: object) -> str:
        """Answer a participant's publish offer; returns the answer SDP."""
        sdp = check_sdp(offer_sdp)
        room = self._rooms.get(room_id)
        if room is None or participant_id not in room.members:
            raise MediaError("not_in_call", "Only participants in the call can publish.")
        async with room.lock:
            previous = room.publications.pop(participant_id, None)
            if previous is not None and not self.forwarding.keeps_subscriptions:
                await self._unpublish(room, previous)
                previous = None
            prepared = room.prepared.pop(participant_id, None)
            if prepared is not None:
                await self._close_publication(prepared)
            try:
                publication = await self._accept(room_id, participant_id, sdp)
            except MediaError:
                if previous is not None:
                    await self._unpublish(room, previous)
                raise
            room.publications[participant_id] = publication
            kept: set[str] = set()
            if previous is not None:
                kept = self._carry_over(room, previous, publication)
                await self._unpublish(room, previous, keep=kept)
            served = {room.subscriptions[s].subscriber_id for s in kept}
            logger.info(
                "relay room=%s publication=%s tracks=%s",
                room_id,
                participant_id,
                sorted(publication.kinds),
            )
            await self._subscribe_others(room, publication, served)
            return with_opus_protection(str(publication.pc.localDescription.sdp))

    async def prepare(self, room_id: str, participant_id: str, offer_sdp: object) -> str:
        """Answer the publish offer of someone still waiting: the connection comes up
        (ICE, DTLS) but nothing it carries goes anywhere, and it has no subscription,
        until they are in the call and `publish_prepared` (docs/protocol.md)."""
        sdp = check_sdp(offer_sdp)
        room = self._room(room_id)
        async with room.lock:
            if participant_id in room.members:
                raise MediaError("invalid_request", "Already in the call: publish instead.")
            previous = room.prepared.pop(participant_id, None)
            if previous is not None:
                await self._close_publication(previous)
            if len(room.prepared) >= MAX_PREPARED_PER_ROOM:
                self._drop_if_empty(room)
                raise MediaError("media_busy", "Enough connections are made ahead in this room.")
            try:
                publication = await self._accept(room_id, participant_id, sdp)
            except MediaError:
                self._drop_if_empty(room)
                raise
            room.prepared[participant_id] = publication
            return with_opus_protection(str(publication.pc.localDescription.sdp))

    async def publish_prepared(self, room_id: str, participant_id: str) -> None:
        """Confirm the connection `prepare` made is the one published (`join` published it).

        `not_prepared` when it is not (none was made, it failed, or it was confirmed
        already): the participant then publishes an offer.
        """
        room = self._rooms.get(room_id)
        if room is None or participant_id not in room.members:
            raise MediaError("not_in_call", "Only participants in the call can publish.")
        async with room.lock:
            publication = room.publications.get(participant_id)
            if publication is None or not publication.unconfirmed:
                raise MediaError("not_prepared", "No connection was made ahead: send an offer.")
            if publication.pc.connectionState in ("failed", "closed"):
                room.publications.pop(participant_id, None)
                await self._unpublish(room, publication)
                raise MediaError("not_prepared", "The connection made ahead is lost.")
            publication.unconfirmed = False

    async def _publish_ahead(self, room: RelayRoom, prepared: Publication) -> None:
        previous = room.publications.pop(prepared.publisher_id, None)
        if previous is not None:
            await self._unpublish(room, previous)
        prepared.unconfirmed = True
        room.publications[prepared.publisher_id] = prepared
        logger.info(
            "relay room=%s publication=%s tracks=%s (made ahead)",
            room.room_id,
            prepared.publisher_id,
            sorted(prepared.kinds),
        )
        await self._subscribe_others(room, prepared, set())

    async def _accept(self, room_id: str, participant_id: str, sdp: str) -> Publication:
        publication = Publication(participant_id, new_peer_connection(self._ice_servers))
        try:
            await receive_offer(publication.pc, sdp)
            publication.media = await self.forwarding.accept(publication.pc)
        except Exception as exc:
            await self._close_publication(publication)
            logger.info("relay room=%s publish failed: %s", room_id, type(exc).__name__)
            raise MediaError("media_failed", "The media offer could not be accepted.") from exc
        return publication

    async def _subscribe_others(
        self, room: RelayRoom, publication: Publication, served: set[str]
    ) -> None:
        for member_id in list(room.members):
            if member_id != publication.publisher_id and member_id not in served:
                await self._subscribe(room, member_id, publication)

    def _drop_if_empty(self, room: RelayRoom) -> None:
        if room.empty() and self._rooms.get(room.room_id) is room:
            self._rooms.pop(room.room_id, None)

    def _carry_over(
        self, room: RelayRoom, previous: Publication, publication: Publication
    ) -> set[str]:
        """Move subscribers of a restarted publisher to its new media, connections kept."""
        return {
            subscription.id
            for subscription in room.subscriptions.values()
            if subscription.publisher_id == publication.publisher_id
            and self.forwarding.carry_over(previous.media, publication.media, subscription.media)
        }

    async def _subscribe(
        self, room: RelayRoom, subscriber_id: str, publication: Publication
    ) -> None:
        member = room.members[subscriber_id]
        publisher = room.members.get(publication.publisher_id)
        subscription = Subscription(
            secrets.token_urlsafe(9),
            subscriber_id,
            publication.publisher_id,
            new_peer_connection(self._ice_servers),
        )
        subscription.media = await self.forwarding.offer(subscription.pc, publication.media)
        room.subscriptions[subscription.id] = subscription
        info = publisher.info if publisher is not None else {}
        await member.listener.subscription_offer(
            subscription.id, publication.publisher_id, info, subscription.pc.localDescription.sdp
        )

    async def answer(
        self, room_id: str, participant_id: str, subscription_id: object, answer_sdp: object
    ) -> None:
        sdp = check_sdp(answer_sdp)
        room = self._rooms.get(room_id)
        subscription = (
            room.subscriptions.get(subscription_id)
            if room is not None and isinstance(subscription_id, str)
            else None
        )
        if subscription is None or subscription.subscriber_id != participant_id:
            raise MediaError("unknown_subscription", "No such subscription for you.")
        await apply_answer(subscription.pc, sdp)
        self.forwarding.answered(subscription.pc, subscription.media)

    async def request_keyframe(
        self, room_id: str, participant_id: str, subscription_id: object
    ) -> None:
        room = self._rooms.get(room_id)
        subscription = (
            room.subscriptions.get(subscription_id)
            if room is not None and isinstance(subscription_id, str)
            else None
        )
        if subscription is None or subscription.subscriber_id != participant_id:
            raise MediaError("unknown_subscription", "No such subscription for you.")
        if subscription.media is not None:
            self.forwarding.request_keyframe(subscription.media)

    async def leave(self, room_id: str, participant_id: str) -> None:
        """Stop everything a participant sends or receives."""
        room = self._rooms.get(room_id)
        if room is None:
            return
        async with room.lock:
            room.members.pop(participant_id, None)
            prepared = room.prepared.pop(participant_id, None)
            if prepared is not None:
                await self._close_publication(prepared)
            publication = room.publications.pop(participant_id, None)
            if publication is not None:
                await self._unpublish(room, publication)
            for subscription in list(room.subscriptions.values()):
                if subscription.subscriber_id == participant_id:
                    await self._close_subscription(room, subscription, notify=False)
            self._drop_if_empty(room)

    async def _unpublish(
        self, room: RelayRoom, publication: Publication, keep: Collection[str] = ()
    ) -> None:
        for subscription in list(room.subscriptions.values()):
            if subscription.id in keep:
                continue
            if subscription.publisher_id == publication.publisher_id:
                await self._close_subscription(room, subscription, notify=True)
        await self._close_publication(publication)

    async def _close_publication(self, publication: Publication) -> None:
        if publication.media is not None:
            self.closed_totals.add(self.forwarding.counters([publication.media], []))
            publication.media.close()
        await publication.pc.close()

    async def _close_subscription(
        self, room: RelayRoom, subscription: Subscription, *, notify: bool
    ) -> None:
        room.subscriptions.pop(subscription.id, None)
        if subscription.media is not None:
            self.closed_totals.add(self.forwarding.counters([], [subscription.media]))
            subscription.media.close()
        await subscription.pc.close()
        member = room.members.get(subscription.subscriber_id)
        if notify and member is not None:
            await member.listener.subscription_closed(subscription.id)

    async def close_room(self, room_id: str) -> None:
        room = self._rooms.get(room_id)
        if room is None:
            return
        for participant_id in list(room.members) + list(room.publications) + list(room.prepared):
            await self.leave(room_id, participant_id)
        self._rooms.pop(room_id, None)

    async def echo(self, room_id: str, offer_sdp: object) -> str:
        """A connection test's echo peer (`media.echo_test`): this process is the relay."""
        return await self.echoes.open(offer_sdp)

    async def close(self) -> None:
        for room_id in list(self._rooms):
            await self.close_room(room_id)
        await self.echoes.close()
