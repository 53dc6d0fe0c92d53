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
import ctypes
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping

import uvloop

from logs import line_format
from media import worker_protocol as protocol
from media.forwarding_mode import ForwardingMode
from media.relay import Relay
from media.relay_service import IceServerConfig
from media.worker_server import WorkerServer

logger = logging.getLogger(__name__)


ModeFactory = Callable[[], ForwardingMode]
PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """A worker ends with the process that started it, even one killed by SIGKILL (Linux).

    SIGTERM, so that the worker still stops cleanly. `parent` 0: not watched.
    """
    if not parent:
        return
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        sys.exit(0)  # The parent died before the request took effect.


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
    parser.add_argument("--parent", type=int, default=0, help="end with this process (pid)")
    args = parser.parse_args(argv)
    die_with_parent(args.parent)
    line_format.configure_child(args.log_level, os.environ)
    ice_servers = tuple(
        IceServerConfig(tuple(s["urls"]), s.get("username"), s.get("credential"))
        for s in json.loads(args.ice_servers)
    )
    mode = modes[args.mode] if modes else None
    uvloop.run(run(args.socket, ice_servers, mode))
    return 0


if __name__ == "__main__":
    sys.exit(main())
