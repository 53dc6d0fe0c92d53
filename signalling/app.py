"""Assembles the aiohttp application: routes, Socket.IO, relay, store, background sweeper."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import socketio
from aiohttp import web

from media.relay import IceServerConfig, Relay
from rooms.store import InMemoryRoomStore, RoomStore
from signalling.booking_hook import BookingHook
from signalling.clock import Clock, utc_now
from signalling.config import Settings
from signalling.http_errors import json_errors
from signalling.pages import add_page_routes, security_headers
from signalling.room_hub import RoomHub
from signalling.sockets import SignallingNamespace

logger = logging.getLogger(__name__)

SETTINGS = web.AppKey("settings", Settings)
HUB = web.AppKey("hub", RoomHub)
SOCKETS = web.AppKey("sockets", SignallingNamespace)

SWEEP_INTERVAL = 30.0
MAX_SOCKET_MESSAGE = 64 * 1024


def make_app(
    settings: Settings,
    *,
    store: RoomStore | None = None,
    relay: Relay | None = None,
    clock: Clock = utc_now,
) -> web.Application:
    app = web.Application(middlewares=[security_headers, json_errors])
    sio = socketio.AsyncServer(
        async_mode="aiohttp",
        max_http_buffer_size=MAX_SOCKET_MESSAGE,
        logger=False,
        engineio_logger=False,
    )
    sio.attach(app)
    if relay is None:
        relay = Relay(
            tuple(IceServerConfig(s.urls, s.username, s.credential) for s in settings.ice_servers)
        )
    hub = RoomHub(store or InMemoryRoomStore(), sio, relay, clock)
    app[SETTINGS] = settings
    app[HUB] = hub
    app[SOCKETS] = SignallingNamespace(sio, hub, settings)

    hook = BookingHook(settings, hub)
    app.router.add_post("/hooks/booking", hook.handle)
    add_page_routes(app, settings.web_root)
    app.cleanup_ctx.append(_relay_lifetime)
    app.cleanup_ctx.append(_sweeper)
    return app


async def _relay_lifetime(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[HUB].relay.close()


async def _sweeper(app: web.Application) -> AsyncIterator[None]:
    hub = app[HUB]
    retention = app[SETTINGS].retention_after_close

    async def run() -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            try:
                purged = await hub.sweep(retention)
                if purged:
                    logger.info("sweeper purged %d rooms", purged)
            except Exception:
                logger.exception("sweeper failed")

    task = asyncio.ensure_future(run())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
