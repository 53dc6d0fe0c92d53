"""Engine.IO sessions that never open a Socket.IO namespace are closed within seconds.

A browser sends the Socket.IO CONNECT right after the Engine.IO handshake; a
session that stays silent holds a socket, a ping task and memory for nothing
(and, by the thousand, the server). python-socketio has no such limit, so its
own Engine.IO `connect` handler is wrapped here: the one place that does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import socketio

logger = logging.getLogger(__name__)

# Enough for a phone on a slow network to send one packet after the handshake.
CONNECT_TIMEOUT = 5.0


def close_idle_sessions(sio: socketio.AsyncServer, timeout: float = CONNECT_TIMEOUT) -> None:
    eio = sio.eio
    opened: Callable[..., Awaitable[Any]] = eio.handlers["connect"]
    watches: set[asyncio.Task[None]] = set()

    async def connected(eio_sid: str, environ: dict[str, Any], *args: Any) -> Any:
        result = await opened(eio_sid, environ, *args)
        task = asyncio.ensure_future(close_if_silent(eio_sid))
        watches.add(task)
        task.add_done_callback(watches.discard)
        return result

    async def close_if_silent(eio_sid: str) -> None:
        await asyncio.sleep(timeout)
        if eio_sid not in sio.environ:
            return  # Gone already.
        namespaces = list(sio.manager.get_namespaces()) or ["/"]
        if any(sio.manager.sid_from_eio_sid(eio_sid, n) is not None for n in namespaces):
            return
        logger.info("engine.io session closed: no namespace opened in %.0f s", timeout)
        await eio.disconnect(eio_sid)

    eio.on("connect", connected)
