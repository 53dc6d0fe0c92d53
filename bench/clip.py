"""The benchmark's pre-encoded media: 3 s of 720p VP8 at 1.5 Mbit/s and 1 s of Opus.

Encoded once (a few seconds of CPU) and cached, then replayed in a loop by
the load generator, which therefore costs no codec work at all. The video
is real VP8 so that the decode/re-encode baseline has something to decode;
it starts with a key frame, so looping it gives one every 3 s.
"""

from __future__ import annotations

import fractions
import hashlib
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from av import AudioFrame, VideoFrame

VIDEO_FPS = 30
VIDEO_SECONDS = 3
WIDTH, HEIGHT = 1280, 720
VIDEO_BITRATE = 1_500_000
AUDIO_FRAME_MS = 20
AUDIO_PACKETS = 50
VERSION = b"teleconsult-bench-clip-1"


@dataclass(frozen=True)
class Clip:
    # RTP payloads of each video frame (the VP8 payload descriptor included).
    video: list[list[bytes]]
    audio: list[bytes]

    @property
    def video_packets_per_second(self) -> float:
        return sum(len(f) for f in self.video) / VIDEO_SECONDS

    @property
    def video_bitrate(self) -> float:
        return sum(len(p) for f in self.video for p in f) * 8 / VIDEO_SECONDS


def _picture(index: int, rng: np.random.Generator) -> VideoFrame:
    # Moving bars over fresh noise: enough detail that the encoder spends its bitrate.
    image = rng.integers(0, 64, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    offset = (index * 24) % WIDTH
    image[:, offset : offset + 160] += 128
    frame = VideoFrame.from_ndarray(image, format="bgr24")
    frame.pts = index * 90000 // VIDEO_FPS
    frame.time_base = fractions.Fraction(1, 90000)
    return frame


def encode_clip() -> Clip:
    from aiortc.codecs.opus import OpusEncoder
    from aiortc.codecs.vpx import Vp8Encoder

    rng = np.random.default_rng(5)
    video_encoder = Vp8Encoder()
    video_encoder.target_bitrate = VIDEO_BITRATE
    video = []
    for index in range(VIDEO_FPS * VIDEO_SECONDS):
        payloads, _ = video_encoder.encode(_picture(index, rng), force_keyframe=index == 0)
        video.append(payloads)
    audio_encoder = OpusEncoder()
    audio = []
    samples = 48000 * AUDIO_FRAME_MS // 1000
    for index in range(AUDIO_PACKETS):
        t = (np.arange(samples) + index * samples) / 48000
        tone = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)
        frame = AudioFrame.from_ndarray(tone.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = 48000
        frame.pts = index * samples
        frame.time_base = fractions.Fraction(1, 48000)
        payloads, _ = audio_encoder.encode(frame)
        audio.extend(payloads)
    return Clip(video, audio)


def _pack(clip: Clip) -> bytes:
    out = bytearray(VERSION)
    out += struct.pack("!I", len(clip.video))
    for frame in clip.video:
        out += struct.pack("!I", len(frame))
        for payload in frame:
            out += struct.pack("!I", len(payload)) + payload
    out += struct.pack("!I", len(clip.audio))
    for payload in clip.audio:
        out += struct.pack("!I", len(payload)) + payload
    return bytes(out)


def _unpack(data: bytes) -> Clip:
    if not data.startswith(VERSION):
        raise ValueError("not a benchmark clip")
    pos = len(VERSION)

    def take() -> int:
        nonlocal pos
        (value,) = struct.unpack_from("!I", data, pos)
        pos += 4
        return int(value)

    def blob() -> bytes:
        nonlocal pos
        size = take()
        pos += size
        return data[pos - size : pos]

    video = [[blob() for _ in range(take())] for _ in range(take())]
    audio = [blob() for _ in range(take())]
    return Clip(video, audio)


def clip_path() -> Path:
    key = hashlib.sha256(VERSION + f"{WIDTH}x{HEIGHT}@{VIDEO_BITRATE}".encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"teleconsult-bench-clip-{key}.bin"


def load_clip() -> Clip:
    path = clip_path()
    if path.exists():
        try:
            return _unpack(path.read_bytes())
        except (ValueError, struct.error):
            pass
    clip = encode_clip()
    partial = path.with_suffix(".partial")
    partial.write_bytes(_pack(clip))
    partial.replace(path)
    return clip
