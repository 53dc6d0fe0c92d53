"""The relay's forwarding mode: RTP packets rewritten and forwarded one by one.

A publisher that publishes again keeps its subscribers' connections and
sequence numbers (`carry_over`). See `media.rtp_forwarding` for the packet
path and `media.rtp_hooks` for where it plugs into aiortc.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCPeerConnection
from aiortc.codecs import is_rtx

from media import aiortc_internals as internals
from media.latency import LatencyHistogram
from media.peer_connections import FORWARDED_CODECS, codec_preferences, forwarded_transceivers
from media.rtp_forwarding import DownTrack, PublicationRouter, PublishedTrack
from media.rtp_header import extension_id_map
from media.rtp_hooks import PublisherTap, ReceiverUpstream, take_over_sender
from media.srtp_path import SrtpEgress, enlarge_receive_buffers

# How often the relay tells each publisher what reached it (receiver reports):
# about as often as a browser reports what it receives.
RECEPTION_REPORT_INTERVAL = 1.0


@dataclass(eq=False)
class RtpPublication:
    router: PublicationRouter
    tracks: dict[str, PublishedTrack] = field(default_factory=dict)
    taps: list[PublisherTap] = field(default_factory=list)
    _reporting: asyncio.TimerHandle | None = None

    def start_reporting(self) -> None:
        loop = asyncio.get_running_loop()
        self._reporting = loop.call_later(RECEPTION_REPORT_INTERVAL, self._report)

    def _report(self) -> None:
        now = time.monotonic()
        for track in self.tracks.values():
            track.report_reception(now)
        self.start_reporting()

    @property
    def kinds(self) -> set[str]:
        return set(self.tracks)

    @property
    def malformed_packets(self) -> int:
        return self.router.malformed_packets + sum(tap.malformed_packets for tap in self.taps)

    def close(self) -> None:
        if self._reporting is not None:
            self._reporting.cancel()
            self._reporting = None
        for track in self.tracks.values():
            track.close()
        for tap in self.taps:
            tap.close()


@dataclass(eq=False)
class RtpSubscription:
    downs: dict[str, DownTrack] = field(default_factory=dict)
    transceivers: dict[str, Any] = field(default_factory=dict)

    def close(self) -> None:
        for down in self.downs.values():
            if down.source is not None:
                down.source.detach(down)
            down.egress.close()


class RtpForwarding:
    """The RTP fast path, the only mode of the production relay."""

    name = "rtp"
    keeps_subscriptions = True
    # What carries one published track (the benchmark's minimal forwarder swaps it).
    track_factory: Callable[[str, Any, bytes], PublishedTrack] = PublishedTrack
    router_factory: Callable[[LatencyHistogram], PublicationRouter] = PublicationRouter

    def __init__(self) -> None:
        self.latency = LatencyHistogram()

    async def accept(self, pc: RTCPeerConnection) -> RtpPublication:
        transceivers = forwarded_transceivers(pc)
        await pc.setLocalDescription(await pc.createAnswer())
        enlarge_receive_buffers(pc)
        id_map = extension_id_map(internals.header_extension_ids(pc.getTransceivers()))
        publication = RtpPublication(self.router_factory(self.latency))
        transports: list[Any] = []
        for transceiver in transceivers:
            kind = transceiver.kind
            track = self.track_factory(kind, ReceiverUpstream(transceiver.receiver), id_map)
            # The relay reports what reached it (`media.reception`), aiortc no longer.
            internals.silence_receiver_reports(transceiver.receiver)
            codecs = internals.negotiated_codecs(transceiver)
            media_types = [
                c.payloadType for c in codecs if c.mimeType.lower() == FORWARDED_CODECS[kind]
            ]
            rtx = {
                c.payloadType: c.parameters["apt"]
                for c in codecs
                if is_rtx(c) and c.parameters.get("apt") in media_types
            }
            publication.router.add(track, media_types, rtx)
            publication.tracks[kind] = track
            if transceiver.receiver.transport not in transports:
                transports.append(transceiver.receiver.transport)
        publication.taps = [PublisherTap(dtls, publication.router) for dtls in transports]
        publication.start_reporting()
        return publication

    async def offer(self, pc: RTCPeerConnection, published: RtpPublication) -> RtpSubscription:
        subscription = RtpSubscription()
        for kind in sorted(published.tracks):
            transceiver = pc.addTransceiver(kind, direction="sendonly")
            # Retransmissions go out on the media SSRC, so RTX is not offered.
            transceiver.setCodecPreferences(codec_preferences(kind, rtx=False))
            sender = transceiver.sender
            down = DownTrack(kind, internals.sender_ssrc(sender), SrtpEgress(_transport_of(sender)))
            take_over_sender(sender, down.handle_rtcp)
            subscription.downs[kind] = down
            subscription.transceivers[kind] = transceiver
        # One stream for both kinds: browsers synchronise audio and video within a stream.
        internals.share_media_stream([t.sender for t in subscription.transceivers.values()])
        await pc.setLocalDescription(await pc.createOffer())
        for kind, down in subscription.downs.items():
            published.tracks[kind].attach(down)
        return subscription

    def answered(self, pc: RTCPeerConnection, subscribed: RtpSubscription) -> None:
        for kind, down in subscribed.downs.items():
            transceiver = subscribed.transceivers[kind]
            codec = next(c for c in internals.negotiated_codecs(transceiver) if not is_rtx(c))
            down.configure(codec.payloadType, transceiver.mid or "")

        @pc.on("connectionstatechange")
        def connected() -> None:
            # The moment the subscriber can receive: its first key frame is asked for
            # now, not at the publisher's next packet (up to a frame interval later).
            if pc.connectionState == "connected":
                for down in subscribed.downs.values():
                    down.connected()

    def request_keyframe(self, subscribed: RtpSubscription) -> None:
        for down in subscribed.downs.values():
            source = down.source
            # A subscriber still waiting for its first key frame has one coming (the down
            # track asked when it connected); asking again would only spend the browser's
            # one honoured request per 300 ms.
            if source is not None and down.kind == "video" and down.synced_epoch == source.epoch:
                source.request_keyframe_now()

    def carry_over(
        self, previous: RtpPublication, published: RtpPublication, subscribed: RtpSubscription
    ) -> bool:
        if not subscribed.downs or set(subscribed.downs) != set(published.tracks):
            return False
        for kind, down in subscribed.downs.items():
            previous.tracks[kind].detach(down)
            published.tracks[kind].attach(down)
        return True

    def counters(
        self, published: list[RtpPublication], subscribed: list[RtpSubscription]
    ) -> dict[str, int]:
        tracks = [track for p in published for track in p.tracks.values()]
        downs = [down for s in subscribed for down in s.downs.values()]
        return {
            "packets_in": sum(t.packets for t in tracks),
            "packets_out": sum(d.packets for d in downs),
            "bytes_out": sum(d.octets for d in downs),
            "subscriber_nacks": sum(d.nacked for d in downs),
            "subscriber_keyframe_requests": sum(d.keyframe_requests for d in downs),
            "subscriber_lost": sum(d.lost_reported for d in downs),
            "retransmitted": sum(d.retransmitted for d in downs),
            "keyframe_requests": sum(t.keyframe_requests for t in tracks),
            "upstream_nacks": sum(t.upstream_nacks for t in tracks),
            "malformed_packets": sum(p.malformed_packets for p in published)
            + sum(d.malformed.count for d in downs),
        }


def _transport_of(sender: Any) -> Callable[[], Any]:
    # Read late: BUNDLE may swap the sender's transport when the answer arrives.
    return lambda: sender.transport
