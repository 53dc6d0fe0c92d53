"""Who a connection of the default namespace is: connecting with a join token, coming back, going.

A connection authenticates with the join token of its link (`auth.token`)
and, for patients and guests, the resume secret of an earlier `session`
(`auth.resume`, docs/protocol.md "Coming back"): a matching secret takes the
kept entry over; without one, the person's entry, if any, is taken over all
the same (one person, one entry: docs/protocol.md), else it is a fresh start.
Either way every other connection of that person is `replaced`. A declined
person is told so (`session.denied`) and does nothing else.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import socketio

from media.errors import MediaError
from rooms import presence
from rooms.errors import DomainError, ErrorCode
from rooms.events import ParticipantResumed
from rooms.resume_secret import hash_resume_secret
from rooms.roles import Actor, Role
from rooms.room import Participant, Room, RoomStatus
from rooms.waiting_queue import WaitingEntry
from signalling import errors, tokens
from signalling.ack_namespace import refusal
from signalling.config import Settings
from signalling.links import session_extras
from signalling.room_hub import (
    PendingAnnouncement,
    RoomHub,
    entry_channel,
    practitioners_channel,
    room_channel,
)
from signalling.socket_payloads import JoinAuth, parse
from store.errors import StoreUnavailable
from turn import credentials as turn_credentials

logger = logging.getLogger(__name__)


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
    # The person was declined (docs/protocol.md, "Decisions that stick"): the connection
    # only hears `undenied`; it takes nobody's place and nobody takes its own.
    denied: bool = False


def person_channel(room_id: str, actor: Actor) -> str:
    """Every live connection of one person (docs/protocol.md, "One person, one entry").

    Hashed: channel names travel between nodes through Redis, person ids need not.
    """
    key = f"{room_id}\n{actor.role.value}\n{actor.person_id}".encode()
    return "person:" + hashlib.sha256(key).hexdigest()[:32]


def ice_servers_payload(
    settings: Settings, room: Room, actor: Actor, entry_id: str, now: datetime
) -> list[dict[str, Any]]:
    """STUN/TURN for the page; a TURN login only for whom may still be in this room's call.

    One TURN username per person (README, `TELECONSULT_TURN_URLS`), valid until the room's
    window closes at the latest; none for a denied person or a finished room.
    """
    servers: list[dict[str, Any]] = [
        {
            "urls": list(server.urls),
            **({"username": server.username} if server.username else {}),
            **({"credential": server.credential} if server.credential else {}),
        }
        for server in settings.ice_servers
    ]
    finished = room.status(now) in (RoomStatus.ENDED, RoomStatus.CANCELLED)
    denied = entry_id in room.denied or room.denial_of(actor) is not None
    if settings.turn_urls and settings.turn_secret and not (finished or denied):
        person = turn_credentials.person_login_id(
            settings.token_secret, room.id, actor.role.value, actor.person_id
        )
        login = turn_credentials.issue(
            settings.turn_secret, person, now, settings.turn_ttl, room.window.closes_at
        )
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
        "ice_servers": ice_servers_payload(settings, room, actor, entry_id, now),
        "ice_transport_policy": settings.ice_transport_policy,
        "e2ee": settings.e2ee,
        # The booking system's language for this appointment (null: the page chooses).
        "locale": room.appointment.locale,
        "practice": practice_payload(room),
        # The practitioner's day beside the call (signalling/day_screen.py).
        **session_extras(settings, room, actor, now),
    }


def outside_its_window(room: Room, now: datetime) -> socketio.exceptions.ConnectionRefusedError:
    """The refusal of a genuine link presented outside its own window, after the room's.

    A reschedule moves the room's window, not the links already sent: an old
    link is told the room's opening time, or that it is closed, or, when the
    room is open now, that a newer link was sent (`link_outdated`).
    """
    details = appointment_details(room)
    try:
        room.check_joinable(now)
    except DomainError as exc:
        if exc.code is ErrorCode.ROOM_NOT_YET_OPEN:
            details["opens_at"] = room.window.opens_at.isoformat()
        return _refused(exc, **details)
    return refusal(errors.LINK_OUTDATED, **details)


def _refused(exc: Exception, **extra: Any) -> socketio.exceptions.ConnectionRefusedError:
    failure = errors.connect_failure_of(exc)
    if failure is None:
        raise exc
    return refusal(failure, **extra)


class Sessions:
    """The authenticated connections of the default namespace, by Socket.IO sid."""

    def __init__(self, sio: socketio.AsyncServer, hub: RoomHub, settings: Settings) -> None:
        self.sio = sio
        self.hub = hub
        self.settings = settings
        self.by_sid: dict[str, SocketSession] = {}

    async def connect(self, sid: str, auth: Any) -> None:
        """Authenticate `sid` and place it, or raise ConnectionRefusedError."""
        try:
            await self._connect(sid, auth)
        except socketio.exceptions.ConnectionRefusedError:
            raise
        except Exception as exc:
            raise _refused(exc) from None

    async def _early_or_late(
        self, room_id: str, exc: tokens.TokenError, now: datetime
    ) -> socketio.exceptions.ConnectionRefusedError:
        try:
            room = await self.hub.room(room_id)
        except StoreUnavailable:
            room = None
        if room is None:
            return _refused(exc, **({"opens_at": exc.opens_at.isoformat()} if exc.opens_at else {}))
        return outside_its_window(room, now)

    async def _connect(self, sid: str, data: Any) -> None:
        auth = parse(JoinAuth, data)
        room_id = auth.room_id
        now = self.hub.clock()
        try:
            claims = tokens.verify(self.settings.token_secret, auth.token, room_id, now)
        except tokens.TokenError as exc:
            if exc.problem in (tokens.TokenProblem.NOT_YET_VALID, tokens.TokenProblem.EXPIRED):
                # A genuine link for this room, early or late: the room says when (it may
                # have moved since the link was minted), and for which appointment.
                raise await self._early_or_late(room_id, exc, now) from None
            raise _refused(exc) from None
        room = await self.hub.room(room_id)
        if room is None:
            raise DomainError(ErrorCode.ROOM_NOT_FOUND)
        actor = Actor(claims.person_id, claims.role)
        if not (room.is_practitioner(actor) or room.visitor(actor) is not None):
            raise tokens.TokenError(tokens.TokenProblem.INVALID)
        try:
            room.check_joinable(now)
        except DomainError as exc:
            extra = (
                {"opens_at": room.window.opens_at.isoformat()}
                if exc.code is ErrorCode.ROOM_NOT_YET_OPEN
                else {}
            )
            raise _refused(exc, **extra, **appointment_details(room)) from None
        resume_secret = auth.resume_secret()
        resumed: PendingAnnouncement | None = None
        new_secret: str | None = None
        denial = room.denial_of(actor)
        if denial is not None:
            # Declined stays declined, whatever the device or secret, until re-opened.
            session = SocketSession(room_id, actor, denial.entry_id, denied=True)
        else:
            if resume_secret is not None and actor.role is not Role.PRACTITIONER:
                resumed = await self._resume(room_id, actor, hash_resume_secret(resume_secret), now)
            if resumed is None:
                # One person, one entry: this link's entry, if any, is this connection's now.
                if actor.role is not Role.PRACTITIONER:
                    new_secret = secrets.token_urlsafe(32)
                new_hash = None if new_secret is None else hash_resume_secret(new_secret)
                resumed = await self._take_over(room_id, actor, new_hash, now)
            if resumed is not None:
                [event] = resumed.transition.events
                assert isinstance(event, ParticipantResumed)
                taken = _entry_state(resumed.transition.room, event.entry_id)
                session = SocketSession(
                    room_id, actor, event.entry_id, taken.resume_hash, taken.connection
                )
            else:
                session = SocketSession(
                    room_id,
                    actor,
                    secrets.token_urlsafe(9),
                    None if new_secret is None else hash_resume_secret(new_secret),
                )
        # Every other live connection of this person (never a declined one) is replaced.
        replaced = [
            other
            for other, known in self.by_sid.items()
            if known.room_id == room_id
            and not session.denied
            and not known.denied
            and (known.entry_id == session.entry_id or known.actor == actor)
        ]
        person = person_channel(room_id, actor)
        for other in replaced:
            # Its late disconnect must not mark the entry away, nor events reach it.
            gone = self.by_sid.pop(other)
            await self.sio.leave_room(other, entry_channel(gone.entry_id))
            await self.sio.leave_room(other, person)
            if gone.actor.role is Role.PRACTITIONER:
                await self.sio.leave_room(other, practitioners_channel(room_id))
        if not session.denied:
            # This person's connections on other nodes (those here are told below); with one
            # node, nobody is left in the channel to hear it.
            await self.sio.emit("replaced", {}, room=person)
            await self.sio.enter_room(sid, person)
        self.by_sid[sid] = session
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
        payload["denied"] = None if denial is None else {"reason": denial.reason}
        if resumed is not None:
            in_call = resumed.transition.room.participant(session.entry_id) is not None
            payload["resumed"] = "in_call" if in_call else "waiting"
        # Sent once the CONNECT packet is out: clients drop events of a namespace
        # they have not joined yet.
        self.sio.start_background_task(self._send_session, sid, payload, resumed, replaced)

    async def _resume(
        self, room_id: str, actor: Actor, presented: str, now: datetime
    ) -> PendingAnnouncement | None:
        """Take a kept entry over, or None when there is none for this secret (start afresh)."""
        try:
            return await self.hub.stage(
                room_id, lambda room: presence.resume(room, actor, presented, now)
            )
        except DomainError as exc:
            if exc.code is ErrorCode.NOT_WAITING:
                return None
            raise

    async def _take_over(
        self, room_id: str, actor: Actor, resume_hash: str | None, now: datetime
    ) -> PendingAnnouncement | None:
        """Take the person's entry over, or None when they have none (start afresh)."""
        try:
            return await self.hub.stage(
                room_id, lambda room: presence.take_over(room, actor, resume_hash, now)
            )
        except DomainError as exc:
            if exc.code is ErrorCode.NOT_WAITING:
                return None
            raise

    async def _send_session(
        self,
        sid: str,
        payload: dict[str, Any],
        resumed: PendingAnnouncement | None = None,
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
            await resumed.announce()

    async def disconnect(self, sid: str) -> None:
        session = self.by_sid.pop(sid, None)
        if session is None:
            return
        logger.info("socket disconnected room=%s entry=%s", session.room_id, session.entry_id)
        try:
            # A patient or guest keeps their place for a while; anyone else leaves now.
            await self.hub.apply(
                session.room_id,
                lambda room: presence.step_away(
                    room, session.entry_id, session.connection, self.hub.clock()
                ),
            )
        except DomainError:
            pass
        except StoreUnavailable:
            # Their entry stays until the sweeper or the end of the window removes it.
            logger.warning("leave on disconnect lost: store unavailable entry=%s", session.entry_id)
        except MediaError as exc:
            # The hub rebuilds the room's media itself; the stored leave stands.
            logger.warning(
                "leave on disconnect: relay failed (%s) entry=%s", exc.code, session.entry_id
            )


def _entry_state(room: Room, entry_id: str) -> WaitingEntry | Participant:
    found = room.waiting.get(entry_id) or room.participant(entry_id)
    if found is None:
        raise DomainError(ErrorCode.NOT_WAITING)
    return found
