"""The benchmark's baselines: forwarding modes the relay's RTP fast path is measured against.

- `frames`: the walking skeleton's frame pass-through, which reassembles
  frames and packetizes them again (`bench.passthrough`, `bench.frame_fanout`);
- `minimal`: the least a relay can do per packet, same sockets and cipher
  (`bench.minimal_mode`): the floor the fast path's bookkeeping is measured on;
- `mediarelay`: aiortc's MediaRelay, which decodes and re-encodes (it cannot
  work with end-to-end encryption).

They plug into `media.relay.Relay` as `media.forwarding_mode.ForwardingMode`s,
only in the benchmark's worker processes (`bench.worker`). Neither keeps a
restarted publisher's subscriptions: they are closed and offered again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCPeerConnection
from aiortc.contrib.media import MediaRelay
from aiortc.rtcrtpreceiver import RTCRtpReceiver

from bench.frame_fanout import ForwardingTrack, TrackFanout
from bench.minimal_mode import MinimalForwarding
from bench.passthrough import install_packer, install_tap
from bench.stamped_mode import StampedRtpForwarding
from media import aiortc_internals as internals
from media.forwarding_mode import ForwardingMode
from media.latency import LatencyHistogram
from media.peer_connections import codec_preferences, forwarded_transceivers
from media.srtp_path import enlarge_receive_buffers

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class FramePublication:
    fanouts: dict[str, TrackFanout] = field(default_factory=dict)

    @property
    def kinds(self) -> set[str]:
        return set(self.fanouts)

    def close(self) -> None:
        for fanout in self.fanouts.values():
            fanout.close()


@dataclass(eq=False)
class FrameSubscription:
    tracks: list[tuple[TrackFanout, ForwardingTrack]] = field(default_factory=list)

    def close(self) -> None:
        for fanout, track in self.tracks:
            fanout.unsubscribe(track)


class FrameForwarding:
    """`frames`: encoded frames reassembled from the publisher, packetized again."""

    name = "frames"
    keeps_subscriptions = False

    def __init__(self) -> None:
        internals.check_internals(baselines=True)
        self.latency = LatencyHistogram()

    async def accept(self, pc: RTCPeerConnection) -> FramePublication:
        publication = FramePublication()
        for transceiver in forwarded_transceivers(pc):
            receiver: RTCRtpReceiver = transceiver.receiver
            fanout = TrackFanout(transceiver.kind, _pli_sender(receiver))
            install_tap(receiver, fanout.deliver)
            publication.fanouts[transceiver.kind] = fanout
        await pc.setLocalDescription(await pc.createAnswer())
        enlarge_receive_buffers(pc)
        return publication

    async def offer(self, pc: RTCPeerConnection, published: FramePublication) -> FrameSubscription:
        subscription = FrameSubscription()
        for kind, fanout in sorted(published.fanouts.items()):
            track = fanout.subscribe()
            transceiver = pc.addTransceiver(track, direction="sendonly")
            transceiver.setCodecPreferences(codec_preferences(kind))
            install_packer(transceiver.sender, kind, track.request_keyframe)
            subscription.tracks.append((fanout, track))
            if kind == "video":
                # A newcomer needs a keyframe now, not at the publisher's next one.
                fanout.request_keyframe()
        await pc.setLocalDescription(await pc.createOffer())
        return subscription

    def answered(self, pc: RTCPeerConnection, subscribed: FrameSubscription) -> None:
        pass

    def carry_over(self, previous: Any, published: Any, subscribed: Any) -> bool:
        return False

    def request_keyframe(self, subscribed: FrameSubscription) -> None:
        return  # The baselines answer only the subscriber's own RTCP.

    def counters(
        self, published: list[FramePublication], subscribed: list[FrameSubscription]
    ) -> dict[str, int]:
        forwarding = [track for s in subscribed for _, track in s.tracks]
        return {
            "frames_in": sum(f.frames for p in published for f in p.fanouts.values()),
            "frames_out": sum(t.forwarded for t in forwarding),
            "frames_dropped": sum(t.dropped for t in forwarding),
        }


@dataclass(eq=False)
class DecodedPublication:
    relay: MediaRelay
    tracks: dict[str, Any] = field(default_factory=dict)

    @property
    def kinds(self) -> set[str]:
        return set(self.tracks)

    def close(self) -> None:
        pass


class _NoMedia:
    def close(self) -> None:
        pass


class MediaRelayForwarding:
    """`mediarelay`: aiortc's MediaRelay, decoding once and encoding per subscriber."""

    name = "mediarelay"
    keeps_subscriptions = False

    def __init__(self) -> None:
        self.latency = LatencyHistogram()

    async def accept(self, pc: RTCPeerConnection) -> DecodedPublication:
        publication = DecodedPublication(MediaRelay())
        for transceiver in forwarded_transceivers(pc):
            publication.tracks[transceiver.kind] = transceiver.receiver.track
        await pc.setLocalDescription(await pc.createAnswer())
        enlarge_receive_buffers(pc)
        return publication

    async def offer(self, pc: RTCPeerConnection, published: DecodedPublication) -> _NoMedia:
        for kind, track in sorted(published.tracks.items()):
            transceiver = pc.addTransceiver(
                published.relay.subscribe(track, buffered=False), direction="sendonly"
            )
            transceiver.setCodecPreferences(codec_preferences(kind))
        await pc.setLocalDescription(await pc.createOffer())
        return _NoMedia()

    def answered(self, pc: RTCPeerConnection, subscribed: Any) -> None:
        pass

    def carry_over(self, previous: Any, published: Any, subscribed: Any) -> bool:
        return False

    def request_keyframe(self, subscribed: Any) -> None:
        return  # The baselines answer only the subscriber's own RTCP.

    def counters(self, published: list[Any], subscribed: list[Any]) -> dict[str, int]:
        return {}


# Every mode the benchmark can run, the relay's own first.
MODES: dict[str, Callable[[], ForwardingMode]] = {
    # The production mode, timed from the sender's stamp (`bench.stamped_mode`).
    "rtp": StampedRtpForwarding,
    "minimal": MinimalForwarding,
    "frames": FrameForwarding,
    "mediarelay": MediaRelayForwarding,
}
BASELINES = tuple(name for name in MODES if name != "rtp")


def _pli_sender(receiver: RTCRtpReceiver) -> Callable[[], None]:
    def send() -> None:
        sources = receiver.getSynchronizationSources()
        if not sources:
            return
        task = asyncio.ensure_future(internals.send_pli(receiver, sources[0].source))
        task.add_done_callback(_log_failure)

    return send


def _log_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.debug("relay keyframe request failed: %r", task.exception())
