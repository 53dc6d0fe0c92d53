"""The relay forwards encoded media: real aiortc peers, no codec work in the relay.

The participants run in a child process (`python -m tests.support.synthetic call`) so
that every encoder and decoder in *this* process belongs to the relay; those
are replaced by tripwires that count calls.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from aiortc import rtcrtpreceiver, rtcrtpsender

from bench.baseline_modes import FrameForwarding
from media.relay import Relay
from signalling.app import HUB, make_app
from signalling.config import Settings
from tests.conftest import LiveServer
from tests.support.polling import eventually

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def codec_tripwires(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []

    def get_decoder(codec: Any) -> Any:
        calls.append(f"decoder:{codec.mimeType}")
        raise AssertionError("the relay must not decode")

    def get_encoder(codec: Any) -> Any:
        calls.append(f"encoder:{codec.mimeType}")
        raise AssertionError("the relay must not encode")

    monkeypatch.setattr(rtcrtpreceiver, "get_decoder", get_decoder)
    monkeypatch.setattr(rtcrtpsender, "get_encoder", get_encoder)
    return calls


async def run_synthetic_call(
    server: LiveServer, room: dict[str, Any], *, seconds: float, admit_delay: float = 0.0
) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.support.synthetic",
        "call",
        "--base-url",
        server.base_url,
        "--practitioner",
        room["links"]["practitioner"],
        "--patient",
        room["links"]["patient"],
        "--seconds",
        str(seconds),
        "--admit-delay",
        str(admit_delay),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, stderr.decode()[-3000:]
    result: dict[str, Any] = json.loads(stdout.decode().strip().splitlines()[-1])
    return result


def only_reception(result: dict[str, Any], side: str) -> dict[str, Any]:
    receptions = result[side]["receptions"]
    assert len(receptions) == 1, receptions
    reception: dict[str, Any] = receptions[0]
    return reception


@pytest.mark.slow
@pytest.mark.timeout(180)  # Beyond run_synthetic_call's own 120 s limit.
async def test_call_is_forwarded_without_any_codec_work(
    live_server: LiveServer, codec_tripwires: list[str]
) -> None:
    room = await live_server.book()
    # The in-process relay's own counters: not part of the RelayService interface.
    relay: Any = live_server.app[HUB].relay
    result = await run_synthetic_call(live_server, room, seconds=3)

    for side, publisher in (("patient", "practitioner"), ("practitioner", "patient")):
        reception = only_reception(result, side)
        assert reception["publisher_role"] == publisher
        # 15 fps for 3 s: most frames arrive, and every one is the sender's real picture.
        assert reception["video_frames"] >= 25, reception
        assert reception["pattern_frames"] == reception["video_frames"], reception
        assert reception["audio_frames"] >= 75, reception
    assert codec_tripwires == []
    # Everything was torn down when the participants left.
    await eventually(lambda: relay.stats()["subscriptions"] == 0)


async def test_tripwires_do_fire_on_codec_work(codec_tripwires: list[str]) -> None:
    """Guard for the test above: the patched hooks are the ones aiortc calls."""
    from aiortc.rtcrtpparameters import RTCRtpCodecParameters

    vp8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
    with pytest.raises(AssertionError):
        rtcrtpreceiver.get_decoder(vp8)  # type: ignore[attr-defined]
    with pytest.raises(AssertionError):
        rtcrtpsender.get_encoder(vp8)  # type: ignore[attr-defined]
    assert codec_tripwires == ["decoder:video/VP8", "encoder:video/VP8"]


@pytest.mark.slow
@pytest.mark.timeout(180)  # Beyond run_synthetic_call's own 120 s limit.
async def test_late_subscriber_gets_a_keyframe_at_once(
    live_server: LiveServer, codec_tripwires: list[str]
) -> None:
    """The patient is admitted 3 s after the practitioner started sending.

    aiortc's encoder makes a keyframe only at start and on request (its
    keyframe interval is 3000 frames), and the relay withholds delta frames
    from a new subscriber; so the patient sees video only because the relay
    asked the publisher for a keyframe when the subscription was made.
    """
    room = await live_server.book()
    result = await run_synthetic_call(live_server, room, seconds=2, admit_delay=3)
    reception = only_reception(result, "patient")
    assert reception["pattern_frames"] >= 15, reception
    assert result["admit_to_first_patient_frame_ms"] is not None
    # Far below the 200 s a natural keyframe would take at 15 fps.
    assert result["admit_to_first_patient_frame_ms"] < 5000, result
    assert codec_tripwires == []


@pytest.mark.slow
@pytest.mark.timeout(180)  # Beyond run_synthetic_call's own 120 s limit.
async def test_frames_mode_still_forwards_without_codec_work(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    settings: Settings,
    codec_tripwires: list[str],
) -> None:
    """The skeleton's frame pass-through stays usable: it is the benchmark's baseline."""
    relay = Relay(forwarding=FrameForwarding())
    server = LiveServer(await aiohttp_server(make_app(settings, relay=relay), host="127.0.0.1"))
    room = await server.book()
    result = await run_synthetic_call(server, room, seconds=3)

    for side in ("patient", "practitioner"):
        reception = only_reception(result, side)
        assert reception["video_frames"] >= 25, reception
        assert reception["pattern_frames"] == reception["video_frames"], reception
        assert reception["audio_frames"] >= 75, reception
    assert codec_tripwires == []
    assert relay.forwarding_stats()["mode"] == "frames"
