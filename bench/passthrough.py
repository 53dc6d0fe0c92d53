"""Hooks into aiortc that let encoded frames through untouched.

aiortc decodes everything it receives and encodes everything it sends. A
relay needs neither: decoding costs CPU and, with end-to-end encryption, is
impossible. Two hooks replace the codec work:

- `install_tap` swaps the receiver's decoder queue for one that hands each
  reassembled encoded frame to a callback as an `EncodedPacket` (data, pts,
  time_base), so the decoder thread never gets a frame;
- `install_packer` gives a sender a "encoder" that only packetizes the
  encoded frame again (`pack`), so no codec context is ever opened.

Both rely on aiortc internals (through `media.aiortc_internals`, checked
when the benchmark's relay starts) so an upgrade that moves them fails
loudly instead of silently decoding. They make the `frames` baseline mode
(`bench.baseline_modes`), the walking skeleton's path, against which the
relay's RTP fast path is measured.
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import av

from bench.packets import EncodedPacket
from media import aiortc_internals as internals

logger = logging.getLogger(__name__)

FrameSink = Callable[[EncodedPacket, bool], None]


def is_vp8_keyframe(data: bytes) -> bool:
    # RFC 6386 9.1: the low bit of the first byte is 0 on key frames. It stays
    # readable under end-to-end encryption, which leaves the header in clear.
    return len(data) > 0 and data[0] & 0x01 == 0


class EncodedFrameTap(queue.Queue[Any]):
    """Stands in for the receiver's decoder queue.

    `put` is called on the event loop with `(codec, encoded_frame)`; `None`
    still reaches the real queue so aiortc's idle decoder thread can exit.
    """

    def __init__(self, kind: str, sink: FrameSink) -> None:
        super().__init__()
        self.kind = kind
        self._sink = sink
        self.frames = 0

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if item is None:
            super().put(None, block, timeout)
            return
        codec, encoded_frame = item
        data: bytes = encoded_frame.data
        packet = av.Packet(data)
        packet.pts = encoded_frame.timestamp
        packet.time_base = Fraction(1, codec.clockRate)
        keyframe = is_vp8_keyframe(data) if self.kind == "video" else True
        self.frames += 1
        self._sink(packet, keyframe)


def install_tap(receiver: Any, sink: FrameSink) -> EncodedFrameTap:
    """Must run before the receiver starts (aiortc starts it once DTLS is up)."""
    internals.check_internals(baselines=True)
    tap = EncodedFrameTap(receiver.track.kind, sink)
    internals.replace_decoder_queue(receiver, tap)
    return tap


class Vp8Packer:
    """Packetizes an already encoded VP8 frame (RFC 7741) without a codec context."""

    def __init__(self) -> None:
        # Our own picture ids: the subscriber sees one continuous stream even
        # when the publisher's ids restart.
        self.picture_id = 0

    def pack(self, packet: EncodedPacket) -> tuple[list[bytes], int]:
        payloads = internals.vp8_packetize(bytes(packet), self.picture_id)
        self.picture_id = (self.picture_id + 1) % (1 << 15)
        return payloads, _timestamp(packet, 90000)


class OpusPacker:
    def pack(self, packet: EncodedPacket) -> tuple[list[bytes], int]:
        return [bytes(packet)], _timestamp(packet, 48000)


def _timestamp(packet: EncodedPacket, clock_rate: int) -> int:
    pts = packet.pts or 0
    time_base = packet.time_base or Fraction(1, clock_rate)
    return int(pts * time_base * clock_rate)


def install_packer(sender: Any, kind: str, request_keyframe: Callable[[], None]) -> None:
    """Make `sender` forward encoded packets and turn PLI/FIR into a request upstream."""
    internals.check_internals(baselines=True)
    internals.replace_encoder(sender, Vp8Packer() if kind == "video" else OpusPacker())
    # On PLI/FIR; only the publisher can make a key frame.
    internals.on_keyframe_request(sender, request_keyframe)
