"""Resume secrets: how a device takes its place back after a reload or a network loss.

A patient's or guest's device gets a random secret when it connects and
keeps it (per browser tab). When its connection drops, its entry (waiting or
in the call) is marked away instead of removed; a new connection presenting
the secret within the grace period takes the entry over. Only a SHA-256 of
the secret is stored: the secret is 256 random bits, so a plain hash is as
good as a slow one, and whoever reads the store cannot take a place.
"""

from __future__ import annotations

import hashlib
import hmac

RESUME_HASH_LENGTH = 64  # hex SHA-256


def hash_resume_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def is_resume_hash(value: str) -> bool:
    return len(value) == RESUME_HASH_LENGTH and all(c in "0123456789abcdef" for c in value)


def matches(stored: str | None, presented: str) -> bool:
    # Constant time: a timing difference must not reveal how much of a hash matched.
    return stored is not None and hmac.compare_digest(stored.encode(), presented.encode())
