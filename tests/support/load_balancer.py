"""A small TCP load balancer for the multi-node tests: one address for several signalling nodes.

Each new connection goes to the next backend (round robin) that accepts it;
a dead backend is skipped. Socket.IO runs over WebSocket only here
(docs/protocol.md), so a connection carries one whole session and no
stickiness is needed: this is what an operator's HAProxy or nginx does too
(docs/deployment.md). It also records which backend carries each Socket.IO
connection, so a test can kill the node a page is on.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

CONNECT_TIMEOUT = 1.0


@dataclass(eq=False)
class Forwarded:
    backend: int
    first_line: bytes = b""
    open: bool = True
    writers: list[asyncio.StreamWriter] = field(default_factory=list)

    @property
    def is_socketio(self) -> bool:
        return self.first_line.startswith(b"GET /socket.io/")


class LoadBalancer:
    def __init__(self, backends: list[tuple[str, int]]) -> None:
        self.backends = backends
        self._turn = 0
        self.connections: list[Forwarded] = []
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, port: int = 0) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", port)
        self.port = self._server.sockets[0].getsockname()[1]

    def socketio_backends(self) -> list[int]:
        """The backends of the open Socket.IO connections, oldest first."""
        return [c.backend for c in self.connections if c.open and c.is_socketio]

    async def _connect(self) -> tuple[int, asyncio.StreamReader, asyncio.StreamWriter] | None:
        for _ in range(len(self.backends)):
            index = self._turn % len(self.backends)
            self._turn += 1
            host, port = self.backends[index]
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    reader, writer = await asyncio.open_connection(host, port)
                return index, reader, writer
            except (OSError, TimeoutError):
                continue
        return None

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        backend = await self._connect()
        if backend is None:
            client_w.close()
            return
        index, server_r, server_w = backend
        forwarded = Forwarded(index, writers=[client_w, server_w])
        self.connections.append(forwarded)
        try:
            await asyncio.gather(
                self._pipe(client_r, server_w, forwarded, sniff=True),
                self._pipe(server_r, client_w, forwarded, sniff=False),
            )
        finally:
            forwarded.open = False
            for writer in forwarded.writers:
                writer.close()

    @staticmethod
    async def _pipe(
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        forwarded: Forwarded,
        *,
        sniff: bool,
    ) -> None:
        try:
            while data := await reader.read(65536):
                if sniff and not forwarded.first_line:
                    forwarded.first_line = data.split(b"\r\n", 1)[0]
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            # One side gone: close both, as a dead node's connections die in a real balancer.
            for other in forwarded.writers:
                other.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for forwarded in self.connections:
            for writer in forwarded.writers:
                writer.close()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
