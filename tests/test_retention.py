"""A room and its names are kept `TELECONSULT_RETENTION_HOURS` after its window, no longer.

In memory the sweeper forgets it (tested on the app's injectable clock); in
Redis the keys carry the deadline themselves, so nothing outlives it even if
no node runs.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio as redis
from aiohttp.test_utils import TestClient

from signalling.app import HUB, make_app
from signalling.config import ConfigError, settings_from_env
from tests.support import WEBHOOK_SECRET, booking_body, make_settings, signed_headers

API_KEY = "r" * 32


def test_retention_hours_come_from_the_environment() -> None:
    base = {"TELECONSULT_TOKEN_SECRET": "t" * 40, "TELECONSULT_WEBHOOK_SECRET": WEBHOOK_SECRET}
    assert settings_from_env(base).retention_after_close == timedelta(hours=24)
    chosen = settings_from_env({**base, "TELECONSULT_RETENTION_HOURS": "3"})
    assert chosen.retention_after_close == timedelta(hours=3)


@pytest.mark.parametrize("value", ["two", "1.5", "-1"])
def test_a_bad_retention_names_the_setting(value: str) -> None:
    with pytest.raises(ConfigError, match="TELECONSULT_RETENTION_HOURS"):
        settings_from_env(
            {
                "TELECONSULT_TOKEN_SECRET": "t" * 40,
                "TELECONSULT_WEBHOOK_SECRET": WEBHOOK_SECRET,
                "TELECONSULT_RETENTION_HOURS": value,
            }
        )


async def book(client: TestClient[Any, Any], data: dict[str, Any]) -> dict[str, Any]:
    body = booking_body("appointment.created", data)
    response = await client.post("/hooks/booking", data=body, headers=signed_headers(body))
    assert response.status == 201, await response.text()
    document: dict[str, Any] = await response.json()
    return document


def appointment(starts_at: datetime) -> dict[str, Any]:
    return {
        "appointment_id": f"apt-{secrets.token_hex(4)}",
        "practitioner": {"id": "prac-1", "name": "Dr Bernard"},
        "patient": {"id": "pat-1", "name": "Alice Martin"},
        "starts_at": starts_at.isoformat(),
        "ends_at": (starts_at + timedelta(minutes=20)).isoformat(),
    }


async def test_memory_forgets_a_room_once_its_retention_has_passed(
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]],
) -> None:
    now = [datetime.now(UTC)]
    settings = make_settings(retention_after_close=timedelta(hours=3), api_key=API_KEY)
    app = make_app(settings, clock=lambda: now[0])
    client = await aiohttp_client(app)
    room = await book(client, appointment(now[0] + timedelta(minutes=5)))
    closes_at = datetime.fromisoformat(room["closes_at"])
    auth = {"Authorization": f"Bearer {API_KEY}"}

    async def kept() -> bool:
        response = await client.get(f"/api/v1/rooms/{room['room_id']}", headers=auth)
        assert response.status in (200, 404)
        return response.status == 200

    now[0] = closes_at + timedelta(hours=3) - timedelta(minutes=1)
    await app[HUB].sweep(settings.retention_after_close)
    assert await kept(), "forgotten before its retention ended"

    now[0] = closes_at + timedelta(hours=3, minutes=1)
    await app[HUB].sweep(settings.retention_after_close)
    assert not await kept(), "kept past its retention"


async def test_redis_keys_expire_when_the_retention_ends(
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]], redis_url: str
) -> None:
    prefix = f"retention-{secrets.token_hex(4)}:"
    settings = make_settings(
        redis_url=redis_url, redis_prefix=prefix, retention_after_close=timedelta(hours=3)
    )
    client = await aiohttp_client(make_app(settings))
    room = await book(client, appointment(datetime.now(UTC) + timedelta(minutes=5)))
    deadline = datetime.fromisoformat(room["closes_at"]) + timedelta(hours=3)

    direct = redis.Redis.from_url(redis_url)
    try:
        expiry_ms = await direct.pexpiretime(f"{prefix}room:{room['room_id']}")
        appointment_expiry_ms = await direct.pexpiretime(
            f"{prefix}appointment:{room['appointment_id']}"
        )
    finally:
        await direct.aclose()
    assert expiry_ms == int(deadline.timestamp() * 1000)
    assert appointment_expiry_ms == expiry_ms
