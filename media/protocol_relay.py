"""The shared body of the relays that run in other processes: workers and relay nodes.

`WorkerRelay` and `NodeRelay` differ only in where a room's relay is (which
connection carries its requests) and in what they remember for failover;
the requests themselves, and the listeners their events go to, are here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from media.errors import MediaError
from media.relay_service import SubscriberListener
from media.worker_connection import WorkerConnection

logger = logging.getLogger(__name__)

PUBLISH_RETRY_DELAY = 0.1

# Failover of a room whose relay died: who to tell, and who is still in the call.
MediaRestart = Callable[[str, list[str]], Awaitable[None]]
InCall = Callable[[str, list[str]], Awaitable[list[str]]]


async def everyone(room_id: str, participant_ids: list[str]) -> list[str]:
    return participant_ids


async def nobody_told(room_id: str, participant_ids: list[str]) -> None:
    return None


@dataclass(eq=False)
class Member:
    """A participant we joined: enough to join them again on another relay."""

    listener: SubscriberListener
    info: dict[str, str]


class ProtocolRelay:
    """A `media.relay_service.RelayService` over `media.worker_protocol` connections."""

    # How long a publish refused with `not_in_call` is retried (0: not retried).
    publish_patience = 0.0
    # Rooms being moved off a dead relay, by room id (filled by the subclasses' failover).
    _moving: dict[str, asyncio.Task[None]]

    # Failover state and hooks, set by the subclasses.
    _members: dict[str, dict[str, Member]]
    on_media_restart: MediaRestart
    in_call: InCall

    async def _rejoin(self, room_id: str, connection: WorkerConnection) -> list[str]:
        """Join a moved room's members again on `connection`; the ids restarted.

        Only those still in the call (signalling's word) come back, and they are told
        (`media_restart`) before they are joined: every offer from the new relay then
        reaches a page that has already dropped its dead connections.
        """
        members = self._members.get(room_id, {})
        try:
            staying = set(await self.in_call(room_id, list(members)))
        except Exception:
            logger.exception("relay room=%s: could not read who is in the call", room_id)
            staying = set(members)
        for participant_id in [p for p in members if p not in staying]:
            members.pop(participant_id, None)
        restarted = list(members)
        await self.on_media_restart(room_id, restarted)
        for participant_id, member in list(members.items()):
            connection.listeners[(room_id, participant_id)] = member.listener
            try:
                await connection.request(
                    "join", room_id=room_id, participant_id=participant_id, info=member.info
                )
            except MediaError as exc:
                logger.warning("relay room=%s rejoin failed: %s", room_id, exc.code)
        return restarted

    def _moved(self, room_id: str) -> Callable[[asyncio.Task[None]], None]:
        """The callback that forgets a finished move, and says when it failed."""

        def done(task: asyncio.Task[None]) -> None:
            self._moving.pop(room_id, None)
            if not task.cancelled() and task.exception() is not None:
                logger.error("relay room=%s failover failed: %r", room_id, task.exception())

        return done

    async def _join_connection(self, room_id: str) -> WorkerConnection:
        """The connection to the relay hosting `room_id`, placing the room if need be."""
        raise NotImplementedError

    async def _room_connection(self, room_id: str) -> WorkerConnection | None:
        """The connection to the relay hosting `room_id`; None if it is placed nowhere."""
        raise NotImplementedError

    def _joined(
        self, room_id: str, participant_id: str, listener: SubscriberListener, info: dict[str, str]
    ) -> None:
        """Called once the room of a joining participant is placed."""

    def _left(self, room_id: str, participant_id: str) -> None:
        """Called when a participant leaves, before its relay is told."""

    async def join(
        self,
        room_id: str,
        participant_id: str,
        listener: SubscriberListener,
        info: Mapping[str, str] | None = None,
    ) -> None:
        connection = await self._join_connection(room_id)
        self._joined(room_id, participant_id, listener, dict(info or {}))
        connection.listeners[(room_id, participant_id)] = listener
        await connection.request(
            "join", room_id=room_id, participant_id=participant_id, info=dict(info or {})
        )

    async def publish(self, room_id: str, participant_id: str, offer_sdp: object) -> str:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.publish_patience
        while True:
            connection = await self._room_connection(room_id)
            if connection is None:
                raise MediaError("not_in_call", "Only participants in the call can publish.")
            try:
                answer = await connection.request(
                    "publish", room_id=room_id, participant_id=participant_id, sdp=offer_sdp
                )
                return str(answer)
            except MediaError as exc:
                if exc.code != "not_in_call" or loop.time() >= deadline:
                    raise
            await asyncio.sleep(PUBLISH_RETRY_DELAY)

    async def prepare(self, room_id: str, participant_id: str, offer_sdp: object) -> str:
        # On the relay that carries (or will carry) the room, placing it if need be.
        connection = await self._join_connection(room_id)
        answer = await connection.request(
            "prepare", room_id=room_id, participant_id=participant_id, sdp=offer_sdp
        )
        return str(answer)

    async def publish_prepared(self, room_id: str, participant_id: str) -> None:
        connection = await self._room_connection(room_id)
        if connection is None:
            raise MediaError("not_in_call", "Only participants in the call can publish.")
        await connection.request("publish_prepared", room_id=room_id, participant_id=participant_id)

    async def request_keyframe(
        self, room_id: str, participant_id: str, subscription_id: object
    ) -> None:
        connection = await self._room_connection(room_id)
        if connection is None:
            raise MediaError("unknown_subscription", "No such subscription for you.")
        await connection.request(
            "keyframe",
            room_id=room_id,
            participant_id=participant_id,
            subscription_id=subscription_id,
        )

    async def answer(
        self, room_id: str, participant_id: str, subscription_id: object, answer_sdp: object
    ) -> None:
        connection = await self._room_connection(room_id)
        if connection is None:
            raise MediaError("unknown_subscription", "No such subscription for you.")
        await connection.request(
            "answer",
            room_id=room_id,
            participant_id=participant_id,
            subscription_id=subscription_id,
            sdp=answer_sdp,
        )

    async def leave(self, room_id: str, participant_id: str) -> None:
        self._left(room_id, participant_id)
        try:
            connection = await self._room_connection(room_id)
        except MediaError:
            return  # Its relay is gone, and the participant with it.
        if connection is None:
            return
        await connection.request("leave", room_id=room_id, participant_id=participant_id)
        connection.listeners.pop((room_id, participant_id), None)

    async def echo(self, room_id: str, offer_sdp: object) -> str:
        # On the relay that carries (or will carry) the room: the test measures that path.
        connection = await self._join_connection(room_id)
        return str(await connection.request("echo", sdp=offer_sdp))

    @staticmethod
    async def _close_on(connection: WorkerConnection, room_id: str) -> None:
        await connection.request("close_room", room_id=room_id)
        for key in [k for k in connection.listeners if k[0] == room_id]:
            connection.listeners.pop(key)
