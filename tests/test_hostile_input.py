"""Bytes that are not text in the auth headers, and times a datetime cannot hold.

Sent over a raw socket to the real app: a client library would refuse to send
them, an attacker does not. Each gets a clear 4xx with its stable code, and
nothing is created.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from signalling.app import make_app
from tests.support import appointment_data, booking_body, make_settings, signed_headers

API_KEY = "a" * 32
GARBAGE = b"\xff\xfe\x80not-text"


async def raw_request(server: TestServer, head: list[bytes], body: bytes = b"") -> tuple[int, Any]:
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        lines = [*head, f"Host: {server.host}".encode(), f"Content-Length: {len(body)}".encode()]
        writer.write(b"\r\n".join(lines) + b"\r\nConnection: close\r\n\r\n" + body)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    _, _, payload = rest.partition(b"\r\n\r\n")
    return int(status_line.split()[1]), json.loads(payload)


@pytest.fixture
async def server(aiohttp_server: Any) -> TestServer:
    app: web.Application = make_app(make_settings(api_key=API_KEY))
    started: TestServer = await aiohttp_server(app, host="127.0.0.1")
    return started


async def rooms_listed(server: TestServer) -> int:
    status, page = await raw_request(
        server,
        [b"GET /api/v1/events HTTP/1.1", f"Authorization: Bearer {API_KEY}".encode()],
    )
    assert status == 200
    return len(page["events"])


@pytest.mark.parametrize("header", ["webhook-id", "webhook-signature", "webhook-timestamp"])
async def test_non_utf8_webhook_headers_are_401(server: TestServer, header: str) -> None:
    body = booking_body("appointment.created", appointment_data())
    head = [b"POST /hooks/booking HTTP/1.1", b"Content-Type: application/json"]
    for name, value in signed_headers(body).items():
        if name == header:
            head.append(name.encode() + b": " + GARBAGE)
        elif name != "content-type":
            head.append(f"{name}: {value}".encode())
    status, answer = await raw_request(server, head, body)
    assert status == 401
    assert answer["error"]["code"] in ("invalid_signature", "invalid_timestamp")


async def test_a_non_utf8_api_key_is_401(server: TestServer) -> None:
    status, answer = await raw_request(
        server, [b"GET /api/v1/events HTTP/1.1", b"Authorization: Bearer " + GARBAGE]
    )
    assert status == 401
    assert answer["error"]["code"] == "unauthorized"


EXTREME_SLOTS = [
    ("0001-01-01T09:00:00+00:00", "0001-01-01T09:20:00+00:00"),
    ("0001-01-01T00:00:00+01:00", "0001-01-01T00:20:00+01:00"),
    ("9999-12-31T22:00:00+00:00", "9999-12-31T23:00:00+00:00"),
    ("9999-12-31T23:00:00-01:00", "9999-12-31T23:30:00-01:00"),
]


@pytest.mark.parametrize(("starts_at", "ends_at"), EXTREME_SLOTS)
async def test_an_appointment_in_year_1_or_9999_is_400(
    server: TestServer, starts_at: str, ends_at: str
) -> None:
    data = {**appointment_data(), "starts_at": starts_at, "ends_at": ends_at}
    body = booking_body("appointment.created", data)
    head = [b"POST /hooks/booking HTTP/1.1", b"Content-Type: application/json"]
    head += [f"{k}: {v}".encode() for k, v in signed_headers(body).items() if k != "content-type"]
    status, answer = await raw_request(server, head, body)
    assert (status, answer["error"]["code"]) == (400, "invalid_appointment")

    status, answer = await raw_request(
        server,
        [
            b"POST /api/v1/appointments HTTP/1.1",
            b"Content-Type: application/json",
            f"Authorization: Bearer {API_KEY}".encode(),
        ],
        json.dumps(data).encode(),
    )
    assert (status, answer["error"]["code"]) == (400, "invalid_appointment")
    assert await rooms_listed(server) == 0


@pytest.mark.parametrize(("starts_at", "ends_at"), EXTREME_SLOTS[::2])
async def test_a_reschedule_to_year_1_or_9999_is_400_and_changes_nothing(
    server: TestServer, starts_at: str, ends_at: str
) -> None:
    data = appointment_data()
    created = booking_body("appointment.created", data)
    head = [b"POST /hooks/booking HTTP/1.1", b"Content-Type: application/json"]
    sign = [f"{k}: {v}".encode() for k, v in signed_headers(created).items() if k != "content-type"]
    status, room = await raw_request(server, head + sign, created)
    assert status == 201
    moved = booking_body(
        "appointment.rescheduled",
        {"appointment_id": data["appointment_id"], "starts_at": starts_at, "ends_at": ends_at},
    )
    sign = [f"{k}: {v}".encode() for k, v in signed_headers(moved).items() if k != "content-type"]
    status, answer = await raw_request(server, head + sign, moved)
    assert (status, answer["error"]["code"]) == (400, "invalid_appointment")
    status, now = await raw_request(
        server,
        [
            f"GET /api/v1/rooms/{room['room_id']}".encode() + b" HTTP/1.1",
            f"Authorization: Bearer {API_KEY}".encode(),
        ],
    )
    assert status == 200
    assert now["starts_at"] == room["starts_at"]
