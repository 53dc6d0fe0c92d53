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
close_room, stats, forwarding_stats, reset_latency. Media never crosses this
socket: only SDP, and only at call setup.
"""

from __future__ import annotations

import json
from typing import Any

# SDP is at most 32 KiB (media.relay.MAX_SDP_LENGTH); leave room for the envelope.
MAX_LINE = 256 * 1024
OPERATIONS = (
    "join",
    "publish",
    "answer",
    "leave",
    "close_room",
    "stats",
    "forwarding_stats",
    "reset_latency",
)


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    message = json.loads(line)
    if not isinstance(message, dict):
        raise ValueError("a protocol message is a JSON object")
    return message
