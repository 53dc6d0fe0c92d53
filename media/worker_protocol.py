"""The internal protocol between signalling and relay workers.

One JSON object per line over a Unix stream socket. The signalling side sends
requests and gets exactly one response for each; the worker also sends
events (a subscription offer for a participant, a subscription closed):

    -> {"id": 7, "op": "publish", "args": {"room_id", "participant_id", "sdp"}}
    <- {"id": 7, "ok": true, "result": "<answer sdp>"}
    <- {"id": 8, "ok": false, "error": {"code": "not_in_call", "message": "..."}}
    <- {"event": "subscription_offer", "room_id", "participant_id",
        "subscription_id", "publisher_id", "publisher_info", "sdp"}
    <- {"event": "subscription_closed", "room_id", "participant_id", "subscription_id"}

Operations mirror `media.relay.Relay`: join, publish, answer, leave,
close_room, stats, forwarding_stats, metrics (`media.relay_metrics`),
reset_latency, keyframe (a subscriber's key frame request), and echo (a
connection test's offer in, `media.echo_test`).
Media never crosses this socket: only SDP, and only at call setup.

Relay nodes (`teleconsult relay`) serve the same protocol over TCP, after a
mutual HMAC-SHA256 challenge over the shared `TELECONSULT_RELAY_SECRET` (the
secret itself never crosses the wire):

    <- {"hello": "teleconsult-relay/1", "challenge": "<64 hex>"}
    -> {"op": "hello", "proof": HMAC(secret, "client:" + challenge), "challenge": "<64 hex>"}
    <- {"ok": true, "proof": HMAC(secret, "server:" + our challenge)}
    <- {"ok": false, "error": {"code": "unauthorized", ...}}   (then closed)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from typing import Any

# SDP is at most 32 KiB (media.peer_connections.MAX_SDP_LENGTH); leave room for the envelope.
MAX_LINE = 256 * 1024
OPERATIONS = (
    "join",
    "publish",
    "answer",
    "leave",
    "close_room",
    "stats",
    "forwarding_stats",
    "metrics",
    "reset_latency",
    "echo",
    "keyframe",
    "prepare",
    "publish_prepared",
)


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    message = json.loads(line)
    if not isinstance(message, dict):
        raise ValueError("a protocol message is a JSON object")
    return message


HELLO = "teleconsult-relay/1"
CHALLENGE_BYTES = 32


def new_challenge() -> str:
    return secrets.token_hex(CHALLENGE_BYTES)


def proof(secret: str, side: str, challenge: str) -> str:
    """What `side` ("client" or "server") answers to `challenge` with the shared secret."""
    message = f"{side}:{challenge}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def proof_matches(secret: str, side: str, challenge: str, presented: object) -> bool:
    if not isinstance(presented, str):
        return False
    return hmac.compare_digest(proof(secret, side, challenge).encode(), presented.encode())
