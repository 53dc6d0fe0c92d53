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
from datetime import datetime
from typing import Any

import socketio

from rooms.admission import admit, deny, return_to_waiting
from rooms.denials import undeny
from rooms.errors import DomainError, ErrorCode
from rooms.lifecycle import end
from rooms.roles import Actor, Role
from rooms.room import Room
from signalling import errors, tokens
from signalling.ack_namespace import Ack, AckNamespace, Handler, ok, refusal
from signalling.auth_throttle import AuthThrottle
from signalling.config import Settings
from signalling.links import join_link
from signalling.room_hub import RoomHub, entry_channel
from signalling.socket_limits import DESK_LIMITS
from signalling.socket_payloads import DeskDenial, DeskEntryAction, DeskMessage, DeskRoom, parse
from waiting_room.practitioner_day import days_rooms, desk_rows

logger = logging.getLogger(__name__)

NAMESPACE = "/desk"
# How often open desks are checked against their links' expiry.
EXPIRY_CHECK_INTERVAL = 1.0


def desk_channel(practitioner_id: str) -> str:
    return f"desk:{practitioner_id}"


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
                    {
                        "entry_id": p.entry_id,
                        "name": p.name,
                        "role": p.role.value,
                        # Their connection dropped: the day screen says so (docs/protocol.md).
                        "away_since": time(p.away_since),
                    }
                    for p in room.in_call
                    if p.role is not Role.PRACTITIONER
                ],
                "link": join_link(settings, room, Role.PRACTITIONER) if open_room else None,
            }
        )
    # The practice of the day's appointments (one practitioner's desk), for the header.
    practice = next(
        (room.appointment.practice for room in mine.values() if room.appointment.practice),
        None,
    )
    return {
        "now": now.isoformat(),
        "rows": rows,
        "practice": None if practice is None else {"name": practice.name, "phone": practice.phone},
    }


class DeskNamespace(AckNamespace[str]):
    """Registers itself on `sio` as `/desk`; a connection's session is its practitioner's id."""

    label = "desk"

    def __init__(
        self,
        sio: socketio.AsyncServer,
        hub: RoomHub,
        settings: Settings,
        auth_throttle: AuthThrottle | None = None,
    ) -> None:
        handlers: dict[str, Handler[str]] = {
            "admit": self.admit,
            "deny": self.deny,
            "undeny": self.undeny,
            "message": self.message,
            "return_to_waiting": self.return_to_waiting,
            "end": self.end,
            "refresh": self.refresh,
        }
        super().__init__(NAMESPACE, hub.clock, handlers, DESK_LIMITS, auth_throttle=auth_throttle)
        self.sio = sio
        self.hub = hub
        self.settings = settings
        self.sessions: dict[str, str] = {}  # sid -> practitioner id
        self.expires: dict[str, datetime] = {}  # sid -> when its desk link expires
        # One watch for every open desk, on the hub's clock (so a test can move time).
        self._watch: asyncio.Task[None] | None = None
        self._expiring = False
        sio.register_namespace(self)
        hub.listeners.append(self.room_changed)

    def failure_of(self, exc: Exception) -> errors.Failure | None:
        if isinstance(exc, tokens.TokenError):
            return errors.desk_token_failure(exc)
        return super().failure_of(exc)

    def rate_key(self, session: str) -> str:
        return tokens.link_key(tokens.DESK_ROOM, session, Role.PRACTITIONER)

    def connect_link(self, auth: Any) -> str | None:
        token = auth.get("token") if isinstance(auth, dict) else None
        return tokens.signed_link(self.settings.token_secret, token)

    async def session_of(self, sid: str) -> str | None:
        practitioner_id = self.sessions.get(sid)
        if practitioner_id is not None and self.hub.clock() >= self.expires[sid]:
            await self._forget(sid)
            raise tokens.TokenError(tokens.TokenProblem.EXPIRED)
        return practitioner_id

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        token = auth.get("token") if isinstance(auth, dict) else None
        try:
            claims = tokens.verify_desk(self.settings.token_secret, token, self.hub.clock())
        except tokens.TokenError as exc:
            raise refusal(errors.desk_token_failure(exc)) from None
        self.sessions[sid] = claims.practitioner_id
        self.expires[sid] = claims.expires_at
        await self.sio.enter_room(sid, desk_channel(claims.practitioner_id), namespace=NAMESPACE)
        self.sio.start_background_task(self._send, sid, claims.practitioner_id)
        # The link is good for one working day: a desk left open stops receiving names then.
        if self._watch is None or self._watch.done():
            self._watch = asyncio.ensure_future(self._expire_links())

    async def _expire_links(self) -> None:
        # Ends when no desk is open (connect starts it again): nothing runs for nobody.
        while self.expires:
            await asyncio.sleep(EXPIRY_CHECK_INTERVAL)
            now = self.hub.clock()
            self._expiring = True
            try:
                for sid in [sid for sid, at in self.expires.items() if now >= at]:
                    if await self._forget(sid):
                        await self.sio.disconnect(sid, namespace=NAMESPACE)
            finally:
                self._expiring = False

    async def _forget(self, sid: str) -> bool:
        """Stop acting for and pushing to `sid`; False when it was not (or no longer) known."""
        practitioner_id = self.sessions.pop(sid, None)
        self.expires.pop(sid, None)
        if practitioner_id is None:
            return False
        await self.sio.leave_room(sid, desk_channel(practitioner_id), namespace=NAMESPACE)
        return True

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        self.sessions.pop(sid, None)
        self.expires.pop(sid, None)
        # The last desk gone: stop the watch, unless it is the one disconnecting desks.
        if not self.expires and self._watch is not None and not self._expiring:
            self._watch.cancel()

    async def _document(self, practitioner_id: str) -> dict[str, Any]:
        now = self.hub.clock()
        rooms = await self.hub.practitioner_rooms(practitioner_id, now)
        return desk_document(self.settings, rooms, practitioner_id, now)

    async def _send(self, sid: str, practitioner_id: str) -> None:
        await self.sio.emit(
            "desk", await self._document(practitioner_id), to=sid, namespace=NAMESPACE
        )

    async def resend_all(self) -> None:
        """Every desk open on this node gets its document again (signalling/screen_resync.py)."""
        for sid, practitioner_id in list(self.sessions.items()):
            await self.sio.emit(
                "desk",
                await self._document(practitioner_id),
                to=sid,
                namespace=NAMESPACE,
                ignore_queue=True,
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
        room = await self.hub.room(parse(DeskRoom, data).room_id)
        if room is None or room.appointment.practitioner.id != practitioner_id:
            # Someone else's room looks exactly like no room.
            raise DomainError(ErrorCode.ROOM_NOT_FOUND)
        return room

    async def admit(self, practitioner_id: str, data: Any) -> Ack:
        room = await self._room_of(practitioner_id, data)
        entry_id = parse(DeskEntryAction, data).entry_id
        actor = Actor(practitioner_id, Role.PRACTITIONER)
        now = self.hub.clock()
        await self.hub.apply(room.id, lambda r: admit(r, actor, entry_id, now))
        return ok(link=join_link(self.settings, room, Role.PRACTITIONER))

    async def deny(self, practitioner_id: str, data: Any) -> Ack:
        room = await self._room_of(practitioner_id, data)
        denial = parse(DeskDenial, data)
        actor = Actor(practitioner_id, Role.PRACTITIONER)
        now = self.hub.clock()
        await self.hub.apply(room.id, lambda r: deny(r, actor, denial.entry_id, now, denial.reason))
        return ok()

    async def undeny(self, practitioner_id: str, data: Any) -> Ack:
        room = await self._room_of(practitioner_id, data)
        entry_id = parse(DeskEntryAction, data).entry_id
        actor = Actor(practitioner_id, Role.PRACTITIONER)
        now = self.hub.clock()
        await self.hub.apply(room.id, lambda r: undeny(r, actor, entry_id, now))
        return ok()

    async def return_to_waiting(self, practitioner_id: str, data: Any) -> Ack:
        room = await self._room_of(practitioner_id, data)
        entry_id = parse(DeskEntryAction, data).entry_id
        actor = Actor(practitioner_id, Role.PRACTITIONER)
        now = self.hub.clock()
        await self.hub.apply(room.id, lambda r: return_to_waiting(r, actor, entry_id, now))
        return ok()

    async def end(self, practitioner_id: str, data: Any) -> Ack:
        """End a consultation for everyone in it, from the desk."""
        room = await self._room_of(practitioner_id, data)
        actor = Actor(practitioner_id, Role.PRACTITIONER)
        now = self.hub.clock()
        await self.hub.apply(room.id, lambda r: end(r, actor, now))
        return ok()

    async def message(self, practitioner_id: str, data: Any) -> Ack:
        """Tell one room's waiting people, or everyone waiting for this practitioner."""
        message = parse(DeskMessage, data)
        now = self.hub.clock()
        if message.room_id is not None:
            rooms = [await self._room_of(practitioner_id, data)]
        else:
            rooms = await self.hub.practitioner_rooms(practitioner_id, now)
        recipients = [entry.entry_id for room in rooms for entry in room.waiting.entries]
        payload = {"text": message.text, "sent_at": now.isoformat()}
        for entry_id in recipients:
            # To their pages, on the default namespace.
            await self.sio.emit("practitioner_message", payload, room=entry_channel(entry_id))
        return ok(recipients=len(recipients))

    async def refresh(self, practitioner_id: str, data: Any) -> Ack:
        return ok(desk=await self._document(practitioner_id))
