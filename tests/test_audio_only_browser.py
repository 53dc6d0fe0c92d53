"""A patient without a working camera consults by voice; the microphone stays required.

The patient's getUserMedia is made to fail for video (an init script, before
the page's own code) the three ways browsers report it: no camera
(NotFoundError), refused (NotAllowedError), in use by another app
(NotReadableError). The device check says so and offers audio only; the
practitioner hears the patient (inbound-rtp audio packets and decoded audio
energy at their end) and sees an avatar with the patient's name.
"""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect

from tests.conftest import LiveServer
from tests.support.browser import chromium
from tests.support.polling import eventually
from tests.support.webrtc_stats import COLLECT_CONNECTIONS, received
from tests.test_e2e_browser import STEP, expect_state, local_link, open_page

pytestmark = pytest.mark.browser


def failing_getusermedia(error_name: str, *, audio_too: bool = False) -> str:
    """An init script: getUserMedia rejects like a browser would, for video (or everything)."""
    condition = "true" if audio_too else "Boolean(constraints && constraints.video)"
    return f"""
(() => {{
  const devices = navigator.mediaDevices;
  const original = devices.getUserMedia.bind(devices);
  devices.getUserMedia = (constraints) => {{
    if ({condition}) {{
      return Promise.reject(new DOMException("test: no camera", "{error_name}"));
    }}
    return original(constraints);
  }};
}})();
"""


async def heard(page: Page, packets: int = 50) -> None:
    """Audio packets arrive and decode to sound (not silence, not concealment)."""

    async def check() -> None:
        totals = await received(page)
        assert totals["audioPackets"] >= packets, totals
        assert totals["audioEnergy"] > 0, totals

    await eventually(check, timeout=STEP / 1000)


@pytest.mark.parametrize("error_name", ["NotFoundError", "NotAllowedError", "NotReadableError"])
async def test_a_patient_without_camera_consults_by_voice(
    live_server: LiveServer, error_name: str
) -> None:
    room = await live_server.book(patient_name="Alice Martin", practitioner_name="Dr Bernard")
    async with chromium() as browser:
        _, doctor = await open_page(
            browser,
            local_link(live_server, room["links"]["practitioner"]),
            init_script=COLLECT_CONNECTIONS,
        )
        await doctor.get_by_test_id("check-in").click()
        await expect_state(doctor, "in-call")

        _, patient = await open_page(
            browser,
            local_link(live_server, room["links"]["patient"]),
            init_script=failing_getusermedia(error_name) + COLLECT_CONNECTIONS,
        )
        await expect_state(patient, "precall")
        # Said plainly, with the way forward; the usual Check in is not offered.
        problem = patient.get_by_test_id("camera-problem")
        await expect(problem).to_be_visible()
        expected = {
            "NotFoundError": "could not find a camera",
            "NotAllowedError": "camera is not allowed",
            "NotReadableError": "used by another application",
        }[error_name]
        await expect(patient.get_by_test_id("camera-problem-message")).to_contain_text(expected)
        await expect(patient.get_by_test_id("check-in")).to_be_hidden()
        await expect(patient.get_by_test_id("device-status")).to_contain_text("microphone")
        await patient.get_by_test_id("audio-only-continue").click()
        await expect_state(patient, "waiting")

        await doctor.get_by_test_id("waiting-entry").get_by_test_id("admit").click()
        await expect_state(patient, "in-call")
        # The practitioner hears the patient, end-to-end encrypted…
        await heard(doctor)
        for page in (doctor, patient):
            await expect(page.get_by_test_id("e2ee-status")).to_have_attribute(
                "data-state", "encrypted", timeout=STEP
            )
        # …and sees who it is instead of a black picture.
        avatar = doctor.get_by_test_id("remote-avatar")
        await expect(avatar).to_be_visible()
        await expect(avatar).to_contain_text("Alice Martin")
        await expect(avatar).to_contain_text("AM")
        await expect(doctor.get_by_test_id("remote-no-video")).to_contain_text("audio only")
        # The patient, who has no camera to drop, is not offered to.
        await expect(patient.get_by_test_id("audio-only")).to_be_hidden()
        await expect(patient.get_by_test_id("toggle-camera")).to_be_hidden()
        # And the patient hears the practitioner.
        await heard(patient)
        for page in (doctor, patient):
            assert page.errors == [], page.errors  # type: ignore[attr-defined]


async def test_without_a_microphone_there_is_a_clear_screen(live_server: LiveServer) -> None:
    room = await live_server.book()
    async with chromium() as browser:
        _, patient = await open_page(
            browser,
            local_link(live_server, room["links"]["patient"]),
            init_script=failing_getusermedia("NotAllowedError", audio_too=True),
        )
        await expect_state(patient, "error")
        await expect(patient.locator('[data-screen="error"] h1')).to_have_text("Microphone needed")
        await expect(patient.get_by_test_id("error-message")).to_contain_text(
            "blocking the microphone"
        )
        await expect(patient.get_by_test_id("retry")).to_be_visible()


async def test_a_patient_turns_to_audio_only_during_the_call(live_server: LiveServer) -> None:
    room = await live_server.book(patient_name="Alice Martin", practitioner_name="Dr Bernard")
    async with chromium() as browser:
        _, doctor = await open_page(
            browser,
            local_link(live_server, room["links"]["practitioner"]),
            init_script=COLLECT_CONNECTIONS,
        )
        await doctor.get_by_test_id("check-in").click()
        await expect_state(doctor, "in-call")
        _, patient = await open_page(
            browser,
            local_link(live_server, room["links"]["patient"]),
            init_script=COLLECT_CONNECTIONS,
        )
        # Camera, microphone and speaker can be chosen on the device check.
        await expect(patient.get_by_test_id("camera-select").locator("option")).not_to_have_count(0)
        await expect(
            patient.get_by_test_id("microphone-select").locator("option")
        ).not_to_have_count(0)
        await expect(patient.get_by_test_id("check-in")).to_be_enabled()
        await patient.get_by_test_id("check-in").click()
        await doctor.get_by_test_id("waiting-entry").get_by_test_id("admit").click()
        await expect_state(patient, "in-call")

        async def frames_grow() -> None:
            before = (await received(doctor))["videoFrames"]
            await eventually(lambda: _more_frames(doctor, before + 10), timeout=STEP / 1000)

        await frames_grow()
        await expect(doctor.get_by_test_id("remote-avatar")).to_be_hidden()

        # Audio only: the others see the avatar and still hear.
        await patient.get_by_test_id("audio-only").click()
        await expect(patient.get_by_test_id("audio-only")).to_have_attribute("aria-pressed", "true")
        await expect(doctor.get_by_test_id("remote-avatar")).to_be_visible()
        await expect(doctor.get_by_test_id("remote-avatar")).to_contain_text("Alice Martin")
        packets = (await received(doctor))["audioPackets"]
        await heard(doctor, packets + 50)
        assert (
            await patient.evaluate(
                "() => document.querySelector('[data-testid=local-video]').srcObject"
                ".getVideoTracks().length"
            )
            == 0
        )

        # And back: the same sender, no renegotiation, the picture returns.
        await patient.get_by_test_id("audio-only").click()
        await expect(patient.get_by_test_id("audio-only")).to_have_attribute(
            "aria-pressed", "false"
        )
        await expect(doctor.get_by_test_id("remote-avatar")).to_be_hidden()
        await frames_grow()
        for page in (doctor, patient):
            assert page.errors == [], page.errors  # type: ignore[attr-defined]


async def _more_frames(page: Page, at_least: int) -> bool:
    return (await received(page))["videoFrames"] >= at_least


SENDER_DEVICES = """
() => Object.fromEntries(
  window.__testPeerConnections
    .filter((pc) => pc.connectionState !== "closed")
    .flatMap((pc) => pc.getSenders())
    .filter((s) => s.track)
    .map((s) => [s.track.kind, s.track.getSettings().deviceId])
)
"""


async def test_camera_and_microphone_are_switched_during_the_call(live_server: LiveServer) -> None:
    room = await live_server.book(patient_name="Alice Martin", practitioner_name="Dr Bernard")
    # Fake cameras and microphones to choose from. Chromium's second fake camera
    # gives Y16 (depth) frames, which no encoder takes; its third gives MJPEG.
    flags = ["--use-fake-device-for-media-stream=device-count=3"]
    async with chromium(flags) as browser:
        _, doctor = await open_page(
            browser,
            local_link(live_server, room["links"]["practitioner"]),
            init_script=COLLECT_CONNECTIONS,
        )
        await doctor.get_by_test_id("check-in").click()
        await expect_state(doctor, "in-call")
        _, patient = await open_page(
            browser,
            local_link(live_server, room["links"]["patient"]),
            init_script=COLLECT_CONNECTIONS,
        )
        await patient.get_by_test_id("check-in").click()
        await doctor.get_by_test_id("waiting-entry").get_by_test_id("admit").click()
        await expect_state(patient, "in-call")
        await heard(doctor)
        start = (await received(doctor))["videoFrames"]
        await eventually(lambda: _more_frames(doctor, start + 10), timeout=STEP / 1000)
        before = await patient.evaluate(SENDER_DEVICES)

        # The selects moved into the call's device panel.
        await patient.locator(".call-devices summary").click()
        for testid, kind in (("microphone-select", "audio"), ("camera-select", "video")):
            select = patient.get_by_test_id(testid)
            await expect(select).to_be_visible()
            values = await select.locator("option").evaluate_all("os => os.map(o => o.value)")
            other = values[-1]
            assert other != before[kind]
            await select.select_option(other)

            async def switched(kind: str = kind, other: str = other) -> None:
                assert (await patient.evaluate(SENDER_DEVICES))[kind] == other

            await eventually(switched, timeout=STEP / 1000)
        # Still heard and seen through the same connections, still encrypted.
        packets = (await received(doctor))["audioPackets"]
        await heard(doctor, packets + 50)
        frames = (await received(doctor))["videoFrames"]
        await eventually(lambda: _more_frames(doctor, frames + 10), timeout=STEP / 1000)
        await expect(doctor.get_by_test_id("e2ee-status")).to_have_attribute(
            "data-state", "encrypted"
        )
        for page in (doctor, patient):
            assert page.errors == [], page.errors  # type: ignore[attr-defined]
