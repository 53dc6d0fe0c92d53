"""`/readyz`: whether this node can serve new requests (its store answers).

`/healthz` says the process is alive and stays 200 through a Redis outage, so
an orchestrator does not restart nodes whose calls are still flowing;
`/readyz` turns 503 until Redis answers again, so load balancers send new
people elsewhere meanwhile.
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
PROBE_TIMEOUT = 2.0


async def _always_ready() -> None:
    return None


def add_readiness_route(app: web.Application, probe: Probe | None) -> None:
    check = probe or _always_ready

    async def readyz(request: web.Request) -> web.Response:
        try:
            await asyncio.wait_for(check(), PROBE_TIMEOUT)
        except TimeoutError:
            logger.warning("readiness probe timed out")
            return error_response(errors.STORE_TIMEOUT)
        # StoreUnavailable goes on to the error middleware: 503 `store_unavailable`.
        return web.json_response({"status": "ready"}, headers={"Cache-Control": "no-store"})

    app.router.add_get("/readyz", readyz)
