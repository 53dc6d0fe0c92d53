"""Relay nodes (`teleconsult relay`): authentication, registration, placement, connection loss.

Real relay node processes on a real Redis; the signalling side is the real
`WorkerConnection` and `RedisRelayDirectory`. Placement and heartbeat rules
are tests/test_relay_directory_contract.py.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from media import worker_protocol as protocol
from media.errors import MediaError
from media.relay_node_client import NodeRelay
from media.worker_connection import RelayAuthError, WorkerConnection
from signalling.cli import main
from signalling.config import ConfigError
from store.redis_relay_directory import RedisRelayDirectory
from store.relay_directory import HEARTBEAT_INTERVAL, NODE_TTL_MS
from tests.support import make_settings
from tests.support.multinode_cluster import RELAY_SECRET, Cluster, NodeProcess
from tests.support.polling import eventually, stays_true
from tests.support.redis_server import free_port


class Recorder:
    async def subscription_offer(self, *args: object) -> None:
        pass

    async def subscription_closed(self, subscription_id: str) -> None:
        pass


@pytest.fixture
async def relay_node(redis_url: str, tmp_path: Path) -> AsyncIterator[NodeProcess]:
    cluster = Cluster(redis_url, tmp_path)
    try:
        yield await cluster.start_relay()
    finally:
        await cluster.stop()
        print(cluster.logs())


async def connect(node: NodeProcess, secret: str = RELAY_SECRET) -> WorkerConnection:
    return await WorkerConnection.open_tcp("127.0.0.1", node.port, secret)


@pytest.mark.slow
async def test_a_wrong_secret_or_no_hello_is_refused(relay_node: NodeProcess) -> None:
    with pytest.raises(RelayAuthError):
        await connect(relay_node, "another-secret-" + "x" * 40)

    # Not a hello: the connection is closed without serving a request.
    reader, writer = await asyncio.open_connection("127.0.0.1", relay_node.port)
    hello = protocol.decode(await reader.readline())
    assert hello["hello"] == protocol.HELLO
    writer.write(protocol.encode({"id": 1, "op": "stats", "args": {}}))
    answer = protocol.decode(await reader.readline())
    assert answer["ok"] is False
    assert answer["error"]["code"] == "unauthorized"
    assert await reader.read() == b""
    writer.close()

    # The right secret works, and the secret never reaches the node's log.
    connection = await connect(relay_node)
    assert await connection.request("stats") == {
        "rooms": 0,
        "publications": 0,
        "subscriptions": 0,
        "prepared": 0,
    }
    await connection.close()
    assert RELAY_SECRET not in relay_node.log.read_text()


@pytest.mark.slow
async def test_a_dropped_signalling_connection_leaves_only_its_participants(
    relay_node: NodeProcess, redis_url: str
) -> None:
    one, two = await connect(relay_node), await connect(relay_node)
    try:
        await one.request("join", room_id="room-1", participant_id="p-one", info={})
        await two.request("join", room_id="room-1", participant_id="p-two", info={})
        await one.close()

        # Signalling node one is gone; the room and node two's participant stay.
        async def p_one_removed() -> bool:
            try:
                await two.request("publish", room_id="room-1", participant_id="p-one", sdp="v=0")
            except MediaError as refused:
                return refused.code == "not_in_call"
            return False

        await eventually(p_one_removed)
        assert (await two.request("stats"))["rooms"] == 1
        await two.request("leave", room_id="room-1", participant_id="p-two")
        assert (await two.request("stats"))["rooms"] == 0
    finally:
        await two.close()


@pytest.mark.slow
async def test_a_relay_node_beats_in_redis_with_its_load(
    relay_node: NodeProcess, redis_url: str
) -> None:
    directory = RedisRelayDirectory.from_url(redis_url)
    connection = await connect(relay_node)
    try:
        [node] = (await directory.live_nodes()).values()
        assert (node.host, node.port) == ("127.0.0.1", relay_node.port)
        ttl = await directory.client.pttl(f"teleconsult:relay:node:{node.id}")
        assert 0 < ttl <= NODE_TTL_MS
        await connection.request("join", room_id="room-1", participant_id="p", info={})

        async def beat_with_the_participant() -> bool:
            return (await directory.live_nodes())[node.id].participants == 1

        await eventually(beat_with_the_participant, interval=0.2)
        assert (await directory.live_nodes())[node.id].rooms == 1
        # A clean stop withdraws it at once.
        await relay_node.stop()
        assert await directory.live_nodes() == {}
    finally:
        await connection.close()
        await directory.close()


@pytest.mark.slow
async def test_a_frozen_relay_node_is_left_for_a_live_one(redis_url: str, tmp_path: Path) -> None:
    """Its sockets stay open, only its heartbeat stops: the room still moves."""
    cluster = Cluster(redis_url, tmp_path)
    restarts: list[tuple[str, list[str]]] = []
    restarted = asyncio.Event()

    async def on_media_restart(room_id: str, participant_ids: list[str]) -> None:
        restarts.append((room_id, sorted(participant_ids)))
        restarted.set()

    hosting: NodeProcess | None = None
    try:
        await asyncio.gather(cluster.start_relay(), cluster.start_relay())
        relay = NodeRelay(
            RedisRelayDirectory.from_url(redis_url), RELAY_SECRET, on_media_restart=on_media_restart
        )
        await relay.start()
        try:
            await relay.join("room-1", "p-1", Recorder(), {"role": "patient"})
            await relay.join("room-1", "p-2", Recorder(), {"role": "practitioner"})
            hosting = await cluster.relay_hosting("room-1")
            hosting.process.send_signal(signal.SIGSTOP)
            frozen_at = time.monotonic()
            await asyncio.wait_for(restarted.wait(), 20)
            detected = time.monotonic() - frozen_at
            print(f"frozen relay node left after {detected:.1f} s")
            # TTL (6 s) + two missed checks (2 s apart), with some slack for a busy machine.
            assert detected <= 6 + 2 * 2 + 3
            assert restarts == [("room-1", ["p-1", "p-2"])]
            survivor = await cluster.relay_hosting("room-1")
            assert survivor is not hosting
            # Both were joined again on the live node.
            check = await connect(survivor)
            assert (await check.request("stats"))["rooms"] == 1
            await check.close()
        finally:
            await relay.close()
    finally:
        if hosting is not None:
            hosting.process.send_signal(signal.SIGCONT)
        await cluster.stop()
        print(cluster.logs())


@pytest.mark.slow
async def test_joining_a_room_whose_idle_node_just_died_moves_it(
    redis_url: str, tmp_path: Path
) -> None:
    cluster = Cluster(redis_url, tmp_path)
    try:
        await asyncio.gather(cluster.start_relay(), cluster.start_relay())
        relay = NodeRelay(RedisRelayDirectory.from_url(redis_url), RELAY_SECRET)
        await relay.start()
        try:
            await relay.join("room-1", "p-1", Recorder())
            await relay.leave("room-1", "p-1")
            hosting = await cluster.relay_hosting("room-1")
            hosting.kill()
            await hosting.process.wait()
            # Its record is still in Redis for a few seconds; the join must not fail.
            await relay.join("room-1", "p-2", Recorder())
            assert await cluster.relay_hosting("room-1") is not hosting
        finally:
            await relay.close()
    finally:
        await cluster.stop()
        print(cluster.logs())


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        (["relay", "--listen", "127.0.0.1:7000"], {}, "--redis-url"),
        (["relay", "--redis-url", "redis://127.0.0.1:1/0"], {}, "--listen HOST:PORT"),
        (["relay", "--redis-url", "redis://h/0", "--listen", "7000"], {}, "HOST:PORT"),
        (["relay", "--redis-url", "redis://h/0", "--listen", "h:99999"], {}, "1-65535"),
        (["relay", "--redis-url", "redis://h/0", "--listen", "0.0.0.0:7000"], {}, "--advertise"),
        (["relay", "--redis-url", "redis://h/0", "--listen", "h:7000"], None, "RELAY_SECRET"),
        (
            ["relay", "--redis-url", "redis://h/0", "--listen", "h:7000"],
            {"TELECONSULT_RELAY_SECRET": "short"},
            "at least 32 bytes",
        ),
    ],
)
def test_relay_command_explains_bad_input(
    argv: list[str],
    env: dict[str, str] | None,
    expected: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in ("TELECONSULT_REDIS_URL", "TELECONSULT_RELAY_LISTEN", "TELECONSULT_RELAY_SECRET"):
        monkeypatch.delenv(name, raising=False)
    # {}: a valid secret; None: no secret at all.
    given = {"TELECONSULT_RELAY_SECRET": RELAY_SECRET} if env == {} else env or {}
    for name, value in given.items():
        monkeypatch.setenv(name, value)
    assert main(argv) == 2
    assert expected in capsys.readouterr().err


def test_relay_command_without_redis_fails_clearly(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TELECONSULT_RELAY_SECRET", RELAY_SECRET)
    closed = f"redis://127.0.0.1:{free_port()}/0"
    argv = ["relay", "--redis-url", closed, "--listen", f"127.0.0.1:{free_port()}"]
    assert main(argv) == 1
    error = capsys.readouterr().err
    assert "cannot start" in error
    assert "ConnectionError" in error
    assert RELAY_SECRET not in error


def test_signalling_with_a_relay_secret_needs_redis() -> None:
    with pytest.raises(ConfigError, match="needs TELECONSULT_REDIS_URL"):
        make_settings(relay_secret=RELAY_SECRET)
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        make_settings(relay_secret="short", redis_url="redis://127.0.0.1/0")


@pytest.mark.slow
async def test_a_room_is_not_moved_back_to_its_returning_node_but_new_rooms_go_there(
    redis_url: str, tmp_path: Path
) -> None:
    """A frozen node comes back: the call stays where it failed over; the node takes new rooms."""
    cluster = Cluster(redis_url, tmp_path)
    restarted = asyncio.Event()

    async def on_media_restart(room_id: str, participant_ids: list[str]) -> None:
        restarted.set()

    hosting: NodeProcess | None = None
    directory = RedisRelayDirectory.from_url(redis_url)
    try:
        await asyncio.gather(cluster.start_relay(), cluster.start_relay())
        relay = NodeRelay(
            RedisRelayDirectory.from_url(redis_url), RELAY_SECRET, on_media_restart=on_media_restart
        )
        await relay.start()
        try:
            await relay.join("room-1", "p-1", Recorder(), {"role": "patient"})
            await relay.join("room-1", "p-2", Recorder(), {"role": "practitioner"})
            hosting = await cluster.relay_hosting("room-1")
            returning = await cluster.placement("room-1")
            hosting.process.send_signal(signal.SIGSTOP)
            await asyncio.wait_for(restarted.wait(), 20)
            moved_to = await cluster.placement("room-1")
            assert moved_to not in (None, returning)

            hosting.process.send_signal(signal.SIGCONT)

            # Back, beating, and empty: our link to it was closed, so its participants left.
            async def back_and_empty() -> bool:
                live = await directory.live_nodes()
                return returning in live and live[returning].rooms == 0

            await eventually(back_and_empty, timeout=15, interval=0.2)

            async def still_on_the_new_node() -> bool:
                return await cluster.placement("room-1") == moved_to

            # Not moved back while the call lasts, not even by a participant joining again.
            await stays_true(still_on_the_new_node, for_seconds=2 * HEARTBEAT_INTERVAL)
            await relay.join("room-1", "p-3", Recorder(), {"role": "guest"})
            assert await cluster.placement("room-1") == moved_to

            # A new room goes to the least loaded: the node that came back.
            await relay.join("room-2", "q-1", Recorder(), {"role": "patient"})
            assert await cluster.placement("room-2") == returning
        finally:
            await relay.close()
    finally:
        if hosting is not None:
            hosting.process.send_signal(signal.SIGCONT)
        await directory.close()
        await cluster.stop()
        print(cluster.logs())
