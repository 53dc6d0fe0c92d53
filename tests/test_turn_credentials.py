from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rooms.appointment import Appointment, JoinWindow, Person
from rooms.roles import Actor, Role
from rooms.room import Lifecycle, Room
from signalling.config import Settings
from signalling.socket_session import ice_servers_payload
from tests.support import make_settings
from turn.credentials import issue

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def test_credentials_follow_the_turn_rest_scheme() -> None:
    login = issue("shared", "abc123", NOW, timedelta(hours=2))
    expiry = int((NOW + timedelta(hours=2)).timestamp())
    assert login.username == f"{expiry}:abc123"
    expected = hmac.new(b"shared", login.username.encode(), hashlib.sha1).digest()
    assert base64.b64decode(login.password) == expected
    assert login.expires_at == NOW + timedelta(hours=2)


def test_other_secret_other_password() -> None:
    day = timedelta(days=1)
    assert issue("a", "x", NOW, day).password != issue("b", "x", NOW, day).password


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="secret"):
        issue("", "x", NOW, timedelta(hours=1))
    with pytest.raises(ValueError, match="':'"):
        issue("s", "a:b", NOW, timedelta(hours=1))


def test_the_expiry_is_never_past_the_window_close() -> None:
    closes_at = NOW + timedelta(minutes=30)
    assert issue("s", "x", NOW, timedelta(hours=2), closes_at).expires_at == closes_at
    assert issue("s", "x", NOW, timedelta(minutes=5), closes_at).expires_at == NOW + timedelta(
        minutes=5
    )


def turn_settings() -> Settings:
    return make_settings(turn_urls=("turn:127.0.0.1:3478",), turn_secret="shared-secret-of-coturn")


def a_room(**changes: Any) -> Room:
    window = JoinWindow(NOW - timedelta(minutes=15), NOW + timedelta(minutes=90))
    appointment = Appointment(
        "apt-1",
        Person("prac-1", "Dr Bernard"),
        Person("pat-1", "Alice Martin"),
        NOW,
        NOW + timedelta(minutes=30),
    )
    return replace(Room("room-one", appointment, window), **changes)


PATIENT = Actor("pat-1", Role.PATIENT)


def turn_login(room: Room, actor: Actor, entry_id: str, now: datetime = NOW) -> dict[str, Any]:
    [login] = ice_servers_payload(turn_settings(), room, actor, entry_id, now)
    return login


def test_one_turn_username_per_person_not_per_connection() -> None:
    room = a_room()
    first = turn_login(room, PATIENT, "entry-one")
    again = turn_login(room, PATIENT, "entry-two", NOW + timedelta(minutes=3))
    assert first["urls"] == ["turn:127.0.0.1:3478"]
    # The window closes before the TTL: the same username, expiring at the close.
    assert first["username"] == again["username"]
    assert first["username"].startswith(f"{int(room.window.closes_at.timestamp())}:")
    practitioner = turn_login(room, Actor("prac-1", Role.PRACTITIONER), "entry-three")
    elsewhere = turn_login(replace(room, id="room-two"), PATIENT, "entry-four")
    assert len({first["username"], practitioner["username"], elsewhere["username"]}) == 3
    # Keyed: neither the person's id nor the room's appears in coturn's logs.
    assert "pat-1" not in first["username"]
    assert "room-one" not in first["username"]
    assert ice_servers_payload(make_settings(), room, PATIENT, "entry", NOW) == []


def test_no_turn_login_for_a_denied_entry_or_a_finished_room() -> None:
    settings = turn_settings()
    denied = a_room(denied=frozenset({"entry-one"}))
    assert ice_servers_payload(settings, denied, PATIENT, "entry-one", NOW) == []
    assert ice_servers_payload(settings, a_room(lifecycle=Lifecycle.ENDED), PATIENT, "e", NOW) == []
    cancelled = a_room(lifecycle=Lifecycle.CANCELLED)
    assert ice_servers_payload(settings, cancelled, PATIENT, "e", NOW) == []
    after = NOW + timedelta(minutes=90)
    assert ice_servers_payload(settings, a_room(), PATIENT, "e", after) == []
