"""The screens of `teleconsult bench signalling`: python-socketio clients that count what they get.

A patient's socket and a practitioner's delta desk (docs/protocol.md), each
noting when it heard what the bench waits for; every Socket.IO packet they
receive is counted by event, with its size, as what the server sent to screens.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import socketio


@dataclass
class Received:
    """What the screens were sent, counted as they receive it (Socket.IO packets)."""

    messages: dict[str, int] = field(default_factory=dict)
    bytes: dict[str, int] = field(default_factory=dict)
    delta_sizes: list[int] = field(default_factory=list)

    def count(self, data: str) -> None:
        event = _event_name(data)
        self.messages[event] = self.messages.get(event, 0) + 1
        self.bytes[event] = self.bytes.get(event, 0) + len(data.encode())
        if event == "desk_delta":
            self.delta_sizes.append(len(data.encode()))

    def reset(self) -> None:
        self.messages.clear()
        self.bytes.clear()
        self.delta_sizes.clear()


def _event_name(data: str) -> str:
    # Socket.IO packets: `2/desk,["desk_delta",{...}]` or `2["waiting",{...}]` (events),
    # `3...` (acks); the Engine.IO `4` is already stripped.
    if data.startswith("3"):
        return "ack"
    start = data.find('["')
    end = data.find('"', start + 2)
    return data[start + 2 : end] if data.startswith("2") and start >= 0 and end > 0 else "other"


class CountingClient(socketio.AsyncClient):  # type: ignore[misc]
    """A python-socketio client that counts every packet it receives."""

    def __init__(self, received: Received, **kwargs: Any) -> None:
        # A loaded machine can take seconds over a handshake: that is not a lost screen.
        super().__init__(reconnection=False, request_timeout=30, **kwargs)
        self._received = received

    async def _handle_eio_message(self, data: Any) -> None:
        if isinstance(data, str):
            self._received.count(data)
        await super()._handle_eio_message(data)


@dataclass
class Patient:
    room_id: str
    practitioner: int
    link: str
    client: CountingClient | None = None
    sent_at: float | None = None
    message_at: float | None = None


@dataclass
class DeskScreen:
    practitioner: int
    link: str
    client: CountingClient | None = None
    heard: dict[str, float] = field(default_factory=dict)  # room id -> when heard waiting
    ready: asyncio.Event = field(default_factory=asyncio.Event)


async def open_desk(
    base: str, desk: DeskScreen, received: Received, http: aiohttp.ClientSession
) -> None:
    client = desk.client = CountingClient(received, http_session=http)

    def heard_rows(rows: list[dict[str, Any]]) -> None:
        at = time.monotonic()
        for row in rows:
            if row.get("state") == "waiting" and row["room_id"] not in desk.heard:
                desk.heard[row["room_id"]] = at

    async def on_desk(document: dict[str, Any]) -> None:
        heard_rows(document["rows"])
        desk.ready.set()

    async def on_delta(delta: dict[str, Any]) -> None:
        heard_rows(delta["rows"])

    client.on("desk", on_desk, namespace="/desk")
    client.on("desk_delta", on_delta, namespace="/desk")
    token = desk.link.split("#", 1)[1]
    await client.connect(
        base,
        namespaces=["/desk"],
        auth={"token": token, "delta": True},
        transports=["websocket"],
        wait_timeout=30,
    )
    await asyncio.wait_for(desk.ready.wait(), 30)


async def open_patient(
    base: str, patient: Patient, received: Received, http: aiohttp.ClientSession
) -> None:
    client = patient.client = CountingClient(received, http_session=http)
    session = asyncio.Event()

    async def on_session(_: Any) -> None:
        session.set()

    async def on_message(_: Any) -> None:
        if patient.message_at is None:
            patient.message_at = time.monotonic()

    client.on("session", on_session)
    client.on("practitioner_message", on_message)
    path, token = patient.link.split("#", 1)
    await client.connect(
        base,
        auth={"token": token, "room_id": path.rsplit("/", 1)[1]},
        transports=["websocket"],
        wait_timeout=30,
    )
    await asyncio.wait_for(session.wait(), 30)


async def quiet(received: Received, seconds: float = 0.5) -> None:
    """Until nothing more arrives for `seconds` (the last coalesced pushes are in)."""
    last = -1
    while (total := sum(received.messages.values())) != last:
        last = total
        await asyncio.sleep(seconds)
