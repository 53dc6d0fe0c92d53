"""Failed authentication, throttled per source: bad webhook signatures, API keys, link tokens.

Only failures spend a source's budget: a booking system that signs correctly
is never slowed by anyone, and a source that failed too often is refused
(429 `rate_limited`, or a refused Socket.IO connection) until its budget
refills, whatever it presents, so guessing gains nothing from speed.

The source is the peer address of the TCP connection (`request.remote`).
Nothing here trusts `X-Forwarded-For`: behind a reverse proxy every client is
the proxy's address and shares its budget (README, "Limits"). Addresses live
only in this bounded table, never in a log line.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from signalling.errors import RateLimited
from signalling.rate_limits import Budget, Clock, TokenBuckets, retry_after

# A typo'd key or a rotated secret fails a few times; a guesser fails thousands.
FAILED_AUTH = Budget(burst=20, per_second=1 / 3)
MAX_SOURCES = 4096
FAILED_AUTH_MESSAGE = "Too many failed attempts from your address; try again later."


class AuthThrottle:
    def __init__(self, budget: Budget = FAILED_AUTH, clock: Clock | None = None) -> None:
        self._failures = (
            TokenBuckets(budget, max_keys=MAX_SOURCES)
            if clock is None
            else TokenBuckets(budget, clock, MAX_SOURCES)
        )

    def check(self, source: str | None) -> None:
        """Raise RateLimited if `source` has used up its failures."""
        if source is None:
            return
        wait = self._failures.wait(source)
        if wait > 0:
            raise RateLimited(retry_after(wait), FAILED_AUTH_MESSAGE)

    def failed(self, source: str | None) -> None:
        if source is not None:
            self._failures.take(source)


def request_source(request: web.BaseRequest) -> str | None:
    return request.remote


def environ_source(environ: Any) -> str | None:
    """A Socket.IO connection's source (engine.io's environ keeps the aiohttp request)."""
    request = environ.get("aiohttp.request") if isinstance(environ, dict) else None
    return request.remote if isinstance(request, web.BaseRequest) else None
