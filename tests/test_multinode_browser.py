"""Several signalling and relay nodes on one Redis, with real Chromium (issue #6).

Two `teleconsult serve` and two `teleconsult relay` processes share one real
Redis; pages reach the signalling nodes directly or through a TCP load
balancer (tests/load_balancer.py), as in production. End to end encryption is
on (the default) throughout.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from tests.support import appointment_data, room_id_of
from tests.support.browser import chromium
from tests.support.multinode_cluster import Cluster
from tests.support.polling import eventually
from tests.test_e2e_browser import STEP, expect_state, open_page, wait_remote_frames

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
# The requirement: after the relay node of a call dies, both sides see
# each other again within this many seconds.
FAILOVER_LIMIT_S = 10.0

# Frames decoded by remote videos that appeared after the page was marked.
NEW_REMOTE_FRAMES = """
() => [...document.querySelectorAll('[data-testid="remote-video"]')]
        .filter(v => v.dataset.before !== "1")
        .map(v => v.getVideoPlaybackQuality().totalVideoFrames)
"""
MARK_REMOTE_VIDEOS = """
() => document.querySelectorAll('[data-testid="remote-video"]')
        .forEach(v => { v.dataset.before = "1"; })
"""


@pytest.fixture
async def cluster(redis_url: str, tmp_path: Path) -> AsyncIterator[Cluster]:
    running = Cluster(redis_url, tmp_path)
    try:
        await running.start(relays=2, signalling=2)
        yield running
    finally:
        await running.stop()
        # Shown by pytest only when the test failed.
        print(running.logs())


async def admitted_call(
    browser: Browser, patient_url: str, practitioner_url: str
) -> tuple[Page, Page]:
    """Practitioner opens, patient checks in and is admitted; both decode the other."""
    _, doctor = await open_page(browser, practitioner_url)
    await doctor.get_by_test_id("check-in").click()
    await expect_state(doctor, "in-call")
    _, patient = await open_page(browser, patient_url)
    await patient.get_by_test_id("check-in").click()
    await expect_state(patient, "waiting")
    entry = doctor.get_by_test_id("waiting-entry")
    await expect(entry).to_have_count(1)
    await entry.get_by_test_id("admit").click()
    await expect_state(patient, "in-call")
    for page in (patient, doctor):
        await wait_remote_frames(page, 10)
    await expect_encrypted_with_one_code(patient, doctor)
    return patient, doctor


async def expect_encrypted_with_one_code(patient: Page, doctor: Page) -> None:
    for page in (patient, doctor):
        await expect(page.get_by_test_id("e2ee-status")).to_have_attribute(
            "data-state", "encrypted", timeout=STEP
        )
    code = (await doctor.get_by_test_id("safety-code").inner_text()).strip()
    assert code
    assert code == (await patient.get_by_test_id("safety-code").inner_text()).strip()


async def new_frames(page: Page) -> int:
    frames: list[int] = await page.evaluate(NEW_REMOTE_FRAMES)
    return max(frames, default=0)


async def test_patient_and_practitioner_on_different_nodes_see_each_other(
    cluster: Cluster,
) -> None:
    node_a, node_b = cluster.nodes
    room = await cluster.book(appointment_data(patient_name="Alice Martin"))
    room_id = room_id_of(room["links"]["patient"])

    async with chromium() as browser:
        patient, doctor = await admitted_call(
            browser,
            node_a.local(room["links"]["patient"]),
            node_b.local(room["links"]["practitioner"]),
        )

        # One room, one relay node: both signalling nodes sent their side there.
        hosting = await cluster.relay_hosting(room_id)
        records = {r["port"]: r for r in (await cluster.relay_records()).values()}
        assert len(records) == 2
        other = next(r for r in cluster.relays if r is not hosting)

        async def both_on_the_hosting_node() -> bool:
            records.update({r["port"]: r for r in (await cluster.relay_records()).values()})
            return bool(records[hosting.port]["participants"] == 2)

        await eventually(both_on_the_hosting_node, interval=0.5)
        assert records[hosting.port]["rooms"] == 1
        assert (records[other.port]["rooms"], records[other.port]["participants"]) == (0, 0)

        for page in (patient, doctor):
            assert page.errors == [], page.errors  # type: ignore[attr-defined]


async def test_relay_node_killed_mid_call_both_see_video_again_within_10_s(
    cluster: Cluster,
) -> None:
    node_a, node_b = cluster.nodes
    room = await cluster.book(appointment_data())
    room_id = room_id_of(room["links"]["patient"])

    async with chromium() as browser:
        patient, doctor = await admitted_call(
            browser,
            node_a.local(room["links"]["patient"]),
            node_b.local(room["links"]["practitioner"]),
        )
        hosting = await cluster.relay_hosting(room_id)
        survivor = next(r for r in cluster.relays if r is not hosting)
        for page in (patient, doctor):
            await page.evaluate(MARK_REMOTE_VIDEOS)

        killed_at = time.monotonic()
        hosting.kill()
        recovered: dict[str, float] = {}

        async def both_see_video_again() -> bool:
            for name, page in (("patient", patient), ("practitioner", doctor)):
                if name not in recovered and await new_frames(page) >= 5:
                    recovered[name] = time.monotonic() - killed_at
            return len(recovered) == 2

        await eventually(both_see_video_again, timeout=FAILOVER_LIMIT_S + 20, interval=0.1)

        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "relay-failover.json").write_text(json.dumps(recovered, indent=2))
        print("relay failover, seconds to video again:", json.dumps(recovered))
        assert max(recovered.values()) <= FAILOVER_LIMIT_S, recovered
        assert await cluster.placement(room_id) == next(
            node_id
            for node_id, record in (await cluster.relay_records()).items()
            if record["port"] == survivor.port
        )
        # New keys all round, still end to end encrypted, and still one code for both.
        await expect_encrypted_with_one_code(patient, doctor)
        for page in (patient, doctor):
            assert await page.evaluate("window.teleconsultMetrics.mediaRestarts") == 1
            await expect_state(page, "in-call")
            assert page.errors == [], page.errors  # type: ignore[attr-defined]


async def test_signalling_node_killed_during_wait_patient_keeps_place_on_the_other(
    cluster: Cluster,
) -> None:
    assert cluster.balancer is not None
    room = await cluster.book(appointment_data())

    async with chromium() as browser:
        # The patient's page knows only the balancer's address.
        _, patient = await open_page(browser, room["links"]["patient"])
        await patient.get_by_test_id("check-in").click()
        await expect_state(patient, "waiting")
        await expect(patient.get_by_test_id("waiting-position")).to_contain_text("1")
        [carrier] = cluster.balancer.socketio_backends()
        doomed, survivor = cluster.nodes[carrier], cluster.nodes[1 - carrier]

        _, doctor = await open_page(browser, survivor.local(room["links"]["practitioner"]))
        await doctor.get_by_test_id("check-in").click()
        await expect_state(doctor, "in-call")
        entry = doctor.get_by_test_id("waiting-entry")
        await expect(entry).to_have_count(1)
        entry_id = await entry.get_attribute("data-entry-id")

        doomed.kill()
        await doomed.process.wait()
        # Reconnected through the balancer to the surviving node, same entry, same place.
        balancer = cluster.balancer
        await eventually(lambda: balancer.socketio_backends() == [1 - carrier], timeout=STEP / 1000)
        await expect(patient.get_by_test_id("connection-notice")).to_be_hidden(timeout=STEP)
        await expect_state(patient, "waiting")
        await expect(patient.get_by_test_id("waiting-position")).to_contain_text("1")
        await expect(entry).to_have_count(1)
        await expect(entry).to_have_attribute("data-entry-id", entry_id or "", timeout=STEP)
        await expect(entry).to_have_attribute("data-away", "false", timeout=STEP)

        # And the consultation goes ahead on the surviving node.
        await entry.get_by_test_id("admit").click()
        await expect_state(patient, "in-call")
        for page in (patient, doctor):
            await wait_remote_frames(page, 5)
            assert page.errors == [], page.errors  # type: ignore[attr-defined]
