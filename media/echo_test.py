"""The far end of the pre-call connection test: a short-lived peer that echoes the page's probes.

A page checking whether media can reach the relay offers one peer connection
with one data channel (no audio, no video); the relay answers with a peer of
its own, over the same ICE servers and transports a call would use, and sends
back each small message that arrives on the channel, so the page can time the
round trip and count what was lost. Such a peer belongs to no room: it has no
track, no subscription, nothing of any call can reach it, and it is closed
after `ECHO_LIFETIME` seconds whatever happens. Bounded in number, size and
count of echoed messages, it cannot be turned into a reflector.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from typing import Any

from aiortc import RTCPeerConnection, RTCSessionDescription

from media.errors import MediaError
from media.peer_connections import check_sdp, new_peer_connection
from media.relay_service import IceServerConfig

logger = logging.getLogger(__name__)

# Long enough to connect on a slow network and send a few seconds of probes.
ECHO_LIFETIME = 8.0
MAX_ECHOES = 32
MAX_PROBE_BYTES = 256
MAX_PROBES = 300


def _offered_kinds(sdp: str) -> set[str]:
    return {line[2:].split(" ", 1)[0] for line in sdp.splitlines() if line.startswith("m=")}


class EchoPeers:
    """The connection tests' echo peers of one relay process."""

    def __init__(
        self, ice_servers: tuple[IceServerConfig, ...] = (), lifetime: float = ECHO_LIFETIME
    ) -> None:
        self._ice_servers = ice_servers
        self._lifetime = lifetime
        self._peers: dict[str, RTCPeerConnection] = {}
        self._expiry: dict[str, asyncio.TimerHandle] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._peers)

    async def open(self, offer_sdp: object) -> str:
        """Answer a connection test's offer; returns the answer SDP."""
        sdp = check_sdp(offer_sdp)
        if _offered_kinds(sdp) != {"application"}:
            raise MediaError("invalid_request", "A connection test offers one data channel only.")
        if len(self._peers) >= MAX_ECHOES:
            raise MediaError("rate_limited", "Too many connection tests at once; try again soon.")
        echo_id = secrets.token_urlsafe(9)
        pc = new_peer_connection(self._ice_servers)
        self._peers[echo_id] = pc
        self._expiry[echo_id] = asyncio.get_running_loop().call_later(
            self._lifetime, self._expire, echo_id
        )
        pc.on("datachannel", _echoing)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as exc:
            await self._close(echo_id)
            logger.info("relay connection test refused: %s", type(exc).__name__)
            raise MediaError("media_failed", "The connection test could not be set up.") from exc
        return str(pc.localDescription.sdp)

    def _expire(self, echo_id: str) -> None:
        task = asyncio.ensure_future(self._close(echo_id))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _close(self, echo_id: str) -> None:
        timer = self._expiry.pop(echo_id, None)
        if timer is not None:
            timer.cancel()
        pc = self._peers.pop(echo_id, None)
        if pc is not None:
            with contextlib.suppress(Exception):
                await pc.close()

    async def close(self) -> None:
        for echo_id in list(self._peers):
            await self._close(echo_id)
        for task in list(self._closing):
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _echoing(channel: Any) -> None:
    echoed = 0

    def on_message(message: object) -> None:
        nonlocal echoed
        if echoed >= MAX_PROBES or not isinstance(message, str | bytes):
            return
        if len(message) > MAX_PROBE_BYTES:
            return
        echoed += 1
        channel.send(message)

    channel.on("message", on_message)
