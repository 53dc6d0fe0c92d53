"""Room ids are a keyed function of the appointment: links outlive a lost Redis."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as redis
from aiohttp.test_utils import TestServer

from signalling import tokens
from signalling.app import make_app
from tests.conftest import LiveServer
from tests.support import TOKEN_SECRET, appointment_data, make_settings
from tests.support.synthetic import SyntheticParticipant


def test_the_room_id_is_keyed_stable_and_url_safe() -> None:
    one = tokens.room_id_for(TOKEN_SECRET, "apt-1")
    assert one == tokens.room_id_for(TOKEN_SECRET, "apt-1")
    assert one != tokens.room_id_for(TOKEN_SECRET, "apt-2")
    # Another deployment (another secret) cannot tell which appointment a room is.
    assert one != tokens.room_id_for("another-secret-" * 3, "apt-1")
    assert len(one) == 22
    assert set(one) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


async def test_links_sent_before_redis_lost_its_data_work_once_the_booking_is_redelivered(
    aiohttp_server: Callable[..., Awaitable[TestServer]], redis_url: str
) -> None:
    prefix = f"ids-{secrets.token_hex(4)}:"
    app = make_app(make_settings(redis_url=redis_url, redis_prefix=prefix))
    server = LiveServer(await aiohttp_server(app, host="127.0.0.1"))
    data = appointment_data()
    status, room = await server.send("appointment.created", data)
    assert status == 201
    sent_link = server.base_url + "/c/" + room["links"]["patient"].split("/c/", 1)[1]

    # What a Redis restart without persistence leaves: nothing under the prefix.
    direct: Any = redis.Redis.from_url(redis_url)
    try:
        keys = [key async for key in direct.scan_iter(match=f"{prefix}*")]
        assert keys
        await direct.delete(*keys)
    finally:
        await direct.aclose()

    # The booking system sends the appointment again (a new delivery, the same booking).
    status, again = await server.send("appointment.created", data)
    assert status == 201, "the room is created anew"
    assert again["room_id"] == room["room_id"]

    # The link sent before the loss opens the room and checks the patient in.
    patient = SyntheticParticipant(server.base_url, sent_link, "patient")
    try:
        await patient.connect()
        await patient.check_in()
    finally:
        await patient.close()
