"""Security review: logs keep no client address, the desk answers a store outage cleanly."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import socketio
from aiohttp import web
from aiohttp.test_utils import TestServer

from signalling import cli, tokens
from signalling.app import HUB, ROOM_STORE
from store.errors import StoreUnavailable
from tests.conftest import LiveServer
from tests.support import TOKEN_SECRET
from tests.support.polling import eventually, stays_true


@pytest.fixture
def cli_logging() -> Iterator[None]:
    server = logging.getLogger("aiohttp.server")
    before = list(server.filters)
    levels = {name: logging.getLogger(name).level for name in ("aiortc", "aioice")}
    cli.configure_logging("INFO")
    yield
    server.filters[:] = before
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


async def test_malformed_request_error_does_not_log_client_address(
    cli_logging: None,
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    app = web.Application()
    server = await aiohttp_server(app, host="127.0.0.1")
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    # A header line without a colon: aiohttp answers 400 and logs an ERROR.
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nNot a header\r\n\r\n")
    await writer.drain()
    assert (await reader.read(100)).split(b"\r\n")[0].endswith(b"400 Bad Request")
    writer.close()
    records = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert records, "aiohttp logged nothing: the probe no longer exercises the path"
    for record in records:
        assert "127.0.0.1" not in record.getMessage()


async def _desk(
    server: LiveServer, lifetime: timedelta = timedelta(hours=1)
) -> socketio.AsyncClient:
    now = datetime.now(UTC)
    token = tokens.mint_desk(
        TOKEN_SECRET,
        practitioner_id="prac-1",
        not_before=now - timedelta(minutes=1),
        expires_at=now + lifetime,
    )
    desk = socketio.AsyncClient()
    await desk.connect(
        server.base_url, auth={"token": token}, namespaces=["/desk"], transports=["websocket"]
    )
    return desk


async def test_desk_answers_store_unavailable_without_a_traceback(
    live_server: LiveServer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    room = await live_server.book()
    desk = await _desk(live_server)
    try:

        async def down(*args: Any) -> None:
            raise StoreUnavailable()

        monkeypatch.setattr(live_server.app[ROOM_STORE], "get", down)
        ack = await desk.call(
            "admit", {"room_id": room["room_id"], "entry_id": "x" * 12}, namespace="/desk"
        )
        assert ack["ok"] is False
        assert ack["error"]["code"] == "store_unavailable"
        assert not [r for r in caplog.records if r.exc_info]
    finally:
        await desk.disconnect()


async def test_an_open_desk_is_disconnected_when_its_link_expires(
    live_server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    await live_server.book()
    desk = await _desk(live_server, lifetime=timedelta(hours=1))
    received: list[object] = []
    desk.on("desk", received.append, namespace="/desk")
    try:
        assert (await desk.call("refresh", {}, namespace="/desk"))["ok"]
        hub = live_server.app[HUB]
        real = hub.clock
        # The working day is over: the app's clock moves past the link's expiry.
        monkeypatch.setattr(hub, "clock", lambda: real() + timedelta(hours=1, minutes=1))
        # Gone: no more names pushed to a desk left open past its working day.
        await eventually(lambda: "/desk" not in desk.namespaces)
        # Back to the present so the booking system's signed webhook is on time again.
        monkeypatch.setattr(hub, "clock", real)
        count = len(received)
        await live_server.book()
        await stays_true(lambda: len(received) == count, for_seconds=0.5)
    finally:
        await desk.disconnect()


async def test_an_expired_desk_cannot_act(
    live_server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    room = await live_server.book()
    desk = await _desk(live_server)
    try:
        hub = live_server.app[HUB]
        real = hub.clock
        monkeypatch.setattr(hub, "clock", lambda: real() + timedelta(hours=2))
        ack = await desk.call("refresh", {}, namespace="/desk")
        assert ack["ok"] is False
        assert ack["error"]["code"] == "room_closed"
        ack = await desk.call("end", {"room_id": room["room_id"]}, namespace="/desk")
        assert ack["ok"] is False
    finally:
        await desk.disconnect()
