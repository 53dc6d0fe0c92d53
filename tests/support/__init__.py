"""Helpers shared by the tests: signed booking webhooks and fixed settings."""

from __future__ import annotations

import base64
import json
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from signalling.config import Settings
from signalling.webhook_signature import sign

WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
TOKEN_SECRET = "t" * 48


def make_settings(**overrides: Any) -> Settings:
    fields: dict[str, Any] = {
        "token_secret": TOKEN_SECRET,
        "webhook_secret": WEBHOOK_SECRET,
        "public_url": "http://127.0.0.1:8080",
    }
    fields.update(overrides)
    return Settings(**fields)


def appointment_data(
    appointment_id: str | None = None,
    *,
    starts_in: timedelta = timedelta(minutes=5),
    duration: timedelta = timedelta(minutes=30),
    now: datetime | None = None,
    patient_name: str = "Alice Martin",
    practitioner_name: str = "Dr Bernard",
) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    starts_at = now + starts_in
    return {
        "appointment_id": appointment_id or f"apt-{secrets.token_hex(4)}",
        "practitioner": {"id": "prac-1", "name": practitioner_name},
        "patient": {"id": f"pat-{secrets.token_hex(3)}", "name": patient_name},
        "starts_at": starts_at.isoformat(),
        "ends_at": (starts_at + duration).isoformat(),
    }


def signed_headers(
    body: bytes,
    *,
    secret: str = WEBHOOK_SECRET,
    webhook_id: str | None = None,
    timestamp: int | None = None,
) -> dict[str, str]:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    webhook_id = webhook_id or f"msg_{secrets.token_hex(8)}"
    timestamp = int(datetime.now(UTC).timestamp()) if timestamp is None else timestamp
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(key, webhook_id, timestamp, body),
        "content-type": "application/json",
    }


def booking_body(event_type: str, data: dict[str, Any]) -> bytes:
    return json.dumps({"type": event_type, "data": data}).encode()


def token_of(link: str) -> str:
    return link.split("#", 1)[1]


def room_id_of(link: str) -> str:
    return link.split("/c/", 1)[1].split("#", 1)[0]
