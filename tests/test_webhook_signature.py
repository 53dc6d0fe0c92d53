"""Standard Webhooks signatures (signalling/webhook_signature.py), both directions."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest

from signalling.webhook_signature import SignatureError, SignatureProblem, sign, verify

KEY = b"k" * 32
OTHER_KEY = b"q" * 32
WEBHOOK_ID = "msg_2mXk9Qh7"
NOW = datetime(2030, 3, 4, 10, 0, tzinfo=UTC)
SENT = int(NOW.timestamp())
BODY = b'{"type":"appointment.created","data":{"appointment_id":"apt-1"}}'
TOLERANCE = timedelta(minutes=5)
GOOD = sign(KEY, WEBHOOK_ID, SENT, BODY)


def check(
    *,
    key: bytes = KEY,
    webhook_id: str | None = WEBHOOK_ID,
    timestamp: str | None = str(SENT),
    signature: str | None = GOOD,
    body: bytes = BODY,
    now: datetime = NOW,
) -> None:
    verify(
        key,
        webhook_id=webhook_id,
        timestamp=timestamp,
        signature=signature,
        body=body,
        now=now,
        tolerance=TOLERANCE,
    )


def refusal(**kwargs: object) -> SignatureProblem:
    with pytest.raises(SignatureError) as caught:
        check(**kwargs)  # type: ignore[arg-type]
    return caught.value.problem


# --- sign ----------------------------------------------------------------------------------


def test_sign_matches_an_independently_computed_hmac() -> None:
    signed_content = f"{WEBHOOK_ID}.{SENT}.".encode() + BODY
    expected = base64.b64encode(hmac.new(KEY, signed_content, hashlib.sha256).digest()).decode()

    assert sign(KEY, WEBHOOK_ID, SENT, BODY) == "v1," + expected
    assert sign(KEY, WEBHOOK_ID, str(SENT), BODY) == "v1," + expected


def test_sign_matches_the_standard_webhooks_reference_vector() -> None:
    # The example from the Standard Webhooks specification / reference libraries.
    key = base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")

    signature = sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')

    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_sign_depends_on_every_part() -> None:
    reference = sign(KEY, WEBHOOK_ID, SENT, BODY)

    assert sign(OTHER_KEY, WEBHOOK_ID, SENT, BODY) != reference
    assert sign(KEY, WEBHOOK_ID + "x", SENT, BODY) != reference
    assert sign(KEY, WEBHOOK_ID, SENT + 1, BODY) != reference
    assert sign(KEY, WEBHOOK_ID, SENT, BODY + b" ") != reference


# --- verify: what passes -------------------------------------------------------------------


def test_a_valid_signature_passes() -> None:
    check()


def test_one_matching_signature_among_several_is_enough() -> None:
    good = sign(KEY, WEBHOOK_ID, SENT, BODY)
    old_key = sign(OTHER_KEY, WEBHOOK_ID, SENT, BODY)
    asymmetric = "v1a,bm90LWNoZWNrZWQ="

    check(signature=f"{old_key} {good}")
    check(signature=f"{good} {old_key}")
    check(signature=f"{asymmetric} {old_key} {good}")


@pytest.mark.parametrize(
    "offset",
    [timedelta(0), timedelta(minutes=5), -timedelta(minutes=5), timedelta(minutes=4, seconds=59)],
    ids=["now", "5min-old", "5min-ahead", "4m59s-old"],
)
def test_timestamps_within_the_tolerance_pass(offset: timedelta) -> None:
    check(now=NOW + offset)


# --- verify: what is refused ---------------------------------------------------------------


def test_signature_made_with_another_key_is_refused() -> None:
    assert refusal(key=OTHER_KEY) is SignatureProblem.MISMATCH


def test_several_signatures_none_matching_is_refused() -> None:
    others = " ".join([sign(OTHER_KEY, WEBHOOK_ID, SENT, BODY), sign(KEY, "msg_x", SENT, BODY)])

    assert refusal(signature=others) is SignatureProblem.MISMATCH


@pytest.mark.parametrize("index", [0, len(BODY) // 2, len(BODY) - 1])
def test_body_changed_by_one_byte_is_refused(index: int) -> None:
    body = bytearray(BODY)
    body[index] ^= 0x01

    assert refusal(body=bytes(body)) is SignatureProblem.MISMATCH


def test_body_with_one_extra_byte_is_refused() -> None:
    assert refusal(body=BODY + b"\n") is SignatureProblem.MISMATCH


def test_changed_webhook_id_is_refused() -> None:
    assert refusal(webhook_id="msg_2mXk9Qh8") is SignatureProblem.MISMATCH


def test_changed_timestamp_is_refused_even_when_fresh() -> None:
    assert refusal(timestamp=str(SENT + 1)) is SignatureProblem.MISMATCH


def test_right_digest_without_the_v1_prefix_is_refused() -> None:
    bare = sign(KEY, WEBHOOK_ID, SENT, BODY).removeprefix("v1,")

    assert refusal(signature=bare) is SignatureProblem.MISMATCH
    assert refusal(signature="v2," + bare) is SignatureProblem.MISMATCH


@pytest.mark.parametrize(
    "offset",
    [timedelta(minutes=5, seconds=1), -timedelta(minutes=5, seconds=1), timedelta(days=1)],
    ids=["5m1s-old", "5m1s-ahead", "a-day-old"],
)
def test_timestamps_outside_the_tolerance_are_stale(offset: timedelta) -> None:
    # The signature is genuine: only the clock refuses it.
    assert refusal(now=NOW + offset) is SignatureProblem.STALE


@pytest.mark.parametrize(
    "timestamp",
    [
        "soon",
        "1700000000.5",
        "-1700000000",
        "+1700000000",
        "1e9",
        " 1700000000",
        "\uff11\uff12\uff13",
        "9" * 13,
    ],
)
def test_non_numeric_timestamp_is_refused(timestamp: str) -> None:
    signature = sign(KEY, WEBHOOK_ID, timestamp, BODY)

    assert refusal(timestamp=timestamp, signature=signature) is SignatureProblem.BAD_TIMESTAMP


@pytest.mark.parametrize("missing", ["webhook_id", "timestamp", "signature"])
@pytest.mark.parametrize("value", [None, ""], ids=["absent", "empty"])
def test_missing_headers_are_refused(missing: str, value: str | None) -> None:
    assert refusal(**{missing: value}) is SignatureProblem.MISSING_HEADERS
