"""The WebhookReceipts contract, run against every implementation.

To run it against another implementation, add to `RECEIPTS` a function of the
pytest request returning an async context manager that yields fresh, empty receipts.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta

import pytest

from store.redis_webhook_receipts import RedisWebhookReceipts
from store.webhook_receipts import InMemoryWebhookReceipts, WebhookReceipt, WebhookReceipts

START = datetime(2030, 3, 4, 10, 0, tzinfo=UTC)


@asynccontextmanager
async def memory_receipts(request: pytest.FixtureRequest) -> AsyncIterator[WebhookReceipts]:
    yield InMemoryWebhookReceipts()


@asynccontextmanager
async def redis_receipts(request: pytest.FixtureRequest) -> AsyncIterator[WebhookReceipts]:
    # Asked for lazily so the memory runs never start redis-server.
    url: str = request.getfixturevalue("redis_url")
    receipts = RedisWebhookReceipts.from_url(url, prefix="contract:")
    try:
        yield receipts
    finally:
        await receipts.close()


RECEIPTS: list[object] = [
    pytest.param(memory_receipts, id="memory"),
    pytest.param(redis_receipts, id="redis"),
]


@pytest.fixture(params=RECEIPTS)
async def receipts(request: pytest.FixtureRequest) -> AsyncIterator[WebhookReceipts]:
    factory: Callable[[pytest.FixtureRequest], AbstractAsyncContextManager[WebhookReceipts]] = (
        request.param
    )
    async with factory(request) as fresh:
        yield fresh


async def test_receipts_are_remembered_until_they_expire(receipts: WebhookReceipts) -> None:
    expires_at = START + timedelta(days=1)
    receipt = WebhookReceipt("msg_1", "apt-1", expires_at)

    assert await receipts.recall("msg_1", START) is None
    await receipts.remember(receipt)

    assert await receipts.recall("msg_1", START) == receipt
    assert await receipts.recall("msg_1", expires_at - timedelta(seconds=1)) == receipt
    assert await receipts.recall("msg_1", expires_at) is None
    assert await receipts.recall("msg_1", expires_at + timedelta(days=1)) is None
    assert await receipts.recall("msg_2", START) is None


async def test_receipts_are_kept_apart(receipts: WebhookReceipts) -> None:
    one = WebhookReceipt("msg_1", "apt-1", START + timedelta(hours=1))
    two = WebhookReceipt("msg_2", "apt-2", START + timedelta(hours=2))
    await receipts.remember(one)
    await receipts.remember(two)

    assert await receipts.recall("msg_1", START) == one
    assert await receipts.recall("msg_2", START) == two
    assert await receipts.recall("msg_1", START + timedelta(hours=1)) is None
    assert await receipts.recall("msg_2", START + timedelta(hours=1)) == two


async def test_the_first_receipt_of_a_webhook_stands(receipts: WebhookReceipts) -> None:
    first = WebhookReceipt("msg_1", "apt-1", START + timedelta(days=1))
    racing = [WebhookReceipt("msg_1", f"apt-{n}", START + timedelta(days=2)) for n in range(2, 12)]
    await receipts.remember(first)
    await asyncio.gather(*(receipts.remember(receipt) for receipt in racing))

    assert await receipts.recall("msg_1", START) == first


async def test_forgetting_an_expired_receipt_keeps_the_others(receipts: WebhookReceipts) -> None:
    soon = WebhookReceipt("msg_soon", "apt-1", START + timedelta(minutes=1))
    later = WebhookReceipt("msg_later", "apt-2", START + timedelta(hours=1))
    await receipts.remember(later)
    await receipts.remember(soon)

    assert await receipts.recall("msg_soon", START + timedelta(minutes=2)) is None
    assert await receipts.recall("msg_later", START + timedelta(minutes=2)) == later


async def test_the_memory_receipts_forget_what_expired() -> None:
    """One process running for months must not keep every message id it ever saw."""
    receipts = InMemoryWebhookReceipts()
    for n in range(100):
        await receipts.remember(WebhookReceipt(f"msg_{n}", "apt-1", START + timedelta(hours=n)))

    await receipts.recall("anything", START + timedelta(hours=90))

    # Those expiring at 91h..99h are left.
    assert len(receipts._receipts) == 9
    assert len(receipts._expiries) == 9
