"""A relay worker process: one `Relay` on uvloop, driven over `media.worker_protocol`.

    python -m media.worker --socket /run/teleconsult/relay-0.sock

Like mediasoup's workers, one per core: each room lives on one worker, so a
worker never shares packets with another. The parent (signalling, or the
benchmark) starts workers and is the only peer on the socket.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping

import uvloop

from media import worker_protocol as protocol
from media.forwarding_mode import ForwardingMode
from media.relay import Relay
from media.relay_service import IceServerConfig
from media.worker_server import WorkerServer

logger = logging.getLogger(__name__)


ModeFactory = Callable[[], ForwardingMode]


async def run(
    socket_path: str, ice_servers: tuple[IceServerConfig, ...], mode: ModeFactory | None = None
) -> None:
    relay = Relay(ice_servers, forwarding=None if mode is None else mode())
    server = WorkerServer(relay)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(socket_path)
    unix = await asyncio.start_unix_server(server.serve, path=socket_path, limit=protocol.MAX_LINE)
    os.chmod(socket_path, 0o600)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # The parent waits for this line before connecting.
    print("ready", flush=True)
    await stop.wait()
    unix.close()
    await relay.close()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(socket_path)


def main(
    argv: list[str] | None = None,
    *,
    modes: Mapping[str, ModeFactory] | None = None,
    prog: str = "python -m media.worker",
) -> int:
    """The worker's command line; `modes` adds `--mode` (the benchmark's worker, `bench.worker`)."""
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--socket", required=True)
    if modes:
        parser.add_argument("--mode", choices=list(modes), default=next(iter(modes)))
    parser.add_argument(
        "--ice-servers", default="[]", help="JSON list of {urls, username, credential}"
    )
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    # aiortc and aioice log peer IP addresses below WARNING: personal data.
    for noisy in ("aiortc", "aioice"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    ice_servers = tuple(
        IceServerConfig(tuple(s["urls"]), s.get("username"), s.get("credential"))
        for s in json.loads(args.ice_servers)
    )
    mode = modes[args.mode] if modes else None
    uvloop.run(run(args.socket, ice_servers, mode))
    return 0


if __name__ == "__main__":
    sys.exit(main())
