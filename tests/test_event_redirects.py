"""Outgoing events never follow a redirect: the signed body goes only to the configured URL.

A redirect could carry the booking system's events (and their signature) to
whatever host the answer names; it is a failed attempt, retried as any other.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from aiohttp import web
from aiohttp.test_utils import TestServer

from rooms.consultation_events import ConsultationEvent, ConsultationEventType
from signalling.event_delivery import EventDelivery, RetryPolicy
from store.event_log import InMemoryEventLog

KEY = base64.b64decode(base64.b64encode(b"e" * 32))


class RecordingLog(InMemoryEventLog):
    """The real in-memory log, which also says when an attempt's outcome is stored."""

    def __init__(self) -> None:
        super().__init__()
        self.recorded = asyncio.Event()

    async def delivered(self, event_id: str, now: datetime) -> None:
        await super().delivered(event_id, now)
        self.recorded.set()

    async def attempt_failed(
        self, event_id: str, error: str, retry_at: datetime | None, now: datetime
    ) -> None:
        await super().attempt_failed(event_id, error, retry_at, now)
        self.recorded.set()


async def test_a_redirect_is_a_failed_attempt_and_its_target_is_never_called(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> None:
    redirected_to: list[str] = []
    attempted = asyncio.Event()

    async def elsewhere(request: web.Request) -> web.Response:
        redirected_to.append(request.method)
        return web.Response(status=204)

    async def events(request: web.Request) -> web.Response:
        await request.read()
        attempted.set()
        # 307 and 308 would make a client that follows redirects POST the body again.
        raise web.HTTPTemporaryRedirect("/elsewhere")

    app = web.Application()
    app.router.add_post("/events", events)
    app.router.add_route("*", "/elsewhere", elsewhere)
    server = await aiohttp_server(app, host="127.0.0.1")

    log = RecordingLog()
    now = datetime.now(UTC)
    [logged] = await log.append(
        [ConsultationEvent(ConsultationEventType.STARTED, "room-1", "apt-1", now)]
    )
    delivery = EventDelivery(
        log,
        str(server.make_url("/events")),
        (KEY,),
        lambda: datetime.now(UTC),
        RetryPolicy(first_delay=timedelta(hours=1)),
    )
    worker = asyncio.ensure_future(delivery.run())
    try:
        await asyncio.wait_for(attempted.wait(), 10)
        await asyncio.wait_for(log.recorded.wait(), 10)
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)

    [event] = await log.after(None, 1)
    assert event.id == logged.id
    assert event.status.value == "pending"
    assert event.last_error == "http_307"
    assert redirected_to == []
