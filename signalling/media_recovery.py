"""A relay call of an announcement failed: the change stands, the room's media is put back.

The hub stores a change first and then tells people and the relay. When the
relay fails at that point (`MediaError`, a lost worker or node), the change is
not undone and the announcements still go out (`GuardedRelay` never raises);
the room is then handled as after a relay failover (docs/protocol.md, "Relay
failover"): its relay room is closed and built again from the store, with
whoever is in the call now, and those pages get `media_restart` and publish
again. Until the relay answers, this is retried with a growing delay; a room
that ended or emptied meanwhile only has its relay room closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping

from media.errors import MediaError
from media.relay_service import RelayService, SubscriberListener
from rooms.room import Lifecycle, Room

logger = logging.getLogger(__name__)

OPEN = (Lifecycle.SCHEDULED, Lifecycle.IN_CONSULTATION)
FIRST_RETRY = 0.5
MAX_RETRY = 10.0

RoomOf = Callable[[str], Awaitable[Room | None]]
ListenerFor = Callable[[str], SubscriberListener]
Restart = Callable[[str, list[str]], Awaitable[None]]


def _describe(exc: BaseException) -> str:
    # A MediaError's code is enough; the rest may carry what a client sent.
    return exc.code if isinstance(exc, MediaError) else type(exc).__name__


class MediaRecovery:
    """One recovery at a time per room; a failure during one runs it once more after."""

    def __init__(
        self, relay: RelayService, room_of: RoomOf, listener_for: ListenerFor, restart: Restart
    ) -> None:
        self._relay = relay
        self._room_of = room_of
        self._listener_for = listener_for
        self._restart = restart
        self._running: dict[str, asyncio.Task[None]] = {}
        self._again: set[str] = set()
        # Rooms put back since start (tests and operators can tell a recovery happened).
        self.recovered = 0

    def failed(self, room_id: str) -> None:
        """A relay call for `room_id` failed: rebuild its relay room (soon, in the background)."""
        if room_id in self._running:
            self._again.add(room_id)
            return
        task = asyncio.ensure_future(self._recover(room_id))
        self._running[room_id] = task
        task.add_done_callback(lambda _: self._done(room_id))

    def _done(self, room_id: str) -> None:
        self._running.pop(room_id, None)
        if room_id in self._again:
            self._again.discard(room_id)
            self.failed(room_id)

    async def _recover(self, room_id: str) -> None:
        delay = FIRST_RETRY
        while True:
            try:
                await self._rebuild(room_id)
                self.recovered += 1
                return
            except Exception as exc:
                logger.warning(
                    "relay room=%s media recovery failed (%s); retrying in %.1f s",
                    room_id,
                    _describe(exc),
                    delay,
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RETRY)

    async def _rebuild(self, room_id: str) -> None:
        await self._relay.close_room(room_id)
        # Read after the close: anyone admitted since is either here or joins on their own.
        room = await self._room_of(room_id)
        if room is None or room.lifecycle not in OPEN or not room.in_call:
            logger.info("relay room=%s closed after a relay failure", room_id)
            return
        entry_ids = [p.entry_id for p in room.in_call]
        for participant in room.in_call:
            await self._relay.join(
                room_id,
                participant.entry_id,
                self._listener_for(participant.entry_id),
                {"role": participant.role.value},
            )
        # Joined before they are told: their new publications then find everyone.
        await self._restart(room_id, entry_ids)
        logger.info(
            "relay room=%s media rebuilt after a relay failure; %d participants restarting",
            room_id,
            len(entry_ids),
        )

    async def close(self) -> None:
        tasks = list(self._running.values())
        self._again.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


class GuardedRelay:
    """The relay calls of announcements: a failure is logged in one line and recovered."""

    def __init__(self, relay: RelayService, recovery: MediaRecovery) -> None:
        self._relay = relay
        self._recovery = recovery

    async def join(
        self,
        room_id: str,
        participant_id: str,
        listener: SubscriberListener,
        info: Mapping[str, str] | None = None,
    ) -> None:
        await self._guarded(
            room_id, "join", self._relay.join(room_id, participant_id, listener, info)
        )

    async def leave(self, room_id: str, participant_id: str) -> None:
        await self._guarded(room_id, "leave", self._relay.leave(room_id, participant_id))

    async def close_room(self, room_id: str) -> None:
        await self._guarded(room_id, "close_room", self._relay.close_room(room_id))

    async def _guarded(self, room_id: str, call: str, request: Awaitable[None]) -> None:
        try:
            await request
        except Exception as exc:
            logger.warning(
                "relay room=%s %s failed (%s): rebuilding its media", room_id, call, _describe(exc)
            )
            self._recovery.failed(room_id)
