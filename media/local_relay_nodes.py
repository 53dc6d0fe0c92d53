"""A serve node's own relay workers, run as relay nodes in Redis and restarted when they die.

With `--redis-url` and no `TELECONSULT_RELAY_SECRET`, `teleconsult serve`
starts its relay workers this way: each worker process is a
`media.relay_node_server.RelayNode` (the `teleconsult relay` node) listening
on this machine's private address, registered and beating in the Redis
directory like any relay node. Signalling (`media.relay_node_client.NodeRelay`)
then places each room on the least-loaded worker of any node, so people
on different signalling nodes reach the same relay.

    parent (teleconsult serve)                  Redis relay:node:<id>
      LocalRelayNodes --starts, watches--> worker 0 (RelayNode) --beats-->
                      --starts, watches--> worker 1 (RelayNode) --beats-->
      NodeRelay       --TCP, HMAC challenge--> any node's workers

The internal link's secret is derived from the token secret, which every
node of a deployment shares already (`signalling.config.Settings.relay_link_secret`).

A worker that exits (crash, kill -9, out of memory) is started again at once
(then with a growing delay if it keeps dying); its record is withdrawn so
that no new room goes to it, and its rooms fail over like a dead relay
node's (NodeRelay sees the connection drop). Workers die with their parent
(PR_SET_PDEATHSIG): a killed serve node leaves no relay behind.

    python -m media.local_relay_nodes --listen HOST:PORT --node-id ID --redis-url URL
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import secrets
import socket
import sys
import urllib.parse
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import uvloop
from redis.exceptions import RedisError

from logs import line_format
from media.relay_node_server import Address, RelayNode, parse_address
from media.relay_node_server import run as run_node
from media.relay_service import IceServerConfig
from media.worker import die_with_parent
from store.redis_relay_directory import RedisRelayDirectory
from store.relay_directory import RelayDirectory

logger = logging.getLogger(__name__)

WORKER_COMMAND = ("-m", "media.local_relay_nodes")
# The link secret reaches the worker in its environment, never on its command line (`ps`).
SECRET_ENV = "TELECONSULT_RELAY_SECRET"  # noqa: S105 (a variable name)
START_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0
# A worker that died is started again after this, doubling while it keeps dying.
RESTART_DELAY = 0.1
MAX_RESTART_DELAY = 10.0
# A worker that ran this long before dying is restarted after RESTART_DELAY again.
STABLE_AFTER = 30.0


def worker_host(redis_url: str) -> str:
    """The address other nodes reach this machine at: the one it reaches Redis from.

    A route lookup only (a UDP socket's `connect` sends nothing). Redis on
    loopback or a Unix socket: loopback, one machine.
    """
    if redis_url.startswith("unix://"):
        return "127.0.0.1"
    parsed = urllib.parse.urlsplit(redis_url)
    host = parsed.hostname or "127.0.0.1"
    try:
        family, _, _, _, address = socket.getaddrinfo(
            host, parsed.port or 6379, type=socket.SOCK_DGRAM
        )[0]
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect(address)
            local = probe.getsockname()[0]
    except (OSError, ValueError, IndexError):
        return "127.0.0.1"
    return str(local)


@dataclass(eq=False)
class WorkerSlot:
    index: int
    listen: Address
    node_id: str = ""
    process: asyncio.subprocess.Process | None = None
    started_at: float = 0.0

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid


class LocalRelayNodes:
    """Starts `count` relay-node workers on `listen` (port 0: any; else port, port + 1, ...)."""

    def __init__(
        self,
        count: int,
        *,
        redis_url: str,
        prefix: str,
        secret: str,
        listen: Address,
        directory: RelayDirectory,
        ice_servers: tuple[IceServerConfig, ...] = (),
        command: Sequence[str] = WORKER_COMMAND,
    ) -> None:
        self.slots = [
            WorkerSlot(i, Address(listen.host, listen.port + i if listen.port else 0))
            for i in range(count)
        ]
        self._redis_url = redis_url
        self._prefix = prefix
        self._secret = secret
        self._directory = directory
        self._ice_servers = ice_servers
        self._command = tuple(command)
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self.restarts = 0

    @property
    def node_ids(self) -> list[str]:
        return [slot.node_id for slot in self.slots]

    async def start(self) -> None:
        """Starts the workers; one that cannot start (Redis down) is retried in the background.

        The node serves meanwhile: `/readyz` says whether media can be placed.
        """
        started = await asyncio.gather(
            *(self._start(slot) for slot in self.slots), return_exceptions=True
        )
        for outcome in started:
            if isinstance(outcome, RuntimeError | OSError):
                logger.error("%s; retrying", outcome)
            elif isinstance(outcome, BaseException):
                raise outcome
        self._tasks = [asyncio.ensure_future(self._supervise(slot)) for slot in self.slots]

    async def _start(self, slot: WorkerSlot) -> None:
        slot.node_id = f"{socket.gethostname()[:24]}-w{slot.index}-{secrets.token_hex(4)}"
        env = {**os.environ, SECRET_ENV: self._secret}
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *self._command,
            "--listen",
            str(slot.listen),
            "--node-id",
            slot.node_id,
            "--redis-url",
            self._redis_url,
            "--prefix",
            self._prefix,
            "--ice-servers",
            json.dumps([asdict(s) for s in self._ice_servers]),
            "--parent",
            str(os.getpid()),
            "--log-level",
            logging.getLevelName(max(logging.getLogger().level, logging.WARNING)),
            env=env,
            stdout=asyncio.subprocess.PIPE,
        )
        assert process.stdout is not None
        try:
            line = await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT)
        except TimeoutError:
            line = b""
        if b"ready" not in line:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            raise RuntimeError(f"relay worker {slot.index} did not start ({process.returncode})")
        slot.process = process
        slot.started_at = asyncio.get_running_loop().time()
        logger.info(
            "relay worker %d started: node=%s pid=%d at %s",
            slot.index,
            slot.node_id,
            process.pid,
            line.decode(errors="replace").strip().rsplit(" ", 1)[-1],
        )

    async def _supervise(self, slot: WorkerSlot) -> None:
        delay = RESTART_DELAY
        loop = asyncio.get_running_loop()
        while True:
            if slot.process is not None:
                code = await slot.process.wait()
                if self._closing:
                    return
                logger.warning(
                    "relay worker %d (node=%s pid=%d) exited with %s; restarting it",
                    slot.index,
                    slot.node_id,
                    slot.process.pid,
                    code,
                )
                slot.process = None
                # No new room goes to it; its rooms fail over (NodeRelay sees their links drop).
                try:
                    await self._directory.withdraw(slot.node_id)
                except Exception as exc:
                    logger.warning(
                        "relay worker %d: withdraw failed: %s", slot.index, type(exc).__name__
                    )
                if loop.time() - slot.started_at >= STABLE_AFTER:
                    delay = RESTART_DELAY
                self.restarts += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RESTART_DELAY)
            try:
                await self._start(slot)
            except (RuntimeError, OSError) as exc:
                logger.error("%s; retrying in %.1f s", exc, delay)

    async def close(self) -> None:
        self._closing = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.gather(*(_stop(slot.process) for slot in self.slots if slot.process))


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    # SIGTERM: the worker withdraws its record and closes its calls.
    process.terminate()
    try:
        await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()


def main(argv: list[str] | None = None) -> int:
    """A worker: one relay node, child of a serve node."""
    parser = argparse.ArgumentParser(prog="python -m media.local_relay_nodes")
    parser.add_argument("--listen", required=True)
    parser.add_argument("--node-id", required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--prefix", default="teleconsult:")
    parser.add_argument("--ice-servers", default="[]")
    parser.add_argument("--parent", type=int, default=0)
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    die_with_parent(args.parent)
    line_format.configure_child(args.log_level, os.environ)
    listen = (
        parse_address(args.listen, "--listen")
        if not args.listen.endswith(":0")
        else Address(args.listen.rsplit(":", 1)[0].strip("[]"), 0)
    )
    ice_servers = tuple(
        IceServerConfig(tuple(s["urls"]), s.get("username"), s.get("credential"))
        for s in json.loads(args.ice_servers)
    )
    node = RelayNode(
        RedisRelayDirectory.from_url(args.redis_url, args.prefix),
        os.environ.get(SECRET_ENV, ""),
        listen,
        listen,
        ice_servers,
        node_id=args.node_id,
    )
    try:
        uvloop.run(run_node(node))
    except RedisError as exc:
        # Not registered; the serve node starts this worker again.
        print(f"relay worker: cannot register in Redis: {type(exc).__name__}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"relay worker: cannot listen on {listen}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
