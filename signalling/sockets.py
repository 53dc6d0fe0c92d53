"""The default Socket.IO namespace `/`: patients, guests and practitioners in one room.

The contract is docs/protocol.md. Every event answers through its ack with
`{"ok": true, ...}` or `{"ok": false, "error": {"code", "message"}}`
(signalling/ack_namespace.py). The handlers live by concept: who a connection
is (socket_session), room actions (room_actions), SDP to the relay
(media_signalling), E2EE key messages (e2ee_forwarding), media state
(media_state); what the events carry is in socket_payloads.
"""

from __future__ import annotations

from typing import Any

import socketio

from signalling import tokens
from signalling.ack_namespace import AckNamespace
from signalling.auth_throttle import AuthThrottle
from signalling.call_chat import CallChat
from signalling.config import Settings
from signalling.connection_test import ConnectionTests
from signalling.day_screen import DayScreen
from signalling.e2ee_forwarding import E2eeForwarding
from signalling.media_signalling import MediaSignalling
from signalling.media_state import MediaStateForwarding
from signalling.room_actions import RoomActions
from signalling.room_hub import RoomHub
from signalling.socket_limits import ROOM_LIMITS
from signalling.socket_session import Sessions, SocketSession


class SignallingNamespace(AckNamespace[SocketSession]):
    """Registers itself on `sio` as the default namespace."""

    def __init__(
        self,
        sio: socketio.AsyncServer,
        hub: RoomHub,
        settings: Settings,
        auth_throttle: AuthThrottle | None = None,
    ) -> None:
        super().__init__(
            "/",
            hub.clock,
            {
                **RoomActions(sio, hub, settings).handlers(),
                **MediaSignalling(hub).handlers(),
                **E2eeForwarding(sio, hub).handlers(),
                **ConnectionTests(hub).handlers(),
                **MediaStateForwarding(sio, hub).handlers(),
                **DayScreen(sio, hub, settings).handlers(),
                **CallChat(sio, hub).handlers(),
            },
            ROOM_LIMITS,
            auth_throttle=auth_throttle,
        )
        self.sio = sio
        self._token_secret = settings.token_secret
        self._sessions = Sessions(sio, hub, settings)
        # sid -> who that connection is.
        self.sessions = self._sessions.by_sid
        sio.register_namespace(self)

    async def session_of(self, sid: str) -> SocketSession | None:
        return self.sessions.get(sid)

    def rate_key(self, session: SocketSession) -> str:
        return tokens.link_key(session.room_id, session.actor.person_id, session.actor.role)

    def connect_link(self, auth: Any) -> str | None:
        token = auth.get("token") if isinstance(auth, dict) else None
        return tokens.signed_link(self._token_secret, token)

    def describe(self, session: SocketSession) -> str:
        return f"entry={session.entry_id}"

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        await self._sessions.connect(sid, auth)

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        await self._sessions.disconnect(sid)
