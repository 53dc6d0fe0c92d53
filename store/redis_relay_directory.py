"""The RelayDirectory on Redis: every signalling and relay node sees the same directory.

Keys, under the deployment's prefix (default `teleconsult:`):

- `relay:node:<node id>`: a live relay node's JSON record (address, load),
  rewritten every `HEARTBEAT_INTERVAL` with a `NODE_TTL_MS` expiry: a node
  that stops beating disappears on its own.
- `relay:nodes`: the set of node ids ever announced; ids whose record expired
  are pruned by whoever reads it.
- `relay:room:<room id>`: the id of the node that hosts the room. Written with
  SET NX, and moved off a dead node by a compare-and-set script, so every
  signalling node sends a room's participants to the same relay node.

Failures surface as `RedisError`, as the relay's callers expect: a relay
node that cannot reach Redis stops, a signalling node reports the media
unavailable.
"""

from __future__ import annotations

import logging

import redis.asyncio as redis

from store.redis_client import DEFAULT_PREFIX, redis_client, reply_text
from store.relay_directory import (
    NODE_TTL_MS,
    PLACEMENT_TTL_S,
    PlacingDirectory,
    RelayNodeInfo,
)

logger = logging.getLogger(__name__)

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


class RedisRelayDirectory(PlacingDirectory):
    def __init__(self, client: redis.Redis, prefix: str = DEFAULT_PREFIX) -> None:
        self.client = client
        self.prefix = prefix

    @classmethod
    def from_url(cls, url: str, prefix: str = DEFAULT_PREFIX) -> RedisRelayDirectory:
        return cls(redis_client(url), prefix)

    def _node_key(self, node_id: str) -> str:
        return f"{self.prefix}relay:node:{node_id}"

    def _room_key(self, room_id: str) -> str:
        return f"{self.prefix}relay:room:{room_id}"

    @property
    def _nodes_key(self) -> str:
        return f"{self.prefix}relay:nodes"

    async def announce(self, node: RelayNodeInfo) -> None:
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.set(self._node_key(node.id), node.to_json(), px=NODE_TTL_MS)
            pipe.sadd(self._nodes_key, node.id)
            await pipe.execute()

    async def withdraw(self, node_id: str) -> None:
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.delete(self._node_key(node_id))
            pipe.srem(self._nodes_key, node_id)
            await pipe.execute()

    async def live_nodes(self) -> dict[str, RelayNodeInfo]:
        ids = sorted(reply_text(m) for m in await self.client.smembers(self._nodes_key))
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
        return None if raw is None else reply_text(raw)

    async def _place_if_unplaced(self, room_id: str, node_id: str) -> bool:
        placed = await self.client.set(
            self._room_key(room_id), node_id, nx=True, ex=PLACEMENT_TTL_S
        )
        return bool(placed)

    async def _replace_placement(self, room_id: str, expected: str, node_id: str) -> str:
        result = await self.client.eval(
            MOVE_SCRIPT, 1, self._room_key(room_id), expected, node_id, PLACEMENT_TTL_S
        )
        return reply_text(result)

    async def forget(self, room_id: str, node_id: str) -> None:
        await self.client.eval(FORGET_SCRIPT, 1, self._room_key(room_id), node_id)

    async def close(self) -> None:
        await self.client.aclose()
