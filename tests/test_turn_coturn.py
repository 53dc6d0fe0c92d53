"""Minted TURN logins against a real coturn: allocations, relayed data, refusals, hardening."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from aioice import stun
from aioice.turn import create_turn_endpoint

from tests.support.coturn_server import PRODUCTION_CONFIG, CoturnServer
from turn.credentials import TurnCredentials, issue


class Inbox(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: asyncio.Queue[tuple[bytes, Any]] = asyncio.Queue()
        self.errors: asyncio.Queue[Exception] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.received.put_nowait((data, addr))

    def error_received(self, exc: Exception) -> None:
        self.errors.put_nowait(exc)


class Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.transport.sendto(b"echo:" + data, addr)


def login(server: CoturnServer, ttl: timedelta, secret: str | None = None) -> TurnCredentials:
    return issue(secret or server.secret, "entry-test", datetime.now(UTC), ttl)


@asynccontextmanager
async def allocation(server: CoturnServer, credentials: TurnCredentials) -> AsyncIterator[Any]:
    transport, inbox = await asyncio.wait_for(
        create_turn_endpoint(
            Inbox,
            ("127.0.0.1", server.port),
            credentials.username,
            credentials.password,
        ),
        10,
    )
    try:
        yield transport, inbox
    finally:
        transport.close()


@asynccontextmanager
async def echo_peer() -> AsyncIterator[tuple[str, int]]:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
    try:
        yield transport.get_extra_info("sockname")[:2]
    finally:
        transport.close()


async def refusal_code(server: CoturnServer, credentials: TurnCredentials) -> int:
    with pytest.raises(stun.TransactionFailed) as refused:
        async with allocation(server, credentials):
            pass
    code: int = refused.value.response.attributes["ERROR-CODE"][0]
    return code


async def test_a_minted_login_gets_an_allocation_that_relays(coturn: CoturnServer) -> None:
    async with allocation(coturn, login(coturn, timedelta(minutes=10))) as (turn, inbox):
        relayed = turn.get_extra_info("sockname")
        assert relayed[0] == "127.0.0.1"
        assert coturn.min_port <= relayed[1] <= coturn.max_port
        async with echo_peer() as peer:
            turn.sendto(b"hello", peer)
            data, source = await asyncio.wait_for(inbox.received.get(), 5)
    assert data == b"echo:hello"
    assert tuple(source) == tuple(peer)


async def test_an_expired_login_is_refused(coturn: CoturnServer) -> None:
    expired = login(coturn, timedelta(seconds=-5))

    assert await refusal_code(coturn, expired) == 401


async def test_a_login_signed_with_another_secret_is_refused(coturn: CoturnServer) -> None:
    forged = login(coturn, timedelta(minutes=10), secret="not-the-shared-secret")

    assert await refusal_code(coturn, forged) == 401


async def test_production_config_refuses_to_relay_to_private_addresses() -> None:
    server = CoturnServer(PRODUCTION_CONFIG)
    server.start()
    try:
        async with (
            allocation(server, login(server, timedelta(minutes=10))) as (turn, inbox),
            echo_peer() as peer,
        ):
            turn.sendto(b"hello", peer)
            error = await asyncio.wait_for(inbox.errors.get(), 5)
            assert inbox.received.empty()
    finally:
        server.close()
    # Binding a channel to a loopback peer is forbidden (403): nothing was relayed.
    assert isinstance(error, stun.TransactionFailed)
    assert error.response.attributes["ERROR-CODE"][0] == 403
