"""Two `teleconsult serve --redis-url` processes on one real Redis act as one service."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis
from aiohttp import ClientError, ClientSession

from tests.support import (
    TOKEN_SECRET,
    WEBHOOK_SECRET,
    appointment_data,
    booking_body,
    signed_headers,
)
from tests.support.polling import eventually
from tests.support.redis_server import free_port
from tests.support.synthetic import SignallingError, SyntheticParticipant

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent


class Node:
    """One signalling process; its join links point at itself."""

    def __init__(self, process: asyncio.subprocess.Process, port: int) -> None:
        self.process = process
        self.base_url = f"http://127.0.0.1:{port}"

    def local(self, link: str) -> str:
        return self.base_url + "/c/" + link.split("/c/", 1)[1]

    async def post_booking(
        self, event_type: str, data: dict[str, Any], webhook_id: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        body = booking_body(event_type, data)
        async with (
            ClientSession() as session,
            session.post(
                self.base_url + "/hooks/booking",
                data=body,
                headers=signed_headers(body, webhook_id=webhook_id),
            ) as response,
        ):
            return response.status, await response.json()


async def start_node(redis_url: str) -> Node:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELECONSULT_")}
    env.update(TELECONSULT_TOKEN_SECRET=TOKEN_SECRET, TELECONSULT_WEBHOOK_SECRET=WEBHOOK_SECRET)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "signalling.cli",
        "serve",
        "--port",
        str(port),
        "--redis-url",
        redis_url,
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    node = Node(process, port)
    async with ClientSession() as session:

        async def ready() -> bool:
            if process.returncode is not None:
                raise RuntimeError(f"node exited with {process.returncode} at start")
            try:
                async with session.get(node.base_url + "/readyz") as response:
                    return response.status == 200
            except ClientError:
                return False

        await eventually(ready, timeout=30, interval=0.1, what="the node answers /readyz")
    return node


@pytest.fixture
async def nodes(redis_url: str) -> AsyncIterator[tuple[Node, Node]]:
    one, two = await asyncio.gather(start_node(redis_url), start_node(redis_url))
    yield one, two
    for node in (one, two):
        node.process.terminate()
        await node.process.wait()


async def connected(node: Node, link: str, label: str) -> SyntheticParticipant:
    participant = SyntheticParticipant(node.base_url, node.local(link), label)
    await participant.connect()
    return participant


async def test_patient_on_one_node_is_admitted_by_a_practitioner_on_the_other(
    nodes: tuple[Node, Node],
) -> None:
    node_a, node_b = nodes
    data = appointment_data()
    status, room = await node_a.post_booking("appointment.created", data, webhook_id="msg_a1")
    assert status == 201
    # The receipt and the appointment index are shared: node B neither re-applies nor duplicates.
    status, again = await node_b.post_booking("appointment.created", data, webhook_id="msg_a1")
    assert (status, again["room_id"]) == (200, room["room_id"])
    status, again = await node_b.post_booking("appointment.created", data, webhook_id="msg_b1")
    assert (status, again["room_id"]) == (200, room["room_id"])

    practitioner = await connected(node_a, room["links"]["practitioner"], "practitioner")
    patient = await connected(node_b, room["links"]["patient"], "patient")
    try:
        await practitioner.open_consultation()
        assert await patient.check_in() == 1
        # Fanned out from node B to node A through Redis.
        entries = await practitioner.wait_for_waiting(1)
        assert [entry["name"] for entry in entries] == [data["patient"]["name"]]

        await practitioner.admit(entries[0]["entry_id"])

        # And from node A back to node B.
        await asyncio.wait_for(patient.admitted.wait(), 10)
    finally:
        await patient.close()
        await practitioner.close()


async def test_admits_of_one_patient_on_two_nodes_at_once_admit_once(
    nodes: tuple[Node, Node],
) -> None:
    node_a, node_b = nodes
    _, room = await node_a.post_booking("appointment.created", appointment_data())
    desk_a = await connected(node_a, room["links"]["practitioner"], "desk-a")
    desk_b = await connected(node_b, room["links"]["practitioner"], "desk-b")
    patient = await connected(node_b, room["links"]["patient"], "patient")
    try:
        await desk_a.open_consultation()
        # desk_b came last: it replaced desk_a (told `replaced` across nodes; a page would go).
        # One practitioner in the call, but both connections may still admit: race them.
        await patient.check_in()
        entry_id = (await desk_a.wait_for_waiting(1))[0]["entry_id"]
        await desk_b.wait_for_waiting(1)

        outcomes = await asyncio.gather(
            desk_a.admit(entry_id), desk_b.admit(entry_id), return_exceptions=True
        )

        errors = [o for o in outcomes if isinstance(o, BaseException)]
        assert len(errors) == 1, outcomes
        assert isinstance(errors[0], SignallingError)
        assert errors[0].code == "not_waiting"
        await asyncio.wait_for(patient.admitted.wait(), 10)
    finally:
        for participant in (patient, desk_b, desk_a):
            await participant.close()


async def test_socket_messages_between_nodes_are_json(
    nodes: tuple[Node, Node], redis_url: str
) -> None:
    node_a, node_b = nodes
    _, room = await node_a.post_booking("appointment.created", appointment_data())
    listener = redis.Redis.from_url(redis_url)
    pubsub = listener.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe("teleconsult:socketio")
    practitioner = await connected(node_a, room["links"]["practitioner"], "practitioner")
    patient = await connected(node_b, room["links"]["patient"], "patient")
    try:
        await practitioner.open_consultation()
        await patient.check_in()
        await practitioner.wait_for_waiting(1)
        messages: list[bytes] = []
        async with asyncio.timeout(10):
            while len(messages) < 2:
                message = await pubsub.get_message(timeout=1.0)
                if message is not None:
                    messages.append(message["data"])
    finally:
        await patient.close()
        await practitioner.close()
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await listener.aclose()
    for raw in messages:
        assert not raw.startswith(b"\x80"), "a pickled message went over Redis"
        decoded = json.loads(raw)
        assert decoded["method"] in {"emit", "enter_room", "leave_room", "disconnect"}


async def test_a_second_tab_on_another_node_takes_the_place_over(nodes: tuple[Node, Node]) -> None:
    node_a, node_b = nodes
    _, room = await node_a.post_booking("appointment.created", appointment_data())
    doctor = await connected(node_a, room["links"]["practitioner"], "doctor")
    first = await connected(node_a, room["links"]["patient"], "first tab")
    replaced: list[Any] = []
    first.sio.on("replaced", replaced.append)
    second: SyntheticParticipant | None = None
    try:
        await doctor.open_consultation()
        assert await first.check_in() == 1
        [entry] = await doctor.wait_for_waiting(1)
        second = await connected(node_b, room["links"]["patient"], "second tab")
        assert (await second.session)["resumed"] == "waiting"
        await eventually(lambda: replaced == [{}])  # Told across nodes.
        assert await second.check_in() == 1
        await doctor.admit(entry["entry_id"])
        await asyncio.wait_for(second.admitted.wait(), 10)
        # The old tab, had it stayed, gets nothing of the call.
        with pytest.raises(SignallingError) as refused:
            await first.call("publish", {"sdp": "v=0", "type": "offer"})
        assert refused.value.code == "not_in_call"
        # The practitioner's list is pushed coalesced (signalling/waiting_pushes.py).
        await eventually(lambda: [e["entry_id"] for e in doctor.waiting_list] == [])
    finally:
        for participant in (second, first, doctor):
            if participant is not None:
                await participant.close()
