"""Socket.IO fan-out across signalling nodes through Redis pub/sub, JSON only.

Pub/sub keeps nothing: what is published while a node's listener is cut off
(its connection dropped, or it waits out its retry delay) never reaches that
node. The manager therefore says when its subscription is made again
(`on_resubscribed`), and the app then re-sends the current state of every
room its sockets follow (signalling/screen_resync.py): every screen converges.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import socketio
from aiohttp import web
from engineio import json as safe_json

from store.redis_room_store import RedisRoomStore

logger = logging.getLogger(__name__)


class JsonRedisManager(socketio.AsyncRedisManager):  # type: ignore[misc]
    """python-socketio's Redis manager, pinned to JSON.

    The manager takes its serializer from the server when it starts; some
    releases of python-socketio pickled pub/sub messages, and unpickling what
    arrives on a shared channel runs code chosen by whoever can publish there.
    Pinning engine.io's JSON module (the standard one, with a cap on integer
    length against parsing attacks) keeps every message plain data whatever
    the release.
    """

    def __init__(self, url: str, *, channel: str) -> None:
        super().__init__(url, channel=channel, json=safe_json)
        # Called (in the background) each time the subscription is made again.
        self.on_resubscribed: Callable[[], Awaitable[None]] | None = None
        self._resyncs: set[asyncio.Task[None]] = set()

    def initialize(self) -> None:
        super().initialize()
        self.json = safe_json

    def _redis_connect(self) -> None:
        super()._redis_connect()
        # Subscription confirmations are how the listener sees each (re)subscription,
        # whether the manager retried or redis-py reconnected on its own.
        self.pubsub = self.redis.pubsub(ignore_subscribe_messages=False)

    async def _redis_listen_with_retries(self) -> AsyncIterator[dict[str, Any]]:
        subscribed_before = False
        async for message in super()._redis_listen_with_retries():
            if message.get("type") == "subscribe":
                if subscribed_before:
                    self._resubscribed()
                subscribed_before = True
                continue
            yield message

    def _resubscribed(self) -> None:
        logger.info("socket fan-out listener subscribed again: re-sending room state")
        if self.on_resubscribed is not None:
            task = asyncio.ensure_future(self.on_resubscribed())
            self._resyncs.add(task)
            task.add_done_callback(self._resync_done)

    def _resync_done(self, task: asyncio.Task[None]) -> None:
        self._resyncs.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("room state re-send failed: %r", task.exception())


def redis_manager(url: str, prefix: str) -> JsonRedisManager:
    return JsonRedisManager(url, channel=f"{prefix}socketio")


def redis_lifetime(
    store: RedisRoomStore | None, manager: JsonRedisManager | None
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup context stopping the fan-out listener and closing the store the app owns."""

    async def lifetime(app: web.Application) -> AsyncIterator[None]:
        yield
        # The manager starts its listener lazily, on the first emit or connection.
        listener: asyncio.Task[None] | None = getattr(manager, "thread", None)
        if listener is not None:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
        for resync in list(manager._resyncs if manager is not None else ()):
            resync.cancel()
        client = getattr(manager, "redis", None)
        if client is not None:
            await client.aclose()
        if store is not None:
            await store.close()

    return lifetime
