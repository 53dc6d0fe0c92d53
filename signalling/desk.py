"""The practitioner's desk: their day across rooms, live, on the `/desk` Socket.IO namespace.

A desk link (`{public_url}/d#{token}`, minted through the API) carries a
desk-scoped token for one practitioner. The desk lists that practitioner's
appointments around now, who is waiting, and lets them admit, deny (with a
reason the patient sees) and message waiting patients. Updates are pushed
whenever one of their rooms changes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import socketio

from rooms.admission import admit, deny, return_to_waiting
from rooms.errors import DomainError, ErrorCode
from rooms.lifecycle import end
from rooms.roles import Actor, Role
from rooms.room import Room
from signalling import tokens
from signalling.config import Settings
from signalling.links import join_link
from signalling.room_hub import RoomHub, entry_channel
from store.errors import StoreUnavailable
from waiting_room.practitioner_day import days_rooms, desk_rows

logger = logging.getLogger(__name__)

NAMESPACE = "/desk"
EXPIRED_MESSAGE = "This desk link has expired: ask for a new one."
MAX_MESSAGE = 500
Ack = dict[str, Any]


def desk_channel(practitioner_id: str) -> str:
    return f"desk:{practitioner_id}"


def _ok(**fields: Any) -> Ack:
    return {"ok": True, **fields}


def _error(code: str, message: str) -> Ack:
    return {"ok": False, "error": {"code": code, "message": message}}


def _text(data: Any, key: str, limit: int, *, required: bool = True) -> str | None:
    value = data.get(key) if isinstance(data, dict) else None
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise DomainError(ErrorCode.INVALID_REQUEST, f"`{key}` must be 1 to {limit} characters.")
    return value.strip()


def desk_document(
    settings: Settings, rooms: list[Room], practitioner_id: str, now: datetime
) -> dict[str, Any]:
    mine = {room.id: room for room in days_rooms(rooms, practitioner_id, now)}

    def time(value: datetime | None) -> str | None:
        return None if value is None else value.isoformat()

    rows = []
    for row in desk_rows(mine.values(), now):
        room = mine[row.room_id]
        open_room = room.status(now).value in ("scheduled", "open", "in_consultation")
        rows.append(
            {
                "room_id": row.room_id,
                "appointment_id": row.appointment_id,
                "patient_name": row.patient_name,
                "starts_at": row.starts_at.isoformat(),
                "ends_at": row.ends_at.isoformat(),
                "state": row.state.value,
                "waiting_since": time(row.waiting_since),
                "expected_start": time(row.expected_start),
                "waiting": [
                    {
                        "entry_id": view.entry_id,
                        "name": view.name,
                        "role": view.role.value,
                        "waiting_since": view.waiting_since.isoformat(),
                        "away_since": time(view.away_since),
                    }
                    for view in room.waiting.practitioner_view()
                ],
                # Patients and guests in the call, whom the desk can send back to wait.
                "in_call": [
                    {"entry_id": p.entry_id, "name": p.name, "role": p.role.value}
                    for p in room.in_call
                    if p.role is not Role.PRACTITIONER
                ],
                "link": join_link(settings, room, Role.PRACTITIONER) if open_room else None,
            }
        )
    return {"now": now.isoformat(), "rows": rows}


class DeskNamespace:
    def __init__(self, sio: socketio.AsyncServer, hub: RoomHub, settings: Settings) -> None:
        self.sio = sio
        self.hub = hub
        self.settings = settings
        self.sessions: dict[str, str] = {}  # sid -> practitioner id
        self.expires: dict[str, datetime] = {}  # sid -> when its desk link expires
        self._timers: dict[str, Any] = {}  # sid -> the task that ends it at expiry
        sio.on("connect", self.connect, namespace=NAMESPACE)
        sio.on("disconnect", self.disconnect, namespace=NAMESPACE)
        handlers: dict[str, Callable[[str, Any], Awaitable[Ack]]] = {
            "admit": self.admit,
            "deny": self.deny,
            "message": self.message,
            "return_to_waiting": self.return_to_waiting,
            "end": self.end,
            "refresh": self.refresh,
        }
        for event, handler in handlers.items():
            sio.on(event, self._guarded(event, handler), namespace=NAMESPACE)
        hub.listeners.append(self.room_changed)

    def _guarded(
        self, event: str, handler: Callable[[str, Any], Awaitable[Ack]]
    ) -> Callable[..., Awaitable[Ack]]:
        async def run(sid: str, data: Any = None) -> Ack:
            practitioner_id = self.sessions.get(sid)
            if practitioner_id is None:
                return _error("not_connected", "This connection is not authenticated.")
            if self.hub.clock() >= self.expires[sid]:
                await self._forget(sid)
                return _error(tokens.TokenProblem.EXPIRED.value, EXPIRED_MESSAGE)
            try:
                return await handler(practitioner_id, data)
            except DomainError as exc:
                return _error(exc.code.value, exc.message)
            except StoreUnavailable:
                return _error(
                    "store_unavailable",
                    "The service is temporarily unavailable; try again shortly.",
                )
            except Exception:
                logger.exception("desk event=%s failed", event)
                return _error("internal_error", "Something went wrong on our side.")

        return run

    async def connect(self, sid: str, environ: dict[str, Any], auth: Any) -> None:
        token = auth.get("token") if isinstance(auth, dict) else None
        try:
            claims = tokens.verify_desk(self.settings.token_secret, token, self.hub.clock())
        except tokens.TokenError as exc:
            message = {
                tokens.TokenProblem.MISSING: "This desk link is incomplete.",
                tokens.TokenProblem.EXPIRED: EXPIRED_MESSAGE,
                tokens.TokenProblem.NOT_YET_VALID: "This desk link is not valid yet.",
            }.get(exc.problem, "This desk link is not valid.")
            raise socketio.exceptions.ConnectionRefusedError(
                message, {"code": exc.problem.value, "message": message}
            ) from None
        self.sessions[sid] = claims.practitioner_id
        self.expires[sid] = claims.expires_at
        await self.sio.enter_room(sid, desk_channel(claims.practitioner_id), namespace=NAMESPACE)
        self.sio.start_background_task(self._send, sid, claims.practitioner_id)
        # The link is good for one working day: a desk left open stops receiving names then.
        lifetime = (claims.expires_at - self.hub.clock()).total_seconds()
        self._timers[sid] = self.sio.start_background_task(self._expire_later, sid, lifetime)

    async def _expire_later(self, sid: str, delay: float) -> None:
        await self.sio.sleep(max(delay, 0.0))
        if await self._forget(sid):
            await self.sio.disconnect(sid, namespace=NAMESPACE)

    async def _forget(self, sid: str) -> bool:
        """Stop acting for and pushing to `sid`; False when it was not (or no longer) known."""
        practitioner_id = self.sessions.pop(sid, None)
        self.expires.pop(sid, None)
        timer = self._timers.pop(sid, None)
        if timer is not None and timer is not asyncio.current_task():
            timer.cancel()
        if practitioner_id is None:
            return False
        await self.sio.leave_room(sid, desk_channel(practitioner_id), namespace=NAMESPACE)
        return True

    async def disconnect(self, sid: str) -> None:
        self.sessions.pop(sid, None)
        self.expires.pop(sid, None)
        timer = self._timers.pop(sid, None)
        if timer is not None and timer is not asyncio.current_task():
            timer.cancel()

    async def _document(self, practitioner_id: str) -> dict[str, Any]:
        rooms = await self.hub.store.rooms()
        return desk_document(self.settings, rooms, practitioner_id, self.hub.clock())

    async def _send(self, sid: str, practitioner_id: str) -> None:
        await self.sio.emit(
            "desk", await self._document(practitioner_id), to=sid, namespace=NAMESPACE
        )

    async def room_changed(self, room: Room) -> None:
        practitioner_id = room.appointment.practitioner.id
        await self.sio.emit(
            "desk",
            await self._document(practitioner_id),
            room=desk_channel(practitioner_id),
            namespace=NAMESPACE,
        )

    async def _room_of(self, practitioner_id: str, data: Any) -> Room:
        room_id = data.get("room_id") if isinstance(data, dict) else None
        room = await self.hub.store.get(room_id) if isinstance(room_id, str) else None
        if room is None or room.appointment.practitioner.id != practitioner_id:
            # Someone else's room looks exactly like no room.
            raise DomainError(ErrorCode.ROOM_NOT_FOUND)
        return room

    async def admit(self, practitioner_id: str, data: Any) -> Ack:
        room = await self._room_of(practitioner_id, data)
        entry_id = _text(data, "entry_id", 100)
        assert entry_id is not None
        actor = Actor(practitioner_id, Role.PRACTITIONER)
        now = self.hub.clock()
        await self.hub.apply(room.id, lambda r: admit(r, actor, entry_id, now))
        return _ok(link=join_link(self.settings, room, Role.PRACTITIONER))

    async def deny(self, practitioner_id: str, data: Any) -> Ack:
        room = await self._room_of(practitioner_id, data)
        entry_id = _text(data, "entry_id", 100)
        assert entry_id is not None
        reason = _text(data, "reason", 300, required=False)
        actor = Actor(practitioner_id, Role.PRACTITIONER)
        now = self.hub.clock()
        await self.hub.apply(room.id, lambda r: deny(r, actor, entry_id, now, reason))
        return _ok()

    async def return_to_waiting(self, practitioner_id: str, data: Any) -> Ack:
        room = await self._room_of(practitioner_id, data)
        entry_id = _text(data, "entry_id", 100)
        assert entry_id is not None
        actor = Actor(practitioner_id, Role.PRACTITIONER)
        now = self.hub.clock()
        await self.hub.apply(room.id, lambda r: return_to_waiting(r, actor, entry_id, now))
        return _ok()

    async def end(self, practitioner_id: str, data: Any) -> Ack:
        """End a consultation for everyone in it, from the desk."""
        room = await self._room_of(practitioner_id, data)
        actor = Actor(practitioner_id, Role.PRACTITIONER)
        now = self.hub.clock()
        await self.hub.apply(room.id, lambda r: end(r, actor, now))
        return _ok()

    async def message(self, practitioner_id: str, data: Any) -> Ack:
        """Tell one room's waiting people, or everyone waiting for this practitioner."""
        text = _text(data, "text", MAX_MESSAGE)
        now = self.hub.clock()
        if isinstance(data, dict) and data.get("room_id") is not None:
            rooms = [await self._room_of(practitioner_id, data)]
        else:
            rooms = days_rooms(await self.hub.store.rooms(), practitioner_id, now)
        recipients = [entry.entry_id for room in rooms for entry in room.waiting.entries]
        payload = {"text": text, "sent_at": now.isoformat()}
        for entry_id in recipients:
            await self.sio.emit("practitioner_message", payload, room=entry_channel(entry_id))
        return _ok(recipients=len(recipients))

    async def refresh(self, practitioner_id: str, data: Any) -> Ack:
        return _ok(desk=await self._document(practitioner_id))
