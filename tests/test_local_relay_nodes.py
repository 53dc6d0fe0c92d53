"""A serve node's own relay workers as relay nodes in Redis (media/local_relay_nodes.py).

Real worker processes on a real Redis: they register, authenticate with the
link secret derived from the token secret, are restarted when killed (under
a new id, the dead one withdrawn), keep a fixed port across restarts, and
die with their parent. Settings and /readyz's media answer too.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from media.local_relay_nodes import LocalRelayNodes, worker_host
from media.relay_node_client import NodeRelay
from media.relay_node_server import Address
from media.worker_connection import RelayAuthError, WorkerConnection
from signalling.app import make_app
from signalling.cli import main
from signalling.config import ConfigError, relay_worker_listen
from store.redis_relay_directory import RedisRelayDirectory
from store.relay_directory import InMemoryRelayDirectory, RelayNodeInfo
from tests.support import make_settings
from tests.support.multinode_cluster import RELAY_SECRET, REPO
from tests.support.polling import eventually
from tests.support.redis_server import RedisServer, free_port

Client = TestClient[Any, Any]
LINK_SECRET = make_settings().relay_link_secret
WILDCARD = "0.0.0.0"  # noqa: S104 (refused, never bound)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped) is dead too.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
async def directory(redis_url: str) -> AsyncIterator[RedisRelayDirectory]:
    opened = RedisRelayDirectory.from_url(redis_url)
    yield opened
    await opened.close()


def workers(redis_url: str, directory: RedisRelayDirectory, port: int = 0) -> LocalRelayNodes:
    return LocalRelayNodes(
        1,
        redis_url=redis_url,
        prefix="teleconsult:",
        secret=LINK_SECRET,
        listen=Address("127.0.0.1", port),
        directory=directory,
    )


@pytest.mark.slow
async def test_a_killed_worker_is_restarted_under_a_new_id_on_the_same_port(
    redis_url: str, directory: RedisRelayDirectory
) -> None:
    port = free_port()
    local = workers(redis_url, directory, port)
    await local.start()
    try:
        [first] = local.node_ids
        live = await directory.live_nodes()
        assert list(live) == [first]
        assert (live[first].host, live[first].port) == ("127.0.0.1", port)
        # The derived secret opens it; another does not.
        connection = await WorkerConnection.open_tcp("127.0.0.1", port, LINK_SECRET)
        assert (await connection.request("stats"))["rooms"] == 0
        await connection.close()
        with pytest.raises(RelayAuthError):
            await WorkerConnection.open_tcp("127.0.0.1", port, RELAY_SECRET)

        pid = local.slots[0].pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)

        async def restarted() -> bool:
            return local.restarts == 1 and list(await directory.live_nodes()) == local.node_ids

        await eventually(restarted, timeout=15, interval=0.1)
        [second] = local.node_ids
        assert second != first
        assert (await directory.live_nodes())[second].port == port
        assert local.slots[0].pid != pid
    finally:
        await local.close()
    # Stopped cleanly: withdrawn at once.
    assert await directory.live_nodes() == {}


@pytest.mark.slow
async def test_workers_that_cannot_register_are_retried_while_the_node_serves(
    redis_server: RedisServer, redis_url: str, directory: RedisRelayDirectory
) -> None:
    redis_server.stop()
    local = workers(redis_url, directory)
    try:
        await local.start()  # Does not fail the node: retried in the background.
        assert local.slots[0].process is None
        redis_server.start()

        async def registered() -> bool:
            return list(await directory.live_nodes()) == local.node_ids

        await eventually(registered, timeout=20, interval=0.2)
    finally:
        if not redis_server.running:
            redis_server.start()
        await local.close()


PARENT = """
import asyncio, sys
from media.local_relay_nodes import LocalRelayNodes
from media.relay_node_server import Address
from store.redis_relay_directory import RedisRelayDirectory

async def run():
    directory = RedisRelayDirectory.from_url(sys.argv[1])
    local = LocalRelayNodes(1, redis_url=sys.argv[1], prefix="teleconsult:", secret="s" * 64,
                            listen=Address("127.0.0.1", 0), directory=directory)
    await local.start()
    print(local.slots[0].pid, flush=True)
    await asyncio.Event().wait()

asyncio.run(run())
"""


@pytest.mark.slow
async def test_workers_die_with_their_serve_node(
    redis_url: str, directory: RedisRelayDirectory
) -> None:
    parent = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        textwrap.dedent(PARENT),
        redis_url,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
    )
    assert parent.stdout is not None
    try:
        worker = int(await asyncio.wait_for(parent.stdout.readline(), 30))
        assert _alive(worker)
        parent.kill()
        await parent.wait()
        await eventually(lambda: not _alive(worker), timeout=10, interval=0.1)
        # It stopped cleanly (SIGTERM): its record is gone without waiting for the TTL.
        assert await directory.live_nodes() == {}
    finally:
        if parent.returncode is None:
            parent.kill()
            await parent.wait()


def test_the_link_secret_is_derived_from_the_token_secret_unless_a_relay_secret_is_set() -> None:
    settings = make_settings()
    assert settings.relay_link_secret == make_settings().relay_link_secret
    assert len(settings.relay_link_secret) == 64
    assert settings.token_secret not in settings.relay_link_secret
    other = make_settings(token_secret="another-token-secret-" + "t" * 32)
    assert other.relay_link_secret != settings.relay_link_secret
    given = make_settings(relay_secret=RELAY_SECRET, redis_url="redis://127.0.0.1/0")
    assert given.relay_link_secret == RELAY_SECRET


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", None),
        ("10.0.0.5", ("10.0.0.5", 0)),
        ("10.0.0.5:7100", ("10.0.0.5", 7100)),
        ("relay-a.internal", ("relay-a.internal", 0)),
        ("fd00::5", ("fd00::5", 0)),
        ("[fd00::5]:7100", ("fd00::5", 7100)),
    ],
)
def test_relay_worker_listen_is_host_or_host_and_first_port(
    value: str, expected: tuple[str, int] | None
) -> None:
    assert relay_worker_listen({"TELECONSULT_RELAY_WORKER_LISTEN": value}, None, 2) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (WILDCARD, "not a wildcard"),
        ("[::]:7000", "not a wildcard"),
        ("10.0.0.5:http", "HOST or HOST:PORT"),
        ("10.0.0.5:65535", "room for 2 workers"),
        (":7000", "HOST or HOST:PORT"),
    ],
)
def test_bad_relay_worker_listen_is_refused(value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        relay_worker_listen({}, value, 2)


def test_serve_with_a_wildcard_worker_address_fails_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TELECONSULT_RELAY_WORKER_LISTEN", WILDCARD)
    assert main(["serve", "--redis-url", "redis://127.0.0.1:1/0"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0
    assert "TELECONSULT_RELAY_WORKER_LISTEN" in error


def test_workers_register_at_the_address_this_machine_reaches_redis_from() -> None:
    assert worker_host("redis://127.0.0.1:6379/0") == "127.0.0.1"
    assert worker_host("unix:///run/redis.sock") == "127.0.0.1"
    # Unresolvable: loopback, one machine (documented), rather than a failed start.
    assert worker_host("redis://no-such-host.invalid:6379/0") == "127.0.0.1"


async def test_readyz_says_whether_any_relay_capacity_is_live(
    aiohttp_client: Callable[[web.Application], Awaitable[Client]],
) -> None:
    directory = InMemoryRelayDirectory()
    relay = NodeRelay(directory, LINK_SECRET)
    client = await aiohttp_client(make_app(make_settings(), relay=relay))

    ready = await client.get("/readyz")
    assert (ready.status, await ready.json()) == (
        200,
        {"status": "ready", "media": "unavailable", "relays": 0},
    )
    await directory.announce(RelayNodeInfo("node-1", "127.0.0.1", 7000))
    await directory.announce(RelayNodeInfo("node-2", "127.0.0.1", 7001))
    ready = await client.get("/readyz")
    assert (ready.status, await ready.json()) == (
        200,
        {"status": "ready", "media": "ready", "relays": 2},
    )
