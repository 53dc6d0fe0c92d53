from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest

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


def test_each_connection_gets_its_own_turn_login() -> None:
    settings = make_settings(
        turn_urls=("turn:127.0.0.1:3478",), turn_secret="shared-secret-of-coturn"
    )
    first = ice_servers_payload(settings, "entry-one", NOW)
    second = ice_servers_payload(settings, "entry-two", NOW)
    assert first[0]["urls"] == ["turn:127.0.0.1:3478"]
    assert first[0]["username"].endswith(":entry-one")
    assert first[0]["credential"] != second[0]["credential"]
    assert ice_servers_payload(make_settings(), "entry", NOW) == []
