"""One JSON error shape for every HTTP answer: {"error": {"code", "message"}}.

Statuses and codes come from the error table (signalling/errors.py).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from signalling import errors

logger = logging.getLogger(__name__)


def error_response(failure: errors.Failure) -> web.Response:
    response = web.json_response(failure.body(), status=failure.status)
    if failure.retry_after is not None:
        response.headers["Retry-After"] = str(failure.retry_after)
    return response


@web.middleware
async def json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = error_response(errors.http_failure(exc.status, exc.reason))
        if "Allow" in exc.headers:
            # RFC 9110: a 405 names the methods that would work.
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except Exception as exc:
        failure = errors.failure_of(exc)
        if failure is None:
            logger.exception("unhandled error on %s %s", request.method, request.rel_url.path)
            failure = errors.INTERNAL_ERROR
        return error_response(failure)
