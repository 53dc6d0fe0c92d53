from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import redis
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestClient, TestServer

from signalling.app import make_app
from signalling.config import Settings
from tests.support import appointment_data, booking_body, browser, make_settings, signed_headers
from tests.support.coturn_server import CoturnServer
from tests.support.redis_server import RedisServer


@pytest.fixture(autouse=True)
def _browser_only_when_marked(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test that launches Chromium without the `browser` marker fails, naming the marker."""
    browser.launch_allowed = request.node.get_closest_marker("browser") is not None
    yield
    browser.launch_allowed = True


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One real redis-server for the whole run (no persistence): tests/support/redis_server.py."""
    server = RedisServer()
    server.start()
    yield server
    server.close()


@pytest.fixture(scope="session")
def coturn() -> Iterator[CoturnServer]:
    """One real coturn with the test-only configuration (loopback peers allowed)."""
    server = CoturnServer()
    server.start()
    yield server
    server.close()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The URL of an empty Redis: a test that stopped the server gets it back running."""
    if not redis_server.running:
        redis_server.start()
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushall()
    return redis_server.url


@pytest.fixture
def settings() -> Settings:
    return make_settings()


@pytest.fixture
async def client(
    aiohttp_client: Callable[[web.Application], Awaitable[TestClient[Any, Any]]],
    settings: Settings,
) -> TestClient[Any, Any]:
    return await aiohttp_client(make_app(settings))


class LiveServer:
    """The real app on a real port, with a helper to book appointments through the webhook."""

    def __init__(self, server: TestServer) -> None:
        self.server = server
        self.base_url = str(server.make_url("/")).rstrip("/")

    @property
    def app(self) -> web.Application:
        return self.server.app

    async def book(self, **kwargs: Any) -> dict[str, Any]:
        body = booking_body("appointment.created", appointment_data(**kwargs))
        async with (
            ClientSession() as session,
            session.post(
                self.base_url + "/hooks/booking", data=body, headers=signed_headers(body)
            ) as response,
        ):
            assert response.status == 201, await response.text()
            document: dict[str, Any] = await response.json()
            return document

    async def send(self, event_type: str, data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        body = booking_body(event_type, data)
        async with (
            ClientSession() as session,
            session.post(
                self.base_url + "/hooks/booking", data=body, headers=signed_headers(body)
            ) as response,
        ):
            return response.status, await response.json()


@pytest.fixture
async def live_server(
    aiohttp_server: Callable[..., Awaitable[TestServer]], settings: Settings
) -> LiveServer:
    server = await aiohttp_server(make_app(settings), host="127.0.0.1")
    return LiveServer(server)
