"""End-to-end encryption in real headless Chromium (docs/e2ee.md).

- A doctor and a patient decode each other's video, see the same safety code
  and an "encrypted" status (with RTCRtpScriptTransform on one side and
  Chromium's createEncodedStreams fallback on the other).
- A tap on the relay's forwarding path cannot decode the forwarded VP8 with
  E2EE on, and the same tap decodes it with E2EE off.
- A signalling server that swaps a public key in transit makes the safety
  codes differ.
- Plain frames (a participant that does not encrypt) are never shown.
- A browser without encoded transforms is told why instead of joining unencrypted.
"""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import Iterator
from typing import Any

import av
import numpy as np
import pytest
from aiortc.codecs.vpx import VpxPayloadDescriptor
from aiortc.rtp import RtpPacket
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from playwright.async_api import Browser, Page, expect

from rooms.roles import Role
from signalling.app import HUB, SOCKETS
from signalling.room_hub import entry_channel
from tests.conftest import LiveServer
from tests.support import make_settings, room_id_of
from tests.support.browser import chromium
from tests.support.polling import eventually, stays_true
from tests.support.synthetic import SyntheticParticipant
from tests.test_e2e_browser import (
    REMOTE_FRAMES,
    STEP,
    expect_state,
    local_link,
    open_page,
    wait_remote_frames,
)

pytestmark = pytest.mark.browser

SAFETY_CODE = re.compile(r"^\d{5} \d{5} \d{5} \d{5}$")
TAPPED_FRAMES = 45
# Mean difference between horizontally adjacent pixels: ~0.3 for Chromium's
# fake camera, far higher for the noise a decoder makes of random bytes.
SMOOTH_PICTURE = 10.0
# Makes the page believe the browser has no RTCRtpScriptTransform (and, with
# the second line, no createEncodedStreams either).
NO_SCRIPT_TRANSFORM = "delete window.RTCRtpScriptTransform;"
NO_ENCODED_STREAMS = (
    "delete RTCRtpSender.prototype.createEncodedStreams;"
    "delete RTCRtpReceiver.prototype.createEncodedStreams;"
)


async def safety_code(page: Page) -> str:
    code = page.get_by_test_id("safety-code")
    await expect(code).to_have_text(SAFETY_CODE, timeout=STEP)
    return (await code.inner_text()).strip()


async def expect_e2ee(page: Page, state: str) -> None:
    await expect(page.get_by_test_id("e2ee-status")).to_have_attribute(
        "data-state", state, timeout=STEP
    )


async def open_consultation(browser: Browser, url: str, init_script: str = "") -> Page:
    _, doctor = await open_page(browser, url, init_script)
    await doctor.get_by_test_id("check-in").click()
    await expect_state(doctor, "in-call")
    return doctor


async def admit_patient(browser: Browser, doctor: Page, url: str, init_script: str = "") -> Page:
    _, patient = await open_page(browser, url, init_script)
    await patient.get_by_test_id("check-in").click()
    await expect_state(patient, "waiting")
    await doctor.get_by_test_id("waiting-entry").get_by_test_id("admit").click()
    await expect_state(patient, "in-call")
    return patient


def no_page_errors(*pages: Page) -> None:
    for page in pages:
        assert page.errors == [], page.errors  # type: ignore[attr-defined]


async def test_call_is_encrypted_and_both_sides_show_the_same_safety_code(
    live_server: LiveServer,
) -> None:
    room = await live_server.book(patient_name="Alice Martin", practitioner_name="Dr Bernard")
    async with chromium() as browser:
        # The doctor's browser takes Chromium's fallback path, the patient's the standard one.
        doctor = await open_consultation(
            browser,
            local_link(live_server, room["links"]["practitioner"]),
            NO_SCRIPT_TRANSFORM,
        )
        await expect_e2ee(doctor, "pending")
        await expect(doctor.get_by_test_id("safety-code")).to_be_hidden()
        patient = await admit_patient(
            browser, doctor, local_link(live_server, room["links"]["patient"])
        )
        for page in (doctor, patient):
            await wait_remote_frames(page, 30)
            await expect_e2ee(page, "encrypted")
        assert await safety_code(doctor) == await safety_code(patient)
        no_page_errors(doctor, patient)


# ------------------------------------------------------------ relay tap


class Vp8Frames:
    """Whole VP8 frames from RTP packets (RFC 7741), as a decoder would get them."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self._parts: dict[int, dict[int, tuple[bool, bool, bytes]]] = {}

    def packet(self, data: bytes) -> None:
        packet = RtpPacket.parse(data)
        descriptor, payload = VpxPayloadDescriptor.parse(packet.payload)
        parts = self._parts.setdefault(packet.timestamp, {})
        first = bool(descriptor.partition_start) and descriptor.partition_id == 0
        parts[packet.sequence_number] = (first, bool(packet.marker), payload)
        self._complete(packet.timestamp)

    def _complete(self, timestamp: int) -> None:
        parts = self._parts[timestamp]
        seqs = sorted(parts)
        if not parts[seqs[0]][0] or not any(marker for _, marker, _ in parts.values()):
            return
        if seqs[-1] - seqs[0] + 1 != len(seqs):
            return  # Still missing a packet (sequence wrap-around just loses a frame).
        self.frames.append(b"".join(parts[seq][2] for seq in seqs))
        del self._parts[timestamp]


async def tap_forwarded_video(server: LiveServer, room_id: str, count: int) -> list[bytes]:
    """Whole encoded VP8 frames of the practitioner's video, inside the relay process.

    Works with both relay modes: the frame pass-through (a subscriber of the
    fan-out) and the RTP forwarding (a copy of each packet the published
    track forwards, reassembled into frames here).
    """
    hub = server.app[HUB]
    # The in-process relay's publications: not part of the RelayService interface.
    relay: Any = hub.relay
    room = await hub.room(room_id)
    assert room is not None
    doctor_id = next(p.entry_id for p in room.in_call if p.role is Role.PRACTITIONER)

    def published_video() -> bool:
        publication = relay.publication(room_id, doctor_id)
        return publication is not None and "video" in publication.kinds

    await eventually(published_video, timeout=STEP / 1000, what="the practitioner published video")
    publication = relay.publication(room_id, doctor_id)
    # What the relay's forwarding mode keeps: frame fan-outs (the benchmark's
    # `frames` baseline) or the RTP fast path's published tracks.
    media = publication.media
    if "video" in getattr(media, "fanouts", {}):
        fanout = media.fanouts["video"]
        track = fanout.subscribe()
        fanout.request_keyframe()
        frames: list[bytes] = []
        try:
            while len(frames) < count:
                packet = await asyncio.wait_for(track.recv(), STEP / 1000)
                frames.append(bytes(packet))
        finally:
            fanout.unsubscribe(track)
        return frames
    published = media.tracks["video"]
    assembler = Vp8Frames()
    forward = published.on_packet

    def on_packet(view: memoryview, length: int, now: float) -> None:
        try:
            assembler.packet(view[:length].tobytes())
        finally:
            forward(view, length, now)

    published.on_packet = on_packet
    published.request_keyframe()

    def from_keyframe() -> list[bytes]:
        # Before the first key frame a decoder has nothing to start from.
        frames = assembler.frames
        start = next((i for i, data in enumerate(frames) if data[0] & 0x01 == 0), len(frames))
        return frames[start:]

    try:
        await eventually(
            lambda: len(from_keyframe()) >= count,
            timeout=STEP / 1000,
            what=f"{count} frames from a key frame on",
        )
    finally:
        published.on_packet = forward
    return from_keyframe()[:count]


def valid_pictures(frames: list[bytes]) -> Iterator[np.ndarray[Any, Any]]:
    """Pictures PyAV decodes from the frames that look like a camera's."""
    codec = av.CodecContext.create("vp8", "r")
    for data in frames:
        try:
            pictures = codec.decode(av.Packet(data))
        except av.error.FFmpegError:
            continue
        for picture in pictures:
            image = picture.to_ndarray(format="rgb24").astype(np.int16)
            if np.abs(np.diff(image, axis=1)).mean() < SMOOTH_PICTURE:
                yield image


async def tapped_call(server: LiveServer) -> tuple[list[bytes], str]:
    room = await server.book()
    async with chromium() as browser:
        doctor = await open_consultation(browser, local_link(server, room["links"]["practitioner"]))
        frames = await tap_forwarded_video(
            server, room_id_of(room["links"]["patient"]), TAPPED_FRAMES
        )
        state = await doctor.get_by_test_id("e2ee-status").get_attribute("data-state")
        no_page_errors(doctor)
    return frames, str(state)


async def test_relay_forwards_only_ciphertext(live_server: LiveServer) -> None:
    frames, _ = await tapped_call(live_server)
    assert len(frames) == TAPPED_FRAMES
    assert list(valid_pictures(frames)) == []
    # The clear VP8 header is there (the relay needs it), and our trailer follows.
    assert any(data[0] & 0x01 == 0 and data[3:6] == b"\x9d\x01\x2a" for data in frames)


@pytest.mark.parametrize("settings", [make_settings(e2ee="off")])
async def test_same_tap_decodes_the_video_when_e2ee_is_off(live_server: LiveServer) -> None:
    frames, state = await tapped_call(live_server)
    assert state == "off"
    pictures = list(valid_pictures(frames))
    # All but the frames before the first keyframe the tap saw.
    assert len(pictures) >= TAPPED_FRAMES - 5


def key_ids(frames: list[bytes]) -> set[int]:
    """The key ids in the clear trailer of end-to-end encrypted frames."""
    return {int.from_bytes(data[-12:-8], "big") for data in frames}


@pytest.mark.parametrize("announced", [True, False], ids=["announced", "relay-only"])
async def test_media_key_changes_when_someone_joins_and_when_they_leave(
    live_server: LiveServer, announced: bool
) -> None:
    """Unannounced: a way out of the call that only the relay's `subscription_closed` tells."""
    if not announced:
        sio = live_server.app[SOCKETS].sio
        forward = sio.emit

        async def emit(event: str, data: Any = None, **kwargs: Any) -> Any:
            if event == "e2ee_peer_left":
                return None
            return await forward(event, data, **kwargs)

        sio.emit = emit
    room = await live_server.book()
    room_id = room_id_of(room["links"]["patient"])
    async with chromium() as browser:
        doctor = await open_consultation(
            browser, local_link(live_server, room["links"]["practitioner"])
        )
        alone = key_ids(await tap_forwarded_video(live_server, room_id, 10))
        patient = await admit_patient(
            browser, doctor, local_link(live_server, room["links"]["patient"])
        )
        await expect_e2ee(patient, "encrypted")
        # The newcomer's key is new: it never held the one used before it came.
        with_patient = key_ids(await tap_forwarded_video(live_server, room_id, 10))
        await patient.get_by_test_id("hang-up").click()
        await patient.get_by_test_id("confirm").click()
        await expect_state(patient, "ended")
        await expect(doctor.get_by_test_id("remote-video")).to_have_count(0)
        await expect(doctor.get_by_test_id("safety-code")).to_be_hidden()
        # The switch to the new key waits a moment (docs/e2ee.md).
        after_leave: set[int] = set()

        async def on_a_newer_key() -> bool:
            after_leave.clear()
            after_leave.update(key_ids(await tap_forwarded_video(live_server, room_id, 10)))
            return len(after_leave) == 1 and min(after_leave) > max(with_patient)

        await eventually(on_a_newer_key, timeout=STEP / 1000, what="the key changed on leave")
        no_page_errors(doctor, patient)
    assert len(alone) == 1
    assert len(with_patient) == 1
    assert len(after_leave) == 1
    assert max(alone) < min(with_patient) < min(after_leave)


# ------------------------------------------------------ key substitution


def attacker_public_key() -> str:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return base64.b64encode(
        key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    ).decode()


async def test_substituted_public_key_gives_different_safety_codes(
    live_server: LiveServer,
) -> None:
    """A malicious signalling server hands the patient its own key as the doctor's."""
    sockets = live_server.app[SOCKETS]
    sio = sockets.sio
    forward = sio.emit
    attacker = attacker_public_key()
    substituted: list[str] = []

    def patient_channels() -> set[str]:
        return {
            entry_channel(s.entry_id)
            for s in sockets.sessions.values()
            if s.actor.role is Role.PATIENT
        }

    async def emit(event: str, data: Any = None, **kwargs: Any) -> Any:
        if event in ("e2ee_hello", "e2ee_key") and kwargs.get("room") in patient_channels():
            data = {**data, "public_key": attacker}
            substituted.append(event)
        return await forward(event, data, **kwargs)

    sio.emit = emit
    room = await live_server.book()
    async with chromium() as browser:
        doctor = await open_consultation(
            browser, local_link(live_server, room["links"]["practitioner"])
        )
        patient = await admit_patient(
            browser, doctor, local_link(live_server, room["links"]["patient"])
        )
        doctor_code = await safety_code(doctor)
        patient_code = await safety_code(patient)
        assert "e2ee_hello" in substituted
        assert doctor_code != patient_code
        # Neither side can open the other's media key: nothing is shown, and it says so.
        for page in (doctor, patient):
            await expect_e2ee(page, "failing")
            assert await page.evaluate(REMOTE_FRAMES) == [0]
        no_page_errors(doctor, patient)


# ------------------------------------------------------------ fail closed


async def test_plain_frames_are_never_shown(live_server: LiveServer) -> None:
    """A participant that does not encrypt (a synthetic aiortc client) stays black."""
    room = await live_server.book()
    practitioner = SyntheticParticipant(
        live_server.base_url, room["links"]["practitioner"], "plain"
    )
    await practitioner.connect()
    try:
        await practitioner.open_consultation()
        async with chromium() as browser:
            _, patient = await open_page(browser, local_link(live_server, room["links"]["patient"]))
            await patient.get_by_test_id("check-in").click()
            await expect_state(patient, "waiting")
            entries = await practitioner.wait_for_waiting(1)
            await practitioner.admit(entries[0]["entry_id"])
            await expect_state(patient, "in-call")
            await practitioner.publish()
            await expect(patient.get_by_test_id("remote-video")).to_have_count(1, timeout=STEP)
            await expect_e2ee(patient, "failing")

            async def no_frame_decoded() -> bool:
                return bool(await patient.evaluate(REMOTE_FRAMES) == [0])

            await stays_true(no_frame_decoded, for_seconds=2)
            no_page_errors(patient)
    finally:
        await practitioner.close()


async def test_browser_without_encoded_transforms_is_told_why(live_server: LiveServer) -> None:
    room = await live_server.book()
    async with chromium() as browser:
        _, page = await open_page(
            browser,
            local_link(live_server, room["links"]["patient"]),
            NO_SCRIPT_TRANSFORM + NO_ENCODED_STREAMS,
        )
        await expect_state(page, "error")
        await expect(page.get_by_test_id("error-message")).to_contain_text("end-to-end encryption")
        await expect(page.get_by_test_id("retry")).to_be_hidden()
