"""Fan-out of one published track to the tracks of its subscribers."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from bench.packets import EncodedPacket

logger = logging.getLogger(__name__)

# A subscriber this far behind is stalled; catching up from a keyframe beats
# playing seconds-old video.
MAX_QUEUED_FRAMES = {"video": 60, "audio": 100}
KEYFRAME_REQUEST_INTERVAL = 0.3


class ForwardingTrack(MediaStreamTrack):
    """What a subscription's sender reads: the publisher's encoded frames."""

    def __init__(self, kind: str, request_keyframe: Callable[[], None]) -> None:
        super().__init__()
        self.kind = kind
        self._queue: asyncio.Queue[EncodedPacket | None] = asyncio.Queue()
        self._request_keyframe = request_keyframe
        # A decoder that starts on a delta frame shows nothing useful; wait for a key.
        self._needs_keyframe = kind == "video"
        self.forwarded = 0
        self.dropped = 0

    def push(self, packet: EncodedPacket, keyframe: bool) -> None:
        if self.readyState != "live":
            return
        if self._needs_keyframe:
            if not keyframe:
                self.dropped += 1
                return
            self._needs_keyframe = False
        if self._queue.qsize() >= MAX_QUEUED_FRAMES[self.kind]:
            self._drain()
            self.dropped += 1
            if self.kind == "video":
                self._needs_keyframe = True
                self._request_keyframe()
            return
        self._queue.put_nowait(packet)

    def request_keyframe(self) -> None:
        self._request_keyframe()

    def _drain(self) -> None:
        while not self._queue.empty():
            self._queue.get_nowait()
            self.dropped += 1

    async def recv(self) -> EncodedPacket:  # type: ignore[override,unused-ignore]
        if self.readyState != "live":
            raise MediaStreamError
        packet = await self._queue.get()
        if packet is None:
            raise MediaStreamError
        self.forwarded += 1
        return packet

    def stop(self) -> None:
        if self.readyState == "live":
            self._queue.put_nowait(None)
        super().stop()


class TrackFanout:
    """One published track: forwards each frame to every live subscriber track."""

    def __init__(self, kind: str, send_pli: Callable[[], None]) -> None:
        self.kind = kind
        self._send_pli = send_pli
        self._sinks: list[ForwardingTrack] = []
        self._last_request = 0.0
        self._pending: asyncio.TimerHandle | None = None
        self.frames = 0

    def deliver(self, packet: EncodedPacket, keyframe: bool) -> None:
        self.frames += 1
        for sink in self._sinks:
            sink.push(packet, keyframe)

    def subscribe(self) -> ForwardingTrack:
        track = ForwardingTrack(self.kind, self.request_keyframe)
        self._sinks.append(track)
        return track

    def unsubscribe(self, track: ForwardingTrack) -> None:
        if track in self._sinks:
            self._sinks.remove(track)
        track.stop()

    def request_keyframe(self) -> None:
        """Ask the publisher for a keyframe, at most once per interval.

        Requests inside the interval collapse into one sent at its end, so a
        late subscriber is never left waiting for the next natural keyframe.
        """
        if self.kind != "video":
            return
        now = time.monotonic()
        wait = self._last_request + KEYFRAME_REQUEST_INTERVAL - now
        if wait <= 0:
            self._fire()
        elif self._pending is None:
            self._pending = asyncio.get_running_loop().call_later(wait, self._fire)

    def _fire(self) -> None:
        self._pending = None
        self._last_request = time.monotonic()
        self._send_pli()

    def close(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
        for sink in self._sinks:
            sink.stop()
        self._sinks.clear()
