"""One event to many connections of this node, encoded once and queued without a task each.

python-socketio's `emit` to a list of rooms encodes the packet once but
queues each copy through a task of its own (tens of microseconds apiece): a
message to 2,000 waiting patients spent most of its time there. On one node
the copies go straight onto each Engine.IO socket's queue (its writer task
sends them); with a pub/sub manager (several nodes) the ordinary `emit` is
kept, since other nodes hold some of the recipients.
"""

from __future__ import annotations

import socketio
from socketio import packet
from socketio.async_pubsub_manager import AsyncPubSubManager


async def broadcast(
    sio: socketio.AsyncServer, event: str, payload: object, channels: list[str]
) -> None:
    """`event` with `payload` to every connection in `channels` (default namespace)."""
    if not channels:
        return
    manager = sio.manager
    if isinstance(manager, AsyncPubSubManager):
        await sio.emit(event, payload, room=channels)
        return
    encoded = sio.packet_class(packet.EVENT, namespace="/", data=[event, payload]).encode()
    for _, eio_sid in list(manager.get_participants("/", channels)):
        # Unbounded queues: a put never waits, so nothing runs in between.
        await sio.eio.send(eio_sid, encoded)
