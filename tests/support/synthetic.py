"""Synthetic participants: aiortc clients that join a room like a browser does.

They speak the Socket.IO protocol of docs/protocol.md, send the test pattern
of `tests.support.pattern` and a tone, and measure what they receive. Tests and
benchmarks use them where a browser would be too heavy.

    python -m tests.support.synthetic call --base-url URL --practitioner LINK --patient LINK
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import socketio
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame, VideoFrame

from tests.support import pattern as test_pattern

logger = logging.getLogger(__name__)

VIDEO_CLOCK = 90000
FPS = 15
AUDIO_RATE = 48000
AUDIO_SAMPLES = 960


class SignallingError(Exception):
    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(f"{code}: {message}")


class PatternVideoTrack(MediaStreamTrack):
    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        self.counter = 0
        self._start: float | None = None

    async def recv(self) -> VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            self.counter += 1
            await asyncio.sleep(max(0.0, self._start + self.counter / FPS - time.monotonic()))
        image = test_pattern.draw(self.counter, int(time.time() * 1000))
        frame = VideoFrame.from_ndarray(image, format="bgr24")
        frame.pts = self.counter * VIDEO_CLOCK // FPS
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        return frame


class ToneAudioTrack(MediaStreamTrack):
    kind = "audio"

    def __init__(self, frequency: float = 440.0) -> None:
        super().__init__()
        self._frequency = frequency
        self._sent = 0
        self._start: float | None = None

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            due = self._start + self._sent / AUDIO_RATE
            await asyncio.sleep(max(0.0, due - time.monotonic()))
        t = (np.arange(AUDIO_SAMPLES) + self._sent) / AUDIO_RATE
        samples = (np.sin(2 * np.pi * self._frequency * t) * 8000).astype(np.int16)
        frame = AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = AUDIO_RATE
        frame.pts = self._sent
        frame.time_base = fractions.Fraction(1, AUDIO_RATE)
        self._sent += AUDIO_SAMPLES
        return frame


@dataclass
class Reception:
    """What arrived from one remote participant."""

    publisher: dict[str, Any]
    opened_at: float = field(default_factory=time.monotonic)
    video_frames: int = 0
    pattern_frames: int = 0
    audio_frames: int = 0
    first_video_at: float | None = None
    highest_counter: int = -1
    latencies_ms: list[int] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies_ms)
        return {
            "publisher_role": self.publisher.get("role"),
            "video_frames": self.video_frames,
            "pattern_frames": self.pattern_frames,
            "audio_frames": self.audio_frames,
            "first_video_after_ms": None
            if self.first_video_at is None
            else round((self.first_video_at - self.opened_at) * 1000),
            "latency_ms_p50": lat[len(lat) // 2] if lat else None,
        }


class SyntheticParticipant:
    def __init__(self, base_url: str, link: str, label: str = "participant") -> None:
        parts = urlsplit(link)
        self.base_url = base_url.rstrip("/")
        self.room_id = parts.path.rsplit("/", 1)[-1]
        self.token = parts.fragment
        self.label = label
        self.sio = socketio.AsyncClient(reconnection=False)
        self.session: asyncio.Future[dict[str, Any]] = asyncio.get_event_loop().create_future()
        self.admitted = asyncio.Event()
        self.denied = asyncio.Event()
        self.ended = asyncio.Event()
        self.position: int | None = None
        self.waiting_list: list[dict[str, Any]] = []
        self.waiting_changed = asyncio.Event()
        self.receptions: dict[str, Reception] = {}
        self._publish_pc: RTCPeerConnection | None = None
        self._subscription_pcs: dict[str, RTCPeerConnection] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.connect_error: dict[str, Any] | None = None
        self._register()

    def _register(self) -> None:
        handlers = {
            "session": self._on_session,
            "connect_error": self._on_connect_error,
            "waiting": self._on_waiting,
            "waiting_list": self._on_waiting_list,
            "admitted": self._on_admitted,
            "denied": self._on_denied,
            "room_ended": self._on_ended,
            "subscription_offer": self._accept_subscription,
            "subscription_closed": self._on_subscription_closed,
        }
        for event, handler in handlers.items():
            self.sio.on(event, handler)

    async def _on_session(self, data: dict[str, Any]) -> None:
        if not self.session.done():
            self.session.set_result(data)

    async def _on_connect_error(self, data: Any) -> None:
        # The server's refusal details travel as {"message", "data": {code, ...}}.
        if isinstance(data, dict) and isinstance(data.get("data"), dict):
            self.connect_error = data["data"]
        else:
            self.connect_error = {"message": str(data)}

    async def _on_waiting(self, data: dict[str, Any]) -> None:
        self.position = data.get("position")

    async def _on_waiting_list(self, data: dict[str, Any]) -> None:
        self.waiting_list = list(data.get("entries", []))
        self.waiting_changed.set()

    async def _on_admitted(self, data: Any) -> None:
        self.admitted.set()

    async def _on_denied(self, data: Any) -> None:
        self.denied.set()

    async def _on_ended(self, data: Any) -> None:
        self.ended.set()

    async def _on_subscription_closed(self, data: dict[str, Any]) -> None:
        pc = self._subscription_pcs.pop(data.get("subscription_id", ""), None)
        if pc is not None:
            await pc.close()

    async def connect(self, timeout: float = 10.0) -> dict[str, Any]:
        await self.sio.connect(
            self.base_url,
            auth={"token": self.token, "room_id": self.room_id},
            transports=["websocket"],
            wait_timeout=timeout,
        )
        return await asyncio.wait_for(self.session, timeout)

    async def call(self, event: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
        ack = await self.sio.call(event, data or {}, timeout=20)
        if not isinstance(ack, dict):
            raise SignallingError("invalid_ack", repr(ack))
        if not ack.get("ok"):
            error = ack.get("error") or {}
            raise SignallingError(str(error.get("code")), str(error.get("message")))
        return ack

    async def check_in(self) -> int:
        ack = await self.call("check_in")
        self.position = int(ack["position"])
        return self.position

    async def open_consultation(self) -> None:
        await self.call("open_consultation")

    async def wait_for_waiting(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        async def until() -> None:
            while len(self.waiting_list) < count:
                self.waiting_changed.clear()
                await self.waiting_changed.wait()

        await asyncio.wait_for(until(), timeout)
        return self.waiting_list

    async def admit(self, entry_id: str) -> None:
        await self.call("admit", {"entry_id": entry_id})

    async def deny(self, entry_id: str) -> None:
        await self.call("deny", {"entry_id": entry_id})

    def _ice(self) -> RTCConfiguration:
        servers = []
        if self.session.done():
            for server in self.session.result().get("ice_servers", []):
                servers.append(
                    RTCIceServer(
                        urls=server["urls"],
                        username=server.get("username"),
                        credential=server.get("credential"),
                    )
                )
        return RTCConfiguration(iceServers=servers)

    async def publish(self, *, video: bool = True, audio: bool = True) -> None:
        pc = RTCPeerConnection(self._ice())
        self._publish_pc = pc
        if audio:
            pc.addTransceiver(ToneAudioTrack(), direction="sendonly")
        if video:
            pc.addTransceiver(PatternVideoTrack(), direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        ack = await self.call("publish", {"sdp": pc.localDescription.sdp, "type": "offer"})
        answer = ack["answer"]
        await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], answer["type"]))

    async def prepare(self) -> RTCPeerConnection:
        """While waiting: the publish connection made ahead (`prepare_publish`)."""
        pc = RTCPeerConnection(self._ice())
        self._publish_pc = pc
        pc.addTransceiver(ToneAudioTrack(), direction="sendonly")
        pc.addTransceiver(PatternVideoTrack(), direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        ack = await self.call("prepare_publish", {"sdp": pc.localDescription.sdp, "type": "offer"})
        answer = ack["answer"]
        await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], answer["type"]))
        return pc

    async def publish_prepared(self) -> None:
        await self.call("publish", {"prepared": True})

    async def _accept_subscription(self, data: dict[str, Any]) -> None:
        subscription_id = str(data["subscription_id"])
        pc = RTCPeerConnection(self._ice())
        self._subscription_pcs[subscription_id] = pc
        reception = Reception(dict(data.get("publisher") or {}))
        self.receptions[subscription_id] = reception

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            task = asyncio.ensure_future(self._consume(track, reception))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        await pc.setRemoteDescription(RTCSessionDescription(data["sdp"], "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        await self.call(
            "subscription_answer",
            {"subscription_id": subscription_id, "sdp": pc.localDescription.sdp, "type": "answer"},
        )

    async def _consume(self, track: MediaStreamTrack, reception: Reception) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if track.kind == "audio":
                reception.audio_frames += 1
                continue
            assert isinstance(frame, VideoFrame)
            reception.video_frames += 1
            if reception.first_video_at is None:
                reception.first_video_at = time.monotonic()
            image: test_pattern.Image = frame.to_ndarray(format="bgr24")  # type: ignore[assignment]
            stamp = test_pattern.read(image)
            if stamp is None:
                continue
            reception.pattern_frames += 1
            reception.highest_counter = max(reception.highest_counter, stamp.counter)
            reception.latencies_ms.append((int(time.time() * 1000) - stamp.sent_ms) & 0xFFFF)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for pc in [*self._subscription_pcs.values(), self._publish_pc]:
            if pc is not None:
                await pc.close()
        self._subscription_pcs.clear()
        if self.sio.connected:
            await self.sio.disconnect()

    def summary(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "receptions": [r.summary() for r in self.receptions.values()],
        }


async def run_call(
    base_url: str, practitioner_link: str, patient_link: str, seconds: float, admit_delay: float
) -> dict[str, Any]:
    """A whole consultation: practitioner opens, patient waits, is admitted, both talk."""
    practitioner = SyntheticParticipant(base_url, practitioner_link, "practitioner")
    patient = SyntheticParticipant(base_url, patient_link, "patient")
    try:
        await practitioner.connect()
        await practitioner.open_consultation()
        await practitioner.publish()
        await patient.connect()
        await patient.check_in()
        entries = await practitioner.wait_for_waiting(1)
        await asyncio.sleep(admit_delay)
        admitted_at = time.monotonic()
        await practitioner.admit(entries[0]["entry_id"])
        await asyncio.wait_for(patient.admitted.wait(), 10)
        await patient.publish()
        await asyncio.sleep(seconds)
        result = {
            "practitioner": practitioner.summary(),
            "patient": patient.summary(),
            "admit_to_first_patient_frame_ms": _first_after(patient, admitted_at),
        }
        return result
    finally:
        await patient.close()
        await practitioner.close()


def _first_after(participant: SyntheticParticipant, since: float) -> int | None:
    firsts = [r.first_video_at for r in participant.receptions.values() if r.first_video_at]
    return round((min(firsts) - since) * 1000) if firsts else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.synthetic")
    commands = parser.add_subparsers(dest="command", required=True)
    call = commands.add_parser("call", help="run one consultation and print what was received")
    call.add_argument("--base-url", required=True)
    call.add_argument("--practitioner", required=True, help="practitioner join link")
    call.add_argument("--patient", required=True, help="patient join link")
    call.add_argument("--seconds", type=float, default=4.0)
    call.add_argument("--admit-delay", type=float, default=0.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    result = asyncio.run(
        run_call(args.base_url, args.practitioner, args.patient, args.seconds, args.admit_delay)
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
