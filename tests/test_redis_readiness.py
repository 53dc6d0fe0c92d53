"""Liveness, readiness and HTTP answers while the real Redis is down and after it returns."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from signalling.app import ROOM_STORE, make_app
from store.redis_room_store import RedisRoomStore
from tests.support import appointment_data, booking_body, make_settings, signed_headers
from tests.support.redis_server import RedisServer

Client = TestClient[Any, Any]


async def post_booking(client: Client, data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    body = booking_body("appointment.created", data)
    response = await client.post("/hooks/booking", data=body, headers=signed_headers(body))
    return response.status, await response.json()


async def test_readyz_follows_redis_and_healthz_does_not(
    aiohttp_client: Callable[[web.Application], Awaitable[Client]],
    redis_server: RedisServer,
    redis_url: str,
) -> None:
    client = await aiohttp_client(make_app(make_settings(redis_url=redis_url)))
    assert client.app is not None
    assert isinstance(client.app[ROOM_STORE], RedisRoomStore)

    ready = await client.get("/readyz")
    assert (ready.status, await ready.json()) == (200, {"status": "ready"})
    status, room = await post_booking(client, appointment_data())
    assert status == 201

    redis_server.stop()
    try:
        health = await client.get("/healthz")
        assert (health.status, await health.json()) == (200, {"status": "ok"})
        ready = await client.get("/readyz")
        assert ready.status == 503
        assert (await ready.json())["error"]["code"] == "store_unavailable"
        # A request that needs the store is refused cleanly, not with a 500.
        status, error = await post_booking(client, appointment_data())
        assert status == 503
        assert error["error"]["code"] == "store_unavailable"
        page = await client.get(f"/c/{room['room_id']}")
        assert page.status == 200
    finally:
        redis_server.start()

    ready = await client.get("/readyz")
    assert (ready.status, await ready.json()) == (200, {"status": "ready"})
    status, _ = await post_booking(client, appointment_data())
    assert status == 201


async def test_without_redis_the_memory_store_is_always_ready(
    aiohttp_client: Callable[[web.Application], Awaitable[Client]],
) -> None:
    client = await aiohttp_client(make_app(make_settings()))

    ready = await client.get("/readyz")

    assert (ready.status, await ready.json()) == (200, {"status": "ready"})


async def test_a_stalled_redis_makes_the_node_unready_and_loses_nothing(
    aiohttp_client: Callable[[web.Application], Awaitable[Client]],
    redis_server: RedisServer,
    redis_url: str,
) -> None:
    store = RedisRoomStore.from_url(redis_url, timeout=1.0)
    client = await aiohttp_client(make_app(make_settings(redis_url=redis_url), store=store))
    data = appointment_data()
    body = booking_body("appointment.created", data)
    headers = signed_headers(body, webhook_id="msg_before")
    created = await client.post("/hooks/booking", data=body, headers=headers)
    assert created.status == 201
    room = await created.json()

    redis_server.freeze()
    try:
        ready = await client.get("/readyz")
        assert ready.status == 503
        assert (await ready.json())["error"]["code"] == "store_unavailable"
        assert (await client.get("/healthz")).status == 200
        status, error = await post_booking(client, appointment_data())
        assert (status, error["error"]["code"]) == (503, "store_unavailable")
    finally:
        redis_server.thaw()

    ready = await client.get("/readyz")
    assert ready.status == 200
    # The room and the webhook receipt are still there: a redelivery is recognised.
    again = await client.post("/hooks/booking", data=body, headers=headers)
    assert again.status == 200
    assert (await again.json())["room_id"] == room["room_id"]
    stored = await store.find_by_appointment(data["appointment_id"])
    assert stored is not None
    assert stored.id == room["room_id"]
    await store.close()
