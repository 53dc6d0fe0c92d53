"""One JSON error shape for every HTTP answer: {"error": {"code", "message"}}."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from rooms.errors import DomainError, ErrorCode
from store.errors import StoreUnavailable

logger = logging.getLogger(__name__)

DOMAIN_STATUS: dict[ErrorCode, int] = {
    ErrorCode.INVALID_APPOINTMENT: 400,
    ErrorCode.INVALID_REQUEST: 400,
    ErrorCode.NOT_ALLOWED: 403,
    ErrorCode.ROOM_NOT_FOUND: 404,
    ErrorCode.APPOINTMENT_NOT_FOUND: 404,
    ErrorCode.ROOM_CANCELLED: 409,
    ErrorCode.ROOM_ENDED: 409,
    ErrorCode.ROOM_CLOSED: 409,
}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        self.status = status
        self.code = code
        self.message = message
        super().__init__(f"{status} {code}")


def error_response(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


@web.middleware
async def json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message)
    except StoreUnavailable:
        return error_response(
            503, "store_unavailable", "The service is temporarily unavailable; try again shortly."
        )
    except DomainError as exc:
        return error_response(DOMAIN_STATUS.get(exc.code, 409), exc.code.value, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
            exc.status, "http_error"
        )
        response = error_response(exc.status, code, exc.reason)
        if "Allow" in exc.headers:
            # RFC 9110: a 405 names the methods that would work.
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except Exception:
        logger.exception("unhandled error on %s %s", request.method, request.rel_url.path)
        return error_response(500, "internal_error", "Something went wrong on our side.")
