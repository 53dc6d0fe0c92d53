"""Real `teleconsult serve` and `teleconsult relay` processes on one real Redis.

Every process is started with PR_SET_PDEATHSIG: if the test process dies
(even by SIGKILL) the kernel kills its nodes too, and `Cluster.stop()` ends
them after a failing test. Their logs go to files, printed on teardown (pytest
shows them for a failing test).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis.asyncio as redis
from aiohttp import ClientError, ClientSession

from tests.support import TOKEN_SECRET, WEBHOOK_SECRET, booking_body, signed_headers
from tests.support.load_balancer import LoadBalancer
from tests.support.polling import eventually
from tests.support.redis_server import free_port

REPO = Path(__file__).resolve().parents[2]
RELAY_SECRET = "relay-secret-" + "r" * 40
START_TIMEOUT = 30.0
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass(eq=False)
class NodeProcess:
    name: str
    process: asyncio.subprocess.Process
    port: int
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process.returncode is None

    def local(self, link: str) -> str:
        """The join link on this node's own port."""
        return self.base_url + "/c/" + link.split("/c/", 1)[1]

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)

    async def stop(self) -> None:
        if self.process.returncode is not None:
            return
        self.process.terminate()
        try:
            await asyncio.wait_for(self.process.wait(), 5)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


@dataclass(eq=False)
class Cluster:
    redis_url: str
    directory: Path
    relays: list[NodeProcess] = field(default_factory=list)
    nodes: list[NodeProcess] = field(default_factory=list)
    balancer: LoadBalancer | None = None
    public_url: str = "http://127.0.0.1:1"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TELECONSULT_")}
        env.update(
            TELECONSULT_TOKEN_SECRET=TOKEN_SECRET,
            TELECONSULT_WEBHOOK_SECRET=WEBHOOK_SECRET,
            TELECONSULT_RELAY_SECRET=RELAY_SECRET,
            TELECONSULT_PUBLIC_URL=self.public_url,
        )
        return env

    async def _spawn(self, name: str, port: int, *args: str) -> NodeProcess:
        log = self.directory / f"{name}.log"
        with log.open("wb") as sink:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "signalling.cli",
                *args,
                cwd=REPO,
                env=self.env(),
                stdout=asyncio.subprocess.PIPE,
                stderr=sink,
                preexec_fn=_die_with_parent,
            )
        return NodeProcess(name, process, port, log)

    async def start_relay(self) -> NodeProcess:
        port = free_port()
        name = f"relay-{len(self.relays)}"
        node = await self._spawn(
            name, port, "relay", "--redis-url", self.redis_url, "--listen", f"127.0.0.1:{port}"
        )
        self.relays.append(node)
        assert node.process.stdout is not None
        async with asyncio.timeout(START_TIMEOUT):
            line = await node.process.stdout.readline()
        if b"ready" not in line:
            raise RuntimeError(f"{name} did not start:\n{node.log.read_text()}")
        return node

    async def start_signalling(self) -> NodeProcess:
        port = free_port()
        name = f"signalling-{len(self.nodes)}"
        node = await self._spawn(
            name, port, "serve", "--port", str(port), "--redis-url", self.redis_url
        )
        self.nodes.append(node)
        async with ClientSession() as session:

            async def ready() -> bool:
                if not node.running:
                    raise RuntimeError(f"{name} exited at start:\n{node.log.read_text()}")
                try:
                    async with session.get(node.base_url + "/readyz") as response:
                        return response.status == 200
                except ClientError:
                    return False

            await eventually(
                ready, timeout=START_TIMEOUT, interval=0.1, what=f"{name} answers /readyz"
            )
        return node

    async def start(self, relays: int = 2, signalling: int = 2) -> None:
        # The balancer's address is the public URL of every node, as in production.
        self.balancer = LoadBalancer([])
        await self.balancer.start()
        self.public_url = self.balancer.base_url
        await asyncio.gather(*(self.start_relay() for _ in range(relays)))
        await asyncio.gather(*(self.start_signalling() for _ in range(signalling)))
        self.balancer.backends.extend(("127.0.0.1", node.port) for node in self.nodes)

    async def book(self, data: dict[str, Any]) -> dict[str, Any]:
        body = booking_body("appointment.created", data)
        async with (
            ClientSession() as session,
            session.post(
                self.nodes[0].base_url + "/hooks/booking",
                data=body,
                headers=signed_headers(body),
            ) as response,
        ):
            assert response.status == 201, await response.text()
            document: dict[str, Any] = await response.json()
            return document

    async def relay_records(self) -> dict[str, dict[str, Any]]:
        """The live relay nodes' records in Redis, by advertised port."""
        client = redis.Redis.from_url(self.redis_url)
        try:
            records: dict[str, dict[str, Any]] = {}
            async for key in client.scan_iter(match="teleconsult:relay:node:*"):
                raw = await client.get(key)
                if raw is not None:
                    record = json.loads(raw)
                    records[record["id"]] = record
            return records
        finally:
            await client.aclose()

    async def placement(self, room_id: str) -> str | None:
        client = redis.Redis.from_url(self.redis_url, decode_responses=True)
        try:
            value = await client.get(f"teleconsult:relay:room:{room_id}")
            assert value is None or isinstance(value, str)
            return value
        finally:
            await client.aclose()

    async def relay_hosting(self, room_id: str) -> NodeProcess:
        node_id = await self.placement(room_id)
        assert node_id is not None, "the room was not placed on a relay node"
        record = (await self.relay_records())[node_id]
        [relay] = [r for r in self.relays if r.port == record["port"]]
        return relay

    async def stop(self) -> None:
        if self.balancer is not None:
            await self.balancer.close()
        await asyncio.gather(*(p.stop() for p in [*self.nodes, *self.relays]))

    def logs(self) -> str:
        parts = []
        for process in [*self.relays, *self.nodes]:
            with contextlib.suppress(OSError):
                tail = process.log.read_text(errors="replace").splitlines()[-40:]
                parts.append(f"--- {process.name} ---\n" + "\n".join(tail))
        return "\n".join(parts)
