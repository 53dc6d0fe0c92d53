"""One `serve` node without Redis: a relay worker killed mid-call is restarted, its calls move.

The same rule as a node's shared workers (tests/test_serve_nodes_browser.py)
and relay nodes: the room goes to the least-loaded live worker (the restarted
one when it is the only one), `media_restart` goes to those in the call, and
their pages publish again with new end-to-end keys.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Awaitable, Callable

import pytest
from aiohttp.test_utils import TestServer

from media.worker_relay import WorkerRelay
from signalling.app import HUB, make_app
from signalling.config import Settings
from tests.conftest import LiveServer
from tests.support import room_id_of
from tests.support.browser import chromium
from tests.support.polling import eventually
from tests.test_e2e_browser import expect_state, local_link
from tests.test_multinode_browser import (
    ARTIFACTS,
    MARK_REMOTE_VIDEOS,
    admitted_call,
    expect_encrypted_with_one_code,
    new_frames,
)
from tests.test_serve_nodes_browser import WORKER_FAILOVER_LIMIT_S

pytestmark = pytest.mark.slow


class Quiet:
    async def subscription_offer(self, *args: object) -> None: ...

    async def subscription_closed(self, subscription_id: str) -> None: ...


@pytest.fixture
async def live_server(
    aiohttp_server: Callable[..., Awaitable[TestServer]], settings: Settings
) -> LiveServer:
    """Overrides conftest's: one worker, so the room waits for the worker's restart."""
    server = await aiohttp_server(make_app(settings, relay=WorkerRelay(1)), host="127.0.0.1")
    return LiveServer(server)


async def test_a_killed_worker_is_restarted_and_its_rooms_move_to_a_live_one() -> None:
    relay = WorkerRelay(2)
    restarts: list[tuple[str, list[str]]] = []

    async def on_media_restart(room_id: str, participant_ids: list[str]) -> None:
        restarts.append((room_id, sorted(participant_ids)))

    relay.on_media_restart = on_media_restart
    await relay.start()
    try:
        await relay.join("room-1", "p-1", Quiet())
        await relay.join("room-1", "p-2", Quiet())
        await relay.join("room-2", "q-1", Quiet())
        await relay.leave("room-2", "q-1")
        hosting = relay.worker_index("room-1")
        assert hosting is not None
        pid = relay.processes[hosting].pid
        os.kill(pid, signal.SIGKILL)

        await eventually(lambda: restarts == [("room-1", ["p-1", "p-2"])], interval=0.05)
        # Moved at once to the worker that lived, with both joined there.
        assert relay.worker_index("room-1") == 1 - hosting
        stats = await relay.connections[1 - hosting].request("stats")
        assert stats["rooms"] >= 1
        # And the dead one comes back, a new process on its socket.
        await eventually(lambda: relay.restarts == 1, timeout=15, interval=0.1)
        assert relay.processes[hosting].pid != pid
        assert (await relay.connections[hosting].request("stats"))["rooms"] == 0
        # Not moved back; a new room goes to the restarted worker, the least loaded.
        assert relay.worker_index("room-1") == 1 - hosting
        await relay.join("room-3", "r-1", Quiet())
        assert relay.worker_index("room-3") == hosting
    finally:
        await relay.close()


@pytest.mark.browser
async def test_worker_killed_mid_call_both_see_video_again_within_5_s(
    live_server: LiveServer,
) -> None:
    relay = live_server.app[HUB].relay
    assert isinstance(relay, WorkerRelay)
    room = await live_server.book()
    room_id = room_id_of(room["links"]["patient"])

    async with chromium() as browser:
        patient, doctor = await admitted_call(
            browser,
            local_link(live_server, room["links"]["patient"]),
            local_link(live_server, room["links"]["practitioner"]),
        )
        assert relay.worker_index(room_id) == 0
        for page in (patient, doctor):
            await page.evaluate(MARK_REMOTE_VIDEOS)

        killed_at = time.monotonic()
        os.kill(relay.processes[0].pid, signal.SIGKILL)
        recovered: dict[str, float] = {}

        async def both_see_video_again() -> bool:
            for name, page in (("patient", patient), ("practitioner", doctor)):
                if name not in recovered and await new_frames(page) >= 5:
                    recovered[name] = time.monotonic() - killed_at
            return len(recovered) == 2

        await eventually(both_see_video_again, timeout=WORKER_FAILOVER_LIMIT_S + 20, interval=0.1)

        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "single-node-worker-failover.json").write_text(json.dumps(recovered))
        print("single node, relay worker restart, seconds to video again:", recovered)
        assert max(recovered.values()) <= WORKER_FAILOVER_LIMIT_S, recovered
        assert relay.restarts == 1
        await expect_encrypted_with_one_code(patient, doctor)
        for page in (patient, doctor):
            assert await page.evaluate("window.teleconsultMetrics.mediaRestarts") == 1
            await expect_state(page, "in-call")
            assert page.errors == [], page.errors  # type: ignore[attr-defined]
