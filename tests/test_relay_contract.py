"""One contract, three relays: in this process, in worker processes, on a relay node.

The same behavioural checks run over `Relay`, `WorkerRelay` (a real worker
process) and `NodeRelay` (a real `teleconsult relay` node on a real Redis),
with real aiortc peers answering the relay's offers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription

from media.errors import MediaError
from media.relay import Relay
from media.relay_node_client import NodeRelay
from media.relay_service import RelayService
from media.worker_relay import WorkerRelay
from store.redis_relay_directory import RedisRelayDirectory
from tests.support.multinode_cluster import RELAY_SECRET, Cluster

EVENT_TIMEOUT = 15.0


@pytest.fixture(params=["in_process", "worker_processes", "relay_node"])
async def relay(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RelayService]:
    if request.param == "in_process":
        in_process = Relay()
        yield in_process
        await in_process.close()
    elif request.param == "worker_processes":
        workers = WorkerRelay(1)
        await workers.start()
        try:
            yield workers
        finally:
            await workers.close()
    else:
        redis_url = request.getfixturevalue("redis_url")
        cluster = Cluster(redis_url, tmp_path)
        try:
            await cluster.start_relay()
            nodes = NodeRelay(RedisRelayDirectory.from_url(redis_url), RELAY_SECRET)
            await nodes.start()
            try:
                yield nodes
            finally:
                await nodes.close()
        finally:
            await cluster.stop()


class Participant:
    """A listener that answers every subscription offer with a real aiortc peer."""

    def __init__(self, relay: RelayService, room_id: str, participant_id: str) -> None:
        self.relay = relay
        self.room_id = room_id
        self.participant_id = participant_id
        self.offers: asyncio.Queue[tuple[str, str, dict[str, str], str]] = asyncio.Queue()
        self.closed: asyncio.Queue[str] = asyncio.Queue()
        self.pcs: list[RTCPeerConnection] = []

    async def subscription_offer(
        self, subscription_id: str, publisher_id: str, publisher_info: Mapping[str, str], sdp: str
    ) -> None:
        await self.offers.put((subscription_id, publisher_id, dict(publisher_info), sdp))

    async def subscription_closed(self, subscription_id: str) -> None:
        await self.closed.put(subscription_id)

    async def join(self, info: Mapping[str, str] | None = None) -> None:
        await self.relay.join(self.room_id, self.participant_id, self, info)

    async def publish(self) -> str:
        pc = RTCPeerConnection()
        self.pcs.append(pc)
        for kind in ("audio", "video"):
            pc.addTransceiver(kind, direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        answer = await self.relay.publish(
            self.room_id, self.participant_id, pc.localDescription.sdp
        )
        await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        return answer

    async def next_offer(self) -> tuple[str, str, dict[str, str], str]:
        return await asyncio.wait_for(self.offers.get(), EVENT_TIMEOUT)

    async def accept(self, subscription_id: str, sdp: str) -> str:
        pc = RTCPeerConnection()
        self.pcs.append(pc)
        await pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        answer: str = pc.localDescription.sdp
        await self.relay.answer(self.room_id, self.participant_id, subscription_id, answer)
        return answer

    async def close(self) -> None:
        for pc in self.pcs:
            await pc.close()


@pytest.fixture
async def people(relay: RelayService) -> AsyncIterator[Any]:
    made: list[Participant] = []

    def person(room_id: str, participant_id: str) -> Participant:
        participant = Participant(relay, room_id, participant_id)
        made.append(participant)
        return participant

    yield person
    for participant in made:
        await participant.close()


async def refused(code: str, call: Any) -> None:
    with pytest.raises(MediaError) as error:
        await call
    assert error.value.code == code


async def test_only_participants_in_the_call_can_publish(relay: RelayService) -> None:
    await refused("not_in_call", relay.publish("room-never-joined", "alice", "v=0"))


async def test_bad_descriptions_keep_their_codes(relay: RelayService, people: Any) -> None:
    alice = people("room-1", "alice")
    await alice.join()
    await refused("invalid_request", relay.publish("room-1", "alice", None))
    await refused("invalid_request", relay.publish("room-1", "alice", "v=0" * 20_000))
    await refused("media_failed", relay.publish("room-1", "alice", "not an sdp"))
    await refused("unknown_subscription", relay.answer("room-1", "alice", "nope", "v=0"))
    await refused("unknown_subscription", relay.answer("room-elsewhere", "alice", "nope", "v=0"))


async def test_a_publication_reaches_every_member_until_its_publisher_leaves(
    relay: RelayService, people: Any
) -> None:
    alice, bob = people("room-1", "alice"), people("room-1", "bob")
    await alice.join({"role": "practitioner"})
    await bob.join({"role": "patient"})
    answer = await alice.publish()
    assert answer.startswith("v=0")

    subscription_id, publisher, info, offer = await bob.next_offer()
    assert (publisher, info) == ("alice", {"role": "practitioner"})
    assert "m=audio" in offer
    assert "m=video" in offer
    # Only the subscriber it was made for may answer it, and only once.
    await refused("unknown_subscription", relay.answer("room-1", "alice", subscription_id, "v=0"))
    sdp = await bob.accept(subscription_id, offer)
    await refused("invalid_request", relay.answer("room-1", "bob", subscription_id, sdp))

    # Publishing again (a page restarting its camera) keeps the subscription: events
    # for it would come before the publish answer, on the same connection.
    await alice.publish()
    assert bob.offers.empty()
    assert bob.closed.empty()

    # A latecomer is offered what is already published, at once.
    carol = people("room-1", "carol")
    await carol.join()
    assert (await carol.next_offer())[1] == "alice"

    await relay.leave("room-1", "alice")
    assert await asyncio.wait_for(bob.closed.get(), EVENT_TIMEOUT) == subscription_id
    assert alice.offers.empty()


async def test_a_key_frame_is_asked_for_by_the_subscriber_only(
    relay: RelayService, people: Any
) -> None:
    alice, bob = people("room-1", "alice"), people("room-1", "bob")
    await alice.join()
    await bob.join()
    await alice.publish()
    subscription_id, _, _, offer = await bob.next_offer()
    await bob.accept(subscription_id, offer)

    await relay.request_keyframe("room-1", "bob", subscription_id)
    await refused(
        "unknown_subscription", relay.request_keyframe("room-1", "alice", subscription_id)
    )
    await refused("unknown_subscription", relay.request_keyframe("room-1", "bob", "nope"))
    await refused("unknown_subscription", relay.request_keyframe("room-1", "bob", None))
    await refused(
        "unknown_subscription", relay.request_keyframe("elsewhere", "bob", subscription_id)
    )


async def test_leaving_and_closing_are_quiet_and_final(relay: RelayService, people: Any) -> None:
    await relay.leave("room-unknown", "nobody")
    await relay.close_room("room-unknown")
    alice = people("room-1", "alice")
    await alice.join()
    await relay.leave("room-1", "alice")
    await relay.leave("room-1", "alice")
    await alice.join()
    await relay.close_room("room-1")
    await refused("not_in_call", relay.publish("room-1", "alice", "v=0"))


async def test_a_connection_test_is_echoed_and_touches_no_room(relay: RelayService) -> None:
    pc = RTCPeerConnection()
    channel = pc.createDataChannel("probe", ordered=False, maxRetransmits=0)
    echoed: asyncio.Queue[str] = asyncio.Queue()
    opened = asyncio.Event()
    channel.on("open", opened.set)
    channel.on("message", echoed.put_nowait)
    try:
        await pc.setLocalDescription(await pc.createOffer())
        answer = await relay.echo("room-probe", pc.localDescription.sdp)
        await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        await asyncio.wait_for(opened.wait(), EVENT_TIMEOUT)
        for n in range(3):
            channel.send(f"probe {n}")
        got = [await asyncio.wait_for(echoed.get(), EVENT_TIMEOUT) for _ in range(3)]
        assert sorted(got) == ["probe 0", "probe 1", "probe 2"]
        # Nothing of a call: nobody can publish in the room the test was placed by.
        await refused("not_in_call", relay.publish("room-probe", "anyone", "v=0"))
    finally:
        await pc.close()


async def test_a_connection_test_offers_a_data_channel_only(relay: RelayService) -> None:
    pc = RTCPeerConnection()
    pc.addTransceiver("audio", direction="sendonly")
    try:
        await pc.setLocalDescription(await pc.createOffer())
        await refused("invalid_request", relay.echo("room-probe", pc.localDescription.sdp))
        await refused("invalid_request", relay.echo("room-probe", None))
    finally:
        await pc.close()


class Waiting(Participant):
    """Someone still waiting whose publish connection is made ahead (`prepare`)."""

    async def prepare(self) -> RTCPeerConnection:
        pc = RTCPeerConnection()
        self.pcs.append(pc)
        for kind in ("audio", "video"):
            pc.addTransceiver(kind, direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        answer = await self.relay.prepare(
            self.room_id, self.participant_id, pc.localDescription.sdp
        )
        await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        return pc


async def test_a_connection_made_ahead_reaches_nobody_until_it_is_published(
    relay: RelayService, people: Any
) -> None:
    alice = people("room-1", "alice")
    await alice.join({"role": "practitioner"})
    bob = Waiting(relay, "room-1", "bob")
    try:
        pc = await bob.prepare()
        await asyncio.wait_for(connected(pc), EVENT_TIMEOUT)
        # Still waiting: no subscription to anyone, and bob cannot publish it.
        await asyncio.sleep(0.3)
        assert alice.offers.empty()
        await refused("not_in_call", relay.publish_prepared("room-1", "bob"))

        # Admitted: published at once, the others offered it while bob's page confirms.
        await bob.join({"role": "patient"})
        subscription_id, publisher, info, offer = await alice.next_offer()
        assert (publisher, info) == ("bob", {"role": "patient"})
        assert "m=audio" in offer
        assert "m=video" in offer
        await alice.accept(subscription_id, offer)
        await relay.publish_prepared("room-1", "bob")
        # Confirmed once: there is nothing ahead any more.
        await refused("not_prepared", relay.publish_prepared("room-1", "bob"))
        await refused("not_prepared", relay.publish_prepared("room-1", "alice"))
        await relay.leave("room-1", "bob")
        assert await asyncio.wait_for(alice.closed.get(), EVENT_TIMEOUT) == subscription_id
    finally:
        await bob.close()


async def test_a_connection_made_ahead_closes_when_its_owner_leaves(
    relay: RelayService, people: Any
) -> None:
    alice = people("room-1", "alice")
    await alice.join()
    bob = Waiting(relay, "room-1", "bob")
    try:
        await refused("invalid_request", relay.prepare("room-1", "bob", None))
        await refused("media_failed", relay.prepare("room-1", "bob", "not an sdp"))
        await refused("invalid_request", relay.prepare("room-1", "alice", "v=0"))  # In the call.
        pc = await bob.prepare()
        await asyncio.wait_for(connected(pc), EVENT_TIMEOUT)
        await relay.leave("room-1", "bob")  # Left the waiting room.
        await bob.join()
        await refused("not_prepared", relay.publish_prepared("room-1", "bob"))
        assert alice.offers.empty()
    finally:
        await bob.close()


async def connected(pc: RTCPeerConnection) -> None:
    up = asyncio.Event()

    @pc.on("connectionstatechange")
    def changed() -> None:
        if pc.connectionState == "connected":
            up.set()

    changed()
    await up.wait()
