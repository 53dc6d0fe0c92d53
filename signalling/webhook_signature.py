"""Standard Webhooks signatures (https://www.standardwebhooks.com), both directions."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from datetime import datetime, timedelta
from enum import StrEnum


class SignatureProblem(StrEnum):
    MISSING_HEADERS = "missing_signature_headers"
    BAD_TIMESTAMP = "invalid_timestamp"
    STALE = "stale_timestamp"
    MISMATCH = "invalid_signature"


class SignatureError(Exception):
    def __init__(self, problem: SignatureProblem) -> None:
        self.problem = problem
        super().__init__(problem.value)


def sign(key: bytes, webhook_id: str, timestamp: int | str, body: bytes) -> str:
    """The `webhook-signature` header value for one message."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def sign_all(keys: Sequence[bytes], webhook_id: str, timestamp: int | str, body: bytes) -> str:
    """One `v1` signature per key, space-separated: receivers accept any that matches,
    so a secret rotates without a moment where events are refused."""
    return " ".join(sign(key, webhook_id, timestamp, body) for key in keys)


def verify(
    key: bytes,
    *,
    webhook_id: str | None,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    now: datetime,
    tolerance: timedelta,
) -> None:
    """Raise SignatureError unless one `v1` signature matches and the timestamp is fresh."""
    if not webhook_id or not timestamp or not signature:
        raise SignatureError(SignatureProblem.MISSING_HEADERS)
    if not (webhook_id.isascii() and signature.isascii()):
        # Bytes that are not text (aiohttp keeps them as surrogates) sign nothing.
        raise SignatureError(SignatureProblem.MISMATCH)
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        raise SignatureError(SignatureProblem.BAD_TIMESTAMP)
    sent = int(timestamp)
    if abs(now.timestamp() - sent) > tolerance.total_seconds():
        raise SignatureError(SignatureProblem.STALE)
    expected = sign(key, webhook_id, timestamp, body).encode()
    # The header may list several signatures (key rotation); any v1 match is enough.
    matched = False
    for candidate in signature.split(" "):
        if candidate.startswith("v1,"):
            matched |= hmac.compare_digest(candidate.encode(), expected)
    if not matched:
        raise SignatureError(SignatureProblem.MISMATCH)
