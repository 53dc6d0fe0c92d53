"""Per-subscriber rewriting in `media.rtp_forwarding`, on hand-built packets.

The SRTP and socket ends are replaced by a recorder; the peer tests in
test_rtp_fast_path.py cover the same paths over real connections.
"""

from __future__ import annotations

import itertools
import struct
from typing import Any, cast

from media.rtp_forwarding import DownTrack, PublicationRouter, PublishedTrack
from media.rtp_header import extension_id_map
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

    def pli(self, ssrc: int) -> None:
        self.plis += 1

    def nack(self, ssrc: int, lost: list[int]) -> None: ...

    def remb(self, bitrate: int, ssrcs: list[int]) -> None: ...


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
