"""`/api/v1`: the integration API over a real socket, and its OpenAPI contract."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from rooms.roles import Role
from signalling import tokens
from signalling.app import HUB, make_app
from signalling.auth_throttle import AuthThrottle
from signalling.rate_limits import Budget
from tests.support import TOKEN_SECRET, appointment_data, make_settings, token_of

API_KEY = "test-api-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
NAME = "Zephyrine Quatremain"

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]


@pytest.fixture
async def api(aiohttp_client: MakeClient) -> Client:
    return await aiohttp_client(make_app(make_settings(api_key=API_KEY)))


async def call(
    client: Client,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    async with client.request(
        method, path, data=data, headers=AUTH if headers is None else headers
    ) as response:
        text = await response.text()
        return response.status, json.loads(text) if text else None


def assert_error(reply: tuple[int, Any], status: int, code: str) -> None:
    assert reply[0] == status, reply
    assert reply[1]["error"]["code"] == code, reply
    assert reply[1]["error"]["message"]


async def create(client: Client, **kwargs: Any) -> dict[str, Any]:
    status, document = await call(
        client, "POST", "/api/v1/appointments", appointment_data(patient_name=NAME, **kwargs)
    )
    assert status == 201, document
    return dict(document)


async def room_count(client: Client) -> int:
    return len(await client.app[HUB].rooms())


async def test_the_api_is_off_until_a_key_is_configured(aiohttp_client: MakeClient) -> None:
    client = await aiohttp_client(make_app(make_settings()))

    reply = await call(client, "POST", "/api/v1/appointments", appointment_data())

    assert_error(reply, 503, "api_disabled")
    assert await room_count(client) == 0


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="none"),
        pytest.param({"Authorization": "Bearer wrong-key-0123456789abcdef"}, id="wrong"),
        pytest.param({"Authorization": API_KEY}, id="no-scheme"),
        pytest.param({"Authorization": f"Basic {API_KEY}"}, id="basic"),
        pytest.param({"Authorization": f"Bearer {API_KEY}x"}, id="longer"),
    ],
)
async def test_a_missing_or_wrong_key_is_401_and_changes_nothing(
    api: Client, headers: dict[str, str]
) -> None:
    assert_error(
        await call(api, "POST", "/api/v1/appointments", appointment_data(), headers),
        401,
        "unauthorized",
    )
    assert_error(await call(api, "GET", "/api/v1/events", None, headers), 401, "unauthorized")
    assert await room_count(api) == 0


async def test_create_is_idempotent_on_the_appointment(api: Client) -> None:
    data = appointment_data(patient_name=NAME)
    status, first = await call(api, "POST", "/api/v1/appointments", data)
    assert status == 201
    status, again = await call(api, "POST", "/api/v1/appointments", data)
    assert status == 200
    assert again["room_id"] == first["room_id"]
    assert await room_count(api) == 1
    claims = tokens.verify(
        TOKEN_SECRET, token_of(first["links"]["patient"]), first["room_id"], datetime.now(UTC)
    )
    assert claims.role is Role.PATIENT


@pytest.mark.parametrize(
    ("body", "code"),
    [
        pytest.param(b"{not json", "malformed_json", id="malformed"),
        pytest.param({"appointment_id": "x"}, "invalid_payload", id="missing-fields"),
        pytest.param([], "invalid_payload", id="array"),
    ],
)
async def test_invalid_creations_are_400_and_create_nothing(
    api: Client, body: Any, code: str
) -> None:
    assert_error(await call(api, "POST", "/api/v1/appointments", body), 400, code)
    assert await room_count(api) == 0


async def test_a_slot_that_ends_before_it_starts_is_400(api: Client) -> None:
    data = appointment_data()
    data["starts_at"], data["ends_at"] = data["ends_at"], data["starts_at"]
    assert_error(await call(api, "POST", "/api/v1/appointments", data), 400, "invalid_appointment")
    assert await room_count(api) == 0


async def test_a_huge_body_is_413(api: Client) -> None:
    body = json.dumps({**appointment_data(), "pad": "x" * 70_000}).encode()
    assert_error(await call(api, "POST", "/api/v1/appointments", body), 413, "payload_too_large")


async def test_room_state_has_no_names(api: Client) -> None:
    room = await create(api)

    status, state = await call(api, "GET", f"/api/v1/rooms/{room['room_id']}")

    assert status == 200
    assert state["status"] == "open"
    assert state["waiting"] == 0
    assert state["in_call"] == []
    assert "Quatremain" not in json.dumps(state)
    status, same = await call(api, "GET", f"/api/v1/appointments/{room['appointment_id']}")
    assert (status, same) == (200, state)


async def test_unknown_rooms_and_appointments_are_404(api: Client) -> None:
    assert_error(await call(api, "GET", "/api/v1/rooms/nosuchroom1"), 404, "room_not_found")
    assert_error(await call(api, "GET", "/api/v1/appointments/nope"), 404, "appointment_not_found")
    assert_error(
        await call(api, "POST", "/api/v1/rooms/nosuchroom1/links", {"role": "patient"}),
        404,
        "room_not_found",
    )
    assert_error(await call(api, "POST", "/api/v1/rooms/nosuchroom1/end"), 404, "room_not_found")
    assert_error(await call(api, "GET", "/api/v1/nothing-here"), 404, "not_found")


@pytest.mark.parametrize("role", ["patient", "practitioner"])
async def test_minted_links_carry_a_token_for_that_role(api: Client, role: str) -> None:
    room = await create(api)

    status, minted = await call(
        api, "POST", f"/api/v1/rooms/{room['room_id']}/links", {"role": role}
    )

    assert status == 201
    assert minted["link"].startswith(f"http://127.0.0.1:8080/c/{room['room_id']}#")
    claims = tokens.verify(
        TOKEN_SECRET, token_of(minted["link"]), room["room_id"], datetime.now(UTC)
    )
    assert claims.role.value == role


@pytest.mark.parametrize("body", [{"role": "admin"}, {}, {"role": "patient", "extra": 1}])
async def test_a_link_for_an_unknown_role_is_400(api: Client, body: dict[str, Any]) -> None:
    room = await create(api)
    assert_error(
        await call(api, "POST", f"/api/v1/rooms/{room['room_id']}/links", body),
        400,
        "invalid_payload",
    )


async def test_end_is_idempotent_and_no_link_is_minted_afterwards(api: Client) -> None:
    room = await create(api)
    path = f"/api/v1/rooms/{room['room_id']}"

    status, ended = await call(api, "POST", path + "/end")
    assert status == 200
    assert (ended["status"], ended["end_reason"]) == ("ended", "ended")
    status, again = await call(api, "POST", path + "/end")
    assert (status, again["ended_at"]) == (200, ended["ended_at"])
    assert_error(await call(api, "POST", path + "/links", {"role": "patient"}), 409, "room_ended")
    status, page = await call(api, "GET", "/api/v1/events")
    assert [event["type"] for event in page["events"]] == ["consultation.ended"]
    assert page["events"][0]["data"]["duration_seconds"] == 0


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("after=12", "invalid_cursor"),
        ("after=", "invalid_cursor"),
        ("after=evt_x", "invalid_cursor"),
        ("limit=0", "invalid_limit"),
        ("limit=501", "invalid_limit"),
        ("limit=ten", "invalid_limit"),
    ],
)
async def test_bad_event_queries_are_400(api: Client, query: str, code: str) -> None:
    assert_error(await call(api, "GET", f"/api/v1/events?{query}"), 400, code)


async def test_events_page_by_cursor(api: Client) -> None:
    for _ in range(3):
        room = await create(api)
        await call(api, "POST", f"/api/v1/rooms/{room['room_id']}/end")

    _, first = await call(api, "GET", "/api/v1/events?limit=2")
    _, rest = await call(api, "GET", f"/api/v1/events?after={first['next_after']}")
    _, empty = await call(api, "GET", f"/api/v1/events?after={rest['next_after']}")

    ids = [e["id"] for e in first["events"] + rest["events"]]
    assert len(first["events"]) == 2
    assert len(ids) == len(set(ids)) == 3
    assert empty == {"events": [], "next_after": rest["next_after"]}


async def test_the_openapi_document_is_served_without_a_key(api: Client) -> None:
    status, document = await call(api, "GET", "/api/v1/openapi.json", headers={})
    assert status == 200
    assert document["openapi"].startswith("3.1")
    assert "/api/v1/rooms/{room_id}/links" in document["paths"]


async def test_the_running_api_honours_its_openapi_contract(
    aiohttp_server: Callable[..., Awaitable[TestServer]], tmp_path: Path
) -> None:
    """Schemathesis generates requests from the document and checks every answer against it."""
    # Schemathesis sends many requests with bad credentials on purpose and expects 401 for
    # each: past the per-source budget they would (rightly) get 429 (tests/test_socket_limits.py).
    lenient = AuthThrottle(Budget(burst=100_000, per_second=1_000))
    app = make_app(make_settings(api_key=API_KEY), auth_throttle=lenient)
    server = await aiohttp_server(app, host="127.0.0.1")
    base = str(server.make_url("/")).rstrip("/")
    schemathesis = Path(sys.executable).parent / "schemathesis"
    assert schemathesis.exists(), "schemathesis is missing: run `make install`"
    command = [
        str(schemathesis),
        "run",
        f"{base}/api/v1/openapi.json",
        "--url",
        base,
        "--header",
        f"Authorization: Bearer {API_KEY}",
        "--checks",
        "all",
        "--max-examples",
        "25",
        "--seed",
        "1",
        "--no-color",
        # Slot rules (ends after it starts, at most 12 h) are beyond JSON Schema, so a
        # schema-valid body may rightly get 400 invalid_appointment.
        "--exclude-checks",
        "positive_data_acceptance",
    ]
    process = await asyncio.create_subprocess_exec(
        *command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "SCHEMATHESIS_TELEMETRY": "false"},
        cwd=tmp_path,  # it keeps a .schemathesis/ folder of its own there
    )
    output, _ = await process.communicate()
    text = output.decode(errors="replace")
    assert process.returncode == 0, text[-6000:]


async def test_an_invited_guest_gets_a_guest_link_of_their_own(api: Client) -> None:
    room = await create(api)
    path = f"/api/v1/rooms/{room['room_id']}/guests"

    status, invited = await call(api, "POST", path, {"name": "  Ines Interprete "})

    assert status == 201
    claims = tokens.verify(
        TOKEN_SECRET, token_of(invited["link"]), room["room_id"], datetime.now(UTC)
    )
    assert (claims.role, claims.person_id) == (Role.GUEST, invited["guest_id"])
    stored = await api.app[HUB].room(room["room_id"])
    assert stored is not None
    assert [guest.name for guest in stored.guests] == ["Ines Interprete"]


@pytest.mark.parametrize("body", [{}, {"name": "  "}, {"name": "x" * 201}, {"name": 3}])
async def test_a_guest_needs_a_name(api: Client, body: dict[str, Any]) -> None:
    room = await create(api)
    assert_error(
        await call(api, "POST", f"/api/v1/rooms/{room['room_id']}/guests", body),
        400,
        "invalid_payload",
    )
    stored = await api.app[HUB].room(room["room_id"])
    assert stored is not None
    assert stored.guests == ()


async def test_at_most_four_guests(api: Client) -> None:
    room = await create(api)
    path = f"/api/v1/rooms/{room['room_id']}/guests"
    for index in range(4):
        assert (await call(api, "POST", path, {"name": f"Guest {index}"}))[0] == 201
    assert_error(await call(api, "POST", path, {"name": "One too many"}), 400, "invalid_request")
