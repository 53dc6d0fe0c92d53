"""A call in progress goes on while Redis is down, and nothing is lost when it returns."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from signalling.app import HUB, ROOM_STORE, make_app
from store.redis_room_store import RedisRoomStore
from tests.conftest import LiveServer
from tests.support import make_settings
from tests.support.polling import eventually
from tests.support.redis_server import RedisServer
from tests.support.synthetic import SyntheticParticipant


def video_frames(participant: SyntheticParticipant) -> int:
    return sum(reception.video_frames for reception in participant.receptions.values())


async def frames_grow(participants: list[SyntheticParticipant], timeout: float = 10) -> None:
    before = [video_frames(p) for p in participants]

    # The counts change in aiortc track callbacks, not on an event we own.
    await eventually(
        lambda: all(video_frames(p) >= b + 15 for p, b in zip(participants, before, strict=True)),
        timeout=timeout,
        what="every participant received 15 more video frames",
    )


@pytest.mark.slow
async def test_media_keeps_flowing_while_redis_is_down(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    redis_server: RedisServer,
    redis_url: str,
) -> None:
    app = make_app(make_settings(redis_url=redis_url))
    server = LiveServer(await aiohttp_server(app, host="127.0.0.1"))
    assert isinstance(app[ROOM_STORE], RedisRoomStore)
    room = await server.book()
    doctor = SyntheticParticipant(server.base_url, room["links"]["practitioner"], "doctor")
    patient = SyntheticParticipant(server.base_url, room["links"]["patient"], "patient")
    try:
        await doctor.connect()
        await doctor.open_consultation()
        await patient.connect()
        await patient.check_in()
        [entry] = await doctor.wait_for_waiting(1)
        await doctor.admit(entry["entry_id"])
        await asyncio.wait_for(patient.admitted.wait(), 10)
        await doctor.publish()
        await patient.publish()
        await frames_grow([doctor, patient], timeout=20)

        # Stalled rather than stopped: this Redis keeps nothing on disk, and a
        # partition or a stall is what an outage looks like to a node.
        redis_server.freeze()
        try:
            async with ClientSession() as session, session.get(server.base_url + "/readyz") as r:
                assert r.status == 503
            # The relay forwards on its own: no store is on the media path.
            await frames_grow([doctor, patient])
        finally:
            redis_server.thaw()

        async with ClientSession() as session, session.get(server.base_url + "/readyz") as r:
            assert r.status == 200
        stored = await app[HUB].room(room["room_id"])
        assert stored is not None
        assert {p.role.value for p in stored.in_call} == {"practitioner", "patient"}
        await frames_grow([doctor, patient])
    finally:
        await patient.close()
        await doctor.close()
