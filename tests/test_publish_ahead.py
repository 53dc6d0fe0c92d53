"""A waiting patient's publish connection is made ahead, and carries nothing until admitted.

`prepare_publish` (docs/protocol.md): ICE and DTLS come up while the patient
waits, so admission does not wait for them; the relay forwards nothing of it
and offers nobody a subscription until the admitted patient says
`publish {prepared: true}`. Real sockets, real aiortc peers, the in-process relay.
"""

from __future__ import annotations

from typing import Any

import pytest
from aiortc import RTCPeerConnection

from media.errors import MediaError
from media.relay import MAX_PREPARED_PER_ROOM, Relay
from signalling.app import HUB
from tests.conftest import LiveServer
from tests.support.polling import eventually, stays_true
from tests.support.synthetic import SignallingError, SyntheticParticipant


async def connected(server: LiveServer, link: str, label: str) -> SyntheticParticipant:
    participant = SyntheticParticipant(server.base_url, link, label)
    await participant.connect()
    return participant


async def refusal(participant: SyntheticParticipant, event: str, data: Any) -> str:
    with pytest.raises(SignallingError) as refused:
        await participant.call(event, data)
    return refused.value.code


def prepared_on(server: LiveServer) -> int:
    relay: Any = server.app[HUB].relay
    count: int = relay.stats()["prepared"]
    return count


async def test_the_connection_made_ahead_carries_nothing_until_the_patient_is_admitted(
    live_server: LiveServer,
) -> None:
    room = await live_server.book()
    practitioner = await connected(live_server, room["links"]["practitioner"], "practitioner")
    patient = await connected(live_server, room["links"]["patient"], "patient")
    try:
        await practitioner.open_consultation()
        await practitioner.publish()
        await patient.check_in()
        pc = await patient.prepare()
        await eventually(lambda: pc.connectionState == "connected", timeout=10)
        assert prepared_on(live_server) == 1
        # Up, and still nothing of it reaches the practitioner, nor of the call the patient.
        await stays_true(
            lambda: practitioner.receptions == {} and patient.receptions == {},
            for_seconds=0.5,
            what="nothing forwarded while waiting",
        )
        assert await refusal(patient, "publish", {"prepared": True}) == "not_in_call"

        entries = await practitioner.wait_for_waiting(1)
        await practitioner.admit(entries[0]["entry_id"])
        await patient.admitted.wait()
        await patient.publish_prepared()
        assert prepared_on(live_server) == 0

        # The same connection, now published: the practitioner sees the patient's picture.
        def practitioner_sees_the_patient() -> None:
            assert len(practitioner.receptions) == 1
            reception = next(iter(practitioner.receptions.values()))
            assert reception.pattern_frames >= 5
            assert reception.audio_frames >= 10

        await eventually(practitioner_sees_the_patient, timeout=20)
        # Published once: a second `prepared` has nothing to publish.
        assert await refusal(patient, "publish", {"prepared": True}) == "not_prepared"
    finally:
        await patient.close()
        await practitioner.close()


async def test_only_someone_waiting_makes_one_and_bad_requests_change_nothing(
    live_server: LiveServer,
) -> None:
    room = await live_server.book()
    practitioner = await connected(live_server, room["links"]["practitioner"], "practitioner")
    patient = await connected(live_server, room["links"]["patient"], "patient")
    offer = {"sdp": "v=0", "type": "offer"}
    try:
        await practitioner.open_consultation()
        # The practitioner is in the call, the patient not yet checked in.
        assert await refusal(practitioner, "prepare_publish", offer) == "not_waiting"
        assert await refusal(patient, "prepare_publish", offer) == "not_waiting"
        await patient.check_in()
        bad: Any
        for bad in ({}, {"sdp": 3, "type": "offer"}, {"sdp": "v=0", "type": "answer"}, "x"):
            assert await refusal(patient, "prepare_publish", bad) == "invalid_request", bad
        assert await refusal(patient, "prepare_publish", offer) == "media_failed"
        for bad in ({}, {"prepared": False}, {"prepared": True, "sdp": "v=0", "type": "offer"}):
            assert await refusal(practitioner, "publish", bad) == "invalid_request", bad
        # In the call without a connection made ahead: the page sends an offer instead.
        assert await refusal(practitioner, "publish", {"prepared": True}) == "not_prepared"
        assert prepared_on(live_server) == 0
        await practitioner.publish()  # Still publishes normally.
    finally:
        await patient.close()
        await practitioner.close()


@pytest.mark.parametrize("how", ["leaves", "is_declined", "disconnects"])
async def test_the_connection_made_ahead_closes_with_the_wait(
    live_server: LiveServer, how: str
) -> None:
    room = await live_server.book()
    practitioner = await connected(live_server, room["links"]["practitioner"], "practitioner")
    patient = await connected(live_server, room["links"]["patient"], "patient")
    try:
        await practitioner.open_consultation()
        await patient.check_in()
        await patient.prepare()
        assert prepared_on(live_server) == 1
        if how == "leaves":
            await patient.call("leave")
        elif how == "is_declined":
            entries = await practitioner.wait_for_waiting(1)
            await practitioner.deny(entries[0]["entry_id"])
        else:
            await patient.close()
        await eventually(lambda: prepared_on(live_server) == 0, timeout=10)
    finally:
        await patient.close()
        await practitioner.close()


async def test_a_room_makes_only_so_many_ahead() -> None:
    """Each holds a connection on the relay for someone who may wait long."""
    relay = Relay()
    pcs: list[RTCPeerConnection] = []
    try:
        for index in range(MAX_PREPARED_PER_ROOM + 1):
            pc = RTCPeerConnection()
            pcs.append(pc)
            pc.addTransceiver("video", direction="sendonly")
            await pc.setLocalDescription(await pc.createOffer())
            call = relay.prepare("room-1", f"waiting-{index}", pc.localDescription.sdp)
            if index < MAX_PREPARED_PER_ROOM:
                assert (await call).startswith("v=0")
            else:
                with pytest.raises(MediaError) as refused:
                    await call
                assert refused.value.code == "media_busy"
        assert relay.stats()["prepared"] == MAX_PREPARED_PER_ROOM
        # Preparing again replaces one's own, within the limit.
        await relay.prepare("room-1", "waiting-0", pcs[0].localDescription.sdp)
        assert relay.stats()["prepared"] == MAX_PREPARED_PER_ROOM
        await relay.close_room("room-1")
        assert relay.stats() == {"rooms": 0, "publications": 0, "subscriptions": 0, "prepared": 0}
    finally:
        for pc in pcs:
            await pc.close()
        await relay.close()


SENDING = """
async () => {
  const out = [];
  for (const pc of window.__testPeerConnections || []) {
    // The publish connection: the only one whose senders have tracks.
    if (!pc.getSenders().some((s) => s.track) || pc.connectionState === "closed") continue;
    const stats = await pc.getStats();
    let bytes = 0;
    stats.forEach((s) => {
      if (s.type === "outbound-rtp") bytes += s.bytesSent || 0;
    });
    out.push({ state: pc.connectionState, bytes });
  }
  return out;
}
"""


@pytest.mark.browser
@pytest.mark.timeout(120)
async def test_chromium_connects_ahead_sending_nothing_and_admission_publishes_it(
    live_server: LiveServer,
) -> None:
    from tests.support.browser import chromium
    from tests.support.webrtc_stats import COLLECT_CONNECTIONS, received
    from tests.test_e2e_browser import expect_state, practitioner_in_call_patient_waiting

    room = await live_server.book()
    relay: Any = live_server.app[HUB].relay
    async with chromium() as browser:
        doctor, patient = await practitioner_in_call_patient_waiting(
            browser, live_server, room, COLLECT_CONNECTIONS
        )

        async def connected_ahead() -> None:
            assert relay.stats()["prepared"] == 1
            publishing = await patient.evaluate(SENDING)
            assert [p["state"] for p in publishing] == ["connected"], publishing

        await eventually(connected_ahead, timeout=20)
        # Up for a while, and not one media byte sent while waiting.
        await patient.wait_for_timeout(1000)
        assert [p["bytes"] for p in await patient.evaluate(SENDING)] == [0]
        assert relay.stats()["publications"] == 1  # The practitioner's only.

        await doctor.get_by_test_id("waiting-entry").get_by_test_id("admit").click()
        await expect_state(patient, "in-call")

        async def practitioner_sees_video() -> None:
            assert (await received(doctor))["videoFrames"] >= 10

        await eventually(practitioner_sees_video, timeout=20)
        assert relay.stats()["prepared"] == 0
        assert relay.stats()["publications"] == 2
        timeline = await patient.evaluate("window.teleconsultMetrics.timeline")
        # The same connection, made before admission: no second publish offer.
        assert timeline["publish_connected_ahead_answered"] < timeline["admitted"], timeline
        publishing = await patient.evaluate(SENDING)
        assert len(publishing) == 1, publishing
        assert publishing[0]["bytes"] > 0


@pytest.mark.browser
@pytest.mark.timeout(120)
async def test_chromium_publishes_an_offer_when_the_relay_lost_its_connection_made_ahead(
    live_server: LiveServer,
) -> None:
    """The relay restarted, say: `publish {prepared: true}` is refused with
    `not_prepared` and the page publishes a fresh offer instead."""
    from tests.support.browser import chromium
    from tests.support.webrtc_stats import COLLECT_CONNECTIONS, received
    from tests.test_e2e_browser import expect_state, practitioner_in_call_patient_waiting

    room = await live_server.book()
    relay: Any = live_server.app[HUB].relay
    async with chromium() as browser:
        doctor, patient = await practitioner_in_call_patient_waiting(
            browser, live_server, room, COLLECT_CONNECTIONS
        )
        await eventually(lambda: relay.stats()["prepared"] == 1, timeout=20)
        # The relay forgets it, and the page does not know.
        room_id = next(iter(relay._rooms))
        entry_id = next(iter(relay._rooms[room_id].prepared))
        await relay.leave(room_id, entry_id)
        assert relay.stats()["prepared"] == 0

        await doctor.get_by_test_id("waiting-entry").get_by_test_id("admit").click()
        await expect_state(patient, "in-call")

        async def practitioner_sees_video() -> None:
            assert (await received(doctor))["videoFrames"] >= 10

        await eventually(practitioner_sees_video, timeout=20)
        assert relay.stats()["publications"] == 2
        publishing = await patient.evaluate(SENDING)
        assert len(publishing) == 1, publishing  # The one made ahead was closed.
        assert publishing[0]["bytes"] > 0
        await expect_state(patient, "in-call")
        assert await patient.get_by_test_id("call-notice").is_hidden()
