"""Relay nodes and room placement in Redis.

Keys, under the deployment's prefix (default `teleconsult:`):

- `relay:node:<node id>`: a live relay node's JSON record (address, load),
  rewritten every `HEARTBEAT_INTERVAL` with a `NODE_TTL` expiry: a node that
  stops beating disappears on its own.
- `relay:nodes`: the set of node ids ever announced; ids whose record expired
  are pruned by whoever reads it.
- `relay:room:<room id>`: the id of the node that hosts the room. Written with
  SET NX, and moved off a dead node by a compare-and-set script, so every
  signalling node sends a room's participants to the same relay node.
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import asdict, dataclass
from typing import Any

import redis.asyncio as redis

logger = logging.getLogger(__name__)

HEARTBEAT_INTERVAL = 2.0
NODE_TTL_MS = 6000
# A placement outlives any room window; close_room deletes it earlier.
PLACEMENT_TTL_S = 24 * 3600

# Replace the placement only if it still names the node we found dead (or none):
# of two signalling nodes failing a room over at once, the second adopts the first's choice.
MOVE_SCRIPT = """
local current = redis.call('GET', KEYS[1])
if current == false or current == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  return ARGV[2]
end
return current
"""
FORGET_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class NoRelayAvailable(Exception):
    """No live relay node is registered (or none but those just found dead)."""


@dataclass(frozen=True, slots=True)
class RelayNodeInfo:
    id: str
    host: str
    port: int
    rooms: int = 0
    participants: int = 0

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "at": time.time()})

    @classmethod
    def from_json(cls, raw: bytes | str) -> RelayNodeInfo:
        data: dict[str, Any] = json.loads(raw)
        return cls(
            id=str(data["id"]),
            host=str(data["host"]),
            port=int(data["port"]),
            rooms=int(data.get("rooms", 0)),
            participants=int(data.get("participants", 0)),
        )


class RelayDirectory:
    """Who the live relay nodes are, and which one hosts each room."""

    def __init__(self, client: redis.Redis, prefix: str = "teleconsult:") -> None:
        self.client = client
        self.prefix = prefix

    @classmethod
    def from_url(cls, url: str, prefix: str = "teleconsult:") -> RelayDirectory:
        return cls(redis.Redis.from_url(url), prefix)

    def _node_key(self, node_id: str) -> str:
        return f"{self.prefix}relay:node:{node_id}"

    def _room_key(self, room_id: str) -> str:
        return f"{self.prefix}relay:room:{room_id}"

    @property
    def _nodes_key(self) -> str:
        return f"{self.prefix}relay:nodes"

    async def announce(self, node: RelayNodeInfo) -> None:
        """A relay node's heartbeat: its record, alive for `NODE_TTL_MS` more."""
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.set(self._node_key(node.id), node.to_json(), px=NODE_TTL_MS)
            pipe.sadd(self._nodes_key, node.id)
            await pipe.execute()

    async def withdraw(self, node_id: str) -> None:
        """A relay node stopping cleanly: its rooms move at once, not after the TTL."""
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.delete(self._node_key(node_id))
            pipe.srem(self._nodes_key, node_id)
            await pipe.execute()

    async def live_nodes(self) -> dict[str, RelayNodeInfo]:
        ids = sorted(_text(m) for m in await self.client.smembers(self._nodes_key))
        if not ids:
            return {}
        records = await self.client.mget([self._node_key(i) for i in ids])
        live: dict[str, RelayNodeInfo] = {}
        gone: list[str] = []
        for node_id, raw in zip(ids, records, strict=True):
            if raw is None:
                gone.append(node_id)
                continue
            try:
                live[node_id] = RelayNodeInfo.from_json(raw)
            except (ValueError, KeyError, TypeError):
                logger.warning("relay directory: unreadable record for node=%s", node_id)
        if gone:
            await self.client.srem(self._nodes_key, *gone)
        return live

    async def placement(self, room_id: str) -> str | None:
        raw = await self.client.get(self._room_key(room_id))
        return None if raw is None else _text(raw)

    async def place(self, room_id: str) -> RelayNodeInfo:
        """The node hosting `room_id`: the current one if alive, else the least loaded."""
        live = await self.live_nodes()
        current = await self.placement(room_id)
        if current is not None and current in live:
            return live[current]
        if current is not None:
            return await self.move(room_id, current, exclude={current}, live=live)
        chosen = _least_loaded(live, exclude=set())
        if await self.client.set(self._room_key(room_id), chosen.id, nx=True, ex=PLACEMENT_TTL_S):
            logger.info("relay room=%s placed on node=%s", room_id, chosen.id)
            return chosen
        # Another signalling node placed it first: use its choice.
        return await self.place(room_id)

    async def move(
        self,
        room_id: str,
        dead_node: str,
        *,
        exclude: set[str],
        live: dict[str, RelayNodeInfo] | None = None,
    ) -> RelayNodeInfo:
        """Moves a room off `dead_node` to a live node not in `exclude`.

        Or adopts the move another signalling node made first.
        """
        live = await self.live_nodes() if live is None else live
        chosen = _least_loaded(live, exclude=exclude)
        result = await self.client.eval(
            MOVE_SCRIPT, 1, self._room_key(room_id), dead_node, chosen.id, PLACEMENT_TTL_S
        )
        placed = _text(result)
        if placed == chosen.id:
            logger.info("relay room=%s moved from node=%s to node=%s", room_id, dead_node, placed)
            return chosen
        if placed in live and placed not in exclude:
            return live[placed]
        # The winner's choice is dead too (or unknown here): move it off that one.
        return await self.move(room_id, placed, exclude=exclude | {dead_node}, live=live)

    async def forget(self, room_id: str, node_id: str) -> None:
        await self.client.eval(FORGET_SCRIPT, 1, self._room_key(room_id), node_id)

    async def close(self) -> None:
        await self.client.aclose()


def _least_loaded(live: dict[str, RelayNodeInfo], exclude: set[str]) -> RelayNodeInfo:
    candidates = [node for node_id, node in live.items() if node_id not in exclude]
    if not candidates:
        raise NoRelayAvailable("no live relay node")
    lowest = min((node.rooms, node.participants) for node in candidates)
    # Ties broken at random, so that rooms placed between two heartbeats spread out.
    return random.choice([n for n in candidates if (n.rooms, n.participants) == lowest])


def _text(value: object) -> str:
    # Works with clients made with or without decode_responses.
    return value.decode() if isinstance(value, bytes) else str(value)
