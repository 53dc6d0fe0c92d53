"""An Engine.IO session that never opens a Socket.IO namespace is closed within seconds."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest

from signalling.app import HUB
from signalling.idle_sessions import CONNECT_TIMEOUT
from tests.conftest import LiveServer


async def engineio_socket(
    session: aiohttp.ClientSession, server: LiveServer
) -> aiohttp.ClientWebSocketResponse:
    ws = await session.ws_connect(server.base_url + "/socket.io/?EIO=4&transport=websocket")
    opening = await ws.receive_str()
    assert opening.startswith("0{"), opening  # Engine.IO OPEN, before any Socket.IO packet
    return ws


async def closed_after(ws: aiohttp.ClientWebSocketResponse, limit: float) -> float:
    started = time.monotonic()
    async with asyncio.timeout(limit):
        while True:
            message = await ws.receive()
            closing = message.type is aiohttp.WSMsgType.TEXT and message.data == "1"
            if closing or message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                # Engine.IO CLOSE ("1"), or the WebSocket itself closing.
                return time.monotonic() - started
            if message.type is aiohttp.WSMsgType.TEXT and message.data == "2":
                await ws.send_str("3")  # Answer pings: only the missing CONNECT may close it.


@pytest.mark.slow
async def test_a_session_that_never_connects_a_namespace_is_closed(
    live_server: LiveServer,
) -> None:
    sio = live_server.app[HUB].sio
    async with aiohttp.ClientSession() as session:
        silent = await engineio_socket(session, live_server)
        assert len(sio.eio.sockets) == 1
        took = await closed_after(silent, CONNECT_TIMEOUT + 5)
        # The server forgot the session: no ping task, no memory held for it.
        assert sio.eio.sockets == {}
    assert took <= CONNECT_TIMEOUT + 2


@pytest.mark.slow
async def test_a_session_that_opens_a_namespace_stays(live_server: LiveServer) -> None:
    room = await live_server.book()
    link = room["links"]["patient"]
    auth = {"room_id": link.split("/c/", 1)[1].split("#", 1)[0], "token": link.split("#", 1)[1]}
    async with aiohttp.ClientSession() as session:
        ws = await engineio_socket(session, live_server)
        await ws.send_str("40" + json.dumps(auth))
        answer = await ws.receive_str()
        assert answer.startswith("40{"), answer  # Socket.IO CONNECT accepted
        with pytest.raises(TimeoutError):
            await closed_after(ws, CONNECT_TIMEOUT + 1.5)
        await ws.close()
