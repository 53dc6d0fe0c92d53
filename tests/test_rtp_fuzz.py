"""Malformed RTP, RTCP and SRTP input is dropped and counted, never raised, never logged per packet.

Hypothesis-generated datagrams go into the real objects of the fast path:
the RTP header functions, a publication router with its tracks and down
tracks (sending through a real libsrtp session), a publisher tap over an
unstarted aiortc connection, and an SRTP ingress keyed like a real one.
"""

from __future__ import annotations

import contextlib
import logging
import struct
from collections.abc import Iterator
from typing import Any

import pylibsrtp
import pytest
from aiortc import RTCPeerConnection
from aiortc.rtp import RTCP_PSFB_APP, RTCP_RTPFB_NACK, RtcpPsfbPacket, RtcpRtpfbPacket
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pylibsrtp import Policy, Session

from media.reception import ReceptionReport
from media.rtp_forwarding import DownTrack, PublicationRouter, PublishedTrack
from media.rtp_header import (
    MALFORMED,
    extension_id_map,
    is_rtcp,
    is_vp8_keyframe_start,
    payload_offset,
    rewrite_extensions,
    unwrap_rtx,
    write_mid,
)
from media.rtp_hooks import PublisherTap
from media.srtp_path import SrtpEgress, SrtpIngress

KEY = bytes(range(30))
VIDEO_PT, RTX_PT, AUDIO_PT = 96, 97, 111
SSRCS = (0x1111, 0x2222, 0x3333)
MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"
ABS_SEND_TIME_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
# The publisher's ids: 4 and 2 are forwarded, every other id is dropped.
ID_MAP = extension_id_map({MID_URI: 4, ABS_SEND_TIME_URI: 2})
FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@st.composite
def rtp_packets(draw: st.DrawFn) -> bytes:
    """Mostly well-formed headers with hostile lengths, extensions and payloads."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=1600))
    extension = draw(st.booleans())
    csrcs = draw(st.integers(0, 15))
    first = 0x80 | (0x10 if extension else 0) | csrcs | draw(st.sampled_from([0, 0x20]))
    pt = draw(st.sampled_from([VIDEO_PT, RTX_PT, AUDIO_PT, draw(st.integers(0, 255))]))
    head = struct.pack(
        "!BBHII",
        first,
        pt,
        draw(st.integers(0, 0xFFFF)),
        draw(st.integers(0, 0xFFFFFFFF)),
        draw(st.sampled_from([*SSRCS, draw(st.integers(0, 0xFFFFFFFF))])),
    )
    head += draw(st.binary(min_size=0, max_size=4 * csrcs))
    if extension:
        profile = draw(st.sampled_from([0xBEDE, 0x1000, draw(st.integers(0, 0xFFFF))]))
        words = draw(st.integers(0, 8))
        head += struct.pack("!HH", profile, words) + draw(st.binary(max_size=4 * words + 4))
    return head + draw(st.binary(max_size=1400))


class Upstream:
    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []

    def pli(self, ssrc: int) -> None:
        self.sent.append(("pli", ssrc))

    def nack(self, ssrc: int, lost: list[int]) -> None:
        self.sent.append(("nack", lost))

    def remb(self, bitrate: int, ssrcs: list[int]) -> None:
        self.sent.append(("remb", bitrate))

    def receiver_report(self, ssrc: int, report: ReceptionReport) -> None:
        self.sent.append(("rr", report.packets_lost))


def session(direction: int) -> Session:
    return Session(policy=Policy(key=KEY, ssrc_type=direction))


class Path:
    """A router, its audio and video tracks, and one subscriber's down track per kind."""

    def __init__(self) -> None:
        self.router = PublicationRouter()
        self.sent: list[bytes] = []
        self.downs: dict[str, DownTrack] = {}
        for kind, pt, rtx in (("video", VIDEO_PT, {RTX_PT: VIDEO_PT}), ("audio", AUDIO_PT, {})):
            track = PublishedTrack(kind, Upstream(), ID_MAP)
            self.router.add(track, [pt], rtx)
            egress = SrtpEgress(lambda: None)
            egress.attach(
                session(Policy.SSRC_ANY_OUTBOUND), lambda data, addr: self.sent.append(data), None
            )
            down = DownTrack(kind, 0x5000 + pt, egress)
            down.configure(100 + pt, "1")
            track.attach(down)
            self.downs[kind] = down

    def feed(self, data: bytes) -> None:
        # As the ingress hands it over: the session buffer, with the clear length.
        buffer = bytearray(1500)
        buffer[: len(data)] = data[:1500]
        self.router.on_rtp(memoryview(buffer), min(len(data), 1500), 0.0)
        # And exactly sized, as an unwrapped retransmission is.
        self.router.on_rtp(memoryview(bytearray(data)), len(data), 0.0)

    def close(self) -> None:
        for track in self.router.tracks():
            track.close()


@pytest.fixture
def path() -> Iterator[Path]:
    made = Path()
    yield made
    made.close()


@pytest.fixture
def no_per_packet_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.DEBUG, logger="media")
    yield
    # At most one summary line per counter (rate-limited), however many packets were dropped.
    assert len(caplog.records) <= 8, [r.getMessage() for r in caplog.records][:10]


@FUZZ
@given(data=rtp_packets())
def test_header_functions_never_raise(data: bytes) -> None:
    buf = bytearray(data)
    length = len(buf)
    offset = payload_offset(buf, length)
    assert offset == -1 or 12 <= offset <= length
    is_rtcp(buf)
    if length:
        mid_at = rewrite_extensions(buf, length, ID_MAP)
        assert len(buf) == length
        if mid_at >= 0:
            write_mid(buf, mid_at, b"1")
            write_mid(buf, mid_at, b"10")
            assert len(buf) == length
        else:
            assert mid_at in (-1, MALFORMED)
    is_vp8_keyframe_start(buf, offset, length)
    original = unwrap_rtx(bytes(buf), VIDEO_PT, 0x1111)
    assert original is None or len(original) == length - 2


@FUZZ
@given(packets=st.lists(rtp_packets(), min_size=1, max_size=20))
async def test_the_forwarding_path_drops_and_counts_what_it_cannot_parse(
    packets: list[bytes], path: Path, no_per_packet_logs: None
) -> None:
    for data in packets:
        path.feed(data)
    for down in path.downs.values():
        assert len(down.egress.buffer or b"") >= 0
    assert path.router.malformed_packets >= 0


@FUZZ
@given(
    lost=st.lists(st.integers(0, 0xFFFF), max_size=40),
    fci=st.binary(max_size=64),
    packets=st.lists(rtp_packets(), max_size=10),
)
async def test_subscriber_feedback_never_raises(
    lost: list[int], fci: bytes, packets: list[bytes], path: Path, no_per_packet_logs: None
) -> None:
    for data in packets:
        path.feed(data)
    for down in path.downs.values():
        nack = RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=1, media_ssrc=down.ssrc)
        nack.lost = lost
        await down.handle_rtcp(nack)
        await down.handle_rtcp(RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=1, media_ssrc=0, fci=fci))


@pytest.fixture
async def publish_connection() -> Any:
    """A real, never connected aiortc transport, keyed as DTLS would key it."""
    pc = RTCPeerConnection()
    transceiver = pc.addTransceiver("video", direction="recvonly")
    dtls = transceiver.receiver.transport
    dtls._rx_srtp = session(Policy.SSRC_ANY_INBOUND)
    yield dtls
    await pc.close()


@FUZZ
@given(datagrams=st.lists(st.one_of(st.binary(max_size=1600), rtp_packets()), max_size=20))
async def test_srtp_ingress_and_publisher_rtcp_never_raise(
    datagrams: list[bytes], publish_connection: Any, no_per_packet_logs: None
) -> None:
    path = Path()
    tap = PublisherTap(publish_connection, path.router)
    protect = session(Policy.SSRC_ANY_OUTBOUND)
    connection = publish_connection.transport._connection
    try:
        for data in datagrams:
            connection.data_received(data, 1)
            await tap._handle_rtcp_data(data)
            # Authentic SRTP around hostile clear content reaches the parsers behind libsrtp.
            with contextlib.suppress(pylibsrtp.Error):  # It refuses what has no RTP header.
                connection.data_received(protect.protect(data), 1)
    finally:
        tap.close()
        path.close()
    assert tap.malformed_packets >= 0


async def test_a_one_byte_datagram_is_dropped_and_counted(publish_connection: Any) -> None:
    """It used to raise IndexError in the ingress (reading the second byte)."""
    router = PublicationRouter()
    ingress = SrtpIngress(publish_connection, router.on_rtp)
    connection = publish_connection.transport._connection
    try:
        for data in (b"\x80", b"\xbf", b"\x00", b""):
            connection.data_received(data, 1)
        assert ingress.malformed_packets == 4
        assert ingress.received == 0
    finally:
        ingress.close()


async def test_a_malformed_retransmission_is_dropped_and_counted(path: Path) -> None:
    """An RTX packet whose header extension overruns it used to raise ValueError."""
    video = path.router.by_payload_type[VIDEO_PT]
    path.router.on_rtp(memoryview(bytearray(rtp(VIDEO_PT, 10, 0x1111))), 20, 0.0)
    assert video.ssrc == 0x1111
    # X=1, a one-byte extension block of one word whose (dropped) element claims 16 bytes.
    overrun = struct.pack("!HH", 0xBEDE, 1) + bytes([(9 << 4) | 0x0F, 0, 0, 0])
    retransmission = rtp(RTX_PT, 1, 0x9999, extension=overrun, payload=b"\x00\x0b" + b"x")
    before = path.router.malformed_packets
    path.router.on_rtp(memoryview(bytearray(retransmission)), len(retransmission), 0.0)
    assert path.router.malformed_packets == before + 1
    # A retransmission too short to hold the original sequence number, likewise.
    path.router.on_rtp(memoryview(bytearray(rtp(RTX_PT, 2, 0x9999))), 12, 0.0)
    assert path.router.malformed_packets == before + 2


def rtp(pt: int, seq: int, ssrc: int, *, extension: bytes = b"", payload: bytes = b"") -> bytes:
    first = 0x90 if extension else 0x80
    data = struct.pack("!BBHII", first, pt, seq, 90000, ssrc) + extension + payload
    return data if payload or extension else data + bytes(8)
