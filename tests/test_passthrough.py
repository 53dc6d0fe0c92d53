"""The benchmark's frame pass-through baseline, its pieces in isolation."""

from __future__ import annotations

import asyncio
from fractions import Fraction
from typing import Any

import av
import pytest
from aiortc.codecs import depayload
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from bench.frame_fanout import MAX_QUEUED_FRAMES, ForwardingTrack, TrackFanout
from bench.passthrough import EncodedFrameTap, OpusPacker, Vp8Packer, is_vp8_keyframe
from tests.support.polling import eventually

VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)


class _Frame:
    def __init__(self, data: bytes, timestamp: int) -> None:
        self.data = data
        self.timestamp = timestamp


def packet(data: bytes, pts: int, rate: int = 90000) -> av.Packet[Any]:
    p = av.Packet(data)
    p.pts = pts
    p.time_base = Fraction(1, rate)
    return p


def test_vp8_keyframe_bit() -> None:
    assert is_vp8_keyframe(b"\x10\x02\x00")
    assert not is_vp8_keyframe(b"\x11\x02\x00")
    assert not is_vp8_keyframe(b"")


def test_tap_hands_encoded_frames_over_untouched() -> None:
    got: list[tuple[bytes, int | None, Fraction | None, bool]] = []
    tap = EncodedFrameTap("video", lambda p, key: got.append((bytes(p), p.pts, p.time_base, key)))
    tap.put((VP8, _Frame(b"\x10abc", 3000)))
    tap.put((VP8, _Frame(b"\x11def", 6000)))
    assert got == [
        (b"\x10abc", 3000, Fraction(1, 90000), True),
        (b"\x11def", 6000, Fraction(1, 90000), False),
    ]
    assert tap.empty()
    tap.put(None)  # the stop signal still reaches aiortc's worker thread
    assert tap.get_nowait() is None


def test_vp8_packer_round_trips_through_depayload() -> None:
    frame = bytes(range(256)) * 20  # larger than one RTP packet
    payloads, timestamp = Vp8Packer().pack(packet(frame, 9000))
    assert len(payloads) > 1
    assert timestamp == 9000
    assert b"".join(depayload(VP8, p) for p in payloads) == frame


def test_opus_packer_keeps_the_frame_and_its_clock() -> None:
    payloads, timestamp = OpusPacker().pack(packet(b"\xfc\x01\x02", 960, 48000))
    assert payloads == [b"\xfc\x01\x02"]
    assert timestamp == 960


async def test_new_subscriber_waits_for_a_keyframe_and_asks_for_one() -> None:
    requests: list[str] = []
    fanout = TrackFanout("video", lambda: requests.append("pli"))
    track = fanout.subscribe()
    fanout.request_keyframe()
    fanout.deliver(packet(b"\x11delta", 0), False)
    fanout.deliver(packet(b"\x10key", 3000), True)
    fanout.deliver(packet(b"\x11delta2", 6000), False)
    assert bytes(await track.recv()) == b"\x10key"
    assert bytes(await track.recv()) == b"\x11delta2"
    assert track.dropped == 1
    assert requests == ["pli"]


async def test_keyframe_requests_are_rate_limited_but_never_lost() -> None:
    requests: list[float] = []
    loop = asyncio.get_running_loop()
    fanout = TrackFanout("video", lambda: requests.append(loop.time()))
    for _ in range(10):
        fanout.request_keyframe()
    assert len(requests) == 1
    # The burst collapsed into one more request at the end of the interval.
    await eventually(lambda: len(requests) >= 2, timeout=2)
    assert len(requests) == 2
    fanout.close()


async def test_stalled_subscriber_is_reset_to_the_next_keyframe() -> None:
    requests: list[str] = []
    track = ForwardingTrack("video", lambda: requests.append("pli"))
    track.push(packet(b"\x10key", 0), True)
    for i in range(MAX_QUEUED_FRAMES["video"] + 1):
        track.push(packet(b"\x11d", i), False)
    assert requests == ["pli"]
    track.push(packet(b"\x11late", 1), False)  # still waiting for a keyframe
    track.push(packet(b"\x10key2", 2), True)
    assert bytes(await track.recv()) == b"\x10key2"


async def test_stopped_track_ends_the_sender_loop() -> None:
    track = ForwardingTrack("audio", lambda: None)
    track.stop()
    with pytest.raises(MediaStreamError):
        await track.recv()
