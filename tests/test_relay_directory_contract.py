"""The RelayDirectory contract, run against every implementation.

Each implementation is a function of the pytest request returning an async
context manager that yields a `Directories`: `open()` gives one node's handle
on one fresh, shared directory (for the in-memory directory, one process, so
always the same object; for Redis, a new client each time, like another
signalling node), and `advance(seconds)` lets that much time pass for it, so
heartbeat and placement lifetimes are tested without waiting.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

import pytest

from store.redis_client import redis_client
from store.redis_relay_directory import RedisRelayDirectory
from store.relay_directory import (
    HEARTBEAT_INTERVAL,
    NODE_TTL_MS,
    PLACEMENT_TTL_S,
    InMemoryRelayDirectory,
    NoRelayAvailable,
    RelayDirectory,
    RelayNodeInfo,
)

NODE_TTL = NODE_TTL_MS / 1000
PREFIX = "contract:"


@dataclass
class Directories:
    open: Callable[[], RelayDirectory]
    advance: Callable[[float], Awaitable[None]]


@asynccontextmanager
async def memory_directories(request: pytest.FixtureRequest) -> AsyncIterator[Directories]:
    now = [1000.0]
    directory = InMemoryRelayDirectory(clock=lambda: now[0])

    async def advance(seconds: float) -> None:
        now[0] += seconds

    yield Directories(lambda: directory, advance)


@asynccontextmanager
async def redis_directories(request: pytest.FixtureRequest) -> AsyncIterator[Directories]:
    # Asked for lazily so the memory runs never start redis-server.
    url: str = request.getfixturevalue("redis_url")
    opened: list[RedisRelayDirectory] = []
    client = redis_client(url)

    def open_node() -> RelayDirectory:
        directory = RedisRelayDirectory.from_url(url, PREFIX)
        opened.append(directory)
        return directory

    async def advance(seconds: float) -> None:
        # Time passes for every key with a lifetime: what Redis does on its own, at once.
        elapsed_ms = round(seconds * 1000)
        async for key in client.scan_iter(f"{PREFIX}*"):
            remaining = await client.pttl(key)
            if remaining < 0:
                continue
            if remaining <= elapsed_ms:
                await client.delete(key)
            else:
                await client.pexpire(key, remaining - elapsed_ms)

    try:
        yield Directories(open_node, advance)
    finally:
        for directory in opened:
            await directory.close()
        await client.aclose()


DIRECTORIES: list[object] = [
    pytest.param(memory_directories, id="memory"),
    pytest.param(redis_directories, id="redis"),
]


@pytest.fixture(params=DIRECTORIES)
async def directories(request: pytest.FixtureRequest) -> AsyncIterator[Directories]:
    factory: Callable[[pytest.FixtureRequest], AbstractAsyncContextManager[Directories]] = (
        request.param
    )
    async with factory(request) as fresh:
        yield fresh


def node(node_id: str, rooms: int = 0, participants: int = 0) -> RelayNodeInfo:
    return RelayNodeInfo(node_id, f"10.0.0.{len(node_id)}", 7000, rooms, participants)


# --- heartbeats ------------------------------------------------------------------------------


async def test_an_announced_node_is_live_with_its_load(directories: Directories) -> None:
    directory = directories.open()
    assert await directory.live_nodes() == {}

    await directory.announce(node("busy", rooms=3, participants=6))
    await directory.announce(node("idle"))
    # A later heartbeat carries the node's new load.
    await directory.announce(node("idle", rooms=1, participants=2))

    live = await directories.open().live_nodes()
    assert live == {"busy": node("busy", 3, 6), "idle": node("idle", 1, 2)}
    assert list(live) == ["busy", "idle"]
    assert live["idle"].address == "10.0.0.4:7000"


async def test_a_node_that_stops_beating_is_dead_after_its_ttl(directories: Directories) -> None:
    directory = directories.open()
    await directory.announce(node("gone"))
    await directories.advance(NODE_TTL / 2)
    await directory.announce(node("alive"))

    await directories.advance(NODE_TTL / 2 + 0.1)

    assert set(await directory.live_nodes()) == {"alive"}
    await directories.advance(NODE_TTL / 2)
    assert await directory.live_nodes() == {}


async def test_a_beating_node_stays_live(directories: Directories) -> None:
    directory = directories.open()
    for _ in range(10):
        await directory.announce(node("steady"))
        await directories.advance(HEARTBEAT_INTERVAL)

    assert set(await directory.live_nodes()) == {"steady"}


async def test_a_withdrawn_node_is_gone_at_once(directories: Directories) -> None:
    directory = directories.open()
    await directory.announce(node("leaving"))
    await directory.announce(node("staying"))

    await directory.withdraw("leaving")
    await directory.withdraw("never-announced")

    assert set(await directories.open().live_nodes()) == {"staying"}


# --- placement -------------------------------------------------------------------------------


async def test_placement_is_one_least_loaded_node_per_room(directories: Directories) -> None:
    handles = [directories.open() for _ in range(4)]
    first = handles[0]
    await first.announce(node("busy", rooms=3, participants=6))
    await first.announce(node("idle"))
    await first.announce(node("twin"))
    await first.announce(node("spare", rooms=1, participants=2))

    # Signalling nodes placing one room at once all get the same node, a least-loaded
    # one (the tie between the two idle nodes is broken at random: only the first write wins).
    placed = await asyncio.gather(*(handle.place("room-1") for handle in handles * 4))

    assert len({placed_on.id for placed_on in placed}) == 1
    assert placed[0].id in {"idle", "twin"}
    assert await first.placement("room-1") == placed[0].id
    assert await first.placement("room-2") is None
    # Placed again, it stays where it is.
    assert (await handles[3].place("room-1")).id == placed[0].id


async def test_a_room_moves_once_off_a_dead_node(directories: Directories) -> None:
    handles = [directories.open() for _ in range(3)]
    first = handles[0]
    await first.announce(node("idle"))
    await first.announce(node("spare", rooms=1, participants=2))
    await first.announce(node("busy", rooms=3, participants=6))
    assert (await first.place("room-1")).id == "idle"

    # Its node dies: two signalling nodes move it at once, and agree.
    await first.withdraw("idle")
    moved = await asyncio.gather(
        handles[1].move("room-1", "idle", exclude={"idle"}),
        handles[2].move("room-1", "idle", exclude={"idle"}),
    )

    assert {placed_on.id for placed_on in moved} == {"spare"}
    assert await first.placement("room-1") == "spare"


async def test_the_second_move_off_a_dead_node_adopts_the_first(
    directories: Directories,
) -> None:
    first, second = directories.open(), directories.open()
    await first.announce(node("dead"))
    await first.place("room-1")
    await first.withdraw("dead")
    await first.announce(node("x"))
    await first.announce(node("y", rooms=1))
    assert (await first.move("room-1", "dead", exclude={"dead"})).id == "x"

    # The second signalling node read the load before "x" emptied: it would pick "y".
    stale = {"x": node("x", rooms=9), "y": node("y", rooms=1)}
    moved = await second.move("room-1", "dead", exclude={"dead"}, live=stale)

    assert moved.id == "x"
    assert await second.placement("room-1") == "x"


async def test_placing_a_room_on_a_dead_node_moves_it(directories: Directories) -> None:
    directory = directories.open()
    await directory.announce(node("first"))
    assert (await directory.place("room-1")).id == "first"
    await directory.announce(node("second"))
    await directories.advance(NODE_TTL / 2)
    await directory.announce(node("second"))

    await directories.advance(NODE_TTL / 2 + 0.1)

    assert (await directory.place("room-1")).id == "second"
    assert await directory.placement("room-1") == "second"


async def test_a_move_whose_winner_is_dead_too_moves_on(directories: Directories) -> None:
    one, two = directories.open(), directories.open()
    await one.announce(node("a"))
    await one.announce(node("b", rooms=1))
    await one.announce(node("c", rooms=5))
    assert (await one.place("room-1")).id == "a"
    # Another signalling node moved it off "a" to "b"; then "b" died as well.
    assert (await two.move("room-1", "a", exclude={"a"})).id == "b"
    await one.withdraw("a")
    await one.withdraw("b")

    # This node still thinks the room is on "a": it finds "b" there, dead, and moves on.
    moved = await one.move("room-1", "a", exclude={"a"})

    assert moved.id == "c"
    assert await two.placement("room-1") == "c"


async def test_a_node_that_lost_the_placement_race_adopts_the_winners_choice(
    directories: Directories, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory, other = directories.open(), directories.open()
    await directory.announce(node("idle"))
    await directory.announce(node("loaded", rooms=4))
    # Another signalling node placed the room on "loaded" just after we read "no placement".
    await other.move("room-1", "nobody", exclude={"idle"})
    read = directory.placement
    reads: list[str] = []

    async def racing_read(room_id: str) -> str | None:
        reads.append(room_id)
        return None if len(reads) == 1 else await read(room_id)

    monkeypatch.setattr(directory, "placement", racing_read)

    assert (await directory.place("room-1")).id == "loaded"
    assert await read("room-1") == "loaded"


async def test_without_a_live_node_nothing_can_be_placed(directories: Directories) -> None:
    directory = directories.open()
    with pytest.raises(NoRelayAvailable, match="no live relay node"):
        await directory.place("room-1")

    await directory.announce(node("only"))
    assert (await directory.place("room-1")).id == "only"
    with pytest.raises(NoRelayAvailable):
        await directory.move("room-1", "only", exclude={"only"})
    await directory.withdraw("only")
    with pytest.raises(NoRelayAvailable):
        await directory.place("room-2")


async def test_forget_drops_only_the_placement_it_names(directories: Directories) -> None:
    directory = directories.open()
    await directory.announce(node("host"))
    await directory.place("room-1")

    await directory.forget("room-1", "another")
    assert await directory.placement("room-1") == "host"
    await directory.forget("room-1", "host")
    assert await directory.placement("room-1") is None
    await directory.forget("room-1", "host")
    assert await directory.placement("room-1") is None


async def test_a_placement_lapses_after_its_lifetime(directories: Directories) -> None:
    directory = directories.open()
    await directory.announce(node("host"))
    await directory.place("room-1")

    await directories.advance(PLACEMENT_TTL_S - 1)
    assert await directory.placement("room-1") == "host"
    await directories.advance(2)
    assert await directory.placement("room-1") is None


# --- Redis only ------------------------------------------------------------------------------


async def test_redis_prunes_the_ids_of_expired_nodes(redis_url: str) -> None:
    directory = RedisRelayDirectory.from_url(redis_url)
    try:
        await directory.announce(node("gone"))
        await directory.announce(node("alive", rooms=5))
        # What Redis does on its own once the heartbeat's expiry passes.
        await directory.client.delete("teleconsult:relay:node:gone")

        assert set(await directory.live_nodes()) == {"alive"}
        assert await directory.client.smembers("teleconsult:relay:nodes") == {"alive"}
        ttl = await directory.client.pttl("teleconsult:relay:node:alive")
        assert 0 < ttl <= NODE_TTL_MS
    finally:
        await directory.close()
