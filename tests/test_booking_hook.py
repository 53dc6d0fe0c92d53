"""`POST /hooks/booking` against the real app over a real socket."""

from __future__ import annotations

import base64
import json
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import ClientTimeout, web
from aiohttp.test_utils import TestClient

from rooms.roles import Role
from rooms.room import Room
from signalling import tokens
from signalling.app import ROOM_STORE, make_app
from signalling.config import Settings
from signalling.tokens import TokenError, TokenProblem
from store.room_store import RoomStore
from tests.support import (
    TOKEN_SECRET,
    WEBHOOK_SECRET,
    appointment_data,
    booking_body,
    signed_headers,
    token_of,
)

HOOK = "/hooks/booking"
LIMIT = 64 * 1024
OTHER_SECRET = "whsec_" + base64.b64encode(b"q" * 32).decode()
# ASCII on purpose: JSON answers escape non-ASCII, which would hide an echo.
PATIENT_NAME = "Zephyrine Quatremain"
PRACTITIONER_NAME = "Octave Belleville"
NAMES = (PATIENT_NAME, "Quatremain", PRACTITIONER_NAME, "Belleville")

Client = TestClient[Any, Any]
# A server that waits for bytes that never come fails the test instead of hanging it.
TIMEOUT = ClientTimeout(total=10)


@dataclass(frozen=True)
class Reply:
    status: int
    text: str

    @property
    def json(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.text)
        return document


def whole_seconds_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def booking(**kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("now", whole_seconds_now())
    kwargs.setdefault("patient_name", PATIENT_NAME)
    kwargs.setdefault("practitioner_name", PRACTITIONER_NAME)
    return appointment_data(**kwargs)


def store_of(client: Client) -> RoomStore:
    store: RoomStore = client.app[ROOM_STORE]
    return store


async def post(client: Client, body: bytes | Any, headers: Mapping[str, str] | None) -> Reply:
    async with client.post(HOOK, data=body, headers=headers, timeout=TIMEOUT) as response:
        return Reply(response.status, await response.text())


async def send(
    client: Client,
    event_type: str,
    data: dict[str, Any],
    *,
    webhook_id: str | None = None,
    secret: str = WEBHOOK_SECRET,
    timestamp: int | None = None,
) -> Reply:
    body = booking_body(event_type, data)
    headers = signed_headers(body, secret=secret, webhook_id=webhook_id, timestamp=timestamp)
    return await post(client, body, headers)


async def created(client: Client, data: dict[str, Any], webhook_id: str | None = None) -> Reply:
    reply = await send(client, "appointment.created", data, webhook_id=webhook_id)
    assert reply.status == 201, reply.text
    return reply


def assert_error(reply: Reply, status: int, code: str, *, names: Iterable[str] = NAMES) -> None:
    assert reply.status == status, reply.text
    document = reply.json
    assert set(document) == {"error"}
    assert set(document["error"]) == {"code", "message"}
    assert document["error"]["code"] == code
    assert isinstance(document["error"]["message"], str)
    assert document["error"]["message"]
    for name in names:
        assert name not in reply.text


async def assert_nothing_stored(client: Client) -> None:
    assert await store_of(client).rooms() == []


def at(iso: str) -> datetime:
    return datetime.fromisoformat(iso)


async def stored_room(client: Client, room_id: str) -> Room:
    room = await store_of(client).get(room_id)
    assert room is not None
    return room


# --- appointment.created ---------------------------------------------------------------------


async def test_created_returns_the_room_its_window_and_join_links(client: Client) -> None:
    data = booking()
    starts_at, ends_at = at(data["starts_at"]), at(data["ends_at"])

    reply = await created(client, data)

    document = reply.json
    room_id = document["room_id"]
    assert isinstance(room_id, str)
    assert len(room_id) >= 16
    assert document["appointment_id"] == data["appointment_id"]
    assert document["status"] == "open"
    assert at(document["starts_at"]) == starts_at
    assert at(document["ends_at"]) == ends_at
    assert at(document["opens_at"]) == starts_at - timedelta(minutes=15)
    assert at(document["closes_at"]) == ends_at + timedelta(minutes=60)
    room = await stored_room(client, room_id)
    assert room.appointment.id == data["appointment_id"]
    assert room.appointment.patient.name == PATIENT_NAME
    assert room.appointment.practitioner.id == data["practitioner"]["id"]
    assert (await store_of(client).rooms()) == [room]


@pytest.mark.parametrize(
    ("role", "person"), [(Role.PATIENT, "patient"), (Role.PRACTITIONER, "practitioner")]
)
async def test_join_links_carry_a_token_for_the_right_person_in_the_fragment_only(
    client: Client, settings: Settings, role: Role, person: str
) -> None:
    data = booking()
    reply = await created(client, data)
    document = reply.json
    room_id = document["room_id"]
    opens_at, closes_at = at(document["opens_at"]), at(document["closes_at"])

    link = document["links"][person]
    token = token_of(link)

    assert link == f"{settings.public_url}/c/{room_id}#{token}"
    parts = urlsplit(link)
    assert parts.path == f"/c/{room_id}"
    assert parts.query == ""
    assert parts.fragment == token
    assert token not in link.split("#", 1)[0]
    # Nowhere else in the answer either: only inside this one link.
    assert reply.text.count(token) == 1
    claims = tokens.verify(TOKEN_SECRET, token, room_id, opens_at)
    assert claims.role is role
    assert claims.person_id == data[person]["id"]
    assert claims.room_id == room_id
    assert claims.not_before == opens_at
    assert claims.expires_at == closes_at


async def test_the_two_links_are_different_people(client: Client) -> None:
    data = booking()
    document = (await created(client, data)).json
    patient = token_of(document["links"]["patient"])
    practitioner = token_of(document["links"]["practitioner"])
    opens_at = at(document["opens_at"])

    assert patient != practitioner
    assert tokens.verify(TOKEN_SECRET, patient, document["room_id"], opens_at).role is Role.PATIENT
    with pytest.raises(TokenError) as caught:
        tokens.verify(TOKEN_SECRET, patient, "another-room", opens_at)
    assert caught.value.problem is TokenProblem.WRONG_ROOM


async def test_a_far_future_appointment_is_scheduled_and_its_links_not_yet_valid(
    client: Client,
) -> None:
    document = (await created(client, booking(starts_in=timedelta(days=2)))).json
    opens_at = at(document["opens_at"])

    assert document["status"] == "scheduled"
    with pytest.raises(TokenError) as caught:
        tokens.verify(
            TOKEN_SECRET,
            token_of(document["links"]["patient"]),
            document["room_id"],
            datetime.now(UTC),
        )
    assert caught.value.problem is TokenProblem.NOT_YET_VALID
    assert caught.value.opens_at == opens_at


async def test_offsets_other_than_utc_are_understood(client: Client) -> None:
    starts_at = whole_seconds_now().astimezone(timezone(timedelta(hours=-5, minutes=-30)))
    starts_at += timedelta(hours=3)
    data = booking()
    data["starts_at"] = starts_at.isoformat()
    data["ends_at"] = (starts_at + timedelta(minutes=20)).isoformat()

    document = (await created(client, data)).json

    assert at(document["opens_at"]) == starts_at - timedelta(minutes=15)
    assert at(document["closes_at"]) == starts_at + timedelta(minutes=80)


# --- idempotency -----------------------------------------------------------------------------


async def test_redelivery_with_the_same_webhook_id_returns_the_same_room(client: Client) -> None:
    data = booking()
    first = (await created(client, data, webhook_id="msg_first")).json

    # A retry is re-signed with a fresh timestamp but keeps its webhook-id.
    again = await send(client, "appointment.created", data, webhook_id="msg_first")

    assert again.status == 200, again.text
    assert again.json["room_id"] == first["room_id"]
    assert again.json["appointment_id"] == data["appointment_id"]
    assert [room.id for room in await store_of(client).rooms()] == [first["room_id"]]


async def test_byte_identical_redelivery_returns_the_same_room(client: Client) -> None:
    body = booking_body("appointment.created", booking())
    headers = signed_headers(body)
    first = await post(client, body, headers)
    again = await post(client, body, headers)

    assert (first.status, again.status) == (201, 200)
    assert again.json["room_id"] == first.json["room_id"]
    assert len(await store_of(client).rooms()) == 1


async def test_same_appointment_under_a_new_webhook_id_returns_the_same_room(
    client: Client,
) -> None:
    data = booking()
    first = (await created(client, data, webhook_id="msg_a")).json

    again = await send(client, "appointment.created", data, webhook_id="msg_b")

    assert again.status == 200, again.text
    assert again.json["room_id"] == first["room_id"]
    rooms = await store_of(client).rooms()
    assert [room.id for room in rooms] == [first["room_id"]]


async def test_two_appointments_make_two_rooms(client: Client) -> None:
    one = (await created(client, booking())).json
    two = (await created(client, booking())).json

    assert one["room_id"] != two["room_id"]
    assert len(await store_of(client).rooms()) == 2


async def test_a_refused_message_does_not_use_up_its_webhook_id(client: Client) -> None:
    data = booking()
    broken = dict(data, patient={"id": "pat-x", "name": "   "})
    refused = await send(client, "appointment.created", broken, webhook_id="msg_retry")
    assert_error(refused, 400, "invalid_payload")

    fixed = await send(client, "appointment.created", data, webhook_id="msg_retry")

    assert fixed.status == 201, fixed.text
    assert len(await store_of(client).rooms()) == 1


# --- signatures ------------------------------------------------------------------------------


async def test_missing_signature_headers_are_401(client: Client) -> None:
    body = booking_body("appointment.created", booking())

    reply = await post(client, body, {"content-type": "application/json"})

    assert_error(reply, 401, "missing_signature_headers")
    await assert_nothing_stored(client)


@pytest.mark.parametrize("header", ["webhook-id", "webhook-timestamp", "webhook-signature"])
async def test_each_missing_signature_header_is_401(client: Client, header: str) -> None:
    body = booking_body("appointment.created", booking())
    headers = signed_headers(body)
    del headers[header]

    assert_error(await post(client, body, headers), 401, "missing_signature_headers")
    await assert_nothing_stored(client)


async def test_bad_signature_is_401(client: Client) -> None:
    body = booking_body("appointment.created", booking())
    headers = signed_headers(body)
    digest = headers["webhook-signature"]
    flipped = "A" if digest[5] != "A" else "B"
    headers["webhook-signature"] = digest[:5] + flipped + digest[6:]

    assert_error(await post(client, body, headers), 401, "invalid_signature")
    await assert_nothing_stored(client)


async def test_body_changed_after_signing_is_401(client: Client) -> None:
    data = booking()
    headers = signed_headers(booking_body("appointment.created", data))
    data["patient"]["id"] = "pat-mallory"

    reply = await post(client, booking_body("appointment.created", data), headers)

    assert_error(reply, 401, "invalid_signature")
    await assert_nothing_stored(client)


async def test_signature_made_with_another_secret_is_401(client: Client) -> None:
    reply = await send(client, "appointment.created", booking(), secret=OTHER_SECRET)

    assert_error(reply, 401, "invalid_signature")
    await assert_nothing_stored(client)


@pytest.mark.parametrize("direction", [-1, 1], ids=["past", "future"])
async def test_stale_timestamp_is_401(client: Client, direction: int) -> None:
    # 5 min + 1 s away from the server's clock, whatever the request's own latency.
    now = datetime.now(UTC).timestamp()
    timestamp = math.floor(now) - 301 if direction < 0 else math.ceil(now) + 301

    reply = await send(client, "appointment.created", booking(), timestamp=timestamp)

    assert_error(reply, 401, "stale_timestamp")
    await assert_nothing_stored(client)


async def test_non_numeric_timestamp_is_401(client: Client) -> None:
    body = booking_body("appointment.created", booking())
    headers = signed_headers(body)
    headers["webhook-timestamp"] = "yesterday"

    assert_error(await post(client, body, headers), 401, "invalid_timestamp")
    await assert_nothing_stored(client)


FROZEN = datetime(2030, 3, 4, 10, 0, tzinfo=UTC)


@pytest.fixture
async def frozen_client(
    aiohttp_client: Callable[[web.Application], Awaitable[Client]], settings: Settings
) -> Client:
    return await aiohttp_client(make_app(settings, clock=lambda: FROZEN))


@pytest.mark.parametrize(
    ("offset", "status"),
    [(-300, 201), (300, 201), (-301, 401), (301, 401)],
    ids=["5min-old", "5min-ahead", "5min1s-old", "5min1s-ahead"],
)
async def test_timestamp_tolerance_is_five_minutes_either_way(
    frozen_client: Client, offset: int, status: int
) -> None:
    data = booking(now=FROZEN)

    reply = await send(
        frozen_client,
        "appointment.created",
        data,
        timestamp=int(FROZEN.timestamp()) + offset,
    )

    assert reply.status == status, reply.text
    if status == 401:
        assert_error(reply, 401, "stale_timestamp")
        await assert_nothing_stored(frozen_client)
    else:
        assert len(await store_of(frozen_client).rooms()) == 1


async def test_overlong_webhook_id_is_400(client: Client) -> None:
    reply = await send(client, "appointment.created", booking(), webhook_id="m" * 201)

    assert_error(reply, 400, "invalid_webhook_id")
    await assert_nothing_stored(client)


# --- invalid bodies --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b'{"type": "appointment.created", "data": {',
        b"",
        b"not json at all",
        b'{"type": "appointment.created",}',
        b"\xff\xfe{}",
    ],
    ids=["truncated", "empty", "text", "trailing-comma", "not-utf8"],
)
async def test_malformed_json_is_400(client: Client, body: bytes) -> None:
    assert_error(await post(client, body, signed_headers(body)), 400, "malformed_json")
    await assert_nothing_stored(client)


def _without(data: dict[str, Any], *path: str) -> dict[str, Any]:
    copy: dict[str, Any] = json.loads(json.dumps(data))
    target = copy
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return copy


def _with(data: dict[str, Any], value: Any, *path: str) -> dict[str, Any]:
    copy: dict[str, Any] = json.loads(json.dumps(data))
    target = copy
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return copy


def _slot(data: dict[str, Any], starts_at: object, ends_at: object) -> dict[str, Any]:
    return _with(_with(data, starts_at, "starts_at"), ends_at, "ends_at")


BASE = booking(appointment_id="apt-invalid", now=datetime(2030, 3, 4, 9, 55, tzinfo=UTC))
BASE_START = BASE["starts_at"]
BASE_END = BASE["ends_at"]

INVALID_CREATIONS = [
    pytest.param(_without(BASE, "patient", "name"), "invalid_payload", id="no-patient-name"),
    pytest.param(
        _without(BASE, "practitioner", "name"), "invalid_payload", id="no-practitioner-name"
    ),
    pytest.param(_with(BASE, "   ", "patient", "name"), "invalid_payload", id="blank-patient"),
    pytest.param(
        _with(BASE, "\t", "practitioner", "name"), "invalid_payload", id="blank-practitioner"
    ),
    pytest.param(_with(BASE, "", "patient", "name"), "invalid_payload", id="empty-patient-name"),
    pytest.param(_with(BASE, " ", "patient", "id"), "invalid_payload", id="blank-patient-id"),
    pytest.param(_without(BASE, "patient"), "invalid_payload", id="no-patient"),
    pytest.param(_with(BASE, "", "appointment_id"), "invalid_payload", id="empty-appointment"),
    pytest.param(
        _with(BASE, PATIENT_NAME + "x" * 200, "patient", "name"),
        "invalid_payload",
        id="name-too-long",
    ),
    pytest.param(_with(BASE, 42, "patient", "name"), "invalid_payload", id="numeric-name"),
    pytest.param(_slot(BASE, BASE_END, BASE_START), "invalid_appointment", id="ends-before-start"),
    pytest.param(_slot(BASE, BASE_START, BASE_START), "invalid_appointment", id="ends-at-start"),
    pytest.param(
        _slot(BASE, "2030-03-04T10:00:00Z", "2030-03-04T22:00:01Z"),
        "invalid_appointment",
        id="longer-than-12h",
    ),
    pytest.param(
        _slot(BASE, "2030-03-04T10:00:00", "2030-03-04T10:30:00"), "invalid_payload", id="naive"
    ),
    pytest.param(
        _slot(BASE, BASE_START, "2030-03-04T10:30:00"), "invalid_payload", id="naive-end-only"
    ),
    pytest.param(
        _slot(BASE, "04/03/2030 10:00+00:00", BASE_END), "invalid_payload", id="not-rfc3339"
    ),
    pytest.param(_slot(BASE, "2030-03-04", BASE_END), "invalid_payload", id="date-only"),
    pytest.param(_slot(BASE, "tomorrow at ten", BASE_END), "invalid_payload", id="prose"),
    pytest.param(_slot(BASE, 1899108000, BASE_END), "invalid_payload", id="unix-seconds"),
    pytest.param(
        _slot(BASE, "2030-03-04T10:00:00+01", BASE_END), "invalid_payload", id="short-offset"
    ),
    pytest.param(
        _slot(BASE, "2030-03-04 10:00:00Z", BASE_END), "invalid_payload", id="space-separator"
    ),
    pytest.param(_slot(BASE, "2030-03-04T10:00Z", BASE_END), "invalid_payload", id="no-seconds"),
    pytest.param(_with(BASE, "apt 1", "appointment_id"), "invalid_payload", id="id-with-space"),
    pytest.param(_with(BASE, "a/b", "appointment_id"), "invalid_payload", id="id-with-slash"),
    pytest.param(_with(BASE, "p\u0004", "patient", "id"), "invalid_payload", id="control-char"),
    pytest.param(
        _slot(BASE, "2030-02-30T10:00:00Z", BASE_END), "invalid_payload", id="no-such-day"
    ),
]


async def test_rfc3339_lowercase_and_fractions_are_accepted(client: Client) -> None:
    data = _slot(BASE, "2030-03-04t10:00:00.250z", "2030-03-04T11:30:00.5+01:00")

    reply = await send(client, "appointment.created", data)

    assert reply.status == 201, reply.text


async def test_an_unknown_type_is_not_echoed_back(client: Client) -> None:
    body = json.dumps({"type": PATIENT_NAME, "data": BASE}).encode()

    reply = await post(client, body, signed_headers(body))

    assert_error(reply, 400, "invalid_payload")
    assert "Quatremain" not in reply.text
    assert "appointment.created" in reply.json["error"]["message"]


@pytest.mark.parametrize(("data", "code"), INVALID_CREATIONS)
async def test_invalid_creation_is_400_and_creates_nothing(
    client: Client, data: dict[str, Any], code: str
) -> None:
    reply = await send(client, "appointment.created", data)

    assert_error(reply, 400, code)
    await assert_nothing_stored(client)


@pytest.mark.parametrize(
    "document",
    [
        pytest.param({"type": "appointment.deleted", "data": BASE}, id="unknown-type"),
        pytest.param({"data": BASE}, id="no-type"),
        pytest.param({"type": "appointment.created"}, id="no-data"),
        pytest.param({"type": None, "data": BASE}, id="null-type"),
        pytest.param([{"type": "appointment.created", "data": BASE}], id="array"),
        pytest.param({"type": "appointment.created", "data": [BASE]}, id="data-array"),
    ],
)
async def test_message_of_the_wrong_shape_is_400(client: Client, document: object) -> None:
    body = json.dumps(document).encode()

    assert_error(await post(client, body, signed_headers(body)), 400, "invalid_payload")
    await assert_nothing_stored(client)


# --- body size -------------------------------------------------------------------------------


def padded_body(size: int) -> bytes:
    """A valid creation padded by an ignored field to exactly `size` bytes."""
    document = {"type": "appointment.created", "data": booking(), "padding": ""}
    bare = len(json.dumps(document).encode())
    document["padding"] = "p" * (size - bare)
    body = json.dumps(document).encode()
    assert len(body) == size
    return body


async def test_body_of_exactly_64_kib_is_accepted(client: Client) -> None:
    body = padded_body(LIMIT)

    reply = await post(client, body, signed_headers(body))

    assert reply.status == 201, reply.text
    assert len(await store_of(client).rooms()) == 1


async def test_body_over_64_kib_is_413(client: Client) -> None:
    body = padded_body(LIMIT + 1)

    reply = await post(client, body, signed_headers(body))

    assert_error(reply, 413, "payload_too_large")
    await assert_nothing_stored(client)


async def test_huge_body_is_413(client: Client) -> None:
    body = padded_body(LIMIT * 4)

    assert_error(await post(client, body, signed_headers(body)), 413, "payload_too_large")
    await assert_nothing_stored(client)


async def test_streamed_body_without_content_length_over_64_kib_is_413(client: Client) -> None:
    body = padded_body(LIMIT + 4096)
    headers = signed_headers(body)
    sent_headers: list[Mapping[str, str]] = []

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 4096):
            yield body[start : start + 4096]

    async with client.post(HOOK, data=chunks(), headers=headers, timeout=TIMEOUT) as response:
        sent_headers.append(response.request_info.headers)
        reply = Reply(response.status, await response.text())

    assert "Content-Length" not in sent_headers[0]
    assert sent_headers[0].get("Transfer-Encoding") == "chunked"
    assert_error(reply, 413, "payload_too_large")
    await assert_nothing_stored(client)


async def test_streamed_body_without_content_length_under_the_limit_is_accepted(
    client: Client,
) -> None:
    body = padded_body(LIMIT - 100)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 1000):
            yield body[start : start + 1000]

    reply = await post(client, chunks(), signed_headers(body))

    assert reply.status == 201, reply.text
    assert len(await store_of(client).rooms()) == 1


async def test_declared_content_length_over_64_kib_is_413_before_reading(client: Client) -> None:
    # The header lies upwards: the small signed body is never even read.
    body = booking_body("appointment.created", booking())
    headers = {**signed_headers(body), "Content-Length": str(LIMIT + 1)}

    async def stream() -> AsyncIterator[bytes]:
        yield body

    reply = await post(client, stream(), headers)

    assert_error(reply, 413, "payload_too_large")
    await assert_nothing_stored(client)


# --- reschedule and cancel -------------------------------------------------------------------


def reschedule_data(appointment_id: str, starts_at: datetime, minutes: int = 30) -> dict[str, Any]:
    return {
        "appointment_id": appointment_id,
        "starts_at": starts_at.isoformat(),
        "ends_at": (starts_at + timedelta(minutes=minutes)).isoformat(),
    }


@pytest.mark.parametrize(
    ("event_type", "data"),
    [
        ("appointment.rescheduled", reschedule_data("apt-nope", FROZEN)),
        ("appointment.cancelled", {"appointment_id": "apt-nope"}),
    ],
    ids=["reschedule", "cancel"],
)
async def test_unknown_appointment_is_404(
    client: Client, event_type: str, data: dict[str, Any]
) -> None:
    existing = (await created(client, booking())).json
    before = await stored_room(client, existing["room_id"])

    reply = await send(client, event_type, data)

    assert_error(reply, 404, "appointment_not_found")
    assert await store_of(client).rooms() == [before]


async def test_reschedule_moves_the_window_and_issues_matching_links(client: Client) -> None:
    data = booking()
    first = (await created(client, data)).json
    new_start = whole_seconds_now() + timedelta(days=1, hours=2)

    reply = await send(
        client, "appointment.rescheduled", reschedule_data(data["appointment_id"], new_start, 45)
    )

    assert reply.status == 200, reply.text
    document = reply.json
    assert document["room_id"] == first["room_id"]
    assert document["status"] == "scheduled"
    assert at(document["starts_at"]) == new_start
    assert at(document["ends_at"]) == new_start + timedelta(minutes=45)
    assert at(document["opens_at"]) == new_start - timedelta(minutes=15)
    assert at(document["closes_at"]) == new_start + timedelta(minutes=105)
    room = await stored_room(client, first["room_id"])
    assert room.appointment.starts_at == new_start
    assert room.window.opens_at == new_start - timedelta(minutes=15)
    assert room.appointment.patient.name == PATIENT_NAME
    claims = tokens.verify(
        TOKEN_SECRET, token_of(document["links"]["patient"]), room.id, room.window.opens_at
    )
    assert (claims.not_before, claims.expires_at) == (room.window.opens_at, room.window.closes_at)
    assert len(await store_of(client).rooms()) == 1


async def test_reschedule_to_an_invalid_slot_is_400_and_changes_nothing(client: Client) -> None:
    data = booking()
    room_id = (await created(client, data)).json["room_id"]
    before = await stored_room(client, room_id)
    start = whole_seconds_now() + timedelta(days=1)

    backwards = reschedule_data(data["appointment_id"], start, -30)
    naive = {
        "appointment_id": data["appointment_id"],
        "starts_at": "2030-03-04T10:00:00",
        "ends_at": "2030-03-04T10:30:00",
    }

    assert_error(
        await send(client, "appointment.rescheduled", backwards), 400, "invalid_appointment"
    )
    assert_error(await send(client, "appointment.rescheduled", naive), 400, "invalid_payload")
    assert await stored_room(client, room_id) == before


async def test_cancel_is_200_cancelled_and_idempotent(client: Client) -> None:
    data = booking()
    room_id = (await created(client, data)).json["room_id"]

    first = await send(client, "appointment.cancelled", {"appointment_id": data["appointment_id"]})
    cancelled = await stored_room(client, room_id)
    second = await send(client, "appointment.cancelled", {"appointment_id": data["appointment_id"]})

    assert first.status == 200, first.text
    assert first.json["status"] == "cancelled"
    assert first.json["room_id"] == room_id
    assert second.status == 200, second.text
    assert second.json["status"] == "cancelled"
    assert second.json["room_id"] == room_id
    assert await stored_room(client, room_id) == cancelled
    assert cancelled.version == 2


async def test_reschedule_after_cancel_is_409_and_changes_nothing(client: Client) -> None:
    data = booking()
    room_id = (await created(client, data)).json["room_id"]
    await send(client, "appointment.cancelled", {"appointment_id": data["appointment_id"]})
    before = await stored_room(client, room_id)

    reply = await send(
        client,
        "appointment.rescheduled",
        reschedule_data(data["appointment_id"], whole_seconds_now() + timedelta(days=3)),
    )

    assert_error(reply, 409, "room_cancelled")
    assert await stored_room(client, room_id) == before


async def test_creation_redelivered_after_cancel_does_not_revive_the_room(client: Client) -> None:
    data = booking()
    room_id = (await created(client, data, webhook_id="msg_create")).json["room_id"]
    await send(client, "appointment.cancelled", {"appointment_id": data["appointment_id"]})

    again = await send(client, "appointment.created", data, webhook_id="msg_create")
    fresh_id = await send(client, "appointment.created", data, webhook_id="msg_create_2")

    for reply in (again, fresh_id):
        assert reply.status == 200, reply.text
        assert reply.json["room_id"] == room_id
        assert reply.json["status"] == "cancelled"
    assert len(await store_of(client).rooms()) == 1


async def test_replayed_old_reschedule_does_not_revert_a_newer_one(client: Client) -> None:
    data = booking()
    room_id = (await created(client, data)).json["room_id"]
    earlier = whole_seconds_now() + timedelta(days=1)
    later = whole_seconds_now() + timedelta(days=2)
    first = reschedule_data(data["appointment_id"], earlier)
    second = reschedule_data(data["appointment_id"], later)

    one = await send(client, "appointment.rescheduled", first, webhook_id="msg_r1")
    two = await send(client, "appointment.rescheduled", second, webhook_id="msg_r2")
    replay = await send(client, "appointment.rescheduled", first, webhook_id="msg_r1")

    assert (one.status, two.status, replay.status) == (200, 200, 200)
    assert at(one.json["starts_at"]) == earlier
    assert at(replay.json["starts_at"]) == later
    room = await stored_room(client, room_id)
    assert room.appointment.starts_at == later
    assert room.window.opens_at == later - timedelta(minutes=15)
