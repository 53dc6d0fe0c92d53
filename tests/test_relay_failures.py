"""A relay failing during admit, end or leave: the change stands, all are told, media recovers.

The app runs over real sockets with the in-process relay behind a wrapper that
raises `MediaError` for the calls a test chooses (issue 11, "Failures never
half-apply"). The stored change is announced all the same; the room's media is
rebuilt as after a relay failover (`media_restart`), and media flows after.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from media.errors import MediaError
from media.relay import Relay
from media.relay_service import SubscriberListener
from signalling.app import HUB, make_app
from signalling.config import Settings
from tests.conftest import LiveServer
from tests.support.polling import eventually
from tests.support.synthetic import SyntheticParticipant


class FailingRelay:
    """A real in-process relay whose chosen calls raise `MediaError` (`fail_next`)."""

    def __init__(self) -> None:
        self.inner = Relay()
        self._failures: dict[str, int] = {}
        self.failed: list[str] = []

    def fail_next(self, call: str, times: int = 1) -> None:
        self._failures[call] = self._failures.get(call, 0) + times

    def _maybe_fail(self, call: str) -> None:
        if self._failures.get(call, 0) > 0:
            self._failures[call] -= 1
            self.failed.append(call)
            raise MediaError("media_failed", "The relay is unavailable.")

    async def join(
        self,
        room_id: str,
        participant_id: str,
        listener: SubscriberListener,
        info: Mapping[str, str] | None = None,
    ) -> None:
        self._maybe_fail("join")
        await self.inner.join(room_id, participant_id, listener, info)

    async def publish(self, room_id: str, participant_id: str, offer_sdp: object) -> str:
        self._maybe_fail("publish")
        return await self.inner.publish(room_id, participant_id, offer_sdp)

    async def prepare(self, room_id: str, participant_id: str, offer_sdp: object) -> str:
        self._maybe_fail("prepare")
        return await self.inner.prepare(room_id, participant_id, offer_sdp)

    async def publish_prepared(self, room_id: str, participant_id: str) -> None:
        self._maybe_fail("publish_prepared")
        await self.inner.publish_prepared(room_id, participant_id)

    async def answer(
        self, room_id: str, participant_id: str, subscription_id: object, answer_sdp: object
    ) -> None:
        self._maybe_fail("answer")
        await self.inner.answer(room_id, participant_id, subscription_id, answer_sdp)

    async def request_keyframe(
        self, room_id: str, participant_id: str, subscription_id: object
    ) -> None:
        self._maybe_fail("request_keyframe")
        await self.inner.request_keyframe(room_id, participant_id, subscription_id)

    async def leave(self, room_id: str, participant_id: str) -> None:
        self._maybe_fail("leave")
        await self.inner.leave(room_id, participant_id)

    async def close_room(self, room_id: str) -> None:
        self._maybe_fail("close_room")
        await self.inner.close_room(room_id)

    async def echo(self, room_id: str, offer_sdp: object) -> str:
        self._maybe_fail("echo")
        return await self.inner.echo(room_id, offer_sdp)

    async def close(self) -> None:
        await self.inner.close()


@pytest.fixture
def relay() -> FailingRelay:
    return FailingRelay()


@pytest.fixture
async def live_server(
    aiohttp_server: Callable[..., Awaitable[TestServer]], settings: Settings, relay: FailingRelay
) -> LiveServer:
    """Overrides conftest's: the app's relay fails on demand."""
    server = await aiohttp_server(make_app(settings, relay=relay), host="127.0.0.1")
    return LiveServer(server)


class Person(SyntheticParticipant):
    """A synthetic participant that also counts `media_restart` and `e2ee_peer_left`."""

    def __init__(self, base_url: str, link: str, label: str) -> None:
        super().__init__(base_url, link, label)
        self.media_restarts = 0
        self.peers_left: list[str] = []
        self.sio.on("media_restart", self._on_media_restart)
        self.sio.on("e2ee_peer_left", self._on_peer_left)

    async def _on_media_restart(self, data: Any) -> None:
        self.media_restarts += 1

    async def _on_peer_left(self, data: dict[str, Any]) -> None:
        self.peers_left.append(str(data.get("from")))

    def frames_from(self, role: str) -> int:
        return sum(
            r.video_frames + r.audio_frames
            for r in self.receptions.values()
            if r.publisher.get("role") == role
        )


@pytest.fixture
async def people(live_server: LiveServer) -> AsyncIterator[Callable[[str, str], Person]]:
    made: list[Person] = []

    def person(link: str, label: str) -> Person:
        made.append(Person(live_server.base_url, link, label))
        return made[-1]

    yield person
    for someone in made:
        await someone.close()


async def in_waiting_room(
    live_server: LiveServer, people: Callable[[str, str], Person]
) -> tuple[Person, Person, str]:
    booked = await live_server.book()
    practitioner = people(booked["links"]["practitioner"], "practitioner")
    patient = people(booked["links"]["patient"], "patient")
    await practitioner.connect()
    await practitioner.open_consultation()
    await patient.connect()
    await patient.check_in()
    [entry] = await practitioner.wait_for_waiting(1)
    return practitioner, patient, str(entry["entry_id"])


def no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    logged = [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    assert not logged, [r.getMessage() for r in logged]


async def media_flows_both_ways(practitioner: Person, patient: Person) -> None:
    await practitioner.publish()
    await patient.publish()
    await eventually(lambda: patient.frames_from("practitioner") > 0, timeout=20)
    await eventually(lambda: practitioner.frames_from("patient") > 0, timeout=20)


@pytest.mark.parametrize("failures", [1, 2], ids=["once", "again-while-recovering"])
async def test_an_admitted_patient_is_told_when_the_relay_fails_and_the_call_recovers(
    live_server: LiveServer,
    relay: FailingRelay,
    people: Callable[[str, str], Person],
    caplog: pytest.LogCaptureFixture,
    failures: int,
) -> None:
    caplog.set_level(logging.INFO)
    practitioner, patient, entry_id = await in_waiting_room(live_server, people)
    relay.fail_next("join", failures)

    await practitioner.admit(entry_id)  # ok: the admission is stored, and stands

    await asyncio.wait_for(patient.admitted.wait(), 10)
    # The relay room is rebuilt from the store, and those in the call restart their media.
    await eventually(lambda: patient.media_restarts == 1 and practitioner.media_restarts == 1)
    assert relay.failed == ["join"] * failures
    assert live_server.app[HUB].media_recovery.recovered == 1
    await media_flows_both_ways(practitioner, patient)
    no_traceback(caplog)


async def test_an_ended_rooms_patient_is_told_when_the_relay_fails(
    live_server: LiveServer,
    relay: FailingRelay,
    people: Callable[[str, str], Person],
    caplog: pytest.LogCaptureFixture,
) -> None:
    practitioner, patient, entry_id = await in_waiting_room(live_server, people)
    await practitioner.admit(entry_id)
    await asyncio.wait_for(patient.admitted.wait(), 10)
    await media_flows_both_ways(practitioner, patient)
    relay.fail_next("close_room")

    await practitioner.call("end_consultation")

    await asyncio.wait_for(patient.ended.wait(), 10)
    await asyncio.wait_for(practitioner.ended.wait(), 10)
    # The relay room is closed on the retry: nothing of the call is forwarded any more.
    await eventually(
        lambda: (
            relay.inner.stats()
            == {"rooms": 0, "publications": 0, "subscriptions": 0, "prepared": 0}
        )
    )
    assert relay.failed == ["close_room"]
    no_traceback(caplog)


@pytest.mark.parametrize("how", ["leave", "disconnect"])
async def test_a_leave_with_a_failing_relay_still_tells_the_others(
    live_server: LiveServer,
    relay: FailingRelay,
    people: Callable[[str, str], Person],
    caplog: pytest.LogCaptureFixture,
    how: str,
) -> None:
    practitioner, patient, entry_id = await in_waiting_room(live_server, people)
    await practitioner.admit(entry_id)
    await asyncio.wait_for(patient.admitted.wait(), 10)
    await media_flows_both_ways(practitioner, patient)
    relay.fail_next("leave")

    if how == "leave":
        await patient.call("leave")
    else:
        await patient.sio.disconnect()  # the handler marks them away: a leave for the relay

    # Those in the call rotate their keys, and the relay forwards nothing to the leaver.
    await eventually(lambda: practitioner.peers_left == [entry_id])
    assert relay.failed == ["leave"]
    await eventually(lambda: practitioner.media_restarts == 1)
    assert relay.inner.stats() == {"rooms": 1, "publications": 0, "subscriptions": 0, "prepared": 0}
    # The practitioner's media works on the rebuilt relay room.
    before = live_server.app[HUB].media_recovery.recovered
    assert before == 1
    await practitioner.publish()
    await eventually(lambda: relay.inner.stats()["publications"] == 1)
    no_traceback(caplog)
