"""Socket payloads (signalling/socket_payloads.py): shapes, limits and how refusals are worded."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from signalling.errors import RequestError
from signalling.socket_payloads import (
    Denial,
    DeskDenial,
    DeskEntryAction,
    DeskMessage,
    E2eeHello,
    E2eeKey,
    EntryAction,
    GuestInvitation,
    JoinAuth,
    Payload,
    parse,
)

KEY = base64.b64encode(b"\x04" + b"k" * 64).decode()


def refusal(model: type[Payload], data: Any) -> tuple[str, str]:
    with pytest.raises(RequestError) as refused:
        parse(model, data)
    return refused.value.code, refused.value.message


WHOM = ("not_waiting", "Expected {entry_id} of a waiting patient.")


@pytest.mark.parametrize("data", [None, "e1", {}, {"entry_id": ""}, {"entry_id": "e" * 65}])
def test_an_action_names_a_waiting_entry(data: Any) -> None:
    assert refusal(EntryAction, data) == WHOM


def test_the_first_field_in_error_is_the_one_told() -> None:
    assert parse(EntryAction, {"entry_id": "e" * 64, "extra": 1}).entry_id == "e" * 64
    assert refusal(Denial, {"entry_id": 1, "reason": 2}) == WHOM
    assert refusal(Denial, {"entry_id": "e1", "reason": 2}) == (
        "invalid_request",
        "reason must be text.",
    )


def test_a_guest_name_is_stripped_and_at_most_200_characters() -> None:
    assert parse(GuestInvitation, {"name": "  Ines  "}).name == "Ines"
    assert parse(GuestInvitation, {"name": " " + "x" * 200 + " "}).name == "x" * 200
    for name in ("   ", "x" * 201, 3):
        assert refusal(GuestInvitation, {"name": name})[0] == "invalid_request"


def test_e2ee_refusals_name_unknown_fields_never_values() -> None:
    code, message = refusal(E2eeHello, {"public_key": KEY, "zz": "s3cret", "aa": 1})
    assert (code, message) == ("invalid_request", "Unexpected fields: aa, zz.")
    assert refusal(E2eeKey, ["not", "an", "object"])[1] == "Expected an object."


@pytest.mark.parametrize(
    "key",
    [
        base64.b64encode(b"\x04" + b"k" * 63).decode(),
        base64.b64encode(b"\x02" + b"k" * 64).decode(),
        KEY[:-1] + "!",
        KEY + "=" * 1024,
        None,
    ],
)
def test_a_public_key_is_an_uncompressed_p256_point(key: Any) -> None:
    assert "public_key" in refusal(E2eeHello, {"public_key": key})[1]


def test_hello_goes_to_everyone_unless_it_names_one() -> None:
    assert parse(E2eeHello, {"public_key": KEY}).to == ""
    assert parse(E2eeHello, {"public_key": KEY, "to": "e_1-x"}).to == "e_1-x"
    for to in ("", None, "no spaces", "e" * 65):
        assert "to must be" in refusal(E2eeHello, {"public_key": KEY, "to": to})[1]
    # The key is checked before the recipient.
    assert "public_key" in refusal(E2eeHello, {"public_key": "x", "to": None})[1]


def test_a_wrapped_key_is_1_to_256_bytes_of_base64() -> None:
    def key(wrapped: bytes) -> dict[str, Any]:
        return {"to": "e1", "public_key": KEY, "wrapped": base64.b64encode(wrapped).decode()}

    assert parse(E2eeKey, key(b"w" * 256)).wrapped == base64.b64encode(b"w" * 256).decode()
    for wrapped in (b"", b"w" * 257):
        assert "wrapped" in refusal(E2eeKey, key(wrapped))[1]
    assert "to must be" in refusal(E2eeKey, {"public_key": KEY, "wrapped": "d3JhcA=="})[1]


def test_a_join_checks_the_room_id_at_once_and_the_resume_key_later() -> None:
    no_room = ("room_not_found", "No such consultation room.")
    assert refusal(JoinAuth, None) == no_room
    assert refusal(JoinAuth, {"room_id": "short"}) == no_room
    auth = parse(JoinAuth, {"room_id": "r" * 22, "token": 5, "resume": "s" * 31})
    with pytest.raises(RequestError, match="resume key"):
        auth.resume_secret()
    assert parse(JoinAuth, {"room_id": "r" * 22}).resume_secret() is None
    assert parse(JoinAuth, {"room_id": "r" * 22, "resume": "s" * 43}).resume_secret() == "s" * 43


def test_desk_texts_are_limited_as_sent_and_kept_stripped() -> None:
    assert parse(DeskEntryAction, {"entry_id": "  e1  "}).entry_id == "e1"
    assert refusal(DeskEntryAction, {"entry_id": " " + "e" * 100}) == (
        "invalid_request",
        "`entry_id` must be 1 to 100 characters.",
    )
    assert parse(DeskDenial, {"entry_id": "e1", "reason": None}).reason is None
    assert refusal(DeskDenial, {"entry_id": "e1", "reason": " "})[1].startswith("`reason`")
    assert parse(DeskMessage, {"text": "t" * 500}).room_id is None
    assert refusal(DeskMessage, {"text": "t" * 501})[1].startswith("`text`")
