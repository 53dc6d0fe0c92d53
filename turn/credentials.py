"""Time-limited TURN credentials (draft-uberti-behave-turn-rest-00, coturn `use-auth-secret`).

The username is `<expiry unix time>:<opaque id>` and the password is
base64(HMAC-SHA1(shared secret, username)); coturn recomputes the password
and refuses it after the expiry, so nothing has to be stored anywhere.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class TurnCredentials:
    username: str
    password: str
    expires_at: datetime


def issue(secret: str, opaque_id: str, now: datetime, ttl: timedelta) -> TurnCredentials:
    """Credentials valid until `now + ttl`; `opaque_id` must carry no personal data."""
    if not secret:
        raise ValueError("a TURN shared secret is required")
    if ":" in opaque_id:
        raise ValueError("the opaque id cannot contain ':'")
    expires_at = now + ttl
    username = f"{int(expires_at.timestamp())}:{opaque_id}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return TurnCredentials(username, base64.b64encode(digest).decode(), expires_at)
