"""Per-subscriber rewriting in `media.rtp_forwarding`, on hand-built packets.

The SRTP and socket ends are replaced by a recorder; the peer tests in
test_rtp_fast_path.py cover the same paths over real connections.
"""

from __future__ import annotations

import asyncio
import itertools
import struct
import time
from typing import Any, cast

from media.reception import ReceptionReport
from media.rtp_forwarding import (
    KEYFRAME_REQUEST_INTERVAL,
    URGENT_REQUEST_INTERVAL,
    DownTrack,
    PublicationRouter,
    PublishedTrack,
)
from media.rtp_header import extension_id_map
from media.rtp_mode import RtpForwarding, RtpSubscription
from media.srtp_path import SrtpEgress

VP8_PT = 96
KEY = bytes([0x10, 0x10])  # descriptor S=1 PID=0, then a VP8 key frame byte
DELTA = bytes([0x10, 0x11])


class RecordingEgress:
    def __init__(self) -> None:
        self.buffer = memoryview(bytearray(1500))
        self.sent: list[tuple[int, int, int, int]] = []

    def ready(self) -> bool:
        return True

    def write(self, src: Any, length: int) -> None:
        self.buffer[:length] = bytes(src[:length])

    def send(self, length: int) -> None:
        _, m_pt, seq, ts, ssrc = struct.unpack_from("!BBHII", self.buffer)
        self.sent.append((seq, ts, ssrc, m_pt & 0x7F))


class NoUpstream:
    def __init__(self) -> None:
        self.plis = 0
        self.reports: list[ReceptionReport] = []

    def pli(self, ssrc: int) -> None:
        self.plis += 1

    def nack(self, ssrc: int, lost: list[int]) -> None: ...

    def remb(self, bitrate: int, ssrcs: list[int]) -> None: ...

    def receiver_report(self, ssrc: int, report: ReceptionReport) -> None:
        self.reports.append(report)


def packet(seq: int, ts: int, ssrc: int, payload: bytes) -> memoryview:
    return memoryview(bytearray(struct.pack("!BBHII", 0x80, VP8_PT, seq, ts, ssrc) + payload))


def setup() -> tuple[PublicationRouter, PublishedTrack, DownTrack, RecordingEgress, NoUpstream]:
    upstream = NoUpstream()
    track = PublishedTrack("video", upstream, extension_id_map({}))
    router = PublicationRouter()
    router.add(track, [VP8_PT], {})
    egress = RecordingEgress()
    down = DownTrack("video", 0xD0D0, cast(SrtpEgress, egress))
    down.configure(100, "1")
    track.attach(down)
    return router, track, down, egress, upstream


def feed(router: PublicationRouter, seq: int, ts: int, ssrc: int, payload: bytes) -> None:
    data = packet(seq, ts, ssrc, payload)
    router.on_rtp(data, len(data), 0.0)


async def test_subscriber_starts_at_a_key_frame_with_its_own_ssrc_and_payload_type() -> None:
    router, _, _, egress, upstream = setup()
    feed(router, 1000, 90000, 0xAAAA, DELTA)
    feed(router, 1001, 93000, 0xAAAA, KEY)
    feed(router, 1002, 93000, 0xAAAA, DELTA)

    assert len(egress.sent) == 2  # the delta frame before the key frame is withheld
    assert upstream.plis >= 1
    (seq1, ts1, ssrc1, pt1), (seq2, ts2, _, _) = egress.sent
    assert (ssrc1, pt1) == (0xD0D0, 100)
    assert (seq2 - seq1) & 0xFFFF == 1
    assert ts2 == ts1


async def test_a_new_publisher_ssrc_continues_the_numbering_and_ignores_stragglers() -> None:
    router, track, _, egress, _ = setup()
    for i in range(3):
        feed(router, 50 + i, 3000 * i, 0xAAAA, KEY if i == 0 else DELTA)
    # The publisher restarts its encoder: new SSRC, new sequence space, key frame first.
    feed(router, 7000, 555, 0xBBBB, KEY)
    feed(router, 53, 9000, 0xAAAA, DELTA)  # a straggler from the old stream
    feed(router, 7001, 3555, 0xBBBB, DELTA)

    seqs = [s[0] for s in egress.sent]
    assert [(b - a) & 0xFFFF for a, b in itertools.pairwise(seqs)] == [1, 1, 1, 1]
    assert {s[2] for s in egress.sent} == {0xD0D0}
    timestamps = [s[1] for s in egress.sent]
    assert all((b - a) & 0xFFFFFFFF < 0x80000000 for a, b in itertools.pairwise(timestamps))
    assert track.ssrc == 0xBBBB
    assert router.unrouted == 1


class ConnectingEgress(RecordingEgress):
    """A subscriber whose connection is not up until `connect()` (no buffer before)."""

    def __init__(self) -> None:
        super().__init__()
        self._buffer = self.buffer
        self.buffer = None  # type: ignore[assignment]

    def connect(self) -> None:
        self.buffer = self._buffer

    def ready(self) -> bool:
        return self.buffer is not None


async def connecting() -> tuple[
    PublicationRouter, PublishedTrack, DownTrack, ConnectingEgress, NoUpstream
]:
    upstream = NoUpstream()
    track = PublishedTrack("video", upstream, extension_id_map({}))
    router = PublicationRouter()
    router.add(track, [VP8_PT], {})
    feed(router, 10, 0, 0xAAAA, KEY)  # The publisher is already sending,
    await asyncio.sleep(KEYFRAME_REQUEST_INTERVAL)  # and its own first request is old.
    upstream.plis = 0
    egress = ConnectingEgress()
    down = DownTrack("video", 0xD0D0, cast(SrtpEgress, egress))
    down.configure(100, "1")
    track.attach(down)
    return router, track, down, egress, upstream


async def test_a_subscriber_still_connecting_spends_no_key_frame_request() -> None:
    """A browser honours one key frame request per 300 ms: none is spent on a frame
    the subscriber cannot receive yet, so the one it needs is honoured at once."""
    router, _, _, _, upstream = await connecting()
    feed(router, 11, 3000, 0xAAAA, DELTA)
    feed(router, 12, 6000, 0xAAAA, DELTA)
    assert upstream.plis == 0


async def test_a_subscriber_asks_for_its_key_frame_the_moment_it_connects() -> None:
    router, track, down, egress, upstream = await connecting()
    track.request_keyframe()  # Another subscriber's request, just before.
    assert upstream.plis == 1
    await asyncio.sleep(URGENT_REQUEST_INTERVAL + 0.02)
    egress.connect()
    down.connected()
    # At once, not at the end of the 300 ms interval the request above opened.
    assert upstream.plis == 2
    down.connected()  # Twice (or its first packet next): still one request.
    feed(router, 13, 9000, 0xAAAA, DELTA)
    assert upstream.plis == 2
    feed(router, 14, 12000, 0xAAAA, KEY)
    assert [s[0] for s in egress.sent] == [down.first_seq]


async def test_a_subscriber_that_connected_unnoticed_asks_on_its_first_packet() -> None:
    router, _, _, egress, upstream = await connecting()
    egress.connect()  # No connection event reached the down track.
    feed(router, 11, 3000, 0xAAAA, DELTA)
    assert upstream.plis == 1
    feed(router, 12, 6000, 0xAAAA, DELTA)
    assert upstream.plis == 1  # Later ones wait for the interval.


async def test_a_key_frame_request_from_a_subscriber_still_waiting_for_its_first_is_not_sent() -> (
    None
):
    """Its first key frame is already asked for; a second would only spend the publisher's
    one honoured request per 300 ms (the subscriber's page asks when the key comes in)."""
    router, _, down, egress, upstream = await connecting()
    forwarding = RtpForwarding()
    subscription = RtpSubscription(downs={"video": down})
    forwarding.request_keyframe(subscription)
    assert upstream.plis == 0
    egress.connect()
    feed(router, 11, 3000, 0xAAAA, KEY)  # Now receiving.
    await asyncio.sleep(URGENT_REQUEST_INTERVAL + 0.02)
    forwarding.request_keyframe(subscription)
    assert upstream.plis == 1


async def test_the_publisher_is_told_what_reached_the_relay() -> None:
    """Receiver reports: the publisher's page reads its own uplink loss from them."""
    router, track, _, _, upstream = setup()
    # 65530 to 3 across the wrap: 10 expected, 65535, 0 and 1 lost.
    for seq in [65530, 65531, 65533, 65534, 2, 3]:
        feed(router, seq, 90000, 0xAAAA, DELTA)
    feed(router, 65532, 90000, 0xAAAA, DELTA)  # A late one still counts.
    track.sender_report(0x1234_5678_9ABC_DEF0, 0)
    track.report_reception(time.monotonic() + 0.5)
    (first,) = upstream.reports
    assert first.packets_lost == 3
    assert first.fraction_lost == (3 << 8) // 10
    assert first.highest_sequence == 65536 + 3
    assert first.lsr == 0x5678_9ABC
    assert 0.45 * 65536 < first.dlsr < 0.6 * 65536
    # The next interval: nothing lost in it.
    for seq in (4, 5, 6):
        feed(router, seq, 90000, 0xAAAA, DELTA)
    track.report_reception(time.monotonic())
    assert upstream.reports[1].fraction_lost == 0
    assert upstream.reports[1].packets_lost == 3
    # A new SSRC starts its own count.
    feed(router, 100, 90000, 0xBBBB, KEY)
    track.report_reception(time.monotonic())
    assert upstream.reports[2].packets_lost == 0
    assert upstream.reports[2].highest_sequence == 100
