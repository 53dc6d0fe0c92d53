"""Booking messages already processed: a narrow port and the in-memory implementation.

A booking system redelivers a message it got no answer for; the receipt of
its first delivery says which appointment it was about, so the redelivery is
answered with that room and applied nothing again.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True, slots=True)
class WebhookReceipt:
    """A processed booking message, remembered so a redelivery is not applied twice."""

    webhook_id: str
    appointment_id: str
    expires_at: datetime


class WebhookReceipts(Protocol):
    async def recall(self, webhook_id: str, now: datetime) -> WebhookReceipt | None:
        """The receipt of `webhook_id` unless it is unknown or expired by `now`."""

    async def remember(self, receipt: WebhookReceipt) -> None:
        """Keep `receipt` until it expires; the first receipt of a webhook id stands."""


class InMemoryWebhookReceipts:
    """One process, nothing to install: the default."""

    def __init__(self) -> None:
        self._receipts: dict[str, WebhookReceipt] = {}
        # Soonest expiry first, so forgetting the expired costs nothing while none is.
        self._expiries: list[tuple[datetime, str]] = []

    async def recall(self, webhook_id: str, now: datetime) -> WebhookReceipt | None:
        self._forget_expired(now)
        receipt = self._receipts.get(webhook_id)
        if receipt is None or receipt.expires_at <= now:
            return None
        return receipt

    async def remember(self, receipt: WebhookReceipt) -> None:
        if receipt.webhook_id in self._receipts:
            return
        self._receipts[receipt.webhook_id] = receipt
        heapq.heappush(self._expiries, (receipt.expires_at, receipt.webhook_id))

    def _forget_expired(self, now: datetime) -> None:
        while self._expiries and self._expiries[0][0] <= now:
            _, webhook_id = heapq.heappop(self._expiries)
            self._receipts.pop(webhook_id, None)
