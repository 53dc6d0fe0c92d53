"""The relay as seen from signalling when it runs in worker processes.

`WorkerRelay` is a `media.relay_service.RelayService`, so signalling does
not know which relay it has. It starts one `media.worker` process per core
(by default), places each room on the worker with the fewest rooms, and
talks to it over `media.worker_protocol`.

A worker that dies is started again on its socket; its rooms move to the
least-loaded live worker (the restarted one if it is the only one) and their
participants still in the call are told to restart their media and joined
there, as a dead relay node's are (`media.relay_node_client`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict

from media.errors import MediaError
from media.protocol_relay import InCall, MediaRestart, Member, ProtocolRelay, everyone, nobody_told
from media.relay_service import IceServerConfig, SubscriberListener
from media.worker_connection import WorkerConnection

logger = logging.getLogger(__name__)

START_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0
# How a worker process is started: `python <WORKER_COMMAND> --socket PATH --ice-servers JSON`.
WORKER_COMMAND = ("-m", "media.worker")
# A dead worker is started again after this, doubling while it fails to start.
RESTART_DELAY = 0.1
MAX_RESTART_DELAY = 10.0


class WorkerProcess:
    def __init__(self, process: asyncio.subprocess.Process, socket_path: str) -> None:
        self.process = process
        self.socket_path = socket_path

    @property
    def pid(self) -> int:
        return self.process.pid

    @classmethod
    async def start(
        cls,
        socket_path: str,
        ice_servers: tuple[IceServerConfig, ...],
        command: Sequence[str] = WORKER_COMMAND,
    ) -> WorkerProcess:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *command,
            "--socket",
            socket_path,
            "--ice-servers",
            json.dumps([asdict(s) for s in ice_servers]),
            "--parent",
            str(os.getpid()),
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


class WorkerRelay(ProtocolRelay):
    """Drop-in for `Relay` that forwards media in worker processes.

    `worker_command` is how each worker is started (the benchmark starts its
    own, `bench.worker`, which can run the baseline forwarding modes).
    """

    def __init__(
        self,
        workers: int | None = None,
        ice_servers: tuple[IceServerConfig, ...] = (),
        *,
        worker_command: Sequence[str] = WORKER_COMMAND,
    ) -> None:
        self.worker_count = workers or os.cpu_count() or 1
        self.worker_command = tuple(worker_command)
        self._ice_servers = ice_servers
        self.processes: list[WorkerProcess] = []
        self.connections: list[WorkerConnection] = []
        self._placement: dict[str, int] = {}
        self._directory: tempfile.TemporaryDirectory[str] | None = None
        # Failover, as NodeRelay's: set by signalling (signalling/app.py).
        self.on_media_restart: MediaRestart = nobody_told
        self.in_call: InCall = everyone
        self._members: dict[str, dict[str, Member]] = {}
        self._down: set[int] = set()
        self._restarting: dict[int, asyncio.Task[None]] = {}
        self._moving: dict[str, asyncio.Task[None]] = {}
        self._closing = False
        self.restarts = 0

    async def start(self) -> None:
        self._directory = tempfile.TemporaryDirectory(prefix="teleconsult-relay-")
        paths = [
            os.path.join(self._directory.name, f"worker-{i}.sock") for i in range(self.worker_count)
        ]
        self.processes = list(
            await asyncio.gather(
                *(
                    WorkerProcess.start(path, self._ice_servers, self.worker_command)
                    for path in paths
                )
            )
        )
        self.connections = [
            await WorkerConnection.open(path, on_lost=self._on_lost(i))
            for i, path in enumerate(paths)
        ]
        logger.info(
            "relay started %d worker processes (%s)",
            len(self.processes),
            " ".join(self.worker_command),
        )

    def _worker_for(self, room_id: str, *, create: bool) -> WorkerConnection | None:
        index = self._placement.get(room_id)
        if index is None:
            if not create:
                return None
            index = self._placement[room_id] = self._least_loaded()
        return self.connections[index]

    def _least_loaded(self) -> int:
        live = [i for i in range(len(self.connections)) if i not in self._down]
        if not live:
            raise MediaError("media_failed", "The relay is not running.")
        load = dict.fromkeys(live, 0)
        for placed in self._placement.values():
            if placed in load:
                load[placed] += 1
        return min(live, key=lambda i: load[i])

    def worker_index(self, room_id: str) -> int | None:
        return self._placement.get(room_id)

    async def _join_connection(self, room_id: str) -> WorkerConnection:
        await self._settled(room_id)
        worker = self._worker_for(room_id, create=True)
        assert worker is not None
        return worker

    async def _room_connection(self, room_id: str) -> WorkerConnection | None:
        await self._settled(room_id)
        return self._worker_for(room_id, create=False)

    async def _settled(self, room_id: str) -> None:
        moving = self._moving.get(room_id)
        if moving is not None:
            await asyncio.shield(moving)

    def _joined(
        self, room_id: str, participant_id: str, listener: SubscriberListener, info: dict[str, str]
    ) -> None:
        self._members.setdefault(room_id, {})[participant_id] = Member(listener, info)

    def _left(self, room_id: str, participant_id: str) -> None:
        self._members.get(room_id, {}).pop(participant_id, None)

    async def close_room(self, room_id: str) -> None:
        self._members.pop(room_id, None)
        worker = self._worker_for(room_id, create=False)
        if worker is None:
            return
        self._placement.pop(room_id, None)
        with contextlib.suppress(MediaError):
            await self._close_on(worker, room_id)

    # ------------------------------------------------------------- failover

    def _on_lost(self, index: int) -> Callable[[], None]:
        return lambda: self._lost(index)

    def _lost(self, index: int) -> None:
        if self._closing or index in self._restarting:
            return
        self._down.add(index)
        rooms = [r for r, i in self._placement.items() if i == index]
        logger.warning(
            "relay worker %d (pid=%d) lost; restarting it, moving %d rooms",
            index,
            self.processes[index].pid,
            len(rooms),
        )
        restart = asyncio.ensure_future(self._restart(index))
        self._restarting[index] = restart
        restart.add_done_callback(lambda _: self._restarting.pop(index, None))
        for room_id in rooms:
            if not self._members.get(room_id):
                self._placement.pop(room_id, None)  # Nobody in it: placed afresh when joined.
                continue
            task = asyncio.ensure_future(self._move(room_id, restart))
            self._moving[room_id] = task
            task.add_done_callback(self._moved(room_id))

    async def _restart(self, index: int) -> None:
        old = self.processes[index].process
        if old.returncode is None:
            old.kill()  # Its connection is gone: it cannot be driven any more.
        await old.wait()
        path = self.processes[index].socket_path
        delay = RESTART_DELAY
        while True:
            await asyncio.sleep(delay)
            try:
                process = await WorkerProcess.start(path, self._ice_servers, self.worker_command)
            except (RuntimeError, OSError, TimeoutError) as exc:
                delay = min(delay * 2, MAX_RESTART_DELAY)
                logger.error("relay worker %d: %s; retrying in %.1f s", index, exc, delay)
                continue
            try:
                connection = await WorkerConnection.open(path, on_lost=self._on_lost(index))
            except OSError as exc:
                await process.stop()
                delay = min(delay * 2, MAX_RESTART_DELAY)
                logger.error("relay worker %d: %s; retrying in %.1f s", index, exc, delay)
                continue
            break
        self.processes[index] = process
        self.connections[index] = connection
        self._down.discard(index)
        self.restarts += 1
        logger.info("relay worker %d restarted: pid=%d", index, process.pid)

    async def _move(self, room_id: str, restart: asyncio.Task[None]) -> None:
        if len(self._down) == len(self.connections):
            await asyncio.shield(restart)  # No other worker: wait for this one.
        target = self._placement[room_id] = self._least_loaded()
        restarted = await self._rejoin(room_id, self.connections[target])
        logger.info(
            "relay room=%s now on worker %d; %d participants restarting media",
            room_id,
            target,
            len(restarted),
        )

    async def worker_stats(self) -> dict[str, int]:
        """`Relay.stats` summed over the workers."""
        totals: dict[str, int] = {}
        for worker in self.connections:
            for key, value in (await worker.request("stats")).items():
                totals[key] = totals.get(key, 0) + int(value)
        return totals

    async def close(self) -> None:
        self._closing = True
        for task in [*self._restarting.values(), *self._moving.values()]:
            task.cancel()
        for connection in self.connections:
            await connection.close()
        await asyncio.gather(*(p.stop() for p in self.processes))
        self.connections = []
        self.processes = []
        if self._directory is not None:
            self._directory.cleanup()
            self._directory = None
