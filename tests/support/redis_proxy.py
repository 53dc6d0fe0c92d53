"""A TCP proxy in front of a real Redis that fails at a chosen byte of what clients send.

`fail_before(marker)`: the next time a client sends `marker` (a RESP fragment
such as the `EXEC` command), Redis receives what came before it and nothing
more, and then Redis is down: every connection through the proxy is closed and
new ones are closed as they arrive, until `restore()`. `fail_after(marker)`:
Redis receives the marker too and runs it, but its reply never comes back (the
client's connection closes), and Redis is down the same way. A transaction is
cut exactly where a crash, a partition or a killed connection would cut it.
`cut()` takes Redis down at once, the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

CHUNK = 64 * 1024


def held_back(data: bytes, marker: bytes) -> int:
    """How many trailing bytes of `data` may be the start of `marker` (wait for more)."""
    for n in range(min(len(data), len(marker) - 1), 0, -1):
        if data.endswith(marker[:n]):
            return n
    return 0


@dataclass
class _Trap:
    marker: bytes
    deliver_marker: bool


@dataclass(eq=False)
class _Link:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    client_open: bool = True
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def close_client(self) -> None:
        self.client_open = False
        self.client.close()

    def close(self) -> None:
        self.close_client()
        self.upstream.close()


class FailingRedisProxy:
    def __init__(self, redis_port: int) -> None:
        self._redis_port = redis_port
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._trap: _Trap | None = None
        self._down = False
        self.port = 0
        # Set once the armed failure happened.
        self.failed = asyncio.Event()
        # Connections turned away while Redis was down (clients retrying).
        self.refused = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def fail_before(self, marker: bytes) -> None:
        self._arm(_Trap(marker, deliver_marker=False))

    def fail_after(self, marker: bytes) -> None:
        self._arm(_Trap(marker, deliver_marker=True))

    def _arm(self, trap: _Trap) -> None:
        self.failed.clear()
        self._trap = trap

    def cut(self) -> None:
        """Redis is down now: every connection through the proxy closes, new ones too."""
        self._trap = None
        self._down = True
        for link in list(self._links):
            link.close()
        self.failed.set()

    def restore(self) -> None:
        """Redis is back: new connections go through again."""
        self._trap = None
        self._down = False
        for link in list(self._links):
            if not link.client_open:
                link.close()  # kept open only so Redis ran what it was sent

    async def close(self) -> None:
        for link in list(self._links):
            link.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        tasks = [task for link in self._links for task in link.tasks]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _go_down(self, tripped: _Link, *, keep_upstream: bool) -> None:
        self._trap = None
        self._down = True
        for link in list(self._links):
            if link is tripped and keep_upstream:
                link.close_client()
            else:
                link.close()
        self.failed.set()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._down:
            self.refused += 1
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._redis_port)
        except OSError:
            writer.close()
            return
        link = _Link(writer, up_writer)
        self._links.add(link)
        link.tasks = [
            asyncio.ensure_future(self._to_redis(link, reader)),
            asyncio.ensure_future(self._to_client(link, up_reader)),
        ]
        try:
            await asyncio.gather(*link.tasks, return_exceptions=True)
        finally:
            link.close()
            self._links.discard(link)

    async def _to_redis(self, link: _Link, reader: asyncio.StreamReader) -> None:
        pending = b""
        with contextlib.suppress(OSError):
            while link.client_open:
                chunk = await reader.read(CHUNK)
                if not chunk or not link.client_open:
                    break
                pending += chunk
                trap = self._trap
                if trap is None:
                    link.upstream.write(pending)
                    pending = b""
                else:
                    at = pending.find(trap.marker)
                    if at >= 0:
                        end = at + len(trap.marker) if trap.deliver_marker else at
                        link.upstream.write(pending[:end])
                        await link.upstream.drain()
                        self._go_down(link, keep_upstream=trap.deliver_marker)
                        break
                    keep = held_back(pending, trap.marker)
                    link.upstream.write(pending[: len(pending) - keep])
                    pending = pending[len(pending) - keep :]
                await link.upstream.drain()
        if link.client_open:
            link.upstream.close()

    async def _to_client(self, link: _Link, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(OSError):
            while True:
                chunk = await reader.read(CHUNK)
                if not chunk:
                    break
                if link.client_open:
                    link.client.write(chunk)
                    await link.client.drain()
        link.close_client()
