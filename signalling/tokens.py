"""Join tokens: HS256 JWTs bound to one room, one person, one role and the join window."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import jwt
import jwt.types

from rooms.roles import Role

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["exp", "nbf", "sub", "room", "role"]


class TokenProblem(StrEnum):
    MISSING = "token_missing"
    INVALID = "token_invalid"
    WRONG_ROOM = "token_wrong_room"
    NOT_YET_VALID = "room_not_yet_open"
    EXPIRED = "room_closed"


class TokenError(Exception):
    def __init__(self, problem: TokenProblem, opens_at: datetime | None = None) -> None:
        self.problem = problem
        self.opens_at = opens_at
        super().__init__(problem.value)


@dataclass(frozen=True, slots=True)
class JoinClaims:
    room_id: str
    person_id: str
    role: Role
    not_before: datetime
    expires_at: datetime


def mint(
    secret: str,
    *,
    room_id: str,
    person_id: str,
    role: Role,
    not_before: datetime,
    expires_at: datetime,
) -> str:
    claims = {
        "sub": person_id,
        "room": room_id,
        "role": role.value,
        "nbf": int(not_before.timestamp()),
        "exp": int(expires_at.timestamp()),
        "jti": secrets.token_urlsafe(8),
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


DESK_SCOPE = "desk"
# Not a room id (those are 8-64 URL-safe characters): a desk token opens no room.
DESK_ROOM = "*"


@dataclass(frozen=True, slots=True)
class DeskClaims:
    practitioner_id: str
    expires_at: datetime


def mint_desk(
    secret: str, *, practitioner_id: str, not_before: datetime, expires_at: datetime
) -> str:
    """A practitioner's desk: their appointments across rooms, for one working day."""
    claims = {
        "sub": practitioner_id,
        "room": DESK_ROOM,
        "role": Role.PRACTITIONER.value,
        "scope": DESK_SCOPE,
        "nbf": int(not_before.timestamp()),
        "exp": int(expires_at.timestamp()),
        "jti": secrets.token_urlsafe(8),
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_desk(secret: str, token: object, now: datetime) -> DeskClaims:
    claims = verify(secret, token, DESK_ROOM, now, scope=DESK_SCOPE)
    if claims.role is not Role.PRACTITIONER:
        raise TokenError(TokenProblem.INVALID)
    return DeskClaims(claims.person_id, claims.expires_at)


def verify(
    secret: str, token: object, room_id: str, now: datetime, *, scope: str | None = None
) -> JoinClaims:
    """Check a join token for `room_id`; the error names what the person should be told."""
    if not isinstance(token, str) or not token:
        raise TokenError(TokenProblem.MISSING)
    options: jwt.types.Options = {
        "require": REQUIRED_CLAIMS,
        "verify_nbf": False,
        "verify_exp": False,
    }
    try:
        # nbf/exp are checked below against the caller's clock, after the signature,
        # so an early but genuine link is told when to come back.
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], options=options)
    except jwt.PyJWTError as exc:
        raise TokenError(TokenProblem.INVALID) from exc
    sub, room, role = claims.get("sub"), claims.get("room"), claims.get("role")
    nbf, exp = claims.get("nbf"), claims.get("exp")
    if not (isinstance(sub, str) and sub and isinstance(room, str)):
        raise TokenError(TokenProblem.INVALID)
    if role not in {r.value for r in Role}:
        raise TokenError(TokenProblem.INVALID)
    if claims.get("scope") != scope:
        # A desk token never opens a room, a room token never opens a desk.
        raise TokenError(TokenProblem.INVALID)
    if not (isinstance(nbf, int) and isinstance(exp, int)):
        raise TokenError(TokenProblem.INVALID)
    if room != room_id:
        raise TokenError(TokenProblem.WRONG_ROOM)
    not_before = datetime.fromtimestamp(nbf, tz=now.tzinfo)
    expires_at = datetime.fromtimestamp(exp, tz=now.tzinfo)
    if now < not_before:
        raise TokenError(TokenProblem.NOT_YET_VALID, opens_at=not_before)
    if now >= expires_at:
        raise TokenError(TokenProblem.EXPIRED)
    return JoinClaims(room, sub, Role(role), not_before, expires_at)


def link_key(room_id: str, person_id: str, role: Role | str) -> str:
    """One link (room, person, role) as one key: what rate limits count per."""
    return "\x00".join((room_id, person_id, str(role)))


def signed_link(secret: str, token: object) -> str | None:
    """The link key of a genuine token (our signature, early or late alike); None otherwise."""
    if not isinstance(token, str) or not token:
        return None
    options: jwt.types.Options = {"verify_nbf": False, "verify_exp": False}
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], options=options)
    except jwt.PyJWTError:
        return None
    sub, room, role = claims.get("sub"), claims.get("room"), claims.get("role")
    if not (isinstance(sub, str) and isinstance(room, str) and isinstance(role, str)):
        return None
    return link_key(room, sub, role)


def room_id_for(secret: str, appointment_id: str) -> str:
    """The room id of an appointment: a keyed function of it, the same on every node.

    A room re-created after its store was lost (a Redis restart without
    persistence) gets its old id back, so the links already sent work again;
    without the secret nobody can tell which appointment a room id belongs to.
    """
    digest = hmac.new(
        secret.encode(), b"teleconsult room id\x00" + appointment_id.encode(), hashlib.sha256
    ).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()
