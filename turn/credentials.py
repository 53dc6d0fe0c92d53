"""Time-limited TURN credentials (draft-uberti-behave-turn-rest-00, coturn `use-auth-secret`).

The username is `<expiry unix time>:<opaque id>` and the password is
base64(HMAC-SHA1(shared secret, username)); coturn recomputes the password
and refuses it after the expiry, so nothing has to be stored anywhere.

The opaque id is one per person in a room (`person_login_id`), not per
connection: coturn's `user-quota` counts allocations per opaque id (it drops
the expiry part of the name), so five tabs of one link share one quota.
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


def person_login_id(key: str, room_id: str, role: str, person_id: str) -> str:
    """A person's opaque TURN id in one room: keyed, so coturn's logs name nobody."""
    message = "\x00".join(("teleconsult turn login", room_id, role, person_id)).encode()
    digest = hmac.new(key.encode(), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:15]).decode()


def issue(
    secret: str,
    opaque_id: str,
    now: datetime,
    ttl: timedelta,
    not_after: datetime | None = None,
) -> TurnCredentials:
    """Credentials valid until `now + ttl`, never past `not_after` (the room's window close).

    `opaque_id` must carry no personal data.
    """
    if not secret:
        raise ValueError("a TURN shared secret is required")
    if ":" in opaque_id:
        raise ValueError("the opaque id cannot contain ':'")
    expires_at = now + ttl if not_after is None else min(now + ttl, not_after)
    username = f"{int(expires_at.timestamp())}:{opaque_id}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return TurnCredentials(username, base64.b64encode(digest).decode(), expires_at)
