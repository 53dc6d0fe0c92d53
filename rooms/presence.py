"""Being there: leaving, stepping away, taking one's place back, and the away grace running out.

See `rooms.resume_secret` for how a device proves it is the one that stepped away.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from rooms.errors import DomainError, ErrorCode
from rooms.events import ParticipantAway, ParticipantLeft, ParticipantResumed, RoomEvent
from rooms.resume_secret import is_resume_hash, matches
from rooms.roles import Actor
from rooms.room import Room, Transition, changed
from rooms.waiting_queue import WaitingEntry


def leave(room: Room, entry_id: str, now: datetime) -> Transition:
    """Someone leaves the waiting room or the call; leaving twice changes nothing."""
    if entry_id in room.waiting:
        waiting, entry = room.waiting.remove(entry_id)
        return Transition(
            changed(room, waiting=waiting),
            (ParticipantLeft(room.id, entry_id, was_waiting=True, role=entry.role),),
        )
    leaving = room.participant(entry_id)
    if leaving is not None:
        role = leaving.role
        in_call = tuple(p for p in room.in_call if p.entry_id != entry_id)
        return Transition(
            changed(room, in_call=in_call),
            (ParticipantLeft(room.id, entry_id, was_waiting=False, role=role),),
        )
    return Transition(room)


def step_away(room: Room, entry_id: str, connection: int, now: datetime) -> Transition:
    """A connection dropped: keep a resumable entry's place, remove any other at once.

    `connection` is the takeover count the dropping connection held; if the
    entry has been taken over since, this connection no longer speaks for it.
    """
    entry = room.waiting.get(entry_id)
    if entry is not None:
        if entry.connection != connection:
            return Transition(room)
        if entry.resume_hash is None:
            return leave(room, entry_id, now)
        if entry.away_since is not None:
            return Transition(room)
        return Transition(
            changed(room, waiting=room.waiting.replace(replace(entry, away_since=now))),
            (ParticipantAway(room.id, entry_id, was_waiting=True, role=entry.role),),
        )
    participant = room.participant(entry_id)
    if participant is None or participant.connection != connection:
        return Transition(room)
    if participant.resume_hash is None:
        return leave(room, entry_id, now)
    if participant.away_since is not None:
        return Transition(room)
    away = replace(participant, away_since=now)
    return Transition(
        changed(room, in_call=tuple(away if p.entry_id == entry_id else p for p in room.in_call)),
        (ParticipantAway(room.id, entry_id, was_waiting=False, role=participant.role),),
    )


def leave_from(room: Room, entry_id: str, connection: int, now: datetime) -> Transition:
    """`leave` sent by one connection: one replaced by a newer connection changes nothing."""
    found = room.waiting.get(entry_id) or room.participant(entry_id)
    if found is not None and found.connection != connection:
        return Transition(room)
    return leave(room, entry_id, now)


def resume(room: Room, actor: Actor, presented_hash: str, now: datetime) -> Transition:
    """A new connection of the same person presents the secret: it takes the entry over.

    Raises NOT_WAITING when no entry of this person has that secret (never
    had, already expired, left or denied): the caller then starts afresh.
    """
    room.check_joinable(now)
    if not is_resume_hash(presented_hash):
        raise DomainError(ErrorCode.INVALID_REQUEST, "The resume key is not valid.")
    for entry in room.waiting.entries:
        if (
            entry.person_id == actor.person_id
            and entry.role is actor.role
            and matches(entry.resume_hash, presented_hash)
        ):
            back = replace(entry, away_since=None, connection=entry.connection + 1)
            return Transition(
                changed(room, waiting=room.waiting.replace(back)),
                (ParticipantResumed(room.id, entry.entry_id, in_call=False, role=entry.role),),
            )
    for participant in room.in_call:
        if (
            participant.person_id == actor.person_id
            and participant.role is actor.role
            and matches(participant.resume_hash, presented_hash)
        ):
            back_in = replace(participant, away_since=None, connection=participant.connection + 1)
            in_call = tuple(back_in if p.entry_id == back_in.entry_id else p for p in room.in_call)
            return Transition(
                changed(room, in_call=in_call),
                (
                    ParticipantResumed(
                        room.id, participant.entry_id, in_call=True, role=participant.role
                    ),
                ),
            )
    raise DomainError(ErrorCode.NOT_WAITING, "There is no place to take back.")


def take_over(room: Room, actor: Actor, resume_hash: str | None, now: datetime) -> Transition:
    """A new connection on the same link takes the person's one entry over, wherever it is.

    The link is the pass for one person (their token's `sub` and role): a second
    tab or device gets the same entry, same place in the queue or in the call,
    rather than a second one. `resume_hash` becomes the entry's secret (the new
    connection's; the practitioner has none). Raises NOT_WAITING when the
    person has no entry: the caller starts afresh.
    """
    room.check_joinable(now)
    if resume_hash is not None and not is_resume_hash(resume_hash):
        raise DomainError(ErrorCode.INVALID_REQUEST, "The resume key is not valid.")
    entry = room.entry_of(actor)
    if entry is None:
        raise DomainError(ErrorCode.NOT_WAITING, "There is no place to take over.")
    connection = entry.connection + 1
    if isinstance(entry, WaitingEntry):
        back = replace(entry, away_since=None, connection=connection, resume_hash=resume_hash)
        return Transition(
            changed(room, waiting=room.waiting.replace(back)),
            (ParticipantResumed(room.id, entry.entry_id, in_call=False, role=entry.role),),
        )
    back_in = replace(entry, away_since=None, connection=connection, resume_hash=resume_hash)
    in_call = tuple(back_in if p.entry_id == entry.entry_id else p for p in room.in_call)
    return Transition(
        changed(room, in_call=in_call),
        (ParticipantResumed(room.id, entry.entry_id, in_call=True, role=entry.role),),
    )


def expire_away(room: Room, now: datetime, grace: timedelta) -> Transition:
    """Remove everyone away for `grace` or longer, exactly as if they had left."""
    gone = [e.entry_id for e in room.waiting.entries if _expired(e.away_since, now, grace)]
    gone += [p.entry_id for p in room.in_call if _expired(p.away_since, now, grace)]
    current = room
    events: list[RoomEvent] = []
    for entry_id in gone:
        step = leave(current, entry_id, now)
        current = step.room
        events.extend(step.events)
    if not events:
        return Transition(room)
    # One version step for one stored change.
    return Transition(replace(current, version=room.version + 1), tuple(events))


def _expired(away_since: datetime | None, now: datetime, grace: timedelta) -> bool:
    return away_since is not None and now - away_since >= grace


def next_expiry(room: Room, grace: timedelta) -> datetime | None:
    """When the first away entry of this room runs out of grace, if any."""
    times = [e.away_since for e in room.waiting.entries if e.away_since is not None]
    times += [p.away_since for p in room.in_call if p.away_since is not None]
    return min(times) + grace if times else None
