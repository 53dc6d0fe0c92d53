"""Assembles the aiohttp application: routes, Socket.IO, relay, store, background sweeper.

The room store is handed to the hub alone: every transport gets the hub
(signalling/room_hub.py), the one write path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import socketio
from aiohttp import web

from media.relay import Relay
from media.relay_node_client import NodeRelay
from media.relay_service import IceServerConfig, RelayService
from media.worker_relay import WorkerRelay
from signalling.api import IntegrationApi
from signalling.auth_throttle import AuthThrottle
from signalling.booking_hook import BookingHook
from signalling.clock import Clock, utc_now
from signalling.config import Settings, metrics_address
from signalling.desk import DeskNamespace
from signalling.event_delivery import EventDelivery, RetryPolicy
from signalling.http_errors import json_errors
from signalling.idle_sessions import close_idle_sessions
from signalling.metrics import SignallingMetrics, listener
from signalling.pages import add_page_routes, security_headers
from signalling.readiness import add_readiness_route
from signalling.room_hub import RoomHub
from signalling.screen_resync import ScreenResync
from signalling.socket_fanout import redis_lifetime, redis_manager
from signalling.sockets import SignallingNamespace
from signalling.store_metrics import MeasuredDeliveryLog, MeasuredRoomStore
from store.redis_relay_directory import RedisRelayDirectory
from store.redis_room_store import RedisRoomStore
from store.redis_webhook_receipts import RedisWebhookReceipts
from store.room_store import InMemoryRoomStore, RoomStore
from store.webhook_receipts import InMemoryWebhookReceipts, WebhookReceipts

logger = logging.getLogger(__name__)

SETTINGS = web.AppKey("settings", Settings)
HUB = web.AppKey("hub", RoomHub)
SOCKETS = web.AppKey("sockets", SignallingNamespace)
# For wiring and tests only: transports never see it (tests/test_one_write_path.py).
ROOM_STORE = web.AppKey("room_store", RoomStore)
EVENT_DELIVERY = web.AppKey("event_delivery", EventDelivery)
METRICS = web.AppKey("metrics", SignallingMetrics)

SWEEP_INTERVAL = 30.0
# Closing every socket at shutdown must leave time to stop within Docker's 10 s.
SOCKETS_CLOSE_TIMEOUT = 2.0
MAX_SOCKET_MESSAGE = 64 * 1024


def make_app(
    settings: Settings,
    *,
    store: RoomStore | None = None,
    relay: RelayService | None = None,
    clock: Clock = utc_now,
    auth_throttle: AuthThrottle | None = None,
) -> web.Application:
    app = web.Application(middlewares=[security_headers, json_errors])
    manager = (
        redis_manager(settings.redis_url, settings.redis_prefix) if settings.redis_url else None
    )
    sio = socketio.AsyncServer(
        client_manager=manager,
        async_mode="aiohttp",
        max_http_buffer_size=MAX_SOCKET_MESSAGE,
        logger=False,
        engineio_logger=False,
    )
    sio.attach(app)
    close_idle_sessions(sio)
    app.on_shutdown.append(_closing_sockets(sio))
    if relay is None and settings.relay_secret and settings.redis_url:
        relay = NodeRelay(
            RedisRelayDirectory.from_url(settings.redis_url, settings.redis_prefix),
            settings.relay_secret,
        )
    if relay is None:
        relay = Relay(ice_server_configs(settings))
    owned_store = None
    if store is None and settings.redis_url:
        store = owned_store = RedisRoomStore.from_url(
            settings.redis_url,
            prefix=settings.redis_prefix,
            retention_after_close=settings.retention_after_close,
        )
    receipts: WebhookReceipts = (
        RedisWebhookReceipts(store.client, prefix=settings.redis_prefix)
        if isinstance(store, RedisRoomStore)
        else InMemoryWebhookReceipts()
    )
    if manager is not None or owned_store is not None:
        # Appended first so it closes last, after everything that uses Redis.
        app.cleanup_ctx.append(redis_lifetime(owned_store, manager))
    store = store or InMemoryRoomStore()
    metrics = app[METRICS] = SignallingMetrics()
    hub = RoomHub(
        MeasuredRoomStore(store, metrics),
        sio,
        relay,
        clock,
        no_show_after=settings.no_show_after,
        away_grace=settings.resume_grace,
    )
    if isinstance(relay, NodeRelay | WorkerRelay):
        relay.on_media_restart = hub.media_restart
        relay.in_call = hub.still_in_call
    app[SETTINGS] = settings
    app[HUB] = hub
    app[ROOM_STORE] = store
    # Failed authentication on every surface of this node spends one budget per source.
    auth_throttle = auth_throttle or AuthThrottle()
    app[SOCKETS] = SignallingNamespace(sio, hub, settings, auth_throttle)

    hook = BookingHook(settings, hub, receipts, auth_throttle)
    app.router.add_post("/hooks/booking", metrics.count_webhooks(hook.handle))
    desk = DeskNamespace(sio, hub, settings, auth_throttle)
    if manager is not None:
        # After a Redis outage, this node's screens get what they missed (socket_fanout.py).
        manager.on_resubscribed = ScreenResync(sio, hub, app[SOCKETS].sessions, desk).resend
    IntegrationApi(settings, hub, auth_throttle).add_routes(app)
    if settings.events_url:
        delivery = EventDelivery(
            MeasuredDeliveryLog(hub.event_log, metrics),
            settings.events_url,
            settings.events_keys,
            clock,
            RetryPolicy(first_delay=settings.events_first_retry),
        )
        hub.on_logged = delivery.notify
        app[EVENT_DELIVERY] = delivery
        app.cleanup_ctx.append(_event_delivery)
    add_page_routes(app, settings.web_root, settings.default_locale)
    add_readiness_route(
        app,
        store.ping if isinstance(store, RedisRoomStore) else None,
        relay.capacity if isinstance(relay, NodeRelay) else None,
    )
    app.cleanup_ctx.append(_relay_lifetime)
    app.cleanup_ctx.append(_sweeper)
    metrics.watch(hub, sio)
    if settings.metrics_addr:
        app.cleanup_ctx.append(listener(metrics, metrics_address(settings.metrics_addr)))
    return app


def _closing_sockets(
    sio: socketio.AsyncServer,
) -> Callable[[web.Application], Awaitable[None]]:
    async def close_all(app: web.Application) -> None:
        # Open WebSockets would hold the shutdown for its whole grace period; pages
        # reconnect (to another node behind a load balancer) and resume their place.
        try:
            async with asyncio.timeout(SOCKETS_CLOSE_TIMEOUT):
                if sio.eio.sockets:  # engineio refuses to disconnect nobody
                    await sio.eio.disconnect()
                await sio.shutdown()
        except TimeoutError:
            # Their disconnect handlers (store, relay) are slow: stop anyway; the
            # away entries expire or resume as after any lost connection.
            logger.warning("sockets not closed within %.0f s at shutdown", SOCKETS_CLOSE_TIMEOUT)

    return close_all


def ice_server_configs(settings: Settings) -> tuple[IceServerConfig, ...]:
    return tuple(IceServerConfig(s.urls, s.username, s.credential) for s in settings.ice_servers)


async def _relay_lifetime(app: web.Application) -> AsyncIterator[None]:
    relay = app[HUB].relay
    if isinstance(relay, WorkerRelay | NodeRelay):
        # Workers are up (relay nodes watched) before the first request needs them.
        await relay.start()
    yield
    await app[HUB].media_recovery.close()
    await relay.close()


async def _event_delivery(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.ensure_future(app[EVENT_DELIVERY].run())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


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
