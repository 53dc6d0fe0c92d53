"""The relay end of `media.worker_protocol`: requests in, relay calls, events out.

Served on a worker's Unix socket (`media.worker`) and on a relay node's
authenticated TCP connections (`media.relay_node_server`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from media import worker_protocol as protocol
from media.errors import MediaError
from media.relay import Relay
from media.relay_metrics import relay_snapshot

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
    """Serves `media.worker_protocol` on any stream: a worker's Unix socket, a relay node's TCP.

    Several signalling connections may share a room (relay nodes): each
    participant belongs to the connection that joined it, and when a
    connection ends only its participants leave; the others keep their call.
    """

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self._tasks: set[asyncio.Task[None]] = set()
        # (room id, participant id) -> the connection that joined it.
        self._owners: dict[tuple[str, str], object] = {}

    @property
    def participants(self) -> int:
        return len(self._owners)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        lock = asyncio.Lock()
        connection = object()

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
                # Requests run concurrently: a slow ICE setup must not hold up another room.
                task = asyncio.ensure_future(self._answer(message, send, connection))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        except (ConnectionError, ValueError) as exc:
            logger.warning("relay connection ended: %s", type(exc).__name__)
        finally:
            writer.close()
            # Whoever joined these participants is gone: nobody can signal them any more.
            # Participants joined by other connections keep their call.
            for key in [k for k, owner in self._owners.items() if owner is connection]:
                self._owners.pop(key, None)
                await self.relay.leave(*key)

    async def _answer(self, message: dict[str, Any], send: Any, connection: object) -> None:
        request_id = message.get("id")
        try:
            args = message.get("args") or {}
            if not isinstance(args, dict):
                raise MediaError("invalid_request", "args must be an object.")
            result = await self._dispatch(str(message.get("op")), args, send, connection)
            response: dict[str, Any] = {"id": request_id, "ok": True, "result": result}
        except MediaError as exc:
            response = {"id": request_id, "ok": False, "error": _error(exc.code, exc.message)}
        except KeyError as exc:
            problem = _error("invalid_request", f"Missing argument {exc.args[0]!r}.")
            response = {"id": request_id, "ok": False, "error": problem}
        except Exception:
            logger.exception("relay worker request %s failed", message.get("op"))
            response = {"id": request_id, "ok": False, "error": _error("media_failed", "Failed.")}
        await send(response)

    async def _dispatch(self, op: str, args: dict[str, Any], send: Any, connection: object) -> Any:
        relay = self.relay
        if op == "join":
            room_id, participant_id = str(args["room_id"]), str(args["participant_id"])
            listener = ConnectionListener(send, room_id, participant_id)
            # The first joiner keeps it: its listener is the one the relay calls.
            key = (room_id, participant_id)
            owned = self._owners.setdefault(key, connection) is connection
            try:
                await relay.join(room_id, participant_id, listener, args.get("info") or {})
            except Exception:
                if owned:
                    self._owners.pop(key, None)
                raise
            return None
        if op == "publish":
            return await relay.publish(args["room_id"], args["participant_id"], args.get("sdp"))
        if op == "prepare":
            return await relay.prepare(args["room_id"], args["participant_id"], args.get("sdp"))
        if op == "publish_prepared":
            await relay.publish_prepared(args["room_id"], args["participant_id"])
            return None
        if op == "answer":
            await relay.answer(
                args["room_id"],
                args["participant_id"],
                args.get("subscription_id"),
                args.get("sdp"),
            )
            return None
        if op == "keyframe":
            await relay.request_keyframe(
                args["room_id"], args["participant_id"], args.get("subscription_id")
            )
            return None
        if op == "leave":
            self._owners.pop((str(args["room_id"]), str(args["participant_id"])), None)
            await relay.leave(args["room_id"], args["participant_id"])
            return None
        if op == "close_room":
            room_id = str(args["room_id"])
            for key in [k for k in self._owners if k[0] == room_id]:
                self._owners.pop(key, None)
            await relay.close_room(room_id)
            return None
        if op == "stats":
            return relay.stats()
        if op == "forwarding_stats":
            return relay.forwarding_stats()
        if op == "metrics":
            return relay_snapshot(relay)
        if op == "echo":
            return await relay.echo("", args.get("sdp"))
        if op == "reset_latency":
            relay.latency.reset()
            return None
        raise MediaError("invalid_request", f"Unknown operation {op!r}.")


def _error(code: str, message: str) -> dict[str, str]:
    return {"code": code, "message": message}
