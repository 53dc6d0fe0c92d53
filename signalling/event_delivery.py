"""Delivers consultation events to `TELECONSULT_EVENTS_URL`, at least once, in order per room.

Each attempt is a signed Standard Webhooks POST (same id and body every time,
fresh timestamp and signature). Any 2xx is success; anything else (including
a timeout or a refused connection) is retried with exponential backoff and
full jitter, so a booking system coming back after an outage is not hit by
every retry at the same second.

Several nodes may run this worker on one shared log: `EventLog.due` claims
the events it hands out, for longer than an attempt can last, so each
attempt of an event is made by one node at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiohttp

from signalling.clock import Clock
from signalling.webhook_signature import sign_all
from store.event_log import EventLog, LoggedEvent

logger = logging.getLogger(__name__)

# While the log cannot be read (Redis down), how long to wait before looking again.
UNAVAILABLE_PAUSE = 5.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    first_delay: timedelta = timedelta(seconds=5)
    max_delay: timedelta = timedelta(hours=1)
    # The Standard Webhooks reference schedule retries for about a day.
    give_up_after: timedelta = timedelta(hours=24)
    attempt_timeout: timedelta = timedelta(seconds=10)

    @property
    def lease(self) -> timedelta:
        """How long a claimed event is ours: an attempt plus ample time to record its outcome."""
        return self.attempt_timeout * 3

    def retry_at(self, event: LoggedEvent, attempts: int, now: datetime) -> datetime | None:
        """When to try again after `attempts` failures, or None to give up."""
        if now - event.occurred_at >= self.give_up_after:
            return None
        ceiling = min(self.max_delay, self.first_delay * (1 << min(attempts - 1, 30)))
        delay = ceiling * random.uniform(0.5, 1.0)
        return now + delay


class EventDelivery:
    def __init__(
        self,
        log: EventLog,
        url: str,
        keys: Sequence[bytes],
        clock: Clock,
        policy: RetryPolicy | None = None,
        concurrency: int = 4,
    ) -> None:
        self.log = log
        self.url = url
        self.keys = tuple(keys)
        self.clock = clock
        self.policy = policy or RetryPolicy()
        self._wake = asyncio.Event()
        self.concurrency = concurrency
        self._slots = asyncio.Semaphore(concurrency)
        self._session: aiohttp.ClientSession | None = None

    def notify(self) -> None:
        """New events are in the log: look now rather than at the next timer."""
        self._wake.set()

    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self.policy.attempt_timeout.total_seconds())
        async with aiohttp.ClientSession(timeout=timeout) as session:
            self._session = session
            while True:
                try:
                    await self.deliver_due()
                except Exception:
                    logger.exception("event delivery round failed")
                await self._sleep()

    async def _sleep(self) -> None:
        self._wake.clear()
        wait = 60.0
        try:
            next_at = await self.log.next_attempt_at()
        except Exception as exc:
            # Keep the worker alive through a store outage; events wait in the log.
            logger.warning("event log unavailable: %s", type(exc).__name__)
            next_at, wait = None, UNAVAILABLE_PAUSE
        if next_at is not None:
            wait = min(wait, max((next_at - self.clock()).total_seconds(), 0.0))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=wait)

    async def deliver_due(self) -> None:
        # No more claims than attempts that can run at once: a claim waiting for a slot
        # would use up its lease before its POST even starts.
        due = await self.log.due(self.clock(), limit=self.concurrency, lease=self.policy.lease)
        if not due:
            return
        outcomes = await asyncio.gather(
            *(self._attempt(event) for event in due), return_exceptions=True
        )
        for event, outcome in zip(due, outcomes, strict=True):
            if isinstance(outcome, Exception):
                # Its claim lapses on its own and another round retries the event.
                logger.warning(
                    "event %s attempt not recorded: %s", event.id, type(outcome).__name__
                )
            elif isinstance(outcome, BaseException):
                raise outcome

    async def _attempt(self, event: LoggedEvent) -> None:
        recorded = False
        try:
            await self._post_and_record(event)
            recorded = True
        finally:
            if not recorded:
                # Cancelled or failed before an outcome was stored: let another node
                # retry now rather than when the claim lapses.
                with contextlib.suppress(Exception):
                    await self.log.release(event.id)

    async def _post_and_record(self, event: LoggedEvent) -> None:
        assert self._session is not None
        async with self._slots:
            body = event.body()
            timestamp = int(self.clock().timestamp())
            headers = {
                "content-type": "application/json",
                "webhook-id": event.id,
                "webhook-timestamp": str(timestamp),
                "webhook-signature": sign_all(self.keys, event.id, timestamp, body),
            }
            error: str | None = None
            try:
                # A redirect is an answer, not a new destination: following it would
                # hand the signed event to whatever host the answer names.
                async with self._session.post(
                    self.url, data=body, headers=headers, allow_redirects=False
                ) as response:
                    await response.read()
                    if not 200 <= response.status < 300:
                        error = f"http_{response.status}"
            except TimeoutError:
                error = "timeout"
            except aiohttp.ClientError as exc:
                error = "connection_failed: " + type(exc).__name__
            now = self.clock()
            if error is None:
                await self.log.delivered(event.id, now)
                return
            retry_at = self.policy.retry_at(event, event.attempts + 1, now)
            await self.log.attempt_failed(event.id, error, retry_at, now)
            if retry_at is None:
                logger.warning("event %s %s given up after %s", event.id, event.type, error)
            else:
                logger.info("event %s delivery failed (%s), retrying", event.id, error)
