"""The relay: one publish connection per participant, one subscription per pair.

Each participant in a call sends its audio and video on a publish peer
connection (it offers, the relay answers) and receives each other
participant on a subscription connection (the relay offers). Connections are
never renegotiated, which keeps both ends simple.

The relay knows participants only by opaque ids; who may take part is decided
by signalling, which calls `join` only for people admitted to the call.

Three forwarding modes share this bookkeeping:

- `rtp` (the default): packets are rewritten and forwarded one by one
  (`media.rtp_forwarding`); a publisher that publishes again keeps its
  subscribers' connections and sequence numbers;
- `frames`: the frame-level pass-through of the walking skeleton, which
  reassembles frames and packetizes them again (kept as a benchmark baseline);
- `mediarelay`: aiortc's MediaRelay, which decodes and re-encodes (a baseline
  only: it cannot work with end-to-end encryption).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.codecs import is_rtx
from aiortc.contrib.media import MediaRelay
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtcrtpsender import RTCRtpSender

from media.forwarding import ForwardingTrack, TrackFanout
from media.latency import LatencyHistogram
from media.passthrough import install_packer, install_tap
from media.rtp_forwarding import DownTrack, PublicationRouter, PublishedTrack
from media.rtp_header import extension_id_map
from media.rtp_hooks import PublisherTap, ReceiverUpstream, take_over_sender
from media.srtp_path import SrtpEgress, enlarge_receive_buffers

logger = logging.getLogger(__name__)

MAX_SDP_LENGTH = 32 * 1024
FORWARDED_CODECS = {"audio": "audio/opus", "video": "video/vp8"}

RelayMode = Literal["rtp", "frames", "mediarelay"]
RELAY_MODES: tuple[RelayMode, ...] = ("rtp", "frames", "mediarelay")


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


class RelayService(Protocol):
    """What signalling uses: the in-process `Relay` and `WorkerRelay` both provide it."""

    async def join(
        self,
        room_id: str,
        participant_id: str,
        listener: SubscriberListener,
        info: Mapping[str, str] | None = None,
    ) -> None: ...

    async def publish(self, room_id: str, participant_id: str, offer_sdp: object) -> str: ...

    async def answer(
        self, room_id: str, participant_id: str, subscription_id: object, answer_sdp: object
    ) -> None: ...

    async def leave(self, room_id: str, participant_id: str) -> None: ...

    async def close_room(self, room_id: str) -> None: ...

    async def close(self) -> None: ...


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
    tracks: dict[str, PublishedTrack] = field(default_factory=dict)
    taps: list[PublisherTap] = field(default_factory=list)
    router: PublicationRouter | None = None
    media_tracks: dict[str, Any] = field(default_factory=dict)
    media_relay: MediaRelay | None = None

    @property
    def kinds(self) -> set[str]:
        return set(self.tracks) | set(self.fanouts) | set(self.media_tracks)


@dataclass(eq=False)
class Subscription:
    id: str
    subscriber_id: str
    publisher_id: str
    pc: RTCPeerConnection
    tracks: list[tuple[TrackFanout, ForwardingTrack]] = field(default_factory=list)
    downs: dict[str, DownTrack] = field(default_factory=dict)
    transceivers: dict[str, Any] = field(default_factory=dict)


@dataclass(eq=False)
class RelayRoom:
    room_id: str
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    members: dict[str, Member] = field(default_factory=dict)
    publications: dict[str, Publication] = field(default_factory=dict)
    subscriptions: dict[str, Subscription] = field(default_factory=dict)


def _codec_preferences(kind: str, *, rtx: bool = True) -> list[Any]:
    capabilities = RTCRtpSender.getCapabilities(kind)
    wanted = FORWARDED_CODECS[kind]
    return [
        codec
        for codec in capabilities.codecs
        if codec.mimeType.lower() == wanted or (rtx and codec.mimeType.lower().endswith("/rtx"))
    ]


def _check_sdp(sdp: object) -> str:
    if not isinstance(sdp, str) or not sdp or len(sdp) > MAX_SDP_LENGTH:
        raise MediaError("invalid_request", "The session description is missing or too large.")
    return sdp


class Relay:
    """An in-process SFU; one instance serves every room of this process."""

    def __init__(
        self, ice_servers: tuple[IceServerConfig, ...] = (), mode: RelayMode = "rtp"
    ) -> None:
        if mode not in RELAY_MODES:
            raise ValueError(f"unknown relay mode {mode!r}")
        self._ice_servers = ice_servers
        self.mode = mode
        self._rooms: dict[str, RelayRoom] = {}
        # Time from a packet leaving the socket to its last copy being sent (rtp mode).
        self.latency = LatencyHistogram()

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

    def forwarding_stats(self) -> dict[str, Any]:
        """Packet counters of the rtp mode, for benchmarks and operators."""
        packets_in = packets_out = retransmitted = keyframe_requests = upstream_nacks = 0
        frames_in = frames_out = frames_dropped = 0
        for room in self._rooms.values():
            for publication in room.publications.values():
                frames_in += sum(f.frames for f in publication.fanouts.values())
                for track in publication.tracks.values():
                    packets_in += track.packets
                    keyframe_requests += track.keyframe_requests
                    upstream_nacks += track.upstream_nacks
            for subscription in room.subscriptions.values():
                for down in subscription.downs.values():
                    packets_out += down.packets
                    retransmitted += down.retransmitted
                for _, forwarding in subscription.tracks:
                    frames_out += forwarding.forwarded
                    frames_dropped += forwarding.dropped
        return {
            "mode": self.mode,
            "packets_in": packets_in,
            "packets_out": packets_out,
            "retransmitted": retransmitted,
            "keyframe_requests": keyframe_requests,
            "upstream_nacks": upstream_nacks,
            "frames_in": frames_in,
            "frames_out": frames_out,
            "frames_dropped": frames_dropped,
            "latency_ms_p50": self.latency.percentile_ms(0.5),
            "latency_ms_p99": self.latency.percentile_ms(0.99),
            "latency_samples": self.latency.samples,
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
            if previous is not None and self.mode != "rtp":
                await self._unpublish(room, previous)
                previous = None
            publication = Publication(participant_id, self._new_pc())
            try:
                answer = await self._answer_publish(publication, sdp)
            except Exception as exc:
                await self._close_publication(publication)
                if previous is not None:
                    await self._unpublish(room, previous)
                logger.info("relay room=%s publish failed: %s", room_id, type(exc).__name__)
                raise MediaError("media_failed", "The media offer could not be accepted.") from exc
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
                sorted(publication.fanouts),
            )
            for member_id in list(room.members):
                if member_id != participant_id and member_id not in served:
                    await self._subscribe(room, member_id, publication)
            return answer

    def _carry_over(
        self, room: RelayRoom, previous: Publication, publication: Publication
    ) -> set[str]:
        """Move subscribers of a restarted publisher to its new tracks, connections kept."""
        kept: set[str] = set()
        for subscription in room.subscriptions.values():
            if subscription.publisher_id != publication.publisher_id:
                continue
            if not subscription.downs or set(subscription.downs) != set(publication.tracks):
                continue
            for kind, down in subscription.downs.items():
                previous.tracks[kind].detach(down)
                publication.tracks[kind].attach(down)
            kept.add(subscription.id)
        return kept

    async def _answer_publish(self, publication: Publication, sdp: str) -> str:
        pc = publication.pc
        offered = {line[2:].split(" ", 1)[0] for line in sdp.splitlines() if line.startswith("m=")}
        # Only kinds the offer has: aiortc cannot answer with an unmatched transceiver.
        for kind in ("audio", "video"):
            if kind not in offered:
                continue
            transceiver = pc.addTransceiver(kind, direction="recvonly")
            transceiver.setCodecPreferences(_codec_preferences(kind))
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        if self.mode == "rtp":
            return await self._answer_publish_rtp(publication)
        if self.mode == "mediarelay":
            return await self._answer_publish_mediarelay(publication)
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
        enlarge_receive_buffers(pc)
        return str(pc.localDescription.sdp)

    def _forwarded_transceivers(self, pc: RTCPeerConnection) -> list[Any]:
        chosen: dict[str, Any] = {}
        for transceiver in pc.getTransceivers():
            kind = transceiver.kind
            if kind in chosen or kind not in FORWARDED_CODECS:
                continue
            if transceiver.direction != "recvonly" or transceiver.mid is None:
                continue
            chosen[kind] = transceiver
        if not chosen:
            raise MediaError("media_failed", "The offer carries no audio or video.")
        return list(chosen.values())

    async def _answer_publish_rtp(self, publication: Publication) -> str:
        pc = publication.pc
        transceivers = self._forwarded_transceivers(pc)
        await pc.setLocalDescription(await pc.createAnswer())
        enlarge_receive_buffers(pc)
        # With BUNDLE every m-line shares one id space, so one table serves both kinds.
        publisher_ids = {
            ext.uri: ext.id for t in pc.getTransceivers() for ext in t._headerExtensions
        }
        id_map = extension_id_map(publisher_ids)
        router = PublicationRouter(self.latency)
        publication.router = router
        transports: list[Any] = []
        for transceiver in transceivers:
            kind = transceiver.kind
            track = PublishedTrack(kind, ReceiverUpstream(transceiver.receiver), id_map)
            codecs = transceiver._codecs
            media_types = [
                c.payloadType for c in codecs if c.mimeType.lower() == FORWARDED_CODECS[kind]
            ]
            rtx = {
                c.payloadType: c.parameters["apt"]
                for c in codecs
                if is_rtx(c) and c.parameters.get("apt") in media_types
            }
            router.add(track, media_types, rtx)
            publication.tracks[kind] = track
            if transceiver.receiver.transport not in transports:
                transports.append(transceiver.receiver.transport)
        publication.taps = [PublisherTap(dtls, router) for dtls in transports]
        return str(pc.localDescription.sdp)

    async def _answer_publish_mediarelay(self, publication: Publication) -> str:
        pc = publication.pc
        publication.media_relay = MediaRelay()
        for transceiver in self._forwarded_transceivers(pc):
            publication.media_tracks[transceiver.kind] = transceiver.receiver.track
        await pc.setLocalDescription(await pc.createAnswer())
        enlarge_receive_buffers(pc)
        return str(pc.localDescription.sdp)

    async def _subscribe(
        self, room: RelayRoom, subscriber_id: str, publication: Publication
    ) -> None:
        member = room.members[subscriber_id]
        publisher = room.members.get(publication.publisher_id)
        subscription = Subscription(
            secrets.token_urlsafe(9), subscriber_id, publication.publisher_id, self._new_pc()
        )
        if self.mode == "rtp":
            await self._offer_rtp(subscription, publication)
        elif self.mode == "mediarelay":
            await self._offer_mediarelay(subscription, publication)
        else:
            await self._offer_frames(subscription, publication)
        room.subscriptions[subscription.id] = subscription
        info = publisher.info if publisher is not None else {}
        await member.listener.subscription_offer(
            subscription.id, publication.publisher_id, info, subscription.pc.localDescription.sdp
        )

    async def _offer_rtp(self, subscription: Subscription, publication: Publication) -> None:
        pc = subscription.pc
        for kind in sorted(publication.tracks):
            transceiver = pc.addTransceiver(kind, direction="sendonly")
            # Retransmissions go out on the media SSRC, so RTX is not offered.
            transceiver.setCodecPreferences(_codec_preferences(kind, rtx=False))
            sender = transceiver.sender
            down = DownTrack(kind, sender._ssrc, SrtpEgress(_transport_of(sender)))
            take_over_sender(sender, down.handle_rtcp)
            subscription.downs[kind] = down
            subscription.transceivers[kind] = transceiver
        # One stream for both kinds: browsers synchronise audio and video within a stream.
        senders = [t.sender for t in subscription.transceivers.values()]
        for sender in senders[1:]:
            sender._stream_id = senders[0]._stream_id
        await pc.setLocalDescription(await pc.createOffer())
        for kind, down in subscription.downs.items():
            publication.tracks[kind].attach(down)

    async def _offer_mediarelay(self, subscription: Subscription, publication: Publication) -> None:
        assert publication.media_relay is not None
        for kind, track in sorted(publication.media_tracks.items()):
            transceiver = subscription.pc.addTransceiver(
                publication.media_relay.subscribe(track, buffered=False), direction="sendonly"
            )
            transceiver.setCodecPreferences(_codec_preferences(kind))
        await subscription.pc.setLocalDescription(await subscription.pc.createOffer())

    async def _offer_frames(self, subscription: Subscription, publication: Publication) -> None:
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
        for kind, down in subscription.downs.items():
            transceiver = subscription.transceivers[kind]
            codec = next(c for c in transceiver._codecs if not is_rtx(c))
            down.configure(codec.payloadType, transceiver.mid or "")

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
        for fanout in publication.fanouts.values():
            fanout.close()
        for track in publication.tracks.values():
            track.close()
        for tap in publication.taps:
            tap.close()
        await publication.pc.close()

    async def _close_subscription(
        self, room: RelayRoom, subscription: Subscription, *, notify: bool
    ) -> None:
        room.subscriptions.pop(subscription.id, None)
        for fanout, track in subscription.tracks:
            fanout.unsubscribe(track)
        for down in subscription.downs.values():
            if down.source is not None:
                down.source.detach(down)
            down.egress.close()
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


def _transport_of(sender: RTCRtpSender) -> Callable[[], Any]:
    # Read late: BUNDLE may swap the sender's transport when the answer arrives.
    return lambda: sender.transport


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
