"""The relay as seen from a signalling node when rooms live on relay nodes.

`NodeRelay` is a `media.relay_service.RelayService` (its requests are those
of `media.protocol_relay`; the relay nodes are `media.relay_node_server`). Each room is placed
on one relay node through Redis (`store.relay_directory`); this signalling
node keeps one authenticated connection per relay node it uses, and remembers
the participants it joined (their events come back on that connection).

Failover: when a relay node's connection drops, or its heartbeat expires,
every room of ours on it is placed again (the first signalling node to move a
room wins, the others follow), our participants of those rooms that are still
in the call are told to restart their media (`on_media_restart`) and joined on
the new node; their pages then publish again and subscriptions follow.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from media.errors import MediaError
from media.protocol_relay import InCall, MediaRestart, Member, ProtocolRelay, everyone, nobody_told
from media.relay_service import SubscriberListener
from media.worker_connection import RelayAuthError, WorkerConnection
from store.relay_directory import HEARTBEAT_INTERVAL, NoRelayAvailable, RelayDirectory

if TYPE_CHECKING:
    from media.local_relay_nodes import LocalRelayNodes

logger = logging.getLogger(__name__)

# The relay may not have the participant yet when the page publishes right after a
# restart (its join is on its way from another signalling node): signalling checked
# the store already, so a short wait is right.
PUBLISH_PATIENCE = 3.0
RETRY_DELAY = 0.5


class NodeRelay(ProtocolRelay):
    """Signalling's client of the relay nodes (`teleconsult relay`), with failover."""

    publish_patience = PUBLISH_PATIENCE

    def __init__(
        self,
        directory: RelayDirectory,
        secret: str,
        *,
        on_media_restart: MediaRestart = nobody_told,
        in_call: InCall = everyone,
        workers: LocalRelayNodes | None = None,
    ) -> None:
        self.directory = directory
        # This node's own relay workers, registered as relay nodes (`serve --redis-url`).
        self.workers = workers
        self._secret = secret
        self.on_media_restart = on_media_restart
        # Filters the participants we remember down to those still in the call.
        self.in_call = in_call
        self._connections: dict[str, WorkerConnection] = {}
        self._connecting: dict[str, asyncio.Lock] = {}
        # Rooms we joined participants to: room -> node id, and the participants.
        self._rooms: dict[str, str] = {}
        self._members: dict[str, dict[str, Member]] = {}
        self._moving: dict[str, asyncio.Task[None]] = {}
        self._monitor: asyncio.Task[None] | None = None
        self._missing: set[str] = set()

    async def start(self) -> None:
        if self.workers is not None:
            await self.workers.start()
        self._monitor = asyncio.ensure_future(self._watch_heartbeats())

    async def _connection(self, node_id: str) -> WorkerConnection:
        connection = self._connections.get(node_id)
        if connection is not None and not connection.lost:
            return connection
        lock = self._connecting.setdefault(node_id, asyncio.Lock())
        async with lock:
            connection = self._connections.get(node_id)
            if connection is not None and not connection.lost:
                return connection
            node = (await self.directory.live_nodes()).get(node_id)
            if node is None:
                raise MediaError("media_failed", "The relay node of this call is gone.")
            try:
                connection = await WorkerConnection.open_tcp(
                    node.host, node.port, self._secret, on_lost=lambda: self._lost(node_id)
                )
            except RelayAuthError as exc:
                logger.error("relay node=%s authentication failed: %s", node_id, exc)
                raise MediaError("media_failed", "The relay is unavailable.") from exc
            except (OSError, TimeoutError, ValueError) as exc:
                logger.warning("relay node=%s unreachable: %s", node_id, type(exc).__name__)
                raise MediaError("media_failed", "The relay is unavailable.") from exc
            self._connections[node_id] = connection
            logger.info("relay node=%s connected at %s", node_id, node.address)
            return connection

    async def _room_connection(self, room_id: str) -> WorkerConnection | None:
        moving = self._moving.get(room_id)
        if moving is not None:
            await asyncio.shield(moving)
        node_id = await self.directory.placement(room_id)
        if node_id is None:
            return None
        return await self._connection(node_id)

    async def _join_connection(self, room_id: str) -> WorkerConnection:
        try:
            node = await self.directory.place(room_id)
            try:
                connection = await self._connection(node.id)
            except MediaError:
                # Placed on a node that died with nobody of ours in the room (its record
                # lives on until it expires): move the room now rather than fail the call.
                node = await self.directory.move(room_id, node.id, exclude={node.id})
                connection = await self._connection(node.id)
        except NoRelayAvailable as exc:
            logger.error("relay room=%s: no live relay node", room_id)
            raise MediaError("media_failed", "No media relay is available.") from exc
        self._rooms[room_id] = node.id
        return connection

    def _joined(
        self, room_id: str, participant_id: str, listener: SubscriberListener, info: dict[str, str]
    ) -> None:
        self._members.setdefault(room_id, {})[participant_id] = Member(listener, info)

    def _left(self, room_id: str, participant_id: str) -> None:
        self._members.get(room_id, {}).pop(participant_id, None)

    async def close_room(self, room_id: str) -> None:
        self._members.pop(room_id, None)
        self._rooms.pop(room_id, None)
        node_id = await self.directory.placement(room_id)
        if node_id is None:
            return
        with contextlib.suppress(MediaError):
            await self._close_on(await self._connection(node_id), room_id)
        await self.directory.forget(room_id, node_id)

    # ------------------------------------------------------------- failover

    def _lost(self, node_id: str) -> None:
        self._connections.pop(node_id, None)
        rooms = [r for r, n in self._rooms.items() if n == node_id and self._members.get(r)]
        logger.warning("relay node=%s lost; moving %d rooms", node_id, len(rooms))
        for room_id in rooms:
            if room_id not in self._moving:
                task = asyncio.ensure_future(self._move(room_id, node_id))
                self._moving[room_id] = task
                task.add_done_callback(self._moved(room_id))

    async def _move(self, room_id: str, dead_node: str) -> None:
        # The placement may already be fine: another signalling node moved the room, or
        # only our link to the node broke (the node is alive and takes us back; the
        # others' participants stay there). Otherwise move it off the node we cannot reach.
        exclude: set[str] = set()
        while True:
            target: str | None = None
            try:
                current = await self.directory.placement(room_id)
                live = await self.directory.live_nodes()
                if current is not None and current in live and current not in exclude:
                    node = live[current]
                else:
                    node = await self.directory.move(room_id, current or dead_node, exclude=exclude)
                target = node.id
                connection = await self._connection(node.id)
                break
            except NoRelayAvailable:
                logger.error("relay room=%s: no live relay node to move to; retrying", room_id)
                exclude.clear()  # A node that comes back is welcome again.
            except MediaError:
                if target is not None:
                    exclude.add(target)  # Registered, but unreachable from here.
                    continue
            except Exception:
                logger.exception("relay room=%s: failover step failed; retrying", room_id)
            await asyncio.sleep(RETRY_DELAY)
        self._rooms[room_id] = node.id
        restarted = await self._rejoin(room_id, connection)
        logger.info(
            "relay room=%s now on node=%s; %d participants restarting media",
            room_id,
            node.id,
            len(restarted),
        )

    async def _watch_heartbeats(self) -> None:
        # A node that stopped beating but keeps its sockets open (frozen, partitioned)
        # is as dead as one whose connection dropped.
        while True:
            await asyncio.sleep(HEARTBEAT_INTERVAL)
            try:
                live = await self.directory.live_nodes()
            except Exception as exc:
                logger.warning("relay heartbeat check failed: %s", type(exc).__name__)
                continue
            # Missing twice in a row: after a Redis outage, nodes need one beat to reappear.
            missing = {n for n in self._connections if n not in live}
            for node_id in missing & self._missing:
                connection = self._connections.get(node_id)
                if connection is not None:
                    await connection.close()
                self._lost(node_id)
            self._missing = missing

    async def close(self) -> None:
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor
        for task in list(self._moving.values()):
            task.cancel()
        for connection in list(self._connections.values()):
            await connection.close()
        self._connections.clear()
        if self.workers is not None:
            await self.workers.close()
        await self.directory.close()

    async def capacity(self) -> int:
        """How many relay nodes (or workers of serve nodes) are live: 0, no call gets media."""
        return len(await self.directory.live_nodes())
