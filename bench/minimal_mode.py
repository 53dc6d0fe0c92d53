"""`minimal`: the least a relay can do per packet, the floor the RTP fast path is measured against.

Same sockets, same DTLS-SRTP sessions and cipher as the relay (whatever the
connection negotiated, AES-256-GCM between aiortc peers), same entry and exit
(`media.srtp_path`): decrypt once, keep video packets for retransmission,
then per subscriber encrypt and send the packet as it came. No
sequence, timestamp, payload type or header extension rewriting, no key
frame gating, no resync: a subscriber gets the publisher's own numbering.
Only the SSRC is set to the subscriber's own (4 bytes), so that its
feedback reaches this relay's sender. That breaks browsers (every
subscriber must see numbers it can follow across a publisher's restart)
but not the benchmark's load generator, which counts what arrives. So
`cpu(rtp) / cpu(minimal)` per packet is what the relay's bookkeeping costs
on top of the unavoidable work.
"""

from __future__ import annotations

import struct
from typing import Any

from bench.stamped_mode import StampedRtpForwarding
from media.rtp_forwarding import RETRANSMIT_CACHE, DownTrack, PublishedTrack
from media.rtp_header import RTP_HEADER_LENGTH
from media.srtp_path import MAX_PROTECTED_INPUT

_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")


class MinimalTrack(PublishedTrack):
    """A published track forwarded byte for byte."""

    def on_packet(self, view: memoryview, length: int, now: float) -> None:
        if not RTP_HEADER_LENGTH <= length <= MAX_PROTECTED_INPUT:
            self.malformed.drop()
            return
        self.packets += 1
        if self._cache:
            seq = _U16.unpack_from(view, 2)[0]
            self._cache[seq & (RETRANSMIT_CACHE - 1)] = view[:length].tobytes()
        for down in self.downs:
            egress = down.egress
            if egress.buffer is None and not egress.ready():
                continue
            buf = egress.buffer
            assert buf is not None
            egress.write(view, length)
            # The subscriber's own SSRC: what its feedback (NACK, PLI) is addressed to.
            _U32.pack_into(buf, 8, down.ssrc)
            if egress.send(length):
                down.packets += 1

    def attach(self, down: DownTrack) -> None:
        down.source = self
        self.downs.append(down)

    def retransmit(self, down: DownTrack, lost: list[int]) -> None:
        egress = down.egress
        buf = egress.buffer
        if not self._cache or buf is None:
            return
        for seq in lost:
            data = self._cache[seq & (RETRANSMIT_CACHE - 1)]
            if data is not None and _U16.unpack_from(data, 2)[0] == seq:
                egress.write(data, len(data))
                _U32.pack_into(buf, 8, down.ssrc)
                if egress.send(len(data)):
                    down.packets += 1
                    down.retransmitted += 1

    def request_keyframe(self) -> None:
        # The load generator replays its clip from a key frame on request; a
        # subscriber here never waits for one, so nobody asks.
        return

    def sender_report(self, ntp: int, rtp_timestamp: int) -> None:
        return


class MinimalForwarding(StampedRtpForwarding):
    """Timed like the measured `rtp` mode, so both pay the same sampling."""

    name = "minimal"
    track_factory = MinimalTrack

    def answered(self, pc: Any, subscribed: Any) -> None:
        # Nothing to configure: the publisher's payload types go out unchanged.
        return
