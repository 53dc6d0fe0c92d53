"""The relay as seen from signalling when it runs in worker processes.

`WorkerRelay` is a `media.relay_service.RelayService`, so signalling does
not know which relay it has. It starts one `media.worker` process per core
(by default), places each room on the worker with the fewest rooms, and
talks to it over `media.worker_protocol`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict

from media.errors import MediaError
from media.protocol_relay import ProtocolRelay
from media.relay_service import IceServerConfig
from media.worker_connection import WorkerConnection

logger = logging.getLogger(__name__)

START_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0
# How a worker process is started: `python <WORKER_COMMAND> --socket PATH --ice-servers JSON`.
WORKER_COMMAND = ("-m", "media.worker")


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
        self.connections = [await WorkerConnection.open(path) for path in paths]
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
            if not self.connections:
                raise MediaError("media_failed", "The relay is not running.")
            load = [0] * len(self.connections)
            for placed in self._placement.values():
                load[placed] += 1
            index = self._placement[room_id] = load.index(min(load))
        return self.connections[index]

    def worker_index(self, room_id: str) -> int | None:
        return self._placement.get(room_id)

    async def _join_connection(self, room_id: str) -> WorkerConnection:
        worker = self._worker_for(room_id, create=True)
        assert worker is not None
        return worker

    async def _room_connection(self, room_id: str) -> WorkerConnection | None:
        return self._worker_for(room_id, create=False)

    async def close_room(self, room_id: str) -> None:
        worker = self._worker_for(room_id, create=False)
        if worker is None:
            return
        await self._close_on(worker, room_id)
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
