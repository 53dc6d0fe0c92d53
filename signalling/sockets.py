"""Socket.IO handlers: authenticate with the join token, then thin calls into the domain.

The contract is docs/protocol.md. Every handler answers through its ack with
`{"ok": true, ...}` or `{"ok": false, "error": {"code", "message"}}`.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import socketio

from media.relay import MediaError
from rooms import room as transitions
from rooms.appointment import Person
from rooms.errors import DomainError, ErrorCode
from rooms.events import ParticipantResumed
from rooms.roles import Actor, Role
from rooms.room import Participant, Room, Transition
from signalling import tokens
from signalling.config import Settings
from signalling.links import join_link
from signalling.room_hub import (
    RoomHub,
    entry_channel,
    place_payload,
    practitioners_channel,
    room_channel,
    waiting_list_payload,
)
from store.errors import StoreUnavailable
from turn import credentials as turn_credentials
from waiting_room.queue import WaitingEntry

logger = logging.getLogger(__name__)

ROOM_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
ENTRY_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# What we issue is token_urlsafe(32): 43 characters.
RESUME_SECRET = re.compile(r"^[A-Za-z0-9_-]{32,128}$")
Ack = dict[str, Any]

# End-to-end encryption messages (docs/e2ee.md) are opaque to us: we check
# only their shape and size, forward them, and never log or store them.
E2EE_PUBLIC_KEY_BYTES = 65  # An uncompressed P-256 point.
E2EE_WRAPPED_MAX_BYTES = 256


class InvalidRequest(Exception):
    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class SocketSession:
    room_id: str
    actor: Actor
    entry_id: str
    # Patients and guests: the hash of the secret their device keeps to come
    # back to their place (docs/protocol.md, "Coming back"); never the secret.
    resume_hash: str | None = None
    # The entry's takeover count this connection holds.
    connection: int = 0


def _ok(**fields: Any) -> Ack:
    return {"ok": True, **fields}


def _error(code: str, message: str) -> Ack:
    return {"ok": False, "error": {"code": code, "message": message}}


def _refuse(code: str, message: str, **extra: Any) -> socketio.exceptions.ConnectionRefusedError:
    return socketio.exceptions.ConnectionRefusedError(
        message, {"code": code, "message": message, **extra}
    )


TOKEN_MESSAGES = {
    tokens.TokenProblem.MISSING: "This link is incomplete: the access key is missing.",
    tokens.TokenProblem.INVALID: "This link is not valid. Please use the link you were sent.",
    tokens.TokenProblem.WRONG_ROOM: "This link belongs to another consultation.",
    tokens.TokenProblem.NOT_YET_VALID: "The consultation room is not open yet.",
    tokens.TokenProblem.EXPIRED: "The consultation room is closed.",
}


def ice_servers_payload(settings: Settings, entry_id: str, now: datetime) -> list[dict[str, Any]]:
    servers: list[dict[str, Any]] = [
        {
            "urls": list(server.urls),
            **({"username": server.username} if server.username else {}),
            **({"credential": server.credential} if server.credential else {}),
        }
        for server in settings.ice_servers
    ]
    if settings.turn_urls and settings.turn_secret:
        login = turn_credentials.issue(settings.turn_secret, entry_id, now, settings.turn_ttl)
        servers.append(
            {
                "urls": list(settings.turn_urls),
                "username": login.username,
                "credential": login.password,
            }
        )
    return servers


def practice_payload(room: Room) -> dict[str, Any] | None:
    practice = room.appointment.practice
    return None if practice is None else {"name": practice.name, "phone": practice.phone}


def appointment_details(room: Room) -> dict[str, Any]:
    """What a refused page shows beside the refusal (too early, closed): for a genuine link."""
    return {
        "starts_at": room.appointment.starts_at.isoformat(),
        "practitioner_name": room.appointment.practitioner.name,
        "locale": room.appointment.locale,
        "practice": practice_payload(room),
    }


def session_payload(
    room: Room, actor: Actor, settings: Settings, now: datetime, entry_id: str
) -> dict[str, Any]:
    person = (
        room.appointment.practitioner
        if actor.role is Role.PRACTITIONER
        else room.visitor(actor) or room.appointment.patient
    )
    return {
        "role": actor.role.value,
        "participant": {"name": person.name},
        "room": {
            "id": room.id,
            "status": room.status(now).value,
            "starts_at": room.appointment.starts_at.isoformat(),
            "ends_at": room.appointment.ends_at.isoformat(),
            "opens_at": room.window.opens_at.isoformat(),
            "closes_at": room.window.closes_at.isoformat(),
            "practitioner_name": room.appointment.practitioner.name,
        },
        "ice_servers": ice_servers_payload(settings, entry_id, now),
        "ice_transport_policy": settings.ice_transport_policy,
        "e2ee": settings.e2ee,
        # The booking system's language for this appointment (null: the page chooses).
        "locale": room.appointment.locale,
        "practice": practice_payload(room),
    }


class SignallingNamespace:
    """Registers the handlers of the default namespace on `sio`."""

    def __init__(self, sio: socketio.AsyncServer, hub: RoomHub, settings: Settings) -> None:
        self.sio = sio
        self.hub = hub
        self.settings = settings
        self.sessions: dict[str, SocketSession] = {}
        self._hello_budget = RateLimit(per_minute=60)
        # A rekey sends one key to each other participant; a few rekeys a minute is plenty.
        self._key_budget = RateLimit(per_minute=120)
        sio.on("connect", self.connect)
        sio.on("disconnect", self.disconnect)
        handlers: dict[str, Callable[[SocketSession, Any], Awaitable[Ack]]] = {
            "check_in": self.check_in,
            "open_consultation": self.open_consultation,
            "admit": self.admit,
            "deny": self.deny,
            "end_consultation": self.end_consultation,
            "return_to_waiting": self.return_to_waiting,
            "invite_guest": self.invite_guest,
            "leave": self.leave,
            "publish": self.publish,
            "subscription_answer": self.subscription_answer,
            "e2ee_hello": self.e2ee_hello,
            "e2ee_key": self.e2ee_key,
        }
        for event, handler in handlers.items():
            sio.on(event, self._guarded(event, handler))

    def _guarded(
        self, event: str, handler: Callable[[SocketSession, Any], Awaitable[Ack]]
    ) -> Callable[..., Awaitable[Ack]]:
        async def run(sid: str, data: Any = None) -> Ack:
            session = self.sessions.get(sid)
            if session is None:
                return _error("not_connected", "This connection is not authenticated.")
            try:
                return await handler(session, data)
            except DomainError as exc:
                return _error(exc.code.value, exc.message)
            except MediaError as exc:
                return _error(exc.code, exc.message)
            except InvalidRequest as exc:
                return _error("invalid_request", exc.message)
            except StoreUnavailable:
                return _error(
                    "store_unavailable",
                    "The service is temporarily unavailable; try again shortly.",
                )
            except Exception:
                logger.exception("socket event=%s entry=%s failed", event, session.entry_id)
                return _error("internal_error", "Something went wrong on our side.")

        return run

    async def _details_of(self, room_id: str) -> dict[str, Any]:
        try:
            room = await self.hub.store.get(room_id)
        except StoreUnavailable:
            return {}
        return {} if room is None else appointment_details(room)

    async def connect(self, sid: str, environ: dict[str, Any], auth: Any) -> None:
        auth = auth if isinstance(auth, dict) else {}
        room_id = auth.get("room_id")
        if not isinstance(room_id, str) or not ROOM_ID.match(room_id):
            raise _refuse("room_not_found", "No such consultation room.")
        now = self.hub.clock()
        try:
            claims = tokens.verify(self.settings.token_secret, auth.get("token"), room_id, now)
        except tokens.TokenError as exc:
            extra = {"opens_at": exc.opens_at.isoformat()} if exc.opens_at else {}
            if exc.problem in (tokens.TokenProblem.NOT_YET_VALID, tokens.TokenProblem.EXPIRED):
                # A genuine link for this room, early or late: say for which appointment.
                extra.update(await self._details_of(room_id))
            raise _refuse(exc.problem.value, TOKEN_MESSAGES[exc.problem], **extra) from None
        try:
            room = await self.hub.store.get(room_id)
        except StoreUnavailable:
            raise _refuse(
                "store_unavailable", "The service is briefly unavailable. Retrying…"
            ) from None
        if room is None:
            raise _refuse("room_not_found", "No such consultation room.")
        actor = Actor(claims.person_id, claims.role)
        if not (room.is_practitioner(actor) or room.visitor(actor) is not None):
            raise _refuse("token_invalid", TOKEN_MESSAGES[tokens.TokenProblem.INVALID])
        try:
            room.check_joinable(now)
        except DomainError as exc:
            extra = (
                {"opens_at": room.window.opens_at.isoformat()}
                if exc.code is ErrorCode.ROOM_NOT_YET_OPEN
                else {}
            )
            raise _refuse(
                exc.code.value, exc.message, **extra, **appointment_details(room)
            ) from None
        resume_secret = auth.get("resume")
        if resume_secret is not None and (
            not isinstance(resume_secret, str) or not RESUME_SECRET.match(resume_secret)
        ):
            raise _refuse("invalid_request", "The resume key is not valid.")
        resumed: Transition | None = None
        new_secret: str | None = None
        if actor.role is Role.PRACTITIONER:
            session = SocketSession(room_id, actor, secrets.token_urlsafe(9))
        else:
            if resume_secret is not None:
                resumed = await self._resume(room_id, actor, resume_secret, now)
            if resumed is not None:
                [event] = resumed.events
                assert isinstance(event, ParticipantResumed)
                taken = _entry_state(resumed.room, event.entry_id)
                session = SocketSession(
                    room_id,
                    actor,
                    event.entry_id,
                    transitions.hash_resume_secret(str(resume_secret)),
                    taken.connection,
                )
            else:
                new_secret = secrets.token_urlsafe(32)
                session = SocketSession(
                    room_id,
                    actor,
                    secrets.token_urlsafe(9),
                    transitions.hash_resume_secret(new_secret),
                )
        replaced = [
            other
            for other, known in self.sessions.items()
            if known.room_id == room_id and known.entry_id == session.entry_id
        ]
        for other in replaced:
            # Its late disconnect must not mark the entry away, nor events reach it.
            self.sessions.pop(other, None)
            await self.sio.leave_room(other, entry_channel(session.entry_id))
        self.sessions[sid] = session
        await self.sio.enter_room(sid, entry_channel(session.entry_id))
        await self.sio.enter_room(sid, room_channel(room_id))
        if actor.role is Role.PRACTITIONER:
            await self.sio.enter_room(sid, practitioners_channel(room_id))
        logger.info(
            "socket connected room=%s entry=%s role=%s resumed=%s",
            room_id,
            session.entry_id,
            actor.role,
            resumed is not None,
        )
        payload = session_payload(room, actor, self.settings, now, session.entry_id)
        if new_secret is not None:
            payload["resume"] = new_secret
        payload["resumed"] = None
        if resumed is not None:
            in_call = resumed.room.participant(session.entry_id) is not None
            payload["resumed"] = "in_call" if in_call else "waiting"
        # Sent once the CONNECT packet is out: clients drop events of a namespace
        # they have not joined yet.
        self.sio.start_background_task(self._send_session, sid, payload, resumed, replaced)

    async def _resume(
        self, room_id: str, actor: Actor, secret: str, now: datetime
    ) -> Transition | None:
        """Take a kept entry over, or None when there is none for this secret (start afresh)."""
        presented = transitions.hash_resume_secret(secret)
        try:
            return await self.hub.store.update(
                room_id, lambda room: transitions.resume(room, actor, presented, now)
            )
        except DomainError as exc:
            if exc.code is ErrorCode.NOT_WAITING:
                return None
            raise _refuse(exc.code.value, exc.message) from None
        except StoreUnavailable:
            raise _refuse(
                "store_unavailable", "The service is briefly unavailable. Retrying…"
            ) from None

    async def _send_session(
        self,
        sid: str,
        payload: dict[str, Any],
        resumed: Transition | None = None,
        replaced: list[str] | None = None,
    ) -> None:
        await self.sio.sleep(0)
        await self.sio.emit("session", payload, to=sid)
        for other in replaced or ():
            # The same tab twice (a duplicated tab copies its storage): the newest wins,
            # and the other is told why rather than reconnecting to take it back.
            await self.sio.emit("replaced", {}, to=other)
            await self.sio.disconnect(other)
        if resumed is not None:
            # After `session`: what follows (the place, subscription offers) needs it first.
            await self.hub.announce(resumed)

    async def disconnect(self, sid: str, *args: Any) -> None:
        session = self.sessions.pop(sid, None)
        if session is None:
            return
        logger.info("socket disconnected room=%s entry=%s", session.room_id, session.entry_id)
        try:
            # A patient or guest keeps their place for a while; anyone else leaves now.
            await self.hub.apply(
                session.room_id,
                lambda room: transitions.step_away(
                    room, session.entry_id, session.connection, self.hub.clock()
                ),
            )
        except DomainError:
            pass
        except StoreUnavailable:
            # Their entry stays until the sweeper or the end of the window removes it.
            logger.warning("leave on disconnect lost: store unavailable entry=%s", session.entry_id)

    async def check_in(self, session: SocketSession, data: Any) -> Ack:
        transition = await self.hub.apply(
            session.room_id,
            lambda room: transitions.check_in(
                room, session.actor, session.entry_id, self.hub.clock(), session.resume_hash
            ),
        )
        place = (await self.hub.waiting_places(transition.room))[session.entry_id]
        return _ok(**place_payload(place))

    async def open_consultation(self, session: SocketSession, data: Any) -> Ack:
        transition = await self.hub.apply(
            session.room_id,
            lambda room: transitions.join_as_practitioner(
                room, session.actor, session.entry_id, self.hub.clock()
            ),
        )
        await self.sio.emit(
            "waiting_list",
            waiting_list_payload(transition.room),
            room=entry_channel(session.entry_id),
        )
        return _ok()

    async def admit(self, session: SocketSession, data: Any) -> Ack:
        entry_id = _entry_id(data)
        await self.hub.apply(
            session.room_id,
            lambda room: transitions.admit(room, session.actor, entry_id, self.hub.clock()),
        )
        return _ok()

    async def deny(self, session: SocketSession, data: Any) -> Ack:
        entry_id = _entry_id(data)
        reason = data.get("reason") if isinstance(data, dict) else None
        if reason is not None and not isinstance(reason, str):
            raise InvalidRequest("reason must be text.")
        await self.hub.apply(
            session.room_id,
            lambda room: transitions.deny(room, session.actor, entry_id, self.hub.clock(), reason),
        )
        return _ok()

    async def return_to_waiting(self, session: SocketSession, data: Any) -> Ack:
        entry_id = _entry_id(data)
        await self.hub.apply(
            session.room_id,
            lambda room: transitions.return_to_waiting(
                room, session.actor, entry_id, self.hub.clock()
            ),
        )
        return _ok()

    async def invite_guest(self, session: SocketSession, data: Any) -> Ack:
        name = data.get("name") if isinstance(data, dict) else None
        if not isinstance(name, str) or not name.strip() or len(name.strip()) > 200:
            raise InvalidRequest("name must be 1 to 200 characters.")
        room = await self.hub.store.get(session.room_id)
        if room is None:
            raise DomainError(ErrorCode.ROOM_NOT_FOUND)
        if not room.is_practitioner(session.actor):
            raise DomainError(ErrorCode.NOT_ALLOWED)
        guest = Person("guest-" + secrets.token_urlsafe(9), name.strip())
        now = self.hub.clock()
        transition = await self.hub.apply(
            session.room_id, lambda r: transitions.invite_guest(r, guest, now)
        )
        return _ok(
            guest_id=guest.id,
            link=join_link(self.settings, transition.room, Role.GUEST, guest),
        )

    async def end_consultation(self, session: SocketSession, data: Any) -> Ack:
        await self.hub.apply(
            session.room_id,
            lambda room: transitions.end(room, session.actor, self.hub.clock()),
        )
        return _ok()

    async def leave(self, session: SocketSession, data: Any) -> Ack:
        await self._leave(session)
        return _ok()

    async def _leave(self, session: SocketSession) -> None:
        # The hub tells those still in the call (`e2ee_peer_left`) to rotate their keys.
        await self.hub.apply(
            session.room_id,
            lambda room: transitions.leave_from(
                room, session.entry_id, session.connection, self.hub.clock()
            ),
        )

    async def _require_in_call(self, session: SocketSession) -> Room:
        room = await self.hub.store.get(session.room_id)
        if room is None:
            raise DomainError(ErrorCode.ROOM_NOT_FOUND)
        if room.participant(session.entry_id) is None:
            raise DomainError(ErrorCode.NOT_IN_CALL)
        return room

    async def publish(self, session: SocketSession, data: Any) -> Ack:
        await self._require_in_call(session)
        if not isinstance(data, dict) or data.get("type") != "offer":
            return _error("invalid_request", "Expected {sdp, type: 'offer'}.")
        answer = await self.hub.relay.publish(session.room_id, session.entry_id, data.get("sdp"))
        return _ok(answer={"sdp": answer, "type": "answer"})

    async def subscription_answer(self, session: SocketSession, data: Any) -> Ack:
        await self._require_in_call(session)
        if not isinstance(data, dict) or data.get("type") != "answer":
            return _error("invalid_request", "Expected {subscription_id, sdp, type: 'answer'}.")
        await self.hub.relay.answer(
            session.room_id, session.entry_id, data.get("subscription_id"), data.get("sdp")
        )
        return _ok()

    async def e2ee_hello(self, session: SocketSession, data: Any) -> Ack:
        """Forward our public key to the others in the call, or to one of them (`to`)."""
        if not self._hello_budget.allow(session.entry_id, self.hub.clock()):
            # A page sends a handful per join or rekey; more is a page flooding the others.
            return _error("rate_limited", "Too many key announcements; wait a few seconds.")
        room = await self._require_in_call(session)
        fields = _e2ee_fields(data, {"public_key", "to"})
        public_key = _public_key(fields.get("public_key"))
        others = [p.entry_id for p in room.in_call if p.entry_id != session.entry_id]
        if "to" in fields:
            to = _recipient(fields["to"], others)
            others = [to]
        for entry_id in others:
            await self.sio.emit(
                "e2ee_hello",
                {"from": session.entry_id, "public_key": public_key},
                room=entry_channel(entry_id),
            )
        return _ok()

    async def e2ee_key(self, session: SocketSession, data: Any) -> Ack:
        """Forward a wrapped media key to exactly one other participant in the call."""
        if not self._key_budget.allow(session.entry_id, self.hub.clock()):
            return _error("rate_limited", "Too many keys sent; wait a few seconds.")
        room = await self._require_in_call(session)
        fields = _e2ee_fields(data, {"to", "public_key", "wrapped"})
        public_key = _public_key(fields.get("public_key"))
        wrapped = fields.get("wrapped")
        if _base64_length(wrapped) not in range(1, E2EE_WRAPPED_MAX_BYTES + 1):
            raise InvalidRequest(
                f"wrapped must be base64 of at most {E2EE_WRAPPED_MAX_BYTES} bytes."
            )
        others = [p.entry_id for p in room.in_call if p.entry_id != session.entry_id]
        to = _recipient(fields.get("to"), others)
        await self.sio.emit(
            "e2ee_key",
            {"from": session.entry_id, "public_key": public_key, "wrapped": wrapped},
            room=entry_channel(to),
        )
        return _ok()


class RateLimit:
    """At most `per_minute` events per key in any rolling minute (keys forgotten when idle)."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._seen: dict[str, list[datetime]] = {}

    def allow(self, key: str, now: datetime) -> bool:
        recent = [t for t in self._seen.get(key, ()) if (now - t).total_seconds() < 60]
        if len(recent) >= self.per_minute:
            self._seen[key] = recent
            return False
        recent.append(now)
        self._seen[key] = recent
        if len(self._seen) > 10_000:
            # Bounded memory: drop keys with nothing in the last minute.
            self._seen = {k: v for k, v in self._seen.items() if (now - v[-1]).total_seconds() < 60}
        return True


def _entry_id(data: Any) -> str:
    entry_id = data.get("entry_id") if isinstance(data, dict) else None
    if not isinstance(entry_id, str) or not entry_id or len(entry_id) > 64:
        raise DomainError(ErrorCode.NOT_WAITING, "Expected {entry_id} of a waiting patient.")
    return entry_id


def _e2ee_fields(data: Any, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise InvalidRequest("Expected an object.")
    unknown = set(data) - allowed
    if unknown:
        # Names only, never values: these messages carry key material.
        raise InvalidRequest(f"Unexpected fields: {', '.join(sorted(map(str, unknown)))[:200]}.")
    return data


def _base64_length(value: Any) -> int:
    """Length of what `value` decodes to, or -1 when it is not a base64 string."""
    if not isinstance(value, str) or len(value) > 4 * E2EE_WRAPPED_MAX_BYTES:
        return -1
    try:
        return len(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError):
        return -1


def _public_key(value: Any) -> str:
    if _base64_length(value) != E2EE_PUBLIC_KEY_BYTES or base64.b64decode(value)[0] != 0x04:
        raise InvalidRequest("public_key must be base64 of an uncompressed P-256 point.")
    return str(value)


def _recipient(value: Any, others: list[str]) -> str:
    if not isinstance(value, str) or not ENTRY_ID.match(value):
        raise InvalidRequest("to must be the entry id of a participant.")
    if value not in others:
        raise DomainError(ErrorCode.NOT_IN_CALL, "That participant is not in the call.")
    return value


def _entry_state(room: Room, entry_id: str) -> WaitingEntry | Participant:
    found = room.waiting.get(entry_id) or room.participant(entry_id)
    if found is None:
        raise DomainError(ErrorCode.NOT_WAITING)
    return found
