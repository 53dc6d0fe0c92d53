"""Socket.IO handlers: authenticate with the join token, then thin calls into the domain.

The contract is docs/protocol.md. Every handler answers through its ack with
`{"ok": true, ...}` or `{"ok": false, "error": {"code", "message"}}`.
"""

from __future__ import annotations

import contextlib
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
from rooms.errors import DomainError, ErrorCode
from rooms.roles import Actor, Role
from rooms.room import Room
from signalling import tokens
from signalling.config import Settings
from signalling.room_hub import (
    RoomHub,
    entry_channel,
    practitioners_channel,
    room_channel,
    waiting_list_payload,
)
from turn import credentials as turn_credentials

logger = logging.getLogger(__name__)

ROOM_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
Ack = dict[str, Any]


@dataclass(frozen=True, slots=True)
class SocketSession:
    room_id: str
    actor: Actor
    entry_id: str


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


def session_payload(
    room: Room, actor: Actor, settings: Settings, now: datetime, entry_id: str
) -> dict[str, Any]:
    person = (
        room.appointment.practitioner
        if actor.role is Role.PRACTITIONER
        else room.appointment.patient
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
    }


class SignallingNamespace:
    """Registers the handlers of the default namespace on `sio`."""

    def __init__(self, sio: socketio.AsyncServer, hub: RoomHub, settings: Settings) -> None:
        self.sio = sio
        self.hub = hub
        self.settings = settings
        self.sessions: dict[str, SocketSession] = {}
        sio.on("connect", self.connect)
        sio.on("disconnect", self.disconnect)
        handlers: dict[str, Callable[[SocketSession, Any], Awaitable[Ack]]] = {
            "check_in": self.check_in,
            "open_consultation": self.open_consultation,
            "admit": self.admit,
            "deny": self.deny,
            "end_consultation": self.end_consultation,
            "leave": self.leave,
            "publish": self.publish,
            "subscription_answer": self.subscription_answer,
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
            except Exception:
                logger.exception("socket event=%s entry=%s failed", event, session.entry_id)
                return _error("internal_error", "Something went wrong on our side.")

        return run

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
            raise _refuse(exc.problem.value, TOKEN_MESSAGES[exc.problem], **extra) from None
        room = await self.hub.store.get(room_id)
        if room is None:
            raise _refuse("room_not_found", "No such consultation room.")
        actor = Actor(claims.person_id, claims.role)
        if not (room.is_practitioner(actor) or room.is_patient(actor)):
            raise _refuse("token_invalid", TOKEN_MESSAGES[tokens.TokenProblem.INVALID])
        try:
            room.check_joinable(now)
        except DomainError as exc:
            extra = (
                {"opens_at": room.window.opens_at.isoformat()}
                if exc.code is ErrorCode.ROOM_NOT_YET_OPEN
                else {}
            )
            raise _refuse(exc.code.value, exc.message, **extra) from None
        session = SocketSession(room_id, actor, secrets.token_urlsafe(9))
        self.sessions[sid] = session
        await self.sio.enter_room(sid, entry_channel(session.entry_id))
        await self.sio.enter_room(sid, room_channel(room_id))
        if actor.role is Role.PRACTITIONER:
            await self.sio.enter_room(sid, practitioners_channel(room_id))
        logger.info(
            "socket connected room=%s entry=%s role=%s", room_id, session.entry_id, actor.role
        )
        payload = session_payload(room, actor, self.settings, now, session.entry_id)
        # Sent once the CONNECT packet is out: clients drop events of a namespace
        # they have not joined yet.
        self.sio.start_background_task(self._send_session, sid, payload)

    async def _send_session(self, sid: str, payload: dict[str, Any]) -> None:
        await self.sio.sleep(0)
        await self.sio.emit("session", payload, to=sid)

    async def disconnect(self, sid: str, *args: Any) -> None:
        session = self.sessions.pop(sid, None)
        if session is None:
            return
        logger.info("socket disconnected room=%s entry=%s", session.room_id, session.entry_id)
        with contextlib.suppress(DomainError):
            await self.hub.apply(
                session.room_id,
                lambda room: transitions.leave(room, session.entry_id, self.hub.clock()),
            )

    async def check_in(self, session: SocketSession, data: Any) -> Ack:
        transition = await self.hub.apply(
            session.room_id,
            lambda room: transitions.check_in(
                room, session.actor, session.entry_id, self.hub.clock()
            ),
        )
        return _ok(position=transition.room.waiting.position(session.entry_id))

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
        await self.hub.apply(
            session.room_id,
            lambda room: transitions.deny(room, session.actor, entry_id, self.hub.clock()),
        )
        return _ok()

    async def end_consultation(self, session: SocketSession, data: Any) -> Ack:
        await self.hub.apply(
            session.room_id,
            lambda room: transitions.end(room, session.actor, self.hub.clock()),
        )
        return _ok()

    async def leave(self, session: SocketSession, data: Any) -> Ack:
        await self.hub.apply(
            session.room_id,
            lambda room: transitions.leave(room, session.entry_id, self.hub.clock()),
        )
        return _ok()

    async def _require_in_call(self, session: SocketSession) -> None:
        room = await self.hub.store.get(session.room_id)
        if room is None:
            raise DomainError(ErrorCode.ROOM_NOT_FOUND)
        if room.participant(session.entry_id) is None:
            raise DomainError(ErrorCode.NOT_IN_CALL)

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


def _entry_id(data: Any) -> str:
    entry_id = data.get("entry_id") if isinstance(data, dict) else None
    if not isinstance(entry_id, str) or not entry_id or len(entry_id) > 64:
        raise DomainError(ErrorCode.NOT_WAITING, "Expected {entry_id} of a waiting patient.")
    return entry_id
