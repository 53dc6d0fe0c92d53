"""`/readyz`: whether this node can serve new requests (its store answers), and place media.

`/healthz` says the process is alive and stays 200 through a Redis outage, so
an orchestrator does not restart nodes whose calls are still flowing;
`/readyz` turns 503 until Redis answers again, so load balancers send new
people elsewhere meanwhile.

The body also says whether calls can get media: `"media": "ready"` with
`"relays"`, the live relay capacity (relay nodes or serve nodes' workers in
Redis; 1 for this process's own relay), or `"media": "unavailable"` when none is
live. That alone does not turn the answer 503: the waiting room still works,
and every node sees the same relay directory, so taking nodes out would not help.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from signalling import errors
from signalling.http_errors import error_response

logger = logging.getLogger(__name__)

Probe = Callable[[], Awaitable[None]]
# How many relays this node can place rooms on.
MediaProbe = Callable[[], Awaitable[int]]
PROBE_TIMEOUT = 2.0


async def _always_ready() -> None:
    return None


async def _own_relay() -> int:
    return 1


def add_readiness_route(
    app: web.Application, probe: Probe | None, media: MediaProbe | None = None
) -> None:
    check = probe or _always_ready
    relays = media or _own_relay

    async def readyz(request: web.Request) -> web.Response:
        try:
            await asyncio.wait_for(check(), PROBE_TIMEOUT)
        except TimeoutError:
            logger.warning("readiness probe timed out")
            return error_response(errors.STORE_TIMEOUT)
        # StoreUnavailable goes on to the error middleware: 503 `store_unavailable`.
        try:
            live = await asyncio.wait_for(relays(), PROBE_TIMEOUT)
        except Exception as exc:
            logger.warning("readiness: relay capacity unknown: %s", type(exc).__name__)
            live = 0
        body = {"status": "ready", "media": "ready" if live else "unavailable", "relays": live}
        return web.json_response(body, headers={"Cache-Control": "no-store"})

    app.router.add_get("/readyz", readyz)
