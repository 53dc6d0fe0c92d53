"""The practitioner's desk: their day across rooms, live, on the `/desk` Socket.IO namespace.

A desk link (`{public_url}/d#{token}`, minted through the API) carries a
desk-scoped token for one practitioner. The desk lists that practitioner's
appointments around now, who is waiting, and lets them admit, deny (with a
reason the patient sees) and message waiting patients. Updates are pushed
when one of their rooms changes, coalesced with the practitioner's day
(signalling/waiting_pushes.py): the whole document, or for a desk that asks
(`auth.delta`, as the web client does) the changed rows only, with join links
minted on demand (`join_link`) instead of signed for every row on every push.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import socketio
from socketio.async_pubsub_manager import AsyncPubSubManager

from rooms.admission import admit, deny, return_to_waiting
from rooms.denials import undeny
from rooms.errors import DomainError, ErrorCode
from rooms.lifecycle import end
from rooms.roles import Actor, Role
from rooms.room import Lifecycle, Room
from signalling import errors, tokens
from signalling.ack_namespace import Ack, AckNamespace, Handler, ok, refusal
from signalling.auth_throttle import AuthThrottle
from signalling.broadcast import broadcast
from signalling.config import Settings
from signalling.links import join_link
from signalling.room_hub import RoomHub, entry_channel
from signalling.socket_limits import DESK_LIMITS
from signalling.socket_payloads import DeskDenial, DeskEntryAction, DeskMessage, DeskRoom, parse
from signalling.waiting_pushes import DayChange, instant, pushes_of
from waiting_room.day_queue import DayQueue
from waiting_room.practitioner_day import days_rooms, desk_state

logger = logging.getLogger(__name__)

NAMESPACE = "/desk"
# How often open desks are checked against their links' expiry.
EXPIRY_CHECK_INTERVAL = 1.0


def desk_channel(practitioner_id: str) -> str:
    return f"desk:{practitioner_id}"


def delta_channel(practitioner_id: str) -> str:
    """Desks that asked for deltas (`auth.delta`)."""
    return f"desk-delta:{practitioner_id}"


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def desk_row(
    settings: Settings, room: Room, now: datetime, expected_start: datetime | None, *, delta: bool
) -> dict[str, Any]:
    """One room's row; `delta` desks get `open` and ask for the link (`join_link`) when needed."""
    patients = [entry for entry in room.waiting.entries if entry.role is Role.PATIENT]
    open_room = room.status(now).value in ("scheduled", "open", "in_consultation")
    row: dict[str, Any] = {
        "room_id": room.id,
        "appointment_id": room.appointment.id,
        "patient_name": room.appointment.patient.name,
        "starts_at": room.appointment.starts_at.isoformat(),
        "ends_at": room.appointment.ends_at.isoformat(),
        "state": desk_state(room, now).value,
        "waiting_since": _time(patients[0].checked_in_at) if patients else None,
        "expected_start": _time(expected_start),
        "waiting": [
            {
                "entry_id": view.entry_id,
                "name": view.name,
                "role": view.role.value,
                "waiting_since": view.waiting_since.isoformat(),
                "away_since": _time(view.away_since),
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
                "away_since": _time(p.away_since),
            }
            for p in room.in_call
            if p.role is not Role.PRACTITIONER
        ],
    }
    if delta:
        row["open"] = open_room
    else:
        row["link"] = _link(settings, room) if open_room else None
    return row


# room id -> (window end, practitioner link): a whole-document desk re-sends every row's
# link on each push; the link stays good until the window closes, so it is signed once.
_LINKS: dict[str, tuple[datetime, str]] = {}
_LINKS_HELD = 20_000


def _link(settings: Settings, room: Room) -> str:
    held = _LINKS.get(room.id)
    if held is not None and held[0] == room.window.closes_at:
        return held[1]
    if len(_LINKS) >= _LINKS_HELD:
        _LINKS.clear()
    link = join_link(settings, room, Role.PRACTITIONER)
    _LINKS[room.id] = (room.window.closes_at, link)
    return link


def _practice(rooms: Iterable[Room]) -> dict[str, Any] | None:
    # The practice of the day's appointments (one practitioner's desk), for the header.
    practice = next(
        (room.appointment.practice for room in rooms if room.appointment.practice), None
    )
    return None if practice is None else {"name": practice.name, "phone": practice.phone}


def _queue_document(
    settings: Settings,
    queue: DayQueue,
    expected: dict[str, float],
    now: datetime,
    *,
    delta: bool,
) -> dict[str, Any]:
    return {
        "now": now.isoformat(),
        "rows": [
            desk_row(settings, room, now, instant(expected.get(room.id)), delta=delta)
            for room in queue.rooms()
        ],
        "practice": _practice(queue.rooms()),
    }


def desk_document(
    settings: Settings,
    rooms: list[Room],
    practitioner_id: str,
    now: datetime,
    *,
    delta: bool = False,
) -> dict[str, Any]:
    queue = DayQueue()
    queue.replace_all(days_rooms(rooms, practitioner_id, now))
    return _queue_document(settings, queue, queue.expected(now), now, delta=delta)


def desk_delta(settings: Settings, change: DayChange) -> dict[str, Any]:
    """What a delta desk applies to its document (docs/protocol.md, "Desk deltas")."""
    now = change.now
    return {
        "now": now.isoformat(),
        "rows": [
            desk_row(settings, room, now, instant(change.expected.get(room.id)), delta=True)
            for room in change.changed
        ],
        "removed": change.removed,
        "expected": {room_id: _time(instant(at)) for room_id, at in change.moved.items()},
        "practice": _practice(change.queue.rooms()),
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
            "join_link": self.join_link,
        }
        super().__init__(NAMESPACE, hub.clock, handlers, DESK_LIMITS, auth_throttle=auth_throttle)
        self.sio = sio
        self.hub = hub
        self.settings = settings
        self.sessions: dict[str, str] = {}  # sid -> practitioner id
        self.expires: dict[str, datetime] = {}  # sid -> when its desk link expires
        self.deltas: set[str] = set()  # sids that asked for deltas
        # One watch for every open desk, on the hub's clock (so a test can move time).
        self._watch: asyncio.Task[None] | None = None
        self._expiring = False
        sio.register_namespace(self)
        hub.listeners.append(self.room_changed)
        self.pushes = pushes_of(hub)
        self.pushes.listeners.append(self.day_changed)

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
        delta = isinstance(auth, dict) and auth.get("delta") is True
        channel = delta_channel if delta else desk_channel
        if delta:
            self.deltas.add(sid)
        await self.sio.enter_room(sid, channel(claims.practitioner_id), namespace=NAMESPACE)
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
        delta = sid in self.deltas
        self.deltas.discard(sid)
        if practitioner_id is None:
            return False
        channel = delta_channel if delta else desk_channel
        await self.sio.leave_room(sid, channel(practitioner_id), namespace=NAMESPACE)
        return True

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        self.sessions.pop(sid, None)
        self.expires.pop(sid, None)
        self.deltas.discard(sid)
        # The last desk gone: stop the watch, unless it is the one disconnecting desks.
        if not self.expires and self._watch is not None and not self._expiring:
            self._watch.cancel()

    async def _document(self, practitioner_id: str, *, delta: bool = False) -> dict[str, Any]:
        now = self.hub.clock()
        queue = DayQueue()
        queue.replace_all(await self.hub.practitioner_rooms(practitioner_id, now))
        expected = queue.expected(now)
        if delta:
            # Later deltas correct whatever this desk was shown that the others were not.
            self.pushes.desk_joined(practitioner_id, expected)
        return _queue_document(self.settings, queue, expected, now, delta=delta)

    async def _send(self, sid: str, practitioner_id: str) -> None:
        document = await self._document(practitioner_id, delta=sid in self.deltas)
        await self.sio.emit("desk", document, to=sid, namespace=NAMESPACE)

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
        """Any change of a room: its row is pushed with the practitioner's day (coalesced)."""
        await self.pushes.room_changed(room)

    async def day_changed(self, change: DayChange) -> None:
        practitioner_id = change.practitioner_id
        await self.sio.emit(
            "desk_delta",
            desk_delta(self.settings, change),
            room=delta_channel(practitioner_id),
            namespace=NAMESPACE,
        )
        if self._has_whole_document_desks(practitioner_id):
            document = _queue_document(
                self.settings, change.queue, change.expected, change.now, delta=False
            )
            await self.sio.emit(
                "desk", document, room=desk_channel(practitioner_id), namespace=NAMESPACE
            )

    def _has_whole_document_desks(self, practitioner_id: str) -> bool:
        manager = self.sio.manager
        if isinstance(manager, AsyncPubSubManager):
            return True  # Another node may hold one: it cannot be asked.
        members = manager.get_participants(NAMESPACE, desk_channel(practitioner_id))
        return next(iter(members), None) is not None

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
        # To their pages, on the default namespace: one packet encoded for all.
        channels = [entry_channel(entry_id) for entry_id in recipients]
        await broadcast(self.sio, "practitioner_message", payload, channels)
        return ok(recipients=len(recipients))

    async def refresh(self, practitioner_id: str, data: Any) -> Ack:
        # `{delta: true}`: the document as a delta desk holds it (docs/protocol.md).
        delta = isinstance(data, dict) and data.get("delta") is True
        return ok(desk=await self._document(practitioner_id, delta=delta))

    async def join_link(self, practitioner_id: str, data: Any) -> Ack:
        """The practitioner link of one room, minted when the desk opens it."""
        room = await self._room_of(practitioner_id, data)
        now = self.hub.clock()
        if room.lifecycle is Lifecycle.CANCELLED:
            raise DomainError(ErrorCode.ROOM_CANCELLED)
        if room.lifecycle is Lifecycle.ENDED:
            raise DomainError(ErrorCode.ROOM_ENDED)
        if now >= room.window.closes_at:
            raise DomainError(ErrorCode.ROOM_CLOSED)
        return ok(url=join_link(self.settings, room, Role.PRACTITIONER))
