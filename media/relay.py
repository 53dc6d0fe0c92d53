"""The relay: one publish connection per participant, one subscription per pair.

Each participant in a call sends its audio and video on a publish peer
connection (it offers, the relay answers) and receives each other
participant on a subscription connection (the relay offers). Connections are
never renegotiated, which keeps both ends simple.

The relay knows participants only by opaque ids; who may take part is decided
by signalling, which calls `join` only for people admitted to the call.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtcrtpsender import RTCRtpSender

from media.forwarding import ForwardingTrack, TrackFanout
from media.passthrough import install_packer, install_tap

logger = logging.getLogger(__name__)

MAX_SDP_LENGTH = 32 * 1024
FORWARDED_CODECS = {"audio": "audio/opus", "video": "video/vp8"}


class MediaError(Exception):
    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")


class SubscriberListener(Protocol):
    """How the relay reaches a participant's browser (through signalling)."""

    async def subscription_offer(
        self, subscription_id: str, publisher_id: str, publisher_info: Mapping[str, str], sdp: str
    ) -> None: ...

    async def subscription_closed(self, subscription_id: str) -> None: ...


@dataclass(frozen=True, slots=True)
class IceServerConfig:
    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = None


@dataclass(eq=False)
class Member:
    participant_id: str
    listener: SubscriberListener
    info: Mapping[str, str]


@dataclass(eq=False)
class Publication:
    publisher_id: str
    pc: RTCPeerConnection
    fanouts: dict[str, TrackFanout] = field(default_factory=dict)


@dataclass(eq=False)
class Subscription:
    id: str
    subscriber_id: str
    publisher_id: str
    pc: RTCPeerConnection
    tracks: list[tuple[TrackFanout, ForwardingTrack]] = field(default_factory=list)


@dataclass(eq=False)
class RelayRoom:
    room_id: str
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    members: dict[str, Member] = field(default_factory=dict)
    publications: dict[str, Publication] = field(default_factory=dict)
    subscriptions: dict[str, Subscription] = field(default_factory=dict)


def _codec_preferences(kind: str) -> list[Any]:
    capabilities = RTCRtpSender.getCapabilities(kind)
    wanted = FORWARDED_CODECS[kind]
    return [
        codec
        for codec in capabilities.codecs
        if codec.mimeType.lower() == wanted or codec.mimeType.lower().endswith("/rtx")
    ]


def _check_sdp(sdp: object) -> str:
    if not isinstance(sdp, str) or not sdp or len(sdp) > MAX_SDP_LENGTH:
        raise MediaError("invalid_request", "The session description is missing or too large.")
    return sdp


class Relay:
    """An in-process SFU; one instance serves every room of this process."""

    def __init__(self, ice_servers: tuple[IceServerConfig, ...] = ()) -> None:
        self._ice_servers = ice_servers
        self._rooms: dict[str, RelayRoom] = {}

    def _new_pc(self) -> RTCPeerConnection:
        servers = [
            RTCIceServer(urls=list(s.urls), username=s.username, credential=s.credential)
            for s in self._ice_servers
        ]
        return RTCPeerConnection(RTCConfiguration(iceServers=servers))

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
        }

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
        """Let a participant receive everyone already publishing, and everyone after."""
        room = self._room(room_id)
        async with room.lock:
            if participant_id in room.members:
                return
            room.members[participant_id] = Member(participant_id, listener, dict(info or {}))
            for publication in list(room.publications.values()):
                if publication.publisher_id != participant_id:
                    await self._subscribe(room, participant_id, publication)

    async def publish(self, room_id: str, participant_id: str, offer_sdp: object) -> str:
        """Answer a participant's publish offer; returns the answer SDP."""
        sdp = _check_sdp(offer_sdp)
        room = self._rooms.get(room_id)
        if room is None or participant_id not in room.members:
            raise MediaError("not_in_call", "Only participants in the call can publish.")
        async with room.lock:
            previous = room.publications.pop(participant_id, None)
            if previous is not None:
                await self._unpublish(room, previous)
            publication = Publication(participant_id, self._new_pc())
            try:
                answer = await self._answer_publish(publication, sdp)
            except Exception as exc:
                await publication.pc.close()
                logger.info("relay room=%s publish failed: %s", room_id, type(exc).__name__)
                raise MediaError("media_failed", "The media offer could not be accepted.") from exc
            room.publications[participant_id] = publication
            logger.info(
                "relay room=%s publication=%s tracks=%s",
                room_id,
                participant_id,
                sorted(publication.fanouts),
            )
            for member_id in list(room.members):
                if member_id != participant_id:
                    await self._subscribe(room, member_id, publication)
            return answer

    async def _answer_publish(self, publication: Publication, sdp: str) -> str:
        pc = publication.pc
        for kind in ("audio", "video"):
            transceiver = pc.addTransceiver(kind, direction="recvonly")
            transceiver.setCodecPreferences(_codec_preferences(kind))
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        for transceiver in pc.getTransceivers():
            receiver: RTCRtpReceiver = transceiver.receiver
            kind = transceiver.kind
            if kind in publication.fanouts or kind not in FORWARDED_CODECS:
                continue
            if transceiver.direction != "recvonly" or transceiver.mid is None:
                continue
            fanout = TrackFanout(kind, _pli_sender(receiver))
            install_tap(receiver, fanout.deliver)
            publication.fanouts[kind] = fanout
        if not publication.fanouts:
            raise MediaError("media_failed", "The offer carries no audio or video.")
        await pc.setLocalDescription(await pc.createAnswer())
        return str(pc.localDescription.sdp)

    async def _subscribe(
        self, room: RelayRoom, subscriber_id: str, publication: Publication
    ) -> None:
        member = room.members[subscriber_id]
        publisher = room.members.get(publication.publisher_id)
        subscription = Subscription(
            secrets.token_urlsafe(9), subscriber_id, publication.publisher_id, self._new_pc()
        )
        for kind, fanout in sorted(publication.fanouts.items()):
            track = fanout.subscribe()
            transceiver = subscription.pc.addTransceiver(track, direction="sendonly")
            transceiver.setCodecPreferences(_codec_preferences(kind))
            install_packer(transceiver.sender, kind, track.request_keyframe)
            subscription.tracks.append((fanout, track))
            if kind == "video":
                # A newcomer needs a keyframe now, not at the publisher's next one.
                fanout.request_keyframe()
        await subscription.pc.setLocalDescription(await subscription.pc.createOffer())
        room.subscriptions[subscription.id] = subscription
        info = publisher.info if publisher is not None else {}
        await member.listener.subscription_offer(
            subscription.id, publication.publisher_id, info, subscription.pc.localDescription.sdp
        )

    async def answer(
        self, room_id: str, participant_id: str, subscription_id: object, answer_sdp: object
    ) -> None:
        sdp = _check_sdp(answer_sdp)
        room = self._rooms.get(room_id)
        subscription = (
            room.subscriptions.get(subscription_id)
            if room is not None and isinstance(subscription_id, str)
            else None
        )
        if subscription is None or subscription.subscriber_id != participant_id:
            raise MediaError("unknown_subscription", "No such subscription for you.")
        if subscription.pc.signalingState != "have-local-offer":
            raise MediaError("invalid_request", "This subscription was already answered.")
        try:
            await subscription.pc.setRemoteDescription(
                RTCSessionDescription(sdp=sdp, type="answer")
            )
        except Exception as exc:
            raise MediaError("media_failed", "The media answer could not be applied.") from exc

    async def leave(self, room_id: str, participant_id: str) -> None:
        """Stop everything a participant sends or receives."""
        room = self._rooms.get(room_id)
        if room is None:
            return
        async with room.lock:
            room.members.pop(participant_id, None)
            publication = room.publications.pop(participant_id, None)
            if publication is not None:
                await self._unpublish(room, publication)
            for subscription in list(room.subscriptions.values()):
                if subscription.subscriber_id == participant_id:
                    await self._close_subscription(room, subscription, notify=False)
            if not room.members and not room.publications:
                self._rooms.pop(room_id, None)

    async def _unpublish(self, room: RelayRoom, publication: Publication) -> None:
        for subscription in list(room.subscriptions.values()):
            if subscription.publisher_id == publication.publisher_id:
                await self._close_subscription(room, subscription, notify=True)
        for fanout in publication.fanouts.values():
            fanout.close()
        await publication.pc.close()

    async def _close_subscription(
        self, room: RelayRoom, subscription: Subscription, *, notify: bool
    ) -> None:
        room.subscriptions.pop(subscription.id, None)
        for fanout, track in subscription.tracks:
            fanout.unsubscribe(track)
        await subscription.pc.close()
        member = room.members.get(subscription.subscriber_id)
        if notify and member is not None:
            await member.listener.subscription_closed(subscription.id)

    async def close_room(self, room_id: str) -> None:
        room = self._rooms.get(room_id)
        if room is None:
            return
        for participant_id in list(room.members) + list(room.publications):
            await self.leave(room_id, participant_id)
        self._rooms.pop(room_id, None)

    async def close(self) -> None:
        for room_id in list(self._rooms):
            await self.close_room(room_id)


def _pli_sender(receiver: RTCRtpReceiver) -> Any:
    def send() -> None:
        sources = receiver.getSynchronizationSources()
        if not sources:
            return
        ssrc = sources[0].source
        task = asyncio.ensure_future(receiver._send_rtcp_pli(ssrc))
        task.add_done_callback(_log_failure)

    return send


def _log_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.debug("relay keyframe request failed: %r", task.exception())
