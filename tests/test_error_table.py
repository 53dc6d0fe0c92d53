"""The one error table (signalling/errors.py): every error a transport meets has its answer."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from media.relay import MediaError
from rooms.errors import DomainError, ErrorCode
from signalling import errors
from signalling.tokens import TokenError, TokenProblem
from signalling.webhook_signature import SignatureError, SignatureProblem
from store.errors import StoreUnavailable

ROOT = Path(__file__).resolve().parent.parent


def test_every_domain_token_and_signature_code_has_a_status() -> None:
    codes = [*ErrorCode, *TokenProblem, *SignatureProblem]
    assert [code for code in codes if code not in errors.STATUS] == []


def _raised_codes(folder: str, names: set[str]) -> set[str]:
    """The literal codes of `Name("code", ...)` calls in a folder's modules."""
    codes = set()
    for path in (ROOT / folder).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in names
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                codes.add(node.args[0].value)
    return codes


def test_every_code_raised_at_the_edge_or_by_the_relay_is_in_the_table() -> None:
    signalling = _raised_codes("signalling", {"RequestError", "Refusal", "failure"})
    media = _raised_codes("media", {"MediaError"})
    assert "payload_too_large" in signalling
    assert "media_failed" in media
    assert sorted((signalling | media) - set(errors.STATUS)) == []


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (DomainError(ErrorCode.INVALID_APPOINTMENT), 400, "invalid_appointment"),
        (DomainError(ErrorCode.NOT_ALLOWED), 403, "not_allowed"),
        (DomainError(ErrorCode.ROOM_NOT_FOUND), 404, "room_not_found"),
        (DomainError(ErrorCode.APPOINTMENT_NOT_FOUND), 404, "appointment_not_found"),
        (DomainError(ErrorCode.ROOM_CANCELLED), 409, "room_cancelled"),
        (DomainError(ErrorCode.NOT_WAITING), 409, "not_waiting"),
        (StoreUnavailable(), 503, "store_unavailable"),
        (MediaError("media_failed", "The relay is unavailable."), 502, "media_failed"),
        (TokenError(TokenProblem.EXPIRED), 409, "room_closed"),
        (SignatureError(SignatureProblem.MISMATCH), 401, "invalid_signature"),
        (errors.RequestError("payload_too_large", "Too big."), 413, "payload_too_large"),
    ],
)
def test_errors_map_to_a_status_and_a_code(error: Exception, status: int, code: str) -> None:
    failure = errors.failure_of(error)
    assert failure is not None
    assert (failure.status, failure.code) == (status, code)
    assert failure.ack() == {"ok": False, "error": {"code": code, "message": failure.message}}


def test_a_bug_is_not_in_the_table() -> None:
    assert errors.failure_of(KeyError("x")) is None
    assert errors.INTERNAL_ERROR.status == 500


def test_the_words_depend_on_who_is_told() -> None:
    assert errors.failure_of(DomainError(ErrorCode.NOT_WAITING, "Who?")) == errors.Failure(
        409, "not_waiting", "Who?"
    )
    connecting = errors.connect_failure_of(StoreUnavailable())
    assert connecting is not None
    assert connecting.message.endswith("Retrying…")
    desk = errors.desk_token_failure(TokenError(TokenProblem.EXPIRED))
    assert (desk.code, desk.message) == ("room_closed", errors.DESK_EXPIRED_MESSAGE)
