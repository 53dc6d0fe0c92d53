"""One subscriber's copy of one published track: its SSRC, offsets, and feedback.

See `media.rtp_forwarding` for how packets reach it.
"""

from __future__ import annotations

import logging
import struct
from typing import TYPE_CHECKING, Any

from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSenderInfo,
    RtcpSrPacket,
    unpack_remb_fci,
)
from aiortc.utils import random16, random32

from media.malformed import MalformedCounter
from media.rtp_header import RELAY_IDENTITY, rewrite_extensions, write_mid
from media.srtp_path import SrtpEgress

if TYPE_CHECKING:
    from media.rtp_forwarding import PublishedTrack

logger = logging.getLogger(__name__)

CLOCK_RATES = {"audio": 48000, "video": 90000}

_SEQ_TS_U32 = struct.Struct("!HII")


class DownTrack:
    """One subscriber's copy of one published track."""

    def __init__(self, kind: str, ssrc: int, egress: SrtpEgress) -> None:
        self.kind = kind
        self.ssrc = ssrc
        self.egress = egress
        self.clock_rate = CLOCK_RATES[kind]
        self.payload_type = -1
        self.mid = b""
        self.source: PublishedTrack | None = None
        self.synced_epoch = 0
        self.seq_offset = 0
        self.ts_offset = 0
        # Chosen in the lower half so that no wrap happens early (as aiortc does).
        self.last_seq = random16() % 32768
        self.last_ts = random32()
        self.last_at = 0.0
        self.first_seq = 0
        self.started = False
        self.packets = 0
        self.octets = 0
        self.retransmitted = 0
        # What the subscriber said: packets it asked again, key frame requests, and the
        # cumulative loss of its last receiver report.
        self.nacked = 0
        self.keyframe_requests = 0
        self.lost_reported = 0
        self.waiting_for_keyframe = 0
        # The source epoch this track last asked a key frame for at once.
        self.asked_in_epoch = 0
        self.remb: int | None = None
        self.malformed = MalformedCounter(logger, f"{kind} down track")

    def can_receive(self) -> bool:
        """Answered and connected: what is forwarded now reaches the subscriber."""
        return self.payload_type >= 0 and (self.egress.buffer is not None or self.egress.ready())

    def connected(self) -> None:
        """The subscriber's connection is up: ask for the key frame it starts on."""
        source = self.source
        if self.kind != "video" or source is None or self.synced_epoch == source.epoch:
            return
        if self.can_receive():
            self._ask_first_keyframe(source)

    def _ask_first_keyframe(self, source: Any) -> bool:
        """Ask for this subscriber's first key frame of the source's stream at once, not at
        the end of the source's interval; False when it was asked already."""
        if self.asked_in_epoch == source.epoch:
            return False
        self.asked_in_epoch = source.epoch
        source.request_keyframe_now()
        return True

    def configure(self, payload_type: int, mid: str) -> None:
        self.payload_type = payload_type
        self.mid = mid.encode()

    def forward(
        self,
        src: memoryview,
        length: int,
        mid_at: int,
        seq: int,
        ts: int,
        keyframe: bool,
        epoch: int,
        now: float,
    ) -> None:
        if self.payload_type < 0 or (self.egress.buffer is None and not self.egress.ready()):
            return
        if self.synced_epoch != epoch:
            if not keyframe and self.kind == "video":
                self.waiting_for_keyframe += 1
                # The first packet it could have had asks at once (in case `connected`
                # was missed); later ones are rate-limited by the source.
                if self.source is not None and not self._ask_first_keyframe(self.source):
                    self.source.request_keyframe()
                return
            self._resync(seq, ts, epoch, now)
        out_seq = (seq + self.seq_offset) & 0xFFFF
        out_ts = (ts + self.ts_offset) & 0xFFFFFFFF
        self._emit(src, length, mid_at, out_seq, out_ts)
        if (out_seq - self.last_seq) & 0xFFFF < 0x8000:
            self.last_seq = out_seq
            self.last_ts = out_ts
            self.last_at = now

    def _resync(self, seq: int, ts: int, epoch: int, now: float) -> None:
        if self.started:
            next_seq = (self.last_seq + 1) & 0xFFFF
            # Keep the clock moving at wall-clock pace across the gap.
            elapsed = max(1, int((now - self.last_at) * self.clock_rate))
            next_ts = (self.last_ts + elapsed) & 0xFFFFFFFF
        else:
            next_seq = self.last_seq
            next_ts = self.last_ts
        self.seq_offset = (next_seq - seq) & 0xFFFF
        self.ts_offset = (next_ts - ts) & 0xFFFFFFFF
        self.first_seq = next_seq
        self.last_seq = (next_seq - 1) & 0xFFFF
        self.synced_epoch = epoch
        self.started = True

    def _emit(
        self, src: Any, length: int, mid_at: int, out_seq: int, out_ts: int, find_mid: bool = False
    ) -> bool:
        egress = self.egress
        buf = egress.buffer
        assert buf is not None
        egress.write(src, length)
        buf[1] = (buf[1] & 0x80) | self.payload_type
        _SEQ_TS_U32.pack_into(buf, 2, out_seq, out_ts, self.ssrc)
        if find_mid:
            mid_at = rewrite_extensions(buf, length, RELAY_IDENTITY)
        if mid_at >= 0:
            write_mid(buf, mid_at, self.mid)
        if not egress.send(length):
            return False
        self.packets += 1
        self.octets += length
        return True

    def retransmit(self, data: bytes, seq: int, ts: int) -> None:
        if self.egress.buffer is None:
            return
        out_seq = (seq + self.seq_offset) & 0xFFFF
        out_ts = (ts + self.ts_offset) & 0xFFFFFFFF
        if self._emit(data, len(data), -1, out_seq, out_ts, find_mid=True):
            self.retransmitted += 1

    def in_current_mapping(self, out_seq: int) -> bool:
        return (out_seq - self.first_seq) & 0xFFFF <= (self.last_seq - self.first_seq) & 0xFFFF

    async def handle_rtcp(self, packet: Any) -> None:
        """What the subscriber says about this track (installed as the sender's RTCP handler)."""
        source = self.source
        if source is None:
            return
        if isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
            self.nacked += len(packet.lost)
            source.retransmit(self, packet.lost)
        elif isinstance(packet, RtcpPsfbPacket) and packet.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR):
            self.keyframe_requests += 1
            source.request_keyframe()
        elif isinstance(packet, RtcpRrPacket):
            for report in packet.reports:
                if report.ssrc == self.ssrc:
                    self.lost_reported = max(0, report.packets_lost)
        elif isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            try:
                bitrate, ssrcs = unpack_remb_fci(packet.fci)
            except ValueError:
                self.malformed.drop()
                return
            if self.ssrc in ssrcs:
                self.remb = bitrate
                source.remb_changed()

    def sender_report(self, ntp: int, rtp_timestamp: int) -> None:
        if not self.started or self.egress.buffer is None:
            return
        report = RtcpSrPacket(
            ssrc=self.ssrc,
            sender_info=RtcpSenderInfo(
                ntp_timestamp=ntp,
                rtp_timestamp=(rtp_timestamp + self.ts_offset) & 0xFFFFFFFF,
                packet_count=self.packets & 0xFFFFFFFF,
                octet_count=self.octets & 0xFFFFFFFF,
            ),
        )
        self.egress.send_rtcp(bytes(report))
