"""WebhookReceipts on Redis: a redelivery reaching another signalling node is still known.

One key per receipt, `webhook:<webhook id>` under the prefix (JSON), which
Redis expires on its own with the receipt: nothing to sweep.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta

import redis.asyncio as redis

from store.redis_client import DEFAULT_PREFIX, redis_client, unavailable_on_failure
from store.webhook_receipts import WebhookReceipt

# A floor on key lifetimes, as for rooms: a receipt already expired by the
# app's clock still lives a little, so clocks a little apart agree.
MIN_KEY_LIFETIME = timedelta(minutes=10)


class RedisWebhookReceipts:
    def __init__(self, client: redis.Redis, *, prefix: str = DEFAULT_PREFIX) -> None:
        self._redis = client
        self._prefix = prefix

    @classmethod
    def from_url(
        cls, url: str, *, prefix: str = DEFAULT_PREFIX, timeout: float = 2.0
    ) -> RedisWebhookReceipts:
        return cls(redis_client(url, timeout), prefix=prefix)

    async def close(self) -> None:
        await self._redis.aclose()

    def _key(self, webhook_id: str) -> str:
        return f"{self._prefix}webhook:{webhook_id}"

    async def recall(self, webhook_id: str, now: datetime) -> WebhookReceipt | None:
        async with unavailable_on_failure("store"):
            raw = await self._redis.get(self._key(webhook_id))
        if raw is None:
            return None
        data = json.loads(raw)
        receipt = WebhookReceipt(
            webhook_id=webhook_id,
            appointment_id=data["appointment_id"],
            expires_at=datetime.fromisoformat(data["expires_at"]),
        )
        return None if receipt.expires_at <= now else receipt

    async def remember(self, receipt: WebhookReceipt) -> None:
        value = json.dumps(
            {"appointment_id": receipt.appointment_id, "expires_at": receipt.expires_at.isoformat()}
        )
        expires_at_ms = int(
            max(receipt.expires_at.timestamp(), time.time() + MIN_KEY_LIFETIME.total_seconds())
            * 1000
        )
        async with unavailable_on_failure("store"):
            # NX: the first delivery's receipt stands; a racing duplicate does not overwrite it.
            await self._redis.set(self._key(receipt.webhook_id), value, nx=True, pxat=expires_at_ms)
