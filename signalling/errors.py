"""The one error table: every error a transport meets, as an HTTP status, a code and a message.

Domain rules (rooms.errors), storage (store.errors), the media relay, join and
desk tokens, webhook signatures and requests refused at the edge all end here.
The HTTP middleware, the readiness route and both Socket.IO namespaces answer
with `failure_of(exc)`; nothing else maps an error to a status or an ack code.
The codes are a public contract (docs/protocol.md, signalling/openapi.json).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from media.errors import MediaError
from rooms.errors import DomainError, ErrorCode
from signalling.tokens import TokenError, TokenProblem
from signalling.webhook_signature import SignatureError, SignatureProblem
from store.errors import StoreUnavailable

Ack = dict[str, Any]

STATUS: Mapping[str, int] = {
    # The domain's rules (rooms.errors.ErrorCode).
    ErrorCode.INVALID_APPOINTMENT: 400,
    ErrorCode.INVALID_REQUEST: 400,
    ErrorCode.NOT_ALLOWED: 403,
    ErrorCode.ROOM_NOT_FOUND: 404,
    ErrorCode.APPOINTMENT_NOT_FOUND: 404,
    ErrorCode.NOT_WAITING: 409,
    ErrorCode.NOT_IN_CALL: 409,
    ErrorCode.NOT_DENIED: 409,
    ErrorCode.ALREADY_PRESENT: 409,
    ErrorCode.ROOM_NOT_YET_OPEN: 409,  # Also an early join token.
    ErrorCode.ROOM_CLOSED: 409,  # Also an expired join or desk token.
    ErrorCode.ROOM_ENDED: 409,
    ErrorCode.ROOM_CANCELLED: 409,
    # Storage.
    "store_unavailable": 503,
    # The media relay (media.relay.MediaError); `invalid_request` and `not_in_call` are shared.
    "media_failed": 502,
    # `publish {prepared: true}` with no connection made ahead: the page sends an offer.
    "not_prepared": 409,
    # A room with enough publish connections made ahead (media.relay.MAX_PREPARED_PER_ROOM).
    "media_busy": 503,
    "unknown_subscription": 404,
    # Join and desk tokens (signalling.tokens.TokenProblem).
    TokenProblem.MISSING: 401,
    TokenProblem.INVALID: 401,
    TokenProblem.WRONG_ROOM: 403,
    # Booking webhook signatures (signalling.webhook_signature.SignatureProblem).
    SignatureProblem.MISSING_HEADERS: 401,
    SignatureProblem.BAD_TIMESTAMP: 401,
    SignatureProblem.STALE: 401,
    SignatureProblem.MISMATCH: 401,
    # Requests refused at the edge, before the domain sees them.
    "malformed_json": 400,
    "invalid_payload": 400,
    "invalid_webhook_id": 400,
    "invalid_practitioner": 400,
    "invalid_limit": 400,
    "invalid_cursor": 400,
    "unauthorized": 401,
    "not_connected": 401,
    "not_found": 404,
    # A genuine link from before a reschedule, while the room is open on its new time.
    "link_outdated": 409,
    "method_not_allowed": 405,
    "payload_too_large": 413,
    "rate_limited": 429,
    "internal_error": 500,
    "api_disabled": 503,
}
# aiohttp's own refusals (no route, wrong method, body too large), by status.
HTTP_CODES: Mapping[int, str] = {
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
}

JOIN_TOKEN_MESSAGES: Mapping[TokenProblem, str] = {
    TokenProblem.MISSING: "This link is incomplete: the access key is missing.",
    TokenProblem.INVALID: "This link is not valid. Please use the link you were sent.",
    TokenProblem.WRONG_ROOM: "This link belongs to another consultation.",
    TokenProblem.NOT_YET_VALID: "The consultation room is not open yet.",
    TokenProblem.EXPIRED: "The consultation room is closed.",
}
DESK_EXPIRED_MESSAGE = "This desk link has expired: ask for a new one."
DESK_TOKEN_MESSAGES: Mapping[TokenProblem, str] = {
    TokenProblem.MISSING: "This desk link is incomplete.",
    TokenProblem.INVALID: "This desk link is not valid.",
    TokenProblem.WRONG_ROOM: "This desk link is not valid.",
    TokenProblem.NOT_YET_VALID: "This desk link is not valid yet.",
    TokenProblem.EXPIRED: DESK_EXPIRED_MESSAGE,
}
SIGNATURE_MESSAGE = "The webhook signature is not valid."


@dataclass(frozen=True, slots=True)
class Failure:
    """What a transport answers for one error."""

    status: int
    code: str
    message: str
    # `rate_limited`: whole seconds before trying again (also HTTP's Retry-After).
    retry_after: int | None = None

    def body(self) -> dict[str, Any]:
        """The JSON body of an HTTP error answer."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.retry_after is not None:
            error["retry_after"] = self.retry_after
        return {"error": error}

    def ack(self) -> Ack:
        """A Socket.IO acknowledgement refusing the event."""
        return {"ok": False, **self.body()}


class RequestError(Exception):
    """A request refused at the edge (its shape, size or credentials), before the domain.

    Its status is the table's for its code.
    """

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")


class RateLimited(Exception):
    """Too many actions, connections or failed authentications: try again in `retry_after` s."""

    def __init__(self, retry_after: int, message: str = "") -> None:
        self.retry_after = retry_after
        self.message = message or RATE_LIMITED_MESSAGE
        super().__init__(f"rate_limited: retry after {retry_after} s")


RATE_LIMITED_MESSAGE = "Too many attempts; wait a few seconds."


def status_of(code: str) -> int:
    # A code missing here (a worker relay's own, say) is our fault, not the caller's.
    return STATUS.get(code, 500)


def failure(code: str, message: str) -> Failure:
    return Failure(status_of(code), code, message)


def rate_limited(retry_after: int, message: str = RATE_LIMITED_MESSAGE) -> Failure:
    return Failure(status_of("rate_limited"), "rate_limited", message, retry_after)


STORE_UNAVAILABLE = failure(
    "store_unavailable", "The service is temporarily unavailable; try again shortly."
)
# A page (re)connecting retries on its own, and says so.
STORE_UNAVAILABLE_ON_CONNECT = failure(
    "store_unavailable", "The service is briefly unavailable. Retrying…"
)
STORE_TIMEOUT = failure("store_unavailable", "The shared store did not answer in time.")
INTERNAL_ERROR = failure("internal_error", "Something went wrong on our side.")
LINK_OUTDATED = failure(
    "link_outdated", "This appointment was moved: please use the newer link you were sent."
)
NOT_CONNECTED = failure("not_connected", "This connection is not authenticated.")


def failure_of(exc: BaseException) -> Failure | None:
    """The answer to a known error; None for a bug (answer INTERNAL_ERROR and log it)."""
    match exc:
        case DomainError():
            return failure(exc.code.value, exc.message)
        case RequestError() | MediaError():
            return failure(exc.code, exc.message)
        case StoreUnavailable():
            return STORE_UNAVAILABLE
        case RateLimited():
            return rate_limited(exc.retry_after, exc.message)
        case TokenError():
            return failure(exc.problem.value, JOIN_TOKEN_MESSAGES[exc.problem])
        case SignatureError():
            return failure(exc.problem.value, SIGNATURE_MESSAGE)
    return None


def connect_failure_of(exc: BaseException) -> Failure | None:
    """As `failure_of`, worded for a page that is connecting (it retries by itself)."""
    if isinstance(exc, StoreUnavailable):
        return STORE_UNAVAILABLE_ON_CONNECT
    return failure_of(exc)


def desk_token_failure(exc: TokenError) -> Failure:
    """A refused desk link, in the desk's words."""
    return failure(exc.problem.value, DESK_TOKEN_MESSAGES[exc.problem])


def http_failure(status: int, reason: str) -> Failure:
    """One of aiohttp's own refusals (`web.HTTPException`), in the shape of every answer."""
    return Failure(status, HTTP_CODES.get(status, "http_error"), reason)
