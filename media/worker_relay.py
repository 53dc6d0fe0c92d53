"""The relay as seen from signalling when it runs in worker processes.

`WorkerRelay` has the same methods as `media.relay.Relay` (join, publish,
answer, leave, close_room, close, stats), so signalling does not know which
one it has. It starts one `media.worker` process per core (by default),
places each room on the worker with the fewest rooms, and talks to it over
`media.worker_protocol`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import socket
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import Any

from media import worker_protocol as protocol
from media.relay import IceServerConfig, MediaError, RelayMode, SubscriberListener

logger = logging.getLogger(__name__)

START_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0


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


class WorkerProcess:
    def __init__(self, process: asyncio.subprocess.Process, socket_path: str) -> None:
        self.process = process
        self.socket_path = socket_path

    @property
    def pid(self) -> int:
        return self.process.pid

    @classmethod
    async def start(
        cls, socket_path: str, mode: RelayMode, ice_servers: tuple[IceServerConfig, ...]
    ) -> WorkerProcess:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "media.worker",
            "--socket",
            socket_path,
            "--mode",
            mode,
            "--ice-servers",
            json.dumps([asdict(s) for s in ice_servers]),
            stdout=asyncio.subprocess.PIPE,
        )
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT)
        if line.strip() != b"ready":
            process.kill()
            raise RuntimeError("relay worker did not start")
        return cls(process, socket_path)

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), STOP_TIMEOUT)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


class WorkerRelay:
    """Drop-in for `Relay` that forwards media in worker processes."""

    def __init__(
        self,
        workers: int | None = None,
        ice_servers: tuple[IceServerConfig, ...] = (),
        mode: RelayMode = "rtp",
    ) -> None:
        self.worker_count = workers or os.cpu_count() or 1
        self.mode = mode
        self._ice_servers = ice_servers
        self.processes: list[WorkerProcess] = []
        self.connections: list[WorkerConnection] = []
        self._placement: dict[str, int] = {}
        self._directory: tempfile.TemporaryDirectory[str] | None = None

    async def start(self) -> None:
        self._directory = tempfile.TemporaryDirectory(prefix="teleconsult-relay-")
        paths = [
            os.path.join(self._directory.name, f"worker-{i}.sock") for i in range(self.worker_count)
        ]
        self.processes = list(
            await asyncio.gather(
                *(WorkerProcess.start(path, self.mode, self._ice_servers) for path in paths)
            )
        )
        self.connections = [await WorkerConnection.open(path) for path in paths]
        logger.info("relay started %d worker processes (mode %s)", len(self.processes), self.mode)

    def _worker_for(self, room_id: str, *, create: bool) -> WorkerConnection | None:
        index = self._placement.get(room_id)
        if index is None:
            if not create:
                return None
            if not self.connections:
                raise MediaError("media_failed", "The relay is not running.")
            load = [0] * len(self.connections)
            for placed in self._placement.values():
                load[placed] += 1
            index = self._placement[room_id] = load.index(min(load))
        return self.connections[index]

    def worker_index(self, room_id: str) -> int | None:
        return self._placement.get(room_id)

    async def join(
        self,
        room_id: str,
        participant_id: str,
        listener: SubscriberListener,
        info: Mapping[str, str] | None = None,
    ) -> None:
        worker = self._worker_for(room_id, create=True)
        assert worker is not None
        worker.listeners[(room_id, participant_id)] = listener
        await worker.request(
            "join", room_id=room_id, participant_id=participant_id, info=dict(info or {})
        )

    async def publish(self, room_id: str, participant_id: str, offer_sdp: object) -> str:
        worker = self._worker_for(room_id, create=False)
        if worker is None:
            raise MediaError("not_in_call", "Only participants in the call can publish.")
        return str(
            await worker.request(
                "publish", room_id=room_id, participant_id=participant_id, sdp=offer_sdp
            )
        )

    async def answer(
        self, room_id: str, participant_id: str, subscription_id: object, answer_sdp: object
    ) -> None:
        worker = self._worker_for(room_id, create=False)
        if worker is None:
            raise MediaError("unknown_subscription", "No such subscription for you.")
        await worker.request(
            "answer",
            room_id=room_id,
            participant_id=participant_id,
            subscription_id=subscription_id,
            sdp=answer_sdp,
        )

    async def leave(self, room_id: str, participant_id: str) -> None:
        worker = self._worker_for(room_id, create=False)
        if worker is None:
            return
        await worker.request("leave", room_id=room_id, participant_id=participant_id)
        worker.listeners.pop((room_id, participant_id), None)

    async def close_room(self, room_id: str) -> None:
        worker = self._worker_for(room_id, create=False)
        if worker is None:
            return
        await worker.request("close_room", room_id=room_id)
        for key in [k for k in worker.listeners if k[0] == room_id]:
            worker.listeners.pop(key)
        self._placement.pop(room_id, None)

    async def worker_stats(self) -> dict[str, int]:
        """`Relay.stats` summed over the workers."""
        totals: dict[str, int] = {}
        for worker in self.connections:
            for key, value in (await worker.request("stats")).items():
                totals[key] = totals.get(key, 0) + int(value)
        return totals

    async def close(self) -> None:
        for connection in self.connections:
            await connection.close()
        await asyncio.gather(*(p.stop() for p in self.processes))
        self.connections = []
        self.processes = []
        if self._directory is not None:
            self._directory.cleanup()
            self._directory = None


def keep_alive(writer: asyncio.StreamWriter) -> None:
    """TCP keepalive of ~10 s: a peer whose machine vanished is noticed, not waited for."""
    sock = writer.get_extra_info("socket")
    if sock is None:
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in (("TCP_KEEPIDLE", 5), ("TCP_KEEPINTVL", 2), ("TCP_KEEPCNT", 3)):
        if hasattr(socket, option):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)
