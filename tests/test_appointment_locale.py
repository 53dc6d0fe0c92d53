"""The optional `locale` and `practice` of an appointment, and the deployment's default language.

Through the webhook and the API (validated: `locale` is `fr` or `en`, else 400
`invalid_payload`), stored (and read back from rooms stored before these
fields existed), kept across a reschedule, and handed to the page in
`session`. `TELECONSULT_DEFAULT_LOCALE` is written into the served pages.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from rooms.appointment import Appointment, Person, Practice
from rooms.errors import DomainError
from rooms.lifecycle import create_room
from rooms.roles import Actor, Role
from signalling.app import HUB, make_app
from signalling.config import ConfigError, settings_from_env
from signalling.socket_session import session_payload
from store.room_codec import room_from_dict, room_to_dict
from tests.support import appointment_data, booking_body, make_settings, signed_headers

API_KEY = "locale-test-api-key-0123456789"
PRACTICE = {"name": "Cabinet du Parc", "phone": "+33 1 23 45 67 89"}
Client = TestClient[Any, Any]


@pytest.fixture
async def app_client(aiohttp_client: Any) -> Client:
    client: Client = await aiohttp_client(make_app(make_settings(api_key=API_KEY)))
    return client


async def hook(client: Client, event: str, data: dict[str, Any]) -> tuple[int, Any]:
    body = booking_body(event, data)
    async with client.post("/hooks/booking", data=body, headers=signed_headers(body)) as reply:
        return reply.status, await reply.json()


async def api_create(client: Client, data: dict[str, Any]) -> tuple[int, Any]:
    async with client.post(
        "/api/v1/appointments",
        data=json.dumps(data),
        headers={"Authorization": f"Bearer {API_KEY}"},
    ) as reply:
        return reply.status, await reply.json()


def appointment(**extra: Any) -> Appointment:
    now = datetime.now(UTC)
    return Appointment(
        id="apt-1",
        practitioner=Person("p-1", "Dr Bernard"),
        patient=Person("pt-1", "Alice Martin"),
        starts_at=now,
        ends_at=now + timedelta(minutes=20),
        **extra,
    )


async def test_the_webhook_takes_a_locale_and_a_practice_and_keeps_them(
    app_client: Client,
) -> None:
    data = appointment_data() | {"locale": "en", "practice": PRACTICE}
    status, document = await hook(app_client, "appointment.created", data)
    assert status == 201, document
    room = await app_client.app[HUB].room(document["room_id"])
    assert room is not None
    assert room.appointment.locale == "en"
    assert room.appointment.practice == Practice(PRACTICE["name"], PRACTICE["phone"])
    later = datetime.now(UTC) + timedelta(minutes=30)
    status, _ = await hook(
        app_client,
        "appointment.rescheduled",
        {
            "appointment_id": data["appointment_id"],
            "starts_at": later.isoformat(),
            "ends_at": (later + timedelta(minutes=20)).isoformat(),
        },
    )
    assert status == 200
    moved = await app_client.app[HUB].room(document["room_id"])
    assert moved is not None
    assert moved.appointment.locale == "en"
    assert moved.appointment.practice == room.appointment.practice


async def test_the_api_takes_them_too_and_both_are_optional(app_client: Client) -> None:
    status, document = await api_create(
        app_client, appointment_data() | {"locale": "fr", "practice": {"name": "Dr Lune"}}
    )
    assert status == 201, document
    room = await app_client.app[HUB].room(document["room_id"])
    assert room is not None
    assert room.appointment.locale == "fr"
    assert room.appointment.practice == Practice("Dr Lune", None)
    status, document = await api_create(app_client, appointment_data())
    assert status == 201, document
    plain = await app_client.app[HUB].room(document["room_id"])
    assert plain is not None
    assert plain.appointment.locale is None
    assert plain.appointment.practice is None


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param({"locale": "de"}, id="unknown-locale"),
        pytest.param({"locale": "EN"}, id="upper-case"),
        pytest.param({"locale": "fr-FR"}, id="region"),
        pytest.param({"locale": 1}, id="not-a-string"),
        pytest.param({"practice": {"phone": "0123456789"}}, id="practice-without-name"),
        pytest.param({"practice": {"name": " "}}, id="blank-practice-name"),
        pytest.param({"practice": {"name": "Cabinet", "phone": "<b>"}}, id="bad-phone"),
        pytest.param({"practice": "Cabinet"}, id="practice-not-an-object"),
    ],
)
async def test_invalid_locale_or_practice_is_400_invalid_payload(
    app_client: Client, extra: dict[str, Any]
) -> None:
    status, document = await api_create(app_client, appointment_data() | extra)
    assert status == 400, document
    assert document["error"]["code"] == "invalid_payload"
    status, document = await hook(app_client, "appointment.created", appointment_data() | extra)
    assert status == 400, document
    assert document["error"]["code"] == "invalid_payload"
    assert await app_client.app[HUB].rooms() == []


def test_the_domain_refuses_an_unknown_locale() -> None:
    with pytest.raises(DomainError):
        appointment(locale="de")
    with pytest.raises(DomainError):
        Practice(" ")


def test_stored_rooms_keep_them_and_older_rooms_read_back_without() -> None:
    room = create_room(
        "room-1",
        appointment(locale="en", practice=Practice("Cabinet", "01 23")),
        make_settings().join_window,
    ).room
    assert room_from_dict(json.loads(json.dumps(room_to_dict(room)))) == room
    older = room_to_dict(room)
    del older["appointment"]["locale"]
    del older["appointment"]["practice"]
    again = room_from_dict(older)
    assert again.appointment.locale is None
    assert again.appointment.practice is None


def test_the_session_carries_them_to_the_page() -> None:
    settings = make_settings()
    room = create_room(
        "room-1",
        appointment(locale="en", practice=Practice("Cabinet", "01 23")),
        settings.join_window,
    ).room
    payload = session_payload(
        room, Actor("p-1", Role.PRACTITIONER), settings, datetime.now(UTC), "entry-1"
    )
    assert payload["locale"] == "en"
    assert payload["practice"] == {"name": "Cabinet", "phone": "01 23"}
    bare = create_room("room-2", appointment(), settings.join_window).room
    payload = session_payload(
        bare, Actor("p-1", Role.PRACTITIONER), settings, datetime.now(UTC), "entry-1"
    )
    assert payload["locale"] is None
    assert payload["practice"] is None


def test_the_default_locale_is_french_and_configurable() -> None:
    assert settings_from_env({}).default_locale == "fr"
    assert settings_from_env({"TELECONSULT_DEFAULT_LOCALE": "en"}).default_locale == "en"
    with pytest.raises(ConfigError, match="TELECONSULT_DEFAULT_LOCALE"):
        settings_from_env({"TELECONSULT_DEFAULT_LOCALE": "de"})


@pytest.mark.parametrize("locale", ["fr", "en"])
async def test_the_pages_start_in_the_deployment_default(aiohttp_client: Any, locale: str) -> None:
    client = await aiohttp_client(make_app(make_settings(default_locale=locale)))
    for path in ("/c/some-room", "/d"):
        async with client.get(path) as reply:
            assert reply.status == 200
            assert reply.headers["Content-Type"].startswith("text/html")
            text = await reply.text()
            assert f'<html lang="{locale}" data-default-locale="{locale}">' in text
            assert "Content-Security-Policy" in reply.headers
