"""A relay worker process: one `Relay` on uvloop, driven over `media.worker_protocol`.

    python -m media.worker --socket /run/teleconsult/relay-0.sock [--mode rtp]

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
from collections.abc import Mapping
from typing import Any

import uvloop

from media import worker_protocol as protocol
from media.relay import RELAY_MODES, IceServerConfig, MediaError, Relay

logger = logging.getLogger(__name__)


class ConnectionListener:
    """Turns relay callbacks for one participant into protocol events."""

    def __init__(self, send: Any, room_id: str, participant_id: str) -> None:
        self._send = send
        self._room_id = room_id
        self._participant_id = participant_id

    async def subscription_offer(
        self, subscription_id: str, publisher_id: str, publisher_info: Mapping[str, str], sdp: str
    ) -> None:
        await self._send(
            {
                "event": "subscription_offer",
                "room_id": self._room_id,
                "participant_id": self._participant_id,
                "subscription_id": subscription_id,
                "publisher_id": publisher_id,
                "publisher_info": dict(publisher_info),
                "sdp": sdp,
            }
        )

    async def subscription_closed(self, subscription_id: str) -> None:
        await self._send(
            {
                "event": "subscription_closed",
                "room_id": self._room_id,
                "participant_id": self._participant_id,
                "subscription_id": subscription_id,
            }
        )


class WorkerServer:
    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self._tasks: set[asyncio.Task[None]] = set()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        lock = asyncio.Lock()
        rooms: set[str] = set()

        async def send(message: dict[str, Any]) -> None:
            if writer.is_closing():
                return
            async with lock:
                # The peer may go at any time; the relay's own work must not fail with it.
                with contextlib.suppress(ConnectionError, RuntimeError):
                    writer.write(protocol.encode(message))
                    await writer.drain()

        try:
            while line := await reader.readline():
                message = protocol.decode(line)
                if message.get("op") == "join":
                    rooms.add(str((message.get("args") or {}).get("room_id")))
                # Requests run concurrently: a slow ICE setup must not hold up another room.
                task = asyncio.ensure_future(self._answer(message, send))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        except (ConnectionError, ValueError) as exc:
            logger.warning("relay worker connection ended: %s", type(exc).__name__)
        finally:
            writer.close()
            # Whoever placed these rooms here is gone: nobody can signal them any more.
            for room_id in rooms:
                await self.relay.close_room(room_id)

    async def _answer(self, message: dict[str, Any], send: Any) -> None:
        request_id = message.get("id")
        try:
            result = await self._dispatch(str(message.get("op")), message.get("args") or {}, send)
            response: dict[str, Any] = {"id": request_id, "ok": True, "result": result}
        except MediaError as exc:
            response = {"id": request_id, "ok": False, "error": _error(exc.code, exc.message)}
        except Exception:
            logger.exception("relay worker request %s failed", message.get("op"))
            response = {"id": request_id, "ok": False, "error": _error("media_failed", "Failed.")}
        await send(response)

    async def _dispatch(self, op: str, args: dict[str, Any], send: Any) -> Any:
        relay = self.relay
        if op == "join":
            room_id, participant_id = str(args["room_id"]), str(args["participant_id"])
            listener = ConnectionListener(send, room_id, participant_id)
            await relay.join(room_id, participant_id, listener, args.get("info") or {})
            return None
        if op == "publish":
            return await relay.publish(args["room_id"], args["participant_id"], args.get("sdp"))
        if op == "answer":
            await relay.answer(
                args["room_id"],
                args["participant_id"],
                args.get("subscription_id"),
                args.get("sdp"),
            )
            return None
        if op == "leave":
            await relay.leave(args["room_id"], args["participant_id"])
            return None
        if op == "close_room":
            await relay.close_room(args["room_id"])
            return None
        if op == "stats":
            return relay.stats()
        if op == "forwarding_stats":
            return relay.forwarding_stats()
        if op == "reset_latency":
            relay.latency.reset()
            return None
        raise MediaError("invalid_request", f"Unknown operation {op!r}.")


def _error(code: str, message: str) -> dict[str, str]:
    return {"code": code, "message": message}


async def run(socket_path: str, mode: str, ice_servers: tuple[IceServerConfig, ...]) -> None:
    relay = Relay(ice_servers, mode=mode)  # type: ignore[arg-type]
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m media.worker")
    parser.add_argument("--socket", required=True)
    parser.add_argument("--mode", choices=RELAY_MODES, default="rtp")
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
    uvloop.run(run(args.socket, args.mode, ice_servers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
