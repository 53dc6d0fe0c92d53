"""The pre-call connection test over real sockets: an echo through the relay, before check-in."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription

from media.echo_test import EchoPeers
from signalling.app import HUB
from tests.conftest import LiveServer
from tests.support.polling import eventually
from tests.support.synthetic import SignallingError, SyntheticParticipant

TIMEOUT = 15.0


@pytest.fixture
async def patient(live_server: LiveServer) -> AsyncIterator[SyntheticParticipant]:
    booked = await live_server.book()
    person = SyntheticParticipant(live_server.base_url, booked["links"]["patient"], "patient")
    await person.connect()
    yield person
    await person.close()


def offered(sdp: str) -> dict[str, Any]:
    return {"sdp": sdp, "type": "offer"}


async def probe_offer(pc: RTCPeerConnection) -> str:
    await pc.setLocalDescription(await pc.createOffer())
    return str(pc.localDescription.sdp)


async def test_a_patient_who_has_not_checked_in_gets_an_echo_through_the_relay(
    live_server: LiveServer, patient: SyntheticParticipant
) -> None:
    pc = RTCPeerConnection()
    channel = pc.createDataChannel("probe", ordered=False, maxRetransmits=0)
    opened = asyncio.Event()
    echoed: asyncio.Queue[str] = asyncio.Queue()
    channel.on("open", opened.set)
    channel.on("message", echoed.put_nowait)
    try:
        ack = await patient.call("connection_test", offered(await probe_offer(pc)))
        assert ack["answer"]["type"] == "answer"
        assert ack["seconds"] > 0
        await pc.setRemoteDescription(RTCSessionDescription(ack["answer"]["sdp"], "answer"))
        await asyncio.wait_for(opened.wait(), TIMEOUT)
        channel.send("probe 1")
        assert await asyncio.wait_for(echoed.get(), TIMEOUT) == "probe 1"

        # One at a time per connection: a second one while the echo lives is refused.
        other = RTCPeerConnection()
        other.createDataChannel("probe")
        with pytest.raises(SignallingError) as refused:
            await patient.call(
                "connection_test", {"sdp": await probe_offer(other), "type": "offer"}
            )
        await other.close()
        assert refused.value.code == "rate_limited"
    finally:
        await pc.close()
    # Nothing of the room changed: the patient is not waiting, the relay holds no room.
    room = await live_server.app[HUB].room(patient.room_id)
    assert room is not None
    assert room.waiting.entries == ()
    assert room.in_call == ()
    relay = live_server.app[HUB].relay
    assert relay.stats()["rooms"] == 0  # type: ignore[attr-defined]


async def test_a_connection_test_carries_no_media_and_a_bad_offer_changes_nothing(
    patient: SyntheticParticipant,
) -> None:
    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="sendonly")
    try:
        payloads: list[Any] = [offered(await probe_offer(pc)), {"type": "offer"}, []]
        for payload in payloads:  # a video offer, no offer, not an object
            with pytest.raises(SignallingError) as refused:
                await patient.call("connection_test", payload)
            assert refused.value.code == "invalid_request"
    finally:
        await pc.close()


async def test_an_echo_peer_closes_by_itself() -> None:
    echoes = EchoPeers(lifetime=0.2)
    pc = RTCPeerConnection()
    pc.createDataChannel("probe")
    try:
        await echoes.open(await probe_offer(pc))
        assert len(echoes) == 1
        await eventually(lambda: len(echoes) == 0, timeout=5)
    finally:
        await pc.close()
        await echoes.close()
