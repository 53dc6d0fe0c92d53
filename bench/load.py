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
import json
import random
import struct
import sys
import time
from collections.abc import Mapping
from typing import Any

import uvloop
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.rtp import RTCP_PSFB_FIR, RTCP_PSFB_PLI, RtcpPsfbPacket

from bench.clip import VIDEO_FPS, Clip, load_clip
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
        self.keyframe_requests = 0

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
        self.ts = (self.ts + self.ts_step) & 0xFFFFFFFF


class ReceiveCounter:
    """Everything one participant receives: packets per SSRC and one-way delay samples."""

    def __init__(self) -> None:
        self.packets = 0
        self.per_ssrc: dict[int, int] = {}
        self.latency = LatencyHistogram()

    def on_rtp(self, view: memoryview, length: int, now: float) -> None:
        self.packets += 1
        ssrc = _U32.unpack_from(view, 8)[0]
        self.per_ssrc[ssrc] = self.per_ssrc.get(ssrc, 0) + 1
        if self.packets & 7 or not view[0] & 0x10:
            return
        pos = 16 + 4 * (view[0] & 0x0F)
        end = min(pos + 4 * _EXT_HEAD.unpack_from(view, pos - 4)[1], length)
        while pos < end:
            head = view[pos]
            if head == 0:
                pos += 1
                continue
            if head >> 4 == _ABS_ID and pos + 4 <= end:
                sent = (view[pos + 1] << 16) | (view[pos + 2] << 8) | view[pos + 3]
                delay = (abs_send_time(time.time()) - sent) & 0xFFFFFF
                self.latency.record(delay / 262144)
                return
            pos += 2 + (head & 0x0F)


class LoadParticipant:
    def __init__(self, worker: WorkerConnection, room_id: str, name: str, clip: Clip) -> None:
        self.worker = worker
        self.room_id = room_id
        self.name = name
        self.clip = clip
        self.streams: list[SendStream] = []
        self.received = ReceiveCounter()
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
        for dtls in {t.receiver.transport for t in pc.getTransceivers()}:
            self.ingresses.append(SrtpIngress(dtls, self.received.on_rtp))
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
        return len(self.received.per_ssrc) >= 2

    async def close(self) -> None:
        for ingress in self.ingresses:
            ingress.close()
        for pc in self.pcs:
            await pc.close()


class LoadGenerator:
    def __init__(self, workers: list[WorkerConnection], first: int, count: int) -> None:
        self.clip = load_clip()
        self.participants: list[LoadParticipant] = []
        for index in range(first, first + count):
            worker = workers[index % len(workers)]
            room_id = f"bench-{index}"
            for name in ("practitioner", "patient"):
                self.participants.append(LoadParticipant(worker, room_id, name, self.clip))
        self.sending = False
        self._pacer: asyncio.Task[None] | None = None

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

    def streams(self) -> list[SendStream]:
        return [s for p in self.participants for s in p.streams]

    async def _pace(self) -> None:
        streams = self.streams()
        while self.sending:
            now = time.monotonic()
            for stream in streams:
                stream.send_due(now)
            await asyncio.sleep(TICK)

    async def wait_flowing(self) -> bool:
        deadline = time.monotonic() + READY_TIMEOUT
        while not all(p.flowing() for p in self.participants):
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.1)
        return True

    def counters(self) -> dict[str, int]:
        return {
            "sent": sum(s.sent for s in self.streams()),
            "received": sum(p.received.packets for p in self.participants),
            "keyframe_requests": sum(s.keyframe_requests for s in self.streams()),
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
        if self._pacer is not None:
            await self._pacer

    async def close(self) -> None:
        for participant in self.participants:
            await participant.close()


async def run(sockets: list[str], first: int, count: int, drain: float) -> None:
    internals.check_internals()
    workers = [await WorkerConnection.open(path) for path in sockets]
    generator = LoadGenerator(workers, first, count)
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
    args = parser.parse_args(argv)
    uvloop.run(run(args.socket, args.first, args.count, args.drain))
    return 0


if __name__ == "__main__":
    sys.exit(main())
