"""The pre-call connection test (docs/protocol.md, "Connection test"): an echo through the relay.

Any authenticated connection of the default namespace may run it, before
checking in too: the page offers one data channel (`connection_test`), the
relay that would carry its room answers with an echo peer (`media.echo_test`)
that belongs to no room and closes by itself, and the page measures the round
trip and the loss of its probes. One test at a time per connection, a few a
minute per connection and person (`signalling.socket_limits`); the echo lives
`media.echo_test.ECHO_LIFETIME`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from media.echo_test import ECHO_LIFETIME
from media.errors import MediaError
from rooms.errors import DomainError, ErrorCode
from signalling.ack_namespace import Ack, Handler, ok
from signalling.room_hub import RoomHub
from signalling.socket_payloads import PublishOffer, parse
from signalling.socket_session import SocketSession


class ConnectionTests:
    def __init__(self, hub: RoomHub) -> None:
        self.hub = hub
        # Connections (entry ids) whose echo peer is still open, until it closes.
        self._running: set[str] = set()

    def handlers(self) -> dict[str, Handler[SocketSession]]:
        return {"connection_test": self.connection_test}

    async def connection_test(self, session: SocketSession, data: Any) -> Ack:
        offer = parse(PublishOffer, data)
        key = session.entry_id
        if key in self._running:
            raise MediaError("rate_limited", "A connection test is already running.")
        room = await self.hub.room(session.room_id)
        if room is None:
            raise DomainError(ErrorCode.ROOM_NOT_FOUND)
        self._running.add(key)
        try:
            answer = await self.hub.relay.echo(session.room_id, offer.sdp)
        except BaseException:
            self._running.discard(key)
            raise
        asyncio.get_running_loop().call_later(ECHO_LIFETIME, self._running.discard, key)
        return ok(answer={"sdp": answer, "type": "answer"}, seconds=ECHO_LIFETIME)
