"""Rate limits over real sockets: events per connection and per link, connects per link, and
failed authentication per source (Socket.IO tokens, webhook signatures, API keys)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import socketio
from aiohttp import ClientSession, TCPConnector

from signalling.auth_throttle import FAILED_AUTH
from signalling.config import Settings
from signalling.socket_limits import CONNECT, DEFAULT_LIMIT, LINK_FACTOR, MESSAGE
from tests.conftest import LiveServer
from tests.support import booking_body, make_settings, room_id_of, signed_headers
from tests.test_desk import API_KEY, Desk, book_for, desk_link

ACTIONS = DEFAULT_LIMIT.budget.burst


@pytest.fixture
def settings() -> Settings:
    return make_settings(api_key=API_KEY)


@asynccontextmanager
async def from_address(address: str) -> AsyncIterator[ClientSession]:
    """HTTP (and WebSockets) from another loopback address: another source to the server."""
    async with ClientSession(connector=TCPConnector(local_addr=(address, 0))) as session:
        yield session


class Page:
    """One raw connection on a join link, acks kept as they come."""

    def __init__(self, server: LiveServer, link: str, http: ClientSession | None = None) -> None:
        self.server = server
        self.room_id = room_id_of(link)
        self.token = link.split("#", 1)[1]
        self.sio = (
            socketio.AsyncClient(reconnection=False)
            if http is None
            else socketio.AsyncClient(reconnection=False, http_session=http)
        )
        self.refusal: dict[str, Any] | None = None
        self.sio.on("connect_error", self._refused)

    async def _refused(self, data: Any) -> None:
        self.refusal = data.get("data") if isinstance(data, dict) else {"message": str(data)}

    async def connect(self, token: str | None = None) -> bool:
        try:
            await self.sio.connect(
                self.server.base_url,
                auth={"token": self.token if token is None else token, "room_id": self.room_id},
                transports=["websocket"],
                wait_timeout=10,
            )
        except socketio.exceptions.ConnectionError:
            return False
        return True

    async def call(self, event: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
        ack: dict[str, Any] = await self.sio.call(event, data or {}, timeout=10)
        return ack

    async def close(self) -> None:
        await self.sio.disconnect()


def limited(ack: dict[str, Any]) -> bool:
    return not ack["ok"] and ack["error"]["code"] == "rate_limited"


async def test_a_flood_of_actions_on_one_connection_is_refused_after_the_burst(
    live_server: LiveServer,
) -> None:
    room = await live_server.book()
    page = Page(live_server, room["links"]["patient"])
    assert await page.connect()
    try:
        acks = [await page.call("check_in") for _ in range(ACTIONS + 10)]
        assert not any(limited(ack) for ack in acks[:ACTIONS])
        refused = [ack for ack in acks[ACTIONS:] if limited(ack)]
        assert len(refused) >= 8  # the sustained rate lets one or two through meanwhile
        error = refused[-1]["error"]
        assert set(error) == {"code", "message", "retry_after"}
        assert isinstance(error["retry_after"], int)
        assert 1 <= error["retry_after"] <= 3
        # Another action class keeps its own budget: the limit is not a lock-out.
        assert not limited(await page.call("publish", {"sdp": "x"}))
    finally:
        await page.close()


async def test_the_link_has_its_own_budget_across_connections(live_server: LiveServer) -> None:
    room = await live_server.book()
    link = room["links"]["practitioner"]
    # One connection after the other spend the link's budget (twice a connection's)...
    for _ in range(LINK_FACTOR):
        page = Page(live_server, link)
        assert await page.connect()
        acks = [await page.call("open_consultation") for _ in range(ACTIONS)]
        assert not any(limited(ack) for ack in acks)
        await page.close()
    # ...so a fresh connection on the same link, its own budget whole, is soon refused.
    page = Page(live_server, link)
    assert await page.connect()
    try:
        acks = [await page.call("open_consultation") for _ in range(6)]
        assert any(limited(ack) for ack in acks)
        # Another link of the same room is not affected.
        other = Page(live_server, room["links"]["patient"])
        assert await other.connect()
        assert not limited(await other.call("check_in"))
        await other.close()
    finally:
        await page.close()


async def test_desk_events_are_limited_too(live_server: LiveServer) -> None:
    await book_for(live_server, "prac-limits")
    desk = Desk(live_server, await desk_link(live_server, "prac-limits"))
    await desk.connect()
    try:
        acks = [await desk.call("message", {"text": "Retard"}) for _ in range(MESSAGE.budget.burst)]
        assert all(ack["ok"] for ack in acks)
        refused = await desk.call("message", {"text": "Retard"})
        assert refused["error"]["code"] == "rate_limited"
        assert refused["error"]["retry_after"] >= 1
        # Refreshing is another class: still answered.
        assert (await desk.call("refresh", {}))["ok"]
    finally:
        await desk.close()


async def test_a_flood_of_connects_on_one_link_is_refused_after_a_burst(
    live_server: LiveServer,
) -> None:
    room = await live_server.book()
    link = room["links"]["patient"]
    outcomes = []
    for _ in range(CONNECT.burst + 10):
        page = Page(live_server, link)
        outcomes.append(await page.connect())
        await page.close()
    assert all(outcomes[: CONNECT.burst])
    assert outcomes[CONNECT.burst :].count(False) >= 8
    page = Page(live_server, link)
    assert not await page.connect()
    assert page.refusal is not None
    assert page.refusal["code"] == "rate_limited"
    assert page.refusal["retry_after"] >= 1
    # Other links are not affected.
    practitioner = Page(live_server, room["links"]["practitioner"])
    assert await practitioner.connect()
    await practitioner.close()


async def test_bad_tokens_on_connect_are_throttled_per_source(live_server: LiveServer) -> None:
    room = await live_server.book()
    link = room["links"]["patient"]
    for _ in range(FAILED_AUTH.burst):
        page = Page(live_server, link)
        assert not await page.connect(token="not-a-token")
        assert page.refusal is not None
        assert page.refusal["code"] == "token_invalid"
    page = Page(live_server, link)
    assert not await page.connect(token="not-a-token")
    assert page.refusal is not None
    assert page.refusal["code"] == "rate_limited"
    # A blocked source is refused whatever it presents, its own good links included...
    page = Page(live_server, link)
    assert not await page.connect()
    assert page.refusal is not None
    assert page.refusal["code"] == "rate_limited"
    # ...while another source, which failed nothing, connects.
    async with from_address("127.0.0.2") as http:
        other = Page(live_server, link, http)
        assert await other.connect()
        await other.close()


async def test_bad_webhook_signatures_get_429_after_a_burst(live_server: LiveServer) -> None:
    url = live_server.base_url + "/hooks/booking"
    body = booking_body("appointment.created", {"appointment_id": "apt-x"})
    headers = {**signed_headers(body), "webhook-signature": "v1,AAAA"}
    async with from_address("127.0.0.3") as http:
        for _ in range(FAILED_AUTH.burst):
            async with http.post(url, data=body, headers=headers) as response:
                assert response.status == 401
        async with http.post(url, data=body, headers=signed_headers(body)) as response:
            assert response.status == 429
            assert int(response.headers["Retry-After"]) >= 1
            error = (await response.json())["error"]
            assert error["code"] == "rate_limited"
            assert error["retry_after"] == int(response.headers["Retry-After"])
    # The booking system, signing correctly from its own address, is not slowed.
    room = await live_server.book()
    assert room["room_id"]


async def test_bad_api_keys_get_429_after_a_burst(live_server: LiveServer) -> None:
    url = f"{live_server.base_url}/api/v1/practitioners/prac-1/desk-link"
    async with from_address("127.0.0.4") as http:
        for _ in range(FAILED_AUTH.burst):
            async with http.post(url, headers={"Authorization": "Bearer wrong"}) as response:
                assert response.status == 401
        async with http.post(url, headers={"Authorization": f"Bearer {API_KEY}"}) as response:
            assert response.status == 429
            assert "Retry-After" in response.headers
            assert (await response.json())["error"]["code"] == "rate_limited"
    # Good keys from elsewhere: served, and they spend nothing.
    for _ in range(FAILED_AUTH.burst + 5):
        await desk_link(live_server, "prac-1")


async def test_bad_desk_tokens_on_connect_are_throttled_per_source(
    live_server: LiveServer,
) -> None:
    good = (await desk_link(live_server, "prac-desk")).split("#", 1)[1]

    async def desk_refusal(http: ClientSession, token: str) -> dict[str, Any] | None:
        sio = socketio.AsyncClient(reconnection=False, http_session=http)
        refusals: list[dict[str, Any]] = []
        # The refusal travels as {"message", "data": {code, ...}}.
        sio.on("connect_error", lambda data: refusals.append(data["data"]), namespace="/desk")
        try:
            await sio.connect(
                live_server.base_url,
                namespaces=["/desk"],
                auth={"token": token},
                transports=["websocket"],
                wait_timeout=10,
            )
        except socketio.exceptions.ConnectionError:
            return refusals[0] if refusals else {}
        await sio.disconnect()
        return None

    async with from_address("127.0.0.5") as http:
        assert await desk_refusal(http, good) is None
        for _ in range(FAILED_AUTH.burst):
            refused = await desk_refusal(http, "not-a-desk-token")
            assert refused is not None
            assert refused["code"] == "token_invalid"
        refused = await desk_refusal(http, good)
        assert refused is not None
        assert refused["code"] == "rate_limited"
        assert refused["retry_after"] >= 1
    # Another source's desk connects.
    desk = Desk(live_server, "#" + good)
    await desk.connect()
    await desk.close()
