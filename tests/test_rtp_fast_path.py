"""The RTP fast path between real aiortc peers over real ICE/DTLS-SRTP on loopback.

The publisher sends opaque VP8 frames (a clear VP8 first byte, then random
bytes: what an end-to-end encrypted frame looks like to the relay) straight
from a list, without an encoder. The subscriber records every RTP packet the
relay sends it before aiortc sees it, and the frames aiortc reassembles.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import struct
import time
from collections.abc import Awaitable, Callable, Mapping
from fractions import Fraction
from typing import Any

import av
import pytest
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, unpack_remb_fci

from bench.passthrough import install_tap
from media.relay import Relay
from media.rtp_forwarding import PublishedTrack
from tests.support.polling import eventually, stays_true

ROOM = "room-1"
FPS = 30
KEYFRAME_EVERY = 90


def opaque_frame(index: int, keyframe: bool) -> bytes:
    # Sizes vary so that frames span one to several RTP packets.
    size = 300 + (index * 397) % 2500 + (3000 if keyframe else 0)
    first = 0x10 if keyframe else 0x11
    return bytes([first]) + struct.pack("!I", index) + os.urandom(size)


class OpaqueVideoTrack(MediaStreamTrack):
    """Pre-encoded frames at 30 fps; a key frame at start, periodically and on request."""

    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[bytes] = []
        self.keyframe_requests = 0
        self._force_keyframe = True
        self._start: float | None = None

    def request_keyframe(self) -> None:
        self.keyframe_requests += 1
        self._force_keyframe = True

    async def recv(self) -> av.Packet[Any]:
        if self.readyState != "live":
            raise MediaStreamError
        index = len(self.sent)
        if self._start is None:
            self._start = time.monotonic()
        await asyncio.sleep(max(0.0, self._start + index / FPS - time.monotonic()))
        keyframe = self._force_keyframe or index % KEYFRAME_EVERY == 0
        self._force_keyframe = False
        data = opaque_frame(index, keyframe)
        self.sent.append(data)
        packet = av.Packet(data)
        packet.pts = index * 3000
        packet.time_base = Fraction(1, 90000)
        return packet


class Publisher:
    def __init__(self) -> None:
        self.pc = RTCPeerConnection()
        self.track = OpaqueVideoTrack()
        transceiver = self.pc.addTransceiver(self.track, direction="sendonly")
        # The PLI/FIR handler of aiortc's sender: count what reaches the publisher.
        transceiver.sender._send_keyframe = self.track.request_keyframe  # type: ignore[method-assign]

    async def publish(self, relay: Relay, participant: str) -> None:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        answer = await relay.publish(ROOM, participant, self.pc.localDescription.sdp)
        await self.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))


class Subscriber:
    """Answers the relay's offers; records packets (seq, ts, ssrc, pt) and frames."""

    def __init__(self, relay: Relay, participant: str) -> None:
        self.relay = relay
        self.participant = participant
        self.pc: RTCPeerConnection | None = None
        self.packets: list[tuple[int, int, int, int]] = []
        self.frames: list[bytes] = []
        self.drop_seq: int | None = None
        self.dropped: list[int] = []
        self.receiver: Any = None
        self.offers = 0

    async def subscription_offer(
        self, subscription_id: str, publisher_id: str, publisher_info: Mapping[str, str], sdp: str
    ) -> None:
        self.offers += 1
        self.pc = pc = RTCPeerConnection()
        await pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
        self.receiver = pc.getTransceivers()[0].receiver
        install_tap(self.receiver, lambda packet, key: self.frames.append(bytes(packet)))
        await pc.setLocalDescription(await pc.createAnswer())
        self._record(self.receiver.transport)
        await self.relay.answer(ROOM, self.participant, subscription_id, pc.localDescription.sdp)

    async def subscription_closed(self, subscription_id: str) -> None:
        pass

    def _record(self, dtls: Any) -> None:
        original = dtls._handle_rtp_data

        async def handle(data: bytes, arrival_time_ms: int) -> None:
            header = struct.unpack_from("!BBHII", data)
            self.packets.append((header[2], header[3], header[4], header[1] & 0x7F))
            await original(data, arrival_time_ms)

        dtls._handle_rtp_data = handle
        # Loss happens on the wire, before SRTP (whose replay check would
        # otherwise refuse the retransmission); the RTP header is in clear there.
        connection = dtls.transport._connection
        received = connection.data_received

        def data_received(data: bytes, component: int) -> None:
            is_rtp = 128 <= data[0] < 192 and not 192 <= data[1] <= 223
            seq = struct.unpack_from("!H", data, 2)[0] if is_rtp else None
            if seq is not None and seq == self.drop_seq and seq not in self.dropped:
                self.dropped.append(seq)
                return
            received(data, component)

        connection.data_received = data_received

    async def close(self) -> None:
        if self.pc is not None:
            await self.pc.close()


def assert_continuous(seqs: list[int]) -> None:
    """Each packet follows the previous one: no gap, no restart, no duplicate."""
    steps = [(b - a) & 0xFFFF for a, b in itertools.pairwise(seqs)]
    assert steps
    assert set(steps) == {1}, [
        (i, a, b) for i, (a, b) in enumerate(itertools.pairwise(seqs)) if (b - a) & 0xFFFF != 1
    ][:5]


@pytest.fixture
async def relay() -> Any:
    relay = Relay()
    yield relay
    await relay.close()


@pytest.fixture
async def peers() -> Any:
    made: list[Publisher | Subscriber] = []

    def track(peer: Any) -> Any:
        made.append(peer)
        return peer

    yield track
    for peer in made:
        await (peer.pc.close() if isinstance(peer, Publisher) else peer.close())


Track = Callable[[Any], Any]


async def start_call(relay: Relay, peers: Track, subscribe_after_frames: int = 0) -> Any:
    publisher: Publisher = peers(Publisher())
    subscriber: Subscriber = peers(Subscriber(relay, "sub"))
    await relay.join(ROOM, "pub", subscriber)  # the publisher receives nothing here
    await publisher.publish(relay, "pub")
    await eventually(lambda: len(publisher.track.sent) >= subscribe_after_frames)
    await relay.join(ROOM, "sub", subscriber)
    return publisher, subscriber


async def test_late_subscriber_starts_on_a_keyframe_with_continuous_sequence_numbers(
    relay: Relay, peers: Track
) -> None:
    publisher, subscriber = await start_call(relay, peers, subscribe_after_frames=30)
    await eventually(lambda: len(subscriber.frames) >= 45)

    # Joined 30 frames in, far from the next periodic key frame (90): the
    # relay asked for one and withheld everything before it.
    assert subscriber.frames[0][0] & 0x01 == 0
    first_index = struct.unpack_from("!I", subscriber.frames[0], 1)[0]
    assert 20 <= first_index < KEYFRAME_EVERY
    assert publisher.track.keyframe_requests >= 1
    assert_continuous([p[0] for p in subscriber.packets])
    assert len({p[2] for p in subscriber.packets}) == 1


async def test_frames_arrive_byte_identical(relay: Relay, peers: Track) -> None:
    publisher, subscriber = await start_call(relay, peers)
    await eventually(lambda: len(subscriber.frames) >= 60)

    sent = publisher.track.sent
    first = sent.index(subscriber.frames[0])
    # Every frame, in order, exactly as sent: the relay never touches a payload.
    assert subscriber.frames == sent[first : first + len(subscriber.frames)]


async def test_sequence_numbers_continue_across_a_publisher_restart(
    relay: Relay, peers: Track
) -> None:
    publisher, subscriber = await start_call(relay, peers)
    await eventually(lambda: len(subscriber.frames) >= 30)
    before = len(subscriber.packets)
    ssrc = subscriber.packets[0][2]

    restarted: Publisher = peers(Publisher())
    await restarted.publish(relay, "pub")
    await publisher.pc.close()
    frames_before = len(subscriber.frames)
    await eventually(lambda: len(subscriber.frames) >= frames_before + 30)

    # Same subscription, same SSRC; the new stream continues the numbering.
    assert subscriber.offers == 1
    assert {p[2] for p in subscriber.packets} == {ssrc}
    assert_continuous([p[0] for p in subscriber.packets])
    assert len(subscriber.packets) > before
    timestamps = [p[1] for p in subscriber.packets]
    assert all((b - a) & 0xFFFFFFFF < 0x80000000 for a, b in itertools.pairwise(timestamps))
    # Old frames, then the new publisher's from a key frame on, all intact.
    old, new = set(publisher.track.sent), restarted.track.sent
    fresh = [f for f in subscriber.frames if f not in old]
    assert fresh
    assert fresh[0][0] & 0x01 == 0
    first = new.index(fresh[0])
    assert fresh == new[first : first + len(fresh)]


async def test_subscriber_pli_reaches_the_publisher(relay: Relay, peers: Track) -> None:
    publisher, subscriber = await start_call(relay, peers)
    await eventually(lambda: len(subscriber.frames) >= 10)
    # Past the relay's own requests and their rate limit: a real-time interval of the relay.
    await asyncio.sleep(0.5)
    requests = publisher.track.keyframe_requests
    await stays_true(
        lambda: publisher.track.keyframe_requests == requests,
        for_seconds=1.0,
        what="quiet without a PLI",
    )

    media_ssrc = subscriber.packets[-1][2]
    await subscriber.receiver._send_rtcp_pli(media_ssrc)

    await eventually(lambda: publisher.track.keyframe_requests > requests, timeout=3)


async def test_a_subscribers_key_frame_request_reaches_the_publisher(
    relay: Relay, peers: Track
) -> None:
    publisher, subscriber = await start_call(relay, peers)
    await eventually(lambda: len(subscriber.frames) >= 10)
    await asyncio.sleep(0.5)  # Past the relay's own requests and their rate limit.
    requests = publisher.track.keyframe_requests
    subscription_id = next(iter(relay._rooms[ROOM].subscriptions))

    await relay.request_keyframe(ROOM, "sub", subscription_id)

    await eventually(lambda: publisher.track.keyframe_requests > requests, timeout=3)


async def test_nacked_packet_is_retransmitted_from_the_relay_cache(
    relay: Relay, peers: Track
) -> None:
    _publisher, subscriber = await start_call(relay, peers)
    await eventually(lambda: len(subscriber.packets) >= 20)
    lost = (subscriber.packets[-1][0] + 10) & 0xFFFF
    subscriber.drop_seq = lost

    # aiortc's receiver NACKs the gap; the relay resends the packet itself.
    await eventually(
        lambda: bool(subscriber.dropped) and lost in [p[0] for p in subscriber.packets]
    )
    assert relay.forwarding_stats()["retransmitted"] >= 1
    seqs = [p[0] for p in subscriber.packets]
    assert seqs.count(lost) == 1
    assert seqs.index(lost) > seqs.index((lost + 1) & 0xFFFF)


async def test_relay_sends_sender_reports_mapped_to_each_subscriber(
    relay: Relay, peers: Track
) -> None:
    """Lip-sync: the subscriber gets the publisher's NTP time against its own RTP clock."""
    _publisher, subscriber = await start_call(relay, peers)
    reports: list[tuple[int, int, int]] = []
    await eventually(lambda: subscriber.pc is not None)
    assert subscriber.pc is not None
    dtls = subscriber.pc.getTransceivers()[0].receiver.transport
    original: Callable[[bytes], Awaitable[None]] = dtls._handle_rtcp_data

    async def handle(data: bytes) -> None:
        if data[1] == 200:
            ssrc, ntp, rtp_ts = struct.unpack_from("!IQI", data, 4)
            reports.append((ssrc, ntp, rtp_ts))
        await original(data)

    dtls._handle_rtcp_data = handle
    # aiortc's sender reports every 0.5-1.5 s.
    await eventually(lambda: len(reports) >= 2, timeout=8)
    ssrc = subscriber.packets[-1][2]
    assert {r[0] for r in reports} == {ssrc}
    assert all(r[1] != 0 for r in reports)
    # The report's RTP time sits on the subscriber's timeline, near what it received.
    latest = subscriber.packets[-1][1]
    assert min(abs(((r[2] - latest + 2**31) & 0xFFFFFFFF) - 2**31) for r in reports) < 90000 * 3


async def test_subscriber_bandwidth_estimate_reaches_the_publisher(
    relay: Relay, peers: Track
) -> None:
    """aiortc's receiver sends REMB from the abs-send-time the relay forwards untouched."""
    publisher, _subscriber = await start_call(relay, peers)
    estimates: list[tuple[int, list[int]]] = []
    sender = publisher.pc.getTransceivers()[0].sender
    original: Callable[[Any], Awaitable[None]] = sender._handle_rtcp_packet

    async def handle(packet: Any) -> None:
        if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            estimates.append(unpack_remb_fci(packet.fci))
        await original(packet)

    sender._handle_rtcp_packet = handle
    await eventually(lambda: bool(estimates), timeout=8)
    bitrate, ssrcs = estimates[0]
    # Addressed to the publisher's own stream, not to the subscriber's copy of it.
    assert ssrcs == [sender._ssrc]
    assert bitrate > 0


async def test_packet_lost_before_the_relay_is_recovered_from_the_publisher(
    relay: Relay, peers: Track
) -> None:
    """Not in the relay's cache: the NACK goes upstream, the RTX answer comes back down."""
    publisher, subscriber = await start_call(relay, peers)
    await eventually(lambda: len(subscriber.packets) >= 20)
    ice = publisher.pc.getTransceivers()[0].sender.transport.transport
    send = ice._send
    sent_seqs: list[int] = []
    dropped: list[int] = []

    async def lossy_send(data: bytes) -> None:
        if 128 <= data[0] < 192 and not 192 <= data[1] <= 223:
            seq = struct.unpack_from("!H", data, 2)[0]
            sent_seqs.append(seq)
            if len(sent_seqs) == 10:
                dropped.append(seq)
                return
        await send(data)

    ice._send = lossy_send
    await eventually(lambda: bool(dropped))
    publication = relay.publication(ROOM, "pub")
    assert publication is not None
    (track,) = publication.media.tracks.values()
    (down,) = track.downs
    lost = (dropped[0] + down.seq_offset) & 0xFFFF

    await eventually(lambda: lost in [p[0] for p in subscriber.packets])
    assert track.upstream_nacks >= 1
    assert [p[0] for p in subscriber.packets].count(lost) == 1


async def test_the_publisher_hears_what_reached_the_relay(
    relay: Relay, peers: Track, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Receiver reports from the relay: a publisher's own uplink loss and round trip."""
    forward = PublishedTrack.on_packet

    def lossy(track: PublishedTrack, view: memoryview, length: int, now: float) -> None:
        # One video packet in ten lost on the way to the relay, retransmissions too.
        if track.kind == "video" and struct.unpack_from("!H", view, 2)[0] % 10 == 5:
            return
        forward(track, view, length, now)

    monkeypatch.setattr(PublishedTrack, "on_packet", lossy)
    publisher, subscriber = await start_call(relay, peers)
    await eventually(lambda: len(subscriber.packets) >= 50)  # Frames lose packets for good.

    async def reported() -> None:
        stats = await publisher.pc.getStats()
        remote = {s.kind: s for s in stats.values() if s.type == "remote-inbound-rtp"}
        assert set(remote) == {"video"}, remote
        assert remote["video"].packetsLost > 0, remote
        # aiortc gives the report's 8-bit fraction: ~10 % is ~26 / 256.
        assert 10 < remote["video"].fractionLost < 50, remote
        assert remote["video"].roundTripTime is not None, remote

    await eventually(reported, timeout=10)
