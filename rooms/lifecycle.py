"""A room's life: created, rescheduled, cancelled, ended, closed, its patient a no-show."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from rooms.appointment import Appointment, JoinWindow, JoinWindowPolicy, check_slot
from rooms.errors import DomainError, ErrorCode
from rooms.events import EndReason, PatientNoShow, RoomCreated, RoomEnded, RoomRescheduled
from rooms.roles import Actor
from rooms.room import Lifecycle, Room, Transition, changed
from rooms.waiting_queue import WaitingQueue


def create_room(room_id: str, appointment: Appointment, policy: JoinWindowPolicy) -> Transition:
    window = JoinWindow.for_slot(appointment.starts_at, appointment.ends_at, policy)
    room = Room(id=room_id, appointment=appointment, window=window, version=1)
    return Transition(room, (RoomCreated(room_id),))


def reschedule(
    room: Room, starts_at: datetime, ends_at: datetime, policy: JoinWindowPolicy
) -> Transition:
    if room.lifecycle is Lifecycle.CANCELLED:
        raise DomainError(ErrorCode.ROOM_CANCELLED)
    if room.lifecycle is Lifecycle.ENDED:
        raise DomainError(ErrorCode.ROOM_ENDED)
    check_slot(starts_at, ends_at)
    appointment = replace(room.appointment, starts_at=starts_at, ends_at=ends_at)
    window = JoinWindow.for_slot(starts_at, ends_at, policy)
    if appointment == room.appointment and window == room.window:
        return Transition(room)
    return Transition(
        changed(room, appointment=appointment, window=window), (RoomRescheduled(room.id),)
    )


def _end(room: Room, reason: EndReason, lifecycle: Lifecycle, now: datetime) -> Transition:
    inside = tuple(entry.entry_id for entry in room.waiting.entries) + tuple(
        participant.entry_id for participant in room.in_call
    )
    ended = changed(
        room,
        lifecycle=lifecycle,
        waiting=WaitingQueue(),
        in_call=(),
        ended_at=now,
        end_reason=reason,
    )
    return Transition(ended, (RoomEnded(room.id, reason, inside),))


def cancel(room: Room, now: datetime) -> Transition:
    if room.lifecycle is Lifecycle.CANCELLED:
        return Transition(room)
    if room.lifecycle is Lifecycle.ENDED:
        raise DomainError(ErrorCode.ROOM_ENDED)
    return _end(room, EndReason.CANCELLED, Lifecycle.CANCELLED, now)


def end(room: Room, actor: Actor, now: datetime) -> Transition:
    if not room.is_practitioner(actor):
        raise DomainError(ErrorCode.NOT_ALLOWED)
    if room.lifecycle is Lifecycle.ENDED:
        return Transition(room)
    if room.lifecycle is Lifecycle.CANCELLED:
        raise DomainError(ErrorCode.ROOM_CANCELLED)
    return _end(room, EndReason.ENDED, Lifecycle.ENDED, now)


def close_if_over(room: Room, now: datetime) -> Transition:
    """End a room whose join window has passed, so nobody lingers in it."""
    if room.lifecycle in (Lifecycle.ENDED, Lifecycle.CANCELLED) or now < room.window.closes_at:
        return Transition(room)
    return _end(room, EndReason.CLOSED, Lifecycle.ENDED, now)


def end_by_integration(room: Room, now: datetime) -> Transition:
    """The booking system (through the API) ends the consultation."""
    if room.lifecycle is Lifecycle.ENDED:
        return Transition(room)
    if room.lifecycle is Lifecycle.CANCELLED:
        raise DomainError(ErrorCode.ROOM_CANCELLED)
    return _end(room, EndReason.ENDED, Lifecycle.ENDED, now)


def mark_no_show(room: Room, now: datetime, after: timedelta) -> Transition:
    """Record that the patient did not come; the room stays open in case they still do."""
    if (
        room.lifecycle is not Lifecycle.SCHEDULED
        or room.first_check_in_at is not None
        or room.no_show_at is not None
        or now < room.appointment.starts_at + after
        or now >= room.window.closes_at
    ):
        return Transition(room)
    return Transition(changed(room, no_show_at=now), (PatientNoShow(room.id),))
