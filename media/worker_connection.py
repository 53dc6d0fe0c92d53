"""One connection over `media.worker_protocol`: to a worker's Unix socket or a relay node.

Requests get exactly one response each; events (a subscription offer, a
subscription closed) go to the listener of the participant they name.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
from collections.abc import Callable
from typing import Any

from media import worker_protocol as protocol
from media.errors import MediaError
from media.relay_service import SubscriberListener

logger = logging.getLogger(__name__)


class RelayAuthError(Exception):
    """A relay node refused our proof of the shared secret, or could not prove it."""


class WorkerConnection:
    """Requests and events on one worker's socket (or one relay node's TCP connection)."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self.listeners: dict[tuple[str, str], SubscriberListener] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        # Called once when the peer goes away on its own (not after `close()`).
        self._on_lost = on_lost
        self.lost = False
        self._closing = False
        self._reading = asyncio.ensure_future(self._read())

    @classmethod
    async def open(cls, path: str) -> WorkerConnection:
        reader, writer = await asyncio.open_unix_connection(path, limit=protocol.MAX_LINE)
        return cls(reader, writer)

    @classmethod
    async def open_tcp(
        cls,
        host: str,
        port: int,
        secret: str,
        on_lost: Callable[[], None] | None = None,
        timeout: float = 5.0,
    ) -> WorkerConnection:
        """Connects to a relay node and proves we hold the shared secret (and that it does)."""
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port, limit=protocol.MAX_LINE)
            try:
                keep_alive(writer)
                hello = protocol.decode(await reader.readline())
                challenge = hello.get("challenge")
                if hello.get("hello") != protocol.HELLO or not isinstance(challenge, str):
                    raise RelayAuthError("not a teleconsult relay node")
                ours = protocol.new_challenge()
                writer.write(
                    protocol.encode(
                        {
                            "op": "hello",
                            "proof": protocol.proof(secret, "client", challenge),
                            "challenge": ours,
                        }
                    )
                )
                await writer.drain()
                answer = protocol.decode(await reader.readline())
                if not answer.get("ok"):
                    raise RelayAuthError("the relay node refused our secret")
                if not protocol.proof_matches(secret, "server", ours, answer.get("proof")):
                    raise RelayAuthError("the relay node does not hold the shared secret")
            except BaseException:
                writer.close()
                raise
        return cls(reader, writer, on_lost)

    async def request(self, op: str, **args: Any) -> Any:
        if self.lost:
            raise MediaError("media_failed", "Relay lost.")
        request_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        self._writer.write(protocol.encode({"id": request_id, "op": op, "args": args}))
        await self._writer.drain()
        try:
            response = await future
        finally:
            self._pending.pop(request_id, None)
        if not response.get("ok"):
            error = response.get("error") or {}
            raise MediaError(str(error.get("code")), str(error.get("message")))
        return response.get("result")

    async def _read(self) -> None:
        try:
            while line := await self._reader.readline():
                message = protocol.decode(line)
                if "event" in message:
                    self._dispatch_event(message)
                    continue
                future = self._pending.get(message.get("id", -1))
                if future is not None and not future.done():
                    future.set_result(message)
        except (ConnectionError, ValueError) as exc:
            logger.warning("relay worker connection lost: %s", type(exc).__name__)
        finally:
            self.lost = True
            lost = {"ok": False, "error": {"code": "media_failed", "message": "Relay lost."}}
            for future in self._pending.values():
                if not future.done():
                    future.set_result(lost)
            if self._on_lost is not None and not self._closing:
                self._on_lost()

    def _dispatch_event(self, message: dict[str, Any]) -> None:
        listener = self.listeners.get((message["room_id"], message["participant_id"]))
        if listener is None:
            return
        if message["event"] == "subscription_offer":
            coro: Any = listener.subscription_offer(
                message["subscription_id"],
                message["publisher_id"],
                message.get("publisher_info") or {},
                message["sdp"],
            )
        elif message["event"] == "subscription_closed":
            coro = listener.subscription_closed(message["subscription_id"])
        else:
            return
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._event_done)

    def _event_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.warning("subscription event delivery failed: %r", task.exception())

    async def close(self) -> None:
        self._closing = True
        self._writer.close()
        with contextlib.suppress(ConnectionError):
            await self._writer.wait_closed()
        self._reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reading


def keep_alive(writer: asyncio.StreamWriter) -> None:
    """TCP keepalive of ~10 s: a peer whose machine vanished is noticed, not waited for."""
    sock = writer.get_extra_info("socket")
    if sock is None:
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in (("TCP_KEEPIDLE", 5), ("TCP_KEEPINTVL", 2), ("TCP_KEEPCNT", 3)):
        if hasattr(socket, option):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)
