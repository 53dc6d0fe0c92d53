"""Socket.IO fan-out across signalling nodes through Redis pub/sub, JSON only."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import socketio
from aiohttp import web
from engineio import json as safe_json

from store.redis_room_store import RedisRoomStore


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

    def initialize(self) -> None:
        super().initialize()
        self.json = safe_json


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
        client = getattr(manager, "redis", None)
        if client is not None:
            await client.aclose()
        if store is not None:
            await store.close()

    return lifetime
