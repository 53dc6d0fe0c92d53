"""Every screen converges after a node's Socket.IO fan-out listener lost Redis.

Two app nodes on one real Redis; node B's fan-out (pub/sub) goes through the
cutting proxy of tests/support/redis_proxy.py, its store straight to Redis.
What node A publishes while B's listener is cut off is lost to pub/sub; once
B subscribes again it re-sends the current state of the rooms its sockets
follow (signalling/screen_resync.py), so B's practitioner sees the patient
who checked in on A during the outage.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestServer

from signalling.app import make_app
from store.redis_room_store import RedisRoomStore
from tests.conftest import LiveServer
from tests.support import make_settings
from tests.support.polling import eventually
from tests.support.redis_proxy import FailingRedisProxy
from tests.support.redis_server import RedisServer
from tests.support.synthetic import SyntheticParticipant

CHANNEL = make_settings().redis_prefix + "socketio"
# The listener's retry delay starts at 1 s and doubles; redis-py retries too.
CONVERGED_WITHIN_S = 8.0


@pytest.fixture
async def proxy(redis_server: RedisServer, redis_url: str) -> AsyncIterator[FailingRedisProxy]:
    proxy = FailingRedisProxy(redis_server.port)
    await proxy.start()
    yield proxy
    await proxy.close()


@pytest.fixture
async def nodes(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    redis_url: str,
    proxy: FailingRedisProxy,
) -> AsyncIterator[tuple[LiveServer, LiveServer]]:
    node_a = LiveServer(
        await aiohttp_server(make_app(make_settings(redis_url=redis_url)), host="127.0.0.1")
    )
    # Node B: its fan-out through the proxy (the `redis_url` setting), its store direct.
    store_b = RedisRoomStore.from_url(redis_url)
    app_b = make_app(make_settings(redis_url=proxy.url), store=store_b)
    node_b = LiveServer(await aiohttp_server(app_b, host="127.0.0.1"))
    yield node_a, node_b
    await store_b.close()


async def subscribers(redis_url: str) -> int:
    client = aioredis.Redis.from_url(redis_url)
    try:
        counts = await client.pubsub_numsub(CHANNEL)
        return int(counts[0][1])
    finally:
        await client.aclose()


@pytest.mark.parametrize("outage", ["short", "past-a-failed-retry"])
async def test_a_check_in_published_while_a_nodes_listener_is_cut_off_reaches_its_practitioner(
    nodes: tuple[LiveServer, LiveServer], proxy: FailingRedisProxy, redis_url: str, outage: str
) -> None:
    node_a, node_b = nodes
    booked = await node_a.book()
    practitioner = SyntheticParticipant(node_b.base_url, booked["links"]["practitioner"], "doc")
    patient = SyntheticParticipant(node_a.base_url, booked["links"]["patient"], "patient")
    try:
        await practitioner.connect()
        await practitioner.open_consultation()
        await patient.connect()
        # Both nodes' listeners are subscribed (each starts on its first emit or connection).
        await eventually(lambda: _two(redis_url), what="both fan-out listeners subscribed")

        proxy.cut()
        await eventually(lambda: _only_a(redis_url), what="node B's listener cut off")
        if outage == "past-a-failed-retry":
            # B's listener tried again and was turned away: it now waits out a longer delay.
            await eventually(lambda: proxy.refused >= 1, timeout=10, what="a refused retry")
        await patient.check_in()  # on node A: its waiting-list push to B is lost to pub/sub
        assert practitioner.waiting_list == []
        proxy.restore()
        restored = time.monotonic()

        await eventually(
            lambda: len(practitioner.waiting_list) == 1,
            timeout=CONVERGED_WITHIN_S,
            what="node B's practitioner sees the patient who checked in during the outage",
        )
        print(f"converged {time.monotonic() - restored:.2f} s after Redis came back")
    finally:
        await patient.close()
        await practitioner.close()


async def _two(redis_url: str) -> bool:
    return await subscribers(redis_url) == 2


async def _only_a(redis_url: str) -> bool:
    return await subscribers(redis_url) == 1
