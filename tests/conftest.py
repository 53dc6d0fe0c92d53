from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from signalling.app import make_app
from signalling.config import Settings
from tests.support import make_settings


@pytest.fixture
def settings() -> Settings:
    return make_settings()


@pytest.fixture
async def client(
    aiohttp_client: Callable[[web.Application], Awaitable[TestClient[Any, Any]]],
    settings: Settings,
) -> TestClient[Any, Any]:
    return await aiohttp_client(make_app(settings))
