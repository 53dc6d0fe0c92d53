"""Join tokens (signalling/tokens.py): what verifies, and what each refusal is called."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from rooms.roles import Role
from signalling import tokens
from signalling.tokens import JoinClaims, TokenError, TokenProblem
from tests.support import TOKEN_SECRET

ROOM = "room-abc"
NBF = datetime(2030, 3, 4, 9, 45, tzinfo=UTC)
EXP = datetime(2030, 3, 4, 11, 30, tzinfo=UTC)
INSIDE = datetime(2030, 3, 4, 10, 5, tzinfo=UTC)
OTHER_SECRET = "o" * 48


def minted(role: Role = Role.PATIENT, person_id: str = "pat-1", room_id: str = ROOM) -> str:
    return tokens.mint(
        TOKEN_SECRET,
        room_id=room_id,
        person_id=person_id,
        role=role,
        not_before=NBF,
        expires_at=EXP,
    )


def claims(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "sub": "pat-1",
        "room": ROOM,
        "role": "patient",
        "nbf": int(NBF.timestamp()),
        "exp": int(EXP.timestamp()),
    }
    base.update(overrides)
    return base


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(
    header: dict[str, Any],
    payload: dict[str, Any],
    *,
    secret: str = TOKEN_SECRET,
    digest: Callable[..., Any] = hashlib.sha256,
) -> str:
    """A JWT built by hand, HMAC-signed with `digest` whatever the header claims."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}"
    signature = hmac.new(secret.encode(), signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64url(signature)}"


def problem_of(token: object, room_id: str = ROOM, now: datetime = INSIDE) -> TokenError:
    with pytest.raises(TokenError) as caught:
        tokens.verify(TOKEN_SECRET, token, room_id, now)
    return caught.value


# --- what verifies -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "person_id"), [(Role.PATIENT, "pat-1"), (Role.PRACTITIONER, "prac-1")]
)
def test_mint_then_verify_roundtrip(role: Role, person_id: str) -> None:
    token = minted(role, person_id)

    assert tokens.verify(TOKEN_SECRET, token, ROOM, INSIDE) == JoinClaims(
        room_id=ROOM, person_id=person_id, role=role, not_before=NBF, expires_at=EXP
    )


def test_minted_token_is_hs256_with_the_expected_claims() -> None:
    token = minted()

    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    decoded = jwt.decode(
        token,
        TOKEN_SECRET,
        algorithms=["HS256"],
        options={"verify_exp": False, "verify_nbf": False},
    )
    assert {key: decoded[key] for key in ("sub", "room", "role", "nbf", "exp")} == claims()


def test_two_minted_tokens_for_the_same_person_differ() -> None:
    assert minted() != minted()


def test_hand_built_hs256_token_verifies() -> None:
    # The forging helper itself is right: a correct header and key pass.
    token = forge({"alg": "HS256", "typ": "JWT"}, claims(role="practitioner", sub="prac-1"))

    verified = tokens.verify(TOKEN_SECRET, token, ROOM, INSIDE)

    assert (verified.role, verified.person_id) == (Role.PRACTITIONER, "prac-1")


def test_pyjwt_built_token_with_all_claims_verifies() -> None:
    token = jwt.encode(claims(), TOKEN_SECRET, algorithm="HS256")

    assert tokens.verify(TOKEN_SECRET, token, ROOM, INSIDE).person_id == "pat-1"


def test_claim_times_are_reported_in_the_callers_timezone_as_the_same_instants() -> None:
    paris = timezone(timedelta(hours=1))

    verified = tokens.verify(TOKEN_SECRET, minted(), ROOM, INSIDE.astimezone(paris))

    assert verified.not_before == NBF
    assert verified.expires_at == EXP
    assert verified.not_before.utcoffset() == timedelta(hours=1)


# --- forged, tampered and foreign tokens ---------------------------------------------------


def test_tampered_payload_is_invalid() -> None:
    header, _, signature = minted().split(".")
    promoted = b64url(json.dumps(claims(role="practitioner")).encode())

    assert problem_of(f"{header}.{promoted}.{signature}").problem is TokenProblem.INVALID


def test_tampered_signature_is_invalid() -> None:
    header, payload, signature = minted().split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    raw[0] ^= 0x01

    assert problem_of(f"{header}.{payload}.{b64url(bytes(raw))}").problem is TokenProblem.INVALID


def test_token_signed_with_another_secret_is_invalid() -> None:
    token = tokens.mint(
        OTHER_SECRET,
        room_id=ROOM,
        person_id="pat-1",
        role=Role.PATIENT,
        not_before=NBF,
        expires_at=EXP,
    )

    assert problem_of(token).problem is TokenProblem.INVALID


def test_foreign_token_for_another_room_is_invalid_not_wrong_room() -> None:
    # Nothing about the room is revealed before the signature is checked.
    token = forge({"alg": "HS256", "typ": "JWT"}, claims(room="other"), secret=OTHER_SECRET)

    assert problem_of(token).problem is TokenProblem.INVALID


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_unsigned_alg_none_token_is_invalid(alg: str) -> None:
    header = b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    payload = b64url(json.dumps(claims()).encode())

    assert problem_of(f"{header}.{payload}.").problem is TokenProblem.INVALID


def test_alg_none_token_carrying_a_valid_hs256_signature_is_invalid() -> None:
    token = forge({"alg": "none", "typ": "JWT"}, claims())

    assert problem_of(token).problem is TokenProblem.INVALID


def test_hs512_token_with_the_right_secret_is_invalid() -> None:
    token = forge({"alg": "HS512", "typ": "JWT"}, claims(), digest=hashlib.sha512)

    assert problem_of(token).problem is TokenProblem.INVALID


def test_rs256_declared_token_hmac_signed_with_the_secret_is_invalid() -> None:
    # The classic algorithm confusion: the header says RS256, the MAC uses the secret.
    token = forge({"alg": "RS256", "typ": "JWT"}, claims())

    assert problem_of(token).problem is TokenProblem.INVALID


def test_genuine_rs256_token_is_invalid() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(claims(), key, algorithm="RS256")

    assert problem_of(token).problem is TokenProblem.INVALID


@pytest.mark.parametrize("garbage", ["not-a-jwt", "a.b.c", "....", "eyJhbGciOiJIUzI1NiJ9"])
def test_garbage_is_invalid(garbage: str) -> None:
    assert problem_of(garbage).problem is TokenProblem.INVALID


# --- claims --------------------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["exp", "nbf", "sub", "room", "role"])
def test_token_missing_a_required_claim_is_invalid(missing: str) -> None:
    payload = claims()
    del payload[missing]
    token = jwt.encode(payload, TOKEN_SECRET, algorithm="HS256")

    assert problem_of(token).problem is TokenProblem.INVALID


@pytest.mark.parametrize("role", ["admin", "Practitioner", "PATIENT", "", None, 1])
def test_token_with_an_unknown_role_is_invalid(role: object) -> None:
    token = jwt.encode(claims(role=role), TOKEN_SECRET, algorithm="HS256")

    assert problem_of(token).problem is TokenProblem.INVALID


@pytest.mark.parametrize(
    "override",
    [
        pytest.param({"sub": ""}, id="empty-sub"),
        pytest.param({"room": 7}, id="numeric-room"),
        pytest.param({"nbf": "soon"}, id="string-nbf"),
        pytest.param({"exp": "later"}, id="string-exp"),
    ],
)
def test_token_with_a_malformed_claim_is_invalid(override: dict[str, Any]) -> None:
    token = forge({"alg": "HS256", "typ": "JWT"}, claims(**override))

    assert problem_of(token).problem is TokenProblem.INVALID


def test_token_for_another_room_is_wrong_room() -> None:
    error = problem_of(minted(room_id="room-other"))

    assert error.problem is TokenProblem.WRONG_ROOM
    assert error.opens_at is None


# --- time ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "now", [NBF - timedelta(seconds=1), NBF - timedelta(days=3)], ids=["1s-early", "days-early"]
)
def test_token_before_nbf_is_not_yet_valid_and_says_when_it_opens(now: datetime) -> None:
    error = problem_of(minted(), now=now)

    assert error.problem is TokenProblem.NOT_YET_VALID
    assert error.opens_at == NBF


def test_token_is_valid_from_nbf_until_just_before_exp() -> None:
    assert tokens.verify(TOKEN_SECRET, minted(), ROOM, NBF).not_before == NBF
    last_moment = EXP - timedelta(microseconds=1)
    assert tokens.verify(TOKEN_SECRET, minted(), ROOM, last_moment).expires_at == EXP


@pytest.mark.parametrize(
    "now", [EXP, EXP + timedelta(seconds=1), EXP + timedelta(days=30)], ids=["at", "1s", "30d"]
)
def test_token_at_or_after_exp_is_expired(now: datetime) -> None:
    error = problem_of(minted(), now=now)

    assert error.problem is TokenProblem.EXPIRED
    assert error.opens_at is None


def test_expired_token_for_another_room_is_wrong_room() -> None:
    # The room is checked before the clock: a link for another room is never "closed".
    assert problem_of(minted(room_id="x"), now=EXP).problem is TokenProblem.WRONG_ROOM


# --- missing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    [None, "", 0, 12345, b"bytes-token", ["a.b.c"], {"token": "a.b.c"}],
    ids=["none", "empty", "zero", "int", "bytes", "list", "dict"],
)
def test_missing_empty_or_non_string_token_is_missing(token: object) -> None:
    assert problem_of(token).problem is TokenProblem.MISSING
