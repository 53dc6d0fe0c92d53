"""Relay nodes and room placement: the port, the rules of placement, the in-memory directory.

Relay nodes announce themselves with a heartbeat (`announce`, every
`HEARTBEAT_INTERVAL`); a node that stops beating for `NODE_TTL_MS` is dead.
Each room is placed on one live node, the least loaded, and every signalling
node sends the room's participants there: the first placement wins (like
Redis SET NX), and a room is moved off a dead node by compare-and-set, so of
two signalling nodes failing a room over at once, the second adopts the
first's choice. `store.redis_relay_directory` shares this between processes;
`InMemoryRelayDirectory` is the same within one (tests, a single node).
"""

from __future__ import annotations

import json
import logging
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

logger = logging.getLogger(__name__)

HEARTBEAT_INTERVAL = 2.0
NODE_TTL_MS = 6000
# A placement outlives any room window; close_room deletes it earlier.
PLACEMENT_TTL_S = 24 * 3600


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


class RelayDirectory(Protocol):
    """Who the live relay nodes are, and which one hosts each room."""

    async def announce(self, node: RelayNodeInfo) -> None:
        """A relay node's heartbeat: its record, alive for `NODE_TTL_MS` more."""

    async def withdraw(self, node_id: str) -> None:
        """A relay node stopping cleanly: its rooms move at once, not after the TTL."""

    async def live_nodes(self) -> dict[str, RelayNodeInfo]: ...

    async def placement(self, room_id: str) -> str | None:
        """The id of the node the room is placed on, alive or not."""

    async def place(self, room_id: str) -> RelayNodeInfo:
        """The node hosting `room_id`: the current one if alive, else the least loaded."""

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

    async def forget(self, room_id: str, node_id: str) -> None:
        """Drop the room's placement if it still names `node_id`."""

    async def close(self) -> None: ...


class PlacingDirectory(ABC):
    """`place` and `move` over three primitives a backend makes atomic."""

    @abstractmethod
    async def live_nodes(self) -> dict[str, RelayNodeInfo]: ...

    @abstractmethod
    async def placement(self, room_id: str) -> str | None: ...

    @abstractmethod
    async def _place_if_unplaced(self, room_id: str, node_id: str) -> bool:
        """Place the room on `node_id` unless it is placed already (SET NX)."""

    @abstractmethod
    async def _replace_placement(self, room_id: str, expected: str, node_id: str) -> str:
        """Place the room on `node_id` if it is on `expected` or nowhere; the node it is on."""

    async def place(self, room_id: str) -> RelayNodeInfo:
        """The node hosting `room_id`: the current one if alive, else the least loaded."""
        live = await self.live_nodes()
        current = await self.placement(room_id)
        if current is not None and current in live:
            return live[current]
        if current is not None:
            return await self.move(room_id, current, exclude={current}, live=live)
        chosen = least_loaded(live, exclude=set())
        if await self._place_if_unplaced(room_id, chosen.id):
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
        chosen = least_loaded(live, exclude=exclude)
        placed = await self._replace_placement(room_id, dead_node, chosen.id)
        if placed == chosen.id:
            logger.info("relay room=%s moved from node=%s to node=%s", room_id, dead_node, placed)
            return chosen
        if placed in live and placed not in exclude:
            return live[placed]
        # The winner's choice is dead too (or unknown here): move it off that one.
        return await self.move(room_id, placed, exclude=exclude | {dead_node}, live=live)


def least_loaded(live: dict[str, RelayNodeInfo], exclude: set[str]) -> RelayNodeInfo:
    candidates = [node for node_id, node in live.items() if node_id not in exclude]
    if not candidates:
        raise NoRelayAvailable("no live relay node")
    lowest = min((node.rooms, node.participants) for node in candidates)
    # Ties broken at random, so that rooms placed between two heartbeats spread out.
    return random.choice([n for n in candidates if (n.rooms, n.participants) == lowest])


class InMemoryRelayDirectory(PlacingDirectory):
    """The directory of one process; `clock` (seconds, monotonic) decides what has expired."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        # Records and placements with the time they lapse, like keys with a TTL.
        self._nodes: dict[str, tuple[RelayNodeInfo, float]] = {}
        self._placements: dict[str, tuple[str, float]] = {}

    async def announce(self, node: RelayNodeInfo) -> None:
        self._nodes[node.id] = (node, self._clock() + NODE_TTL_MS / 1000)

    async def withdraw(self, node_id: str) -> None:
        self._nodes.pop(node_id, None)

    async def live_nodes(self) -> dict[str, RelayNodeInfo]:
        now = self._clock()
        for node_id in [i for i, (_, lapses_at) in self._nodes.items() if lapses_at <= now]:
            del self._nodes[node_id]
        return {node_id: self._nodes[node_id][0] for node_id in sorted(self._nodes)}

    async def placement(self, room_id: str) -> str | None:
        placed = self._placements.get(room_id)
        if placed is None:
            return None
        node_id, lapses_at = placed
        if lapses_at <= self._clock():
            del self._placements[room_id]
            return None
        return node_id

    async def _place_if_unplaced(self, room_id: str, node_id: str) -> bool:
        if await self.placement(room_id) is not None:
            return False
        self._placements[room_id] = (node_id, self._clock() + PLACEMENT_TTL_S)
        return True

    async def _replace_placement(self, room_id: str, expected: str, node_id: str) -> str:
        current = await self.placement(room_id)
        if current is not None and current != expected:
            return current
        self._placements[room_id] = (node_id, self._clock() + PLACEMENT_TTL_S)
        return node_id

    async def forget(self, room_id: str, node_id: str) -> None:
        if await self.placement(room_id) == node_id:
            del self._placements[room_id]

    async def close(self) -> None:
        pass
