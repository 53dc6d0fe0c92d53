"""The relay in worker processes: the same calls, media forwarded in another process.

`teleconsult serve` runs this way; here the app gets a `WorkerRelay` with one
worker, and a synthetic call and the browser call of the skeleton go through it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from aiohttp.test_utils import TestServer

from media.errors import MediaError
from media.worker_connection import WorkerConnection
from media.worker_relay import WorkerRelay
from signalling.app import HUB, make_app
from signalling.config import Settings
from tests.conftest import LiveServer
from tests.support.polling import eventually
from tests.test_e2e_browser import test_consultation_from_booking_to_hang_up
from tests.test_relay_forwarding import only_reception, run_synthetic_call

pytestmark = pytest.mark.slow

__all__ = ["test_consultation_from_booking_to_hang_up"]


@pytest.fixture
async def live_server(
    aiohttp_server: Callable[..., Awaitable[TestServer]], settings: Settings
) -> LiveServer:
    """Overrides conftest's: the browser test imported above runs on worker processes."""
    server = await aiohttp_server(make_app(settings, relay=WorkerRelay(1)), host="127.0.0.1")
    return LiveServer(server)


@pytest.mark.timeout(180)  # Beyond run_synthetic_call's own 120 s limit.
async def test_synthetic_call_is_forwarded_by_a_worker_process(live_server: LiveServer) -> None:
    relay = live_server.app[HUB].relay
    assert isinstance(relay, WorkerRelay)
    room = await live_server.book()

    result = await run_synthetic_call(live_server, room, seconds=3)

    for side, publisher in (("patient", "practitioner"), ("practitioner", "patient")):
        reception = only_reception(result, side)
        assert reception["publisher_role"] == publisher
        assert reception["video_frames"] >= 25, reception
        assert reception["pattern_frames"] == reception["video_frames"], reception
        assert reception["audio_frames"] >= 75, reception
    # The worker did the forwarding, and tore everything down when they left.
    worker = relay.connections[0]
    forwarded = await worker.request("forwarding_stats")
    assert forwarded["mode"] == "rtp"

    async def torn_down() -> bool:
        stats = await relay.worker_stats()
        return stats == {"rooms": 0, "publications": 0, "subscriptions": 0, "prepared": 0}

    await eventually(torn_down)


async def test_worker_errors_keep_their_codes(live_server: LiveServer) -> None:
    relay = live_server.app[HUB].relay
    assert isinstance(relay, WorkerRelay)
    with pytest.raises(MediaError) as refused:
        await relay.publish("no-such-room", "someone", "v=0")
    assert refused.value.code == "not_in_call"

    class Quiet:
        async def subscription_offer(self, *args: object) -> None: ...

        async def subscription_closed(self, subscription_id: str) -> None: ...

    await relay.join("room-x", "alice", Quiet())
    with pytest.raises(MediaError) as invalid:
        await relay.publish("room-x", "alice", "not an sdp")
    assert invalid.value.code == "media_failed"
    with pytest.raises(MediaError) as unknown:
        await relay.answer("room-x", "alice", "nope", "v=0")
    assert unknown.value.code == "unknown_subscription"
    await relay.close_room("room-x")


async def test_worker_closes_the_rooms_of_a_peer_that_went_away() -> None:
    """A restarted signalling process must not leave its calls running in the worker."""
    relay = WorkerRelay(1)
    await relay.start()
    try:
        path = relay.processes[0].socket_path
        first = await WorkerConnection.open(path)
        await first.request("join", room_id="room-a", participant_id="alice")
        await first.request("join", room_id="room-b", participant_id="bob")
        assert (await first.request("stats"))["rooms"] == 2
        await first.close()

        second = await WorkerConnection.open(path)

        async def closed() -> bool:
            return bool((await second.request("stats"))["rooms"] == 0)

        await eventually(closed)
        await second.close()
    finally:
        await relay.close()
