"""A relay node, the `teleconsult relay` process: one `Relay` on uvloop serving signalling nodes.

Signalling's side of the link is `media.relay_node_client.NodeRelay`.

    teleconsult relay --redis-url redis://... --listen 0.0.0.0:7000 --advertise 10.0.0.5:7000

It speaks `media.worker_protocol` (the relay workers' protocol) to any
signalling node that proves it holds `TELECONSULT_RELAY_SECRET`, and beats in
Redis (`store.relay_directory`) with its load so that signalling places rooms
on the least-loaded live node. Media goes between browsers and this process
directly (UDP); only SDP crosses the TCP link.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import secrets
import signal
from dataclasses import dataclass

from media import worker_protocol as protocol
from media.relay import Relay
from media.relay_service import IceServerConfig
from media.worker_connection import keep_alive
from media.worker_server import WorkerServer
from store.relay_directory import HEARTBEAT_INTERVAL, RelayDirectory, RelayNodeInfo

logger = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT = 5.0
MIN_SECRET_LENGTH = 32


class AddressError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_address(value: str, what: str) -> Address:
    """`HOST:PORT` or `[IPv6]:PORT`."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not host:
        raise AddressError(f"{what} must be HOST:PORT, got {value!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        port = int(port_text)
    except ValueError:
        raise AddressError(f"{what} has no valid port: {value!r}") from None
    if not 1 <= port <= 65535:
        raise AddressError(f"{what} port must be 1-65535, got {port}")
    return Address(host, port)


def advertised_address(listen: Address, advertise: Address | None) -> Address:
    """What signalling nodes should connect to; a wildcard listen address needs `--advertise`."""
    if advertise is not None:
        return advertise
    try:
        wildcard = ipaddress.ip_address(listen.host).is_unspecified
    except ValueError:
        wildcard = False  # A host name.
    if wildcard:
        raise AddressError(
            f"--listen {listen} is a wildcard address: give --advertise HOST:PORT, "
            "the address signalling nodes reach this node at"
        )
    return listen


def check_secret(secret: str | None) -> str:
    if not secret:
        raise ValueError("TELECONSULT_RELAY_SECRET is not set (shared by relay and signalling)")
    if len(secret.encode()) < MIN_SECRET_LENGTH:
        raise ValueError(f"TELECONSULT_RELAY_SECRET must be at least {MIN_SECRET_LENGTH} bytes")
    return secret


class RelayNode:
    """A relay served over TCP to authenticated signalling nodes, registered in Redis."""

    def __init__(
        self,
        directory: RelayDirectory,
        secret: str,
        listen: Address,
        advertise: Address,
        ice_servers: tuple[IceServerConfig, ...] = (),
    ) -> None:
        self.directory = directory
        self.secret = check_secret(secret)
        self.listen = listen
        self.advertise = advertise
        self.node_id = secrets.token_hex(8)
        self.relay = Relay(ice_servers)
        self.server = WorkerServer(self.relay)
        self._tcp: asyncio.Server | None = None
        self._heartbeat: asyncio.Task[None] | None = None

    def info(self) -> RelayNodeInfo:
        return RelayNodeInfo(
            self.node_id,
            self.advertise.host,
            self.advertise.port,
            rooms=self.relay.stats()["rooms"],
            participants=self.server.participants,
        )

    async def start(self) -> None:
        self._tcp = await asyncio.start_server(
            self._accept, self.listen.host, self.listen.port, limit=protocol.MAX_LINE
        )
        # Registered only once it accepts connections; the first beat must succeed.
        await self.directory.announce(self.info())
        self._heartbeat = asyncio.ensure_future(self._beat())
        logger.info(
            "relay node=%s listening on %s, advertised as %s",
            self.node_id,
            self.listen,
            self.advertise,
        )

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_INTERVAL)
            try:
                await self.directory.announce(self.info())
            except Exception as exc:
                # Calls in progress go on; signalling stops placing rooms here until we are back.
                logger.warning(
                    "relay node=%s heartbeat failed: %s", self.node_id, type(exc).__name__
                )

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        keep_alive(writer)
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT):
                authenticated = await self._handshake(reader, writer)
        except ConnectionError as exc:
            # A peer that leaves before the handshake: a health probe (every 10 s
            # under Docker) or a port scan, not an incident.
            logger.debug(
                "relay node=%s connection left before the handshake: %s",
                self.node_id,
                type(exc).__name__,
            )
            authenticated = False
        except (TimeoutError, ValueError) as exc:
            logger.warning(
                "relay node=%s handshake failed from %s: %s", self.node_id, peer, type(exc).__name__
            )
            authenticated = False
        if not authenticated:
            writer.close()
            return
        logger.info("relay node=%s signalling connected from %s", self.node_id, peer)
        await self.server.serve(reader, writer)
        logger.info("relay node=%s signalling disconnected from %s", self.node_id, peer)

    async def _handshake(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        challenge = protocol.new_challenge()
        writer.write(protocol.encode({"hello": protocol.HELLO, "challenge": challenge}))
        await writer.drain()
        line = await reader.readline()
        if not line:
            return False
        hello = protocol.decode(line)
        theirs = hello.get("challenge")
        if (
            hello.get("op") != "hello"
            or not isinstance(theirs, str)
            or not 32 <= len(theirs) <= 128
            or not protocol.proof_matches(self.secret, "client", challenge, hello.get("proof"))
        ):
            logger.warning(
                "relay node=%s refused a connection from %s: wrong secret or not a hello",
                self.node_id,
                writer.get_extra_info("peername"),
            )
            refusal = {"code": "unauthorized", "message": "Wrong relay secret."}
            writer.write(protocol.encode({"ok": False, "error": refusal}))
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            return False
        writer.write(
            protocol.encode({"ok": True, "proof": protocol.proof(self.secret, "server", theirs)})
        )
        await writer.drain()
        return True

    async def stop(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        with contextlib.suppress(Exception):
            await self.directory.withdraw(self.node_id)
        if self._tcp is not None:
            self._tcp.close()
        await self.relay.close()
        await self.directory.close()


async def run(node: RelayNode) -> None:
    await node.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"relay node {node.node_id} ready on {node.advertise}", flush=True)
    await stop.wait()
    await node.stop()
