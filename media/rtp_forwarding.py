"""RTP-level forwarding: one published track to the down tracks of its subscribers.

A packet is rewritten, not rebuilt: each subscriber sees its own SSRC, a
sequence number and timestamp shifted by a per-subscriber offset, the payload
type and header extension ids it negotiated, and the payload byte for byte
(so end-to-end encrypted frames stay intact). Offsets change only when a
subscriber (re)starts on a source: joining late, or the publisher restarting
with a new SSRC or a new connection. Then the next sequence number follows
the last one sent and, for video, forwarding resumes at a key frame.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import struct
import time
from typing import Any, Protocol

from media.down_track import DownTrack
from media.latency import LatencyHistogram
from media.malformed import MalformedCounter
from media.reception import Reception, ReceptionReport
from media.rtp_header import (
    MALFORMED,
    RTP_HEADER_LENGTH,
    is_vp8_keyframe_start,
    payload_offset,
    rewrite_extensions,
    unwrap_rtx,
)
from media.srtp_path import MAX_PROTECTED_INPUT

# DownTrack is re-exported: the forwarding path's three classes, importable from here.
__all__ = ["DownTrack", "PublicationRouter", "PublishedTrack", "Upstream"]

logger = logging.getLogger(__name__)

# Power of two: ~3 s of 1.5 Mbit/s video, what a NACK can still usefully ask for.
RETRANSMIT_CACHE = 1024
KEYFRAME_REQUEST_INTERVAL = 0.3
URGENT_REQUEST_INTERVAL = 0.05
REMB_INTERVAL = 0.5

_SEQ_TS = struct.Struct("!HI")
_U32 = struct.Struct("!I")
_epochs = itertools.count(1)


class Upstream(Protocol):
    """Feedback the relay sends to the publisher."""

    def pli(self, ssrc: int) -> None: ...

    def receiver_report(self, ssrc: int, report: ReceptionReport) -> None: ...

    def nack(self, ssrc: int, lost: list[int]) -> None: ...

    def remb(self, bitrate: int, ssrcs: list[int]) -> None: ...


class PublishedTrack:
    """One incoming track and the down tracks it feeds."""

    def __init__(self, kind: str, upstream: Upstream, extension_ids: bytes) -> None:
        self.kind = kind
        self.upstream = upstream
        self.extension_ids = extension_ids
        self.downs: list[DownTrack] = []
        self.ssrc: int | None = None
        self.epoch = next(_epochs)
        self._cache: list[bytes | None] = [None] * RETRANSMIT_CACHE if kind == "video" else []
        self._last_request = 0.0
        self._pending_request: Any = None
        self._last_remb = 0.0
        self.packets = 0
        self.keyframes = 0
        self.keyframe_requests = 0
        self.upstream_nacks = 0
        self.reception = Reception()
        self.malformed = MalformedCounter(logger, f"{kind} published track")

    def switch_source(self, ssrc: int) -> None:
        """A new SSRC: the publisher restarted its stream; subscribers resync on it."""
        self.ssrc = ssrc
        self.epoch = next(_epochs)
        self.reception = Reception()
        if self.kind == "video":
            self._cache = [None] * RETRANSMIT_CACHE
            # Only for a subscriber that can receive it now: one still connecting (or a
            # publication nobody subscribes to yet) asks once connected, and a request
            # spent before would hold back the one it needs (one honoured per 300 ms).
            if any(down.can_receive() for down in self.downs):
                self.request_keyframe()

    def on_packet(self, view: memoryview, length: int, now: float) -> None:
        if not RTP_HEADER_LENGTH <= length <= MAX_PROTECTED_INPUT:
            self.malformed.drop()
            return
        self.packets += 1
        seq, ts = _SEQ_TS.unpack_from(view, 2)
        reception = self.reception
        if reception.base < 0:
            reception.base = reception.highest = seq
        else:
            ahead = (seq - reception.highest) & 0xFFFF
            if ahead < 0x8000:
                reception.highest += ahead
        reception.count += 1
        mid_at = rewrite_extensions(view, length, self.extension_ids) if view[0] & 0x10 else -1
        if mid_at == MALFORMED:
            self.malformed.drop()
            return
        keyframe = False
        if self.kind == "video":
            keyframe = is_vp8_keyframe_start(view, payload_offset(view, length), length)
            if keyframe:
                self.keyframes += 1
            self._cache[seq & (RETRANSMIT_CACHE - 1)] = view[:length].tobytes()
        epoch = self.epoch
        for down in self.downs:
            down.forward(view, length, mid_at, seq, ts, keyframe, epoch, now)

    def attach(self, down: DownTrack) -> None:
        down.source = self
        down.synced_epoch = 0
        self.downs.append(down)
        # No key frame request yet: this subscriber is still connecting, and a browser
        # honours one request per 300 ms, so one asked now would be spent on a frame
        # nobody can receive. The down track asks on the first packet it could forward.

    def detach(self, down: DownTrack) -> None:
        if down in self.downs:
            self.downs.remove(down)
        if down.source is self:
            down.source = None

    def retransmit(self, down: DownTrack, lost: list[int]) -> None:
        if down.synced_epoch != self.epoch or not self._cache:
            return
        missing: list[int] = []
        for out_seq in lost:
            if not down.in_current_mapping(out_seq):
                continue
            seq = (out_seq - down.seq_offset) & 0xFFFF
            data = self._cache[seq & (RETRANSMIT_CACHE - 1)]
            if data is not None and _SEQ_TS.unpack_from(data, 2)[0] == seq:
                down.retransmit(data, seq, _U32.unpack_from(data, 4)[0])
            else:
                missing.append(seq)
        if missing and self.ssrc is not None:
            # Lost before the relay: only the publisher still has it.
            self.upstream_nacks += len(missing)
            self.upstream.nack(self.ssrc, missing)

    def request_keyframe(self) -> None:
        """Ask the publisher for a key frame, at most once per interval.

        Requests inside the interval collapse into one sent at its end, so a
        subscriber is never left waiting for the publisher's next natural one.
        """
        if self.kind != "video" or self.ssrc is None:
            # With no SSRC yet, the source's first packet asks (`switch_source`).
            return
        now = time.monotonic()
        wait = self._last_request + KEYFRAME_REQUEST_INTERVAL - now
        if wait <= 0:
            self._send_keyframe_request()
        elif self._pending_request is None:
            self._pending_request = asyncio.get_running_loop().call_later(
                wait, self._send_keyframe_request
            )

    def request_keyframe_now(self) -> None:
        """A subscriber's own request (`keyframe_request`): sent at once, not at the end of
        the interval, since it follows a key frame it could not decrypt. Signalling's rate
        limit bounds how often a subscriber may ask; duplicates within 50 ms collapse."""
        if self.kind != "video" or self.ssrc is None:
            return
        if time.monotonic() - self._last_request < URGENT_REQUEST_INTERVAL:
            return
        if self._pending_request is not None:
            self._pending_request.cancel()
        self._send_keyframe_request()

    def _send_keyframe_request(self) -> None:
        self._pending_request = None
        self._last_request = time.monotonic()
        if self.ssrc is not None:
            self.keyframe_requests += 1
            self.upstream.pli(self.ssrc)

    def remb_changed(self) -> None:
        """Tell the publisher the lowest estimate among its subscribers (rate-limited)."""
        now = time.monotonic()
        if now - self._last_remb < REMB_INTERVAL or self.ssrc is None:
            return
        estimates = [d.remb for d in self.downs if d.remb is not None]
        if estimates:
            self._last_remb = now
            self.upstream.remb(min(estimates), [self.ssrc])

    def report_reception(self, now: float) -> None:
        """Tell the publisher what reached the relay since the last report."""
        report = self.reception.report(now)
        if report is not None and self.ssrc is not None:
            self.upstream.receiver_report(self.ssrc, report)

    def sender_report(self, ntp: int, rtp_timestamp: int) -> None:
        self.reception.sender_report(ntp, time.monotonic())
        for down in self.downs:
            if down.synced_epoch == self.epoch:
                down.sender_report(ntp, rtp_timestamp)

    def close(self) -> None:
        if self._pending_request is not None:
            self._pending_request.cancel()
            self._pending_request = None
        for down in list(self.downs):
            self.detach(down)


class PublicationRouter:
    """Demultiplexes one publisher connection's packets to its tracks."""

    def __init__(self, latency: LatencyHistogram | None = None) -> None:
        self.by_ssrc: dict[int, PublishedTrack] = {}
        self.by_payload_type: dict[int, PublishedTrack] = {}
        self.rtx_payload_types: dict[int, tuple[PublishedTrack, int]] = {}
        # SSRCs a track moved away from: their stragglers must not switch it back.
        self.retired: set[int] = set()
        self.unrouted = 0
        self.malformed = MalformedCounter(logger, "publication router")
        self._latency = latency
        self._count = 0

    def add(self, track: PublishedTrack, payload_types: list[int], rtx: dict[int, int]) -> None:
        for payload_type in payload_types:
            self.by_payload_type[payload_type] = track
        for rtx_type, apt in rtx.items():
            self.rtx_payload_types[rtx_type] = (track, apt)

    @property
    def malformed_packets(self) -> int:
        """Malformed packets dropped by this router and its tracks."""
        return self.malformed.count + sum(t.malformed.count for t in self.tracks())

    def on_rtp(self, view: memoryview, length: int, now: float) -> None:
        if length < RTP_HEADER_LENGTH or length > len(view):
            self.malformed.drop()
            return
        track = self.by_ssrc.get(_U32.unpack_from(view, 8)[0])
        if track is None:
            self._route_unknown(view, length, now)
        else:
            track.on_packet(view, length, now)
        latency = self._latency
        if latency is not None:
            self._count += 1
            if not self._count & 7:
                delay = self.delay(view, length, now)
                if delay is not None:
                    latency.record(delay)

    def delay(self, view: memoryview, length: int, now: float) -> float | None:
        """How long the packet took, for the latency histogram (sampled).

        Here: from the socket handing the datagram up to its last copy going
        down. The benchmark measures from the sender's own stamp instead
        (`bench.stamped_mode`), which adds time queued in the kernel.
        """
        return time.monotonic() - now

    def _route_unknown(self, view: memoryview, length: int, now: float) -> None:
        ssrc = _U32.unpack_from(view, 8)[0]
        if ssrc in self.retired:
            self.unrouted += 1
            return
        payload_type = view[1] & 0x7F
        track = self.by_payload_type.get(payload_type)
        if track is not None:
            if track.ssrc is not None:
                self.by_ssrc.pop(track.ssrc, None)
                self.retired.add(track.ssrc)
            track.switch_source(ssrc)
            self.by_ssrc[ssrc] = track
            track.on_packet(view, length, now)
            return
        rtx = self.rtx_payload_types.get(payload_type)
        if rtx is None or rtx[0].ssrc is None:
            self.unrouted += 1
            return
        track, apt = rtx
        if track.ssrc is None:
            return
        original = unwrap_rtx(view[:length].tobytes(), apt, track.ssrc)
        if original is None:
            self.malformed.drop()
        else:
            track.on_packet(memoryview(bytearray(original)), len(original), now)

    def sender_report(self, ssrc: int, ntp: int, rtp_timestamp: int) -> None:
        track = self.by_ssrc.get(ssrc)
        if track is not None:
            track.sender_report(ntp, rtp_timestamp)

    def tracks(self) -> list[PublishedTrack]:
        return list(set(self.by_payload_type.values()))
