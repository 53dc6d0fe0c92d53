"""The benchmark's load generator: synthetic two-party consultations at packet level.

    python -m bench.load --socket PATH [--socket PATH ...] --first 0 --count 20

Each participant publishes audio and video and subscribes to the other one,
over real aiortc connections (ICE, DTLS-SRTP) to relay workers. Once
connected, media bypasses aiortc on both sides: pre-encoded packets from
`bench.clip` are stamped (sequence number, timestamp, abs-send-time),
SRTP-protected and sent; received packets are unprotected and counted. So
the generator costs about what the relay does per packet, not a codec.

It talks to the parent on stdin/stdout, one word per line: it prints
`ready` once every stream flows, counts from `start` to `stop`, then prints
its counters as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import struct
import sys
import time
from collections.abc import Mapping
from typing import Any

import uvloop
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.clock import current_ntp_time
from aiortc.codecs import is_rtx
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RtcpPsfbPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpSenderInfo,
    RtcpSrPacket,
    pack_remb_fci,
)

from bench.clip import VIDEO_FPS, Clip, load_clip
from bench.receiver_feedback import InboundStream
from bench.stamped_mode import read_abs_send_time
from media import aiortc_internals as internals
from media.latency import LatencyHistogram
from media.rtp_header import ONE_BYTE_PROFILE, relay_extension_ids
from media.srtp_path import SrtpEgress, SrtpIngress
from media.worker_connection import WorkerConnection

ABS_SEND_TIME_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"
TICK = 0.005
HEADER = 24  # 12 fixed + 4 extension header + mid (2) + abs-send-time (4) + 2 padding
READY_TIMEOUT = 90.0

_IDS = relay_extension_ids()
_MID_ID = _IDS[MID_URI]
_ABS_ID = _IDS[ABS_SEND_TIME_URI]
_FIXED = struct.Struct("!BBHII")
_EXT_HEAD = struct.Struct("!HH")
_U32 = struct.Struct("!I")
_SEQ = struct.Struct("!H")
# What a receiver's REMB says it can take (a browser on a good link).
REMB_BITRATE = 1_500_000
# Browsers send receiver and sender reports about once a second per stream.
REPORT_INTERVAL = 1.0
FEEDBACK_TICK = 0.02


def abs_send_time(now: float) -> int:
    # 6.18 fixed-point seconds, 24 bits (the abs-send-time extension's format).
    return int(now * 262144) & 0xFFFFFF


class SendStream:
    """One published track, replaying the clip at its real pace."""

    def __init__(self, kind: str, clip: Clip, sender: Any, mid: str, payload_type: int) -> None:
        self.kind = kind
        self.frames: list[list[bytes]] = (
            clip.video if kind == "video" else [[p] for p in clip.audio]
        )
        self.interval = 1 / VIDEO_FPS if kind == "video" else 0.02
        self.ts_step = 90000 // VIDEO_FPS if kind == "video" else 960
        self.ssrc = internals.sender_ssrc(sender)
        self.egress = SrtpEgress(lambda: sender.transport)
        self.mid = mid.encode()[:1] or b"0"
        self.payload_type = payload_type
        self.seq = random.randrange(1 << 15)
        self.ts = random.randrange(1 << 31)
        self.index = 0
        self.next_due = 0.0
        self.sent = 0
        self.octets = 0
        self.keyframe_requests = 0
        self.rtcp_sent = 0

    def sender_report(self) -> None:
        """What a browser sends about once a second per stream (RFC 3550 6.4.1)."""
        if self.egress.buffer is None or not self.sent:
            return
        report = RtcpSrPacket(
            ssrc=self.ssrc,
            sender_info=RtcpSenderInfo(
                ntp_timestamp=current_ntp_time(),
                rtp_timestamp=self.ts,
                packet_count=self.sent & 0xFFFFFFFF,
                octet_count=self.octets & 0xFFFFFFFF,
            ),
        )
        if self.egress.send_rtcp(bytes(report)):
            self.rtcp_sent += 1

    def request_keyframe(self) -> None:
        # The clip starts with its key frame.
        self.keyframe_requests += 1
        if self.kind == "video":
            self.index = 0

    async def handle_rtcp(self, packet: Any) -> None:
        if isinstance(packet, RtcpPsfbPacket) and packet.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR):
            self.request_keyframe()

    def send_due(self, now: float) -> None:
        if self.egress.buffer is None and not self.egress.ready():
            return
        while self.next_due <= now:
            self._send_frame()
            self.next_due += self.interval

    def _send_frame(self) -> None:
        egress = self.egress
        buf = egress.buffer
        assert buf is not None
        payloads = self.frames[self.index]
        self.index = (self.index + 1) % len(self.frames)
        # Read per frame, not per tick: the stamp must not predate the send.
        stamp = abs_send_time(time.time())
        last = len(payloads) - 1
        for i, payload in enumerate(payloads):
            size = len(payload)
            _FIXED.pack_into(
                buf,
                0,
                0x90,
                self.payload_type | (0x80 if i == last else 0),
                self.seq,
                self.ts,
                self.ssrc,
            )
            _EXT_HEAD.pack_into(buf, 12, ONE_BYTE_PROFILE, 2)
            buf[16] = _MID_ID << 4
            buf[17] = self.mid[0]
            _U32.pack_into(buf, 18, (((_ABS_ID << 4) | 2) << 24) | stamp)
            buf[22] = 0
            buf[23] = 0
            buf[HEADER : HEADER + size] = payload
            egress.send(HEADER + size)
            self.seq = (self.seq + 1) & 0xFFFF
            self.sent += 1
            self.octets += size
        self.ts = (self.ts + self.ts_step) & 0xFFFFFFFF


class ReceiveCounter:
    """Everything one participant receives: unique packets, repairs and one-way delay samples."""

    def __init__(self) -> None:
        self.packets = 0
        self.streams: list[InboundStream] = []
        self.latency = LatencyHistogram()
        self._samples = 0

    def sample_delay(self, view: memoryview, length: int) -> None:
        self._samples += 1
        if self._samples & 7:
            return
        # The relay forwards the sender's stamp under its own extension id.
        sent = read_abs_send_time(view, length)
        if sent is not None:
            self.latency.record(((abs_send_time(time.time()) - sent) & 0xFFFFFF) / 262144)

    def total(self, key: str) -> int:
        return sum(getattr(stream, key) for stream in self.streams)


class LossyIngress(SrtpIngress):
    """The relay's own ingress, with the receiver's loss emulation in front of libsrtp."""

    def __init__(self, dtls: Any, inbound: SubscriptionInbound) -> None:
        super().__init__(dtls, inbound.on_rtp)
        self._inbound = inbound

    def _forward(self, data: bytes) -> None:
        if len(data) >= 12 and not self._inbound.admit(data):
            return
        super()._forward(data)


class SubscriptionInbound:
    """One subscription's incoming streams, told apart by SSRC, kind found by payload type."""

    def __init__(self, totals: ReceiveCounter, drop_every: int, seed: int) -> None:
        self.totals = totals
        self.drop_every = drop_every
        self.seed = seed
        self.kinds: dict[int, tuple[str, Any]] = {}
        self.by_ssrc: dict[int, InboundStream] = {}
        self._verdict = InboundStream.FRESH

    def admit(self, data: bytes) -> bool:
        """Before decryption: classify the packet, and drop it here if the loss emulation says.

        Dropping after decryption would not do: libsrtp would have marked the
        packet as seen and refuse its retransmission as a replay.
        """
        ssrc = _U32.unpack_from(data, 8)[0]
        stream = self.by_ssrc.get(ssrc)
        if stream is None:
            kind, receiver = self.kinds.get(data[1] & 0x7F, ("audio", None))
            # Browsers NACK video only; audio loss is concealed, not repaired.
            drop_every = self.drop_every if kind == "video" else 0
            stream = InboundStream(ssrc, kind, receiver, drop_every, self.seed + len(self.by_ssrc))
            self.by_ssrc[ssrc] = stream
            self.totals.streams.append(stream)
        self._verdict = stream.on_packet(_SEQ.unpack_from(data, 2)[0], time.monotonic())
        return self._verdict != InboundStream.DROPPED

    def on_rtp(self, view: memoryview, length: int, now: float) -> None:
        self.totals.packets += 1
        if self._verdict == InboundStream.FRESH:
            self.totals.sample_delay(view, length)

    async def feedback(self, now: float, report_due: bool) -> int:
        """NACKs for what is missing, and each second a receiver report and a REMB."""
        sent = 0
        video_ssrcs: list[int] = []
        for stream in self.by_ssrc.values():
            receiver = stream.receiver
            if receiver is None:
                continue
            lost = stream.due_nacks(now)
            if lost:
                await internals.send_nack(receiver, stream.ssrc, lost)
                sent += 1
            if report_due:
                rtcp_ssrc = internals.receiver_rtcp_ssrc(receiver)
                if rtcp_ssrc is not None:
                    report = RtcpReceiverInfo(
                        ssrc=stream.ssrc, jitter=0, lsr=0, dlsr=0, **stream.report()
                    )
                    await internals.send_rtcp(
                        receiver, RtcpRrPacket(ssrc=rtcp_ssrc, reports=[report])
                    )
                    sent += 1
                if stream.kind == "video":
                    video_ssrcs.append(stream.ssrc)
        if video_ssrcs:
            receiver = self.by_ssrc[video_ssrcs[0]].receiver
            rtcp_ssrc = internals.receiver_rtcp_ssrc(receiver)
            if rtcp_ssrc is not None:
                remb = RtcpPsfbPacket(
                    fmt=RTCP_PSFB_APP,
                    ssrc=rtcp_ssrc,
                    media_ssrc=0,
                    fci=pack_remb_fci(REMB_BITRATE, video_ssrcs),
                )
                await internals.send_rtcp(receiver, remb)
                sent += 1
        return sent


class LoadParticipant:
    def __init__(
        self, worker: WorkerConnection, room_id: str, name: str, clip: Clip, drop_every: int = 0
    ) -> None:
        self.worker = worker
        self.room_id = room_id
        self.name = name
        self.clip = clip
        self.drop_every = drop_every
        self.streams: list[SendStream] = []
        self.received = ReceiveCounter()
        self.inbound: list[SubscriptionInbound] = []
        self.pcs: list[RTCPeerConnection] = []
        self.ingresses: list[SrtpIngress] = []

    async def join(self) -> None:
        self.worker.listeners[(self.room_id, self.name)] = self
        await self.worker.request("join", room_id=self.room_id, participant_id=self.name)

    async def publish(self) -> None:
        pc = RTCPeerConnection()
        self.pcs.append(pc)
        transceivers = [
            pc.addTransceiver(kind, direction="sendonly") for kind in ("audio", "video")
        ]
        await pc.setLocalDescription(await pc.createOffer())
        answer = await self.worker.request(
            "publish", room_id=self.room_id, participant_id=self.name, sdp=pc.localDescription.sdp
        )
        for transceiver in transceivers:
            # Installed before the answer starts the senders.
            stream = SendStream(transceiver.kind, self.clip, transceiver.sender, "", 0)
            internals.take_over_sender(transceiver.sender, stream.handle_rtcp)
            self.streams.append(stream)
        await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        for transceiver, stream in zip(transceivers, self.streams, strict=True):
            codec = next(
                c
                for c in internals.negotiated_codecs(transceiver)
                if not c.mimeType.lower().endswith("/rtx")
            )
            assert codec.payloadType is not None
            stream.payload_type = codec.payloadType
            stream.mid = (transceiver.mid or "0").encode()[:1]

    async def subscription_offer(
        self, subscription_id: str, publisher_id: str, publisher_info: Mapping[str, str], sdp: str
    ) -> None:
        pc = RTCPeerConnection()
        self.pcs.append(pc)
        await pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        inbound = SubscriptionInbound(
            self.received, self.drop_every, hash((self.room_id, self.name))
        )
        for transceiver in pc.getTransceivers():
            for codec in internals.negotiated_codecs(transceiver):
                if not is_rtx(codec) and codec.payloadType is not None:
                    inbound.kinds[codec.payloadType] = (transceiver.kind, transceiver.receiver)
        self.inbound.append(inbound)
        for dtls in {t.receiver.transport for t in pc.getTransceivers()}:
            self.ingresses.append(LossyIngress(dtls, inbound))
        await self.worker.request(
            "answer",
            room_id=self.room_id,
            participant_id=self.name,
            subscription_id=subscription_id,
            sdp=pc.localDescription.sdp,
        )

    async def subscription_closed(self, subscription_id: str) -> None:
        pass

    def flowing(self) -> bool:
        # Two streams from the other participant, both arriving.
        return len([s for s in self.received.streams if s.received]) >= 2

    async def feedback(self, now: float, report_due: bool) -> int:
        sent = 0
        for inbound in self.inbound:
            sent += await inbound.feedback(now, report_due)
        if report_due:
            for stream in self.streams:
                stream.sender_report()
        return sent

    async def close(self) -> None:
        for ingress in self.ingresses:
            ingress.close()
        for pc in self.pcs:
            await pc.close()


class LoadGenerator:
    def __init__(
        self, workers: list[WorkerConnection], first: int, count: int, drop_every: int = 0
    ) -> None:
        self.clip = load_clip()
        self.participants: list[LoadParticipant] = []
        for index in range(first, first + count):
            worker = workers[index % len(workers)]
            room_id = f"bench-{index}"
            for name in ("practitioner", "patient"):
                self.participants.append(
                    LoadParticipant(worker, room_id, name, self.clip, drop_every)
                )
        self.sending = False
        self.feedback_sent = 0
        self._pacer: asyncio.Task[None] | None = None
        self._feedback: asyncio.Task[None] | None = None

    async def set_up(self) -> None:
        for participant in self.participants:
            await participant.join()
        # A few calls at a time: ICE and DTLS setup is CPU-heavy on both sides.
        batch = 8
        for start in range(0, len(self.participants), batch):
            await asyncio.gather(*(p.publish() for p in self.participants[start : start + batch]))
        streams = self.streams()
        base = time.monotonic()
        for stream in streams:
            # Spread the streams over a frame interval, as independent callers would be.
            stream.next_due = base + random.random() * stream.interval
        self.sending = True
        self._pacer = asyncio.ensure_future(self._pace())
        self._feedback = asyncio.ensure_future(self._feed_back())

    def streams(self) -> list[SendStream]:
        return [s for p in self.participants for s in p.streams]

    async def _pace(self) -> None:
        streams = self.streams()
        while self.sending:
            now = time.monotonic()
            for stream in streams:
                stream.send_due(now)
            await asyncio.sleep(TICK)

    async def _feed_back(self) -> None:
        next_report = time.monotonic() + REPORT_INTERVAL * random.random()
        while self.sending:
            now = time.monotonic()
            report_due = now >= next_report
            if report_due:
                next_report += REPORT_INTERVAL
            for participant in self.participants:
                # A transport going away at the end of the run.
                with contextlib.suppress(ConnectionError):
                    self.feedback_sent += await participant.feedback(now, report_due)
            await asyncio.sleep(FEEDBACK_TICK)

    async def wait_flowing(self) -> bool:
        deadline = time.monotonic() + READY_TIMEOUT
        while not all(p.flowing() for p in self.participants):
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.1)
        return True

    def counters(self) -> dict[str, int]:
        def inbound(key: str) -> int:
            return sum(p.received.total(key) for p in self.participants)

        return {
            "sent": sum(s.sent for s in self.streams()),
            "received": sum(p.received.packets for p in self.participants),
            "keyframe_requests": sum(s.keyframe_requests for s in self.streams()),
            "dropped_on_purpose": inbound("dropped"),
            "gaps": inbound("gaps"),
            "repaired": inbound("repaired"),
            "duplicates": inbound("duplicates"),
            "nacked": inbound("nacked"),
            "feedback_rtcp_sent": self.feedback_sent,
            "sender_reports_sent": sum(s.rtcp_sent for s in self.streams()),
        }

    def reset_latency(self) -> None:
        for participant in self.participants:
            participant.received.latency.reset()

    def latency(self) -> LatencyHistogram:
        merged = LatencyHistogram()
        for participant in self.participants:
            merged.merge(participant.received.latency)
        return merged

    async def stop(self) -> None:
        self.sending = False
        for task in (self._pacer, self._feedback):
            if task is not None:
                await task

    async def close(self) -> None:
        for participant in self.participants:
            await participant.close()


async def run(
    sockets: list[str], first: int, count: int, drain: float, drop_every: int = 0
) -> None:
    internals.check_internals()
    workers = [await WorkerConnection.open(path) for path in sockets]
    generator = LoadGenerator(workers, first, count, drop_every)
    loop = asyncio.get_running_loop()
    commands = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)
    try:
        await generator.set_up()
        flowing = await generator.wait_flowing()
        print("ready" if flowing else "not-flowing", flush=True)
        await commands.readline()  # start
        before = generator.counters()
        generator.reset_latency()
        started = time.monotonic()
        await commands.readline()  # stop
        await generator.stop()
        elapsed = time.monotonic() - started
        await asyncio.sleep(drain)
        after = generator.counters()
        latency = generator.latency()
        result: dict[str, Any] = {key: after[key] - before[key] for key in after}
        result.update(
            seconds=elapsed,
            flowing=flowing,
            latency_ms_p50=latency.percentile_ms(0.5),
            latency_ms_p90=latency.percentile_ms(0.9),
            latency_ms_p99=latency.percentile_ms(0.99),
        )
        print(json.dumps(result), flush=True)
    finally:
        await generator.close()
        for worker in workers:
            await worker.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load")
    parser.add_argument("--socket", action="append", required=True, help="a relay worker socket")
    parser.add_argument("--first", type=int, default=0, help="index of the first consultation")
    parser.add_argument("--count", type=int, required=True, help="consultations to run")
    parser.add_argument("--drain", type=float, default=0.5, help="seconds to await stragglers")
    parser.add_argument(
        "--drop-every",
        type=int,
        default=0,
        help="receivers drop one in N video packets on purpose and NACK it (0: none)",
    )
    args = parser.parse_args(argv)
    uvloop.run(run(args.socket, args.first, args.count, args.drain, args.drop_every))
    return 0


if __name__ == "__main__":
    sys.exit(main())
