"""Over Socket.IO: a patient who reloads or loses the network comes back to their place."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
import socketio

from signalling.app import HUB, SETTINGS
from tests.conftest import LiveServer
from tests.support.polling import eventually, stays_true
from tests.support.synthetic import SignallingError, SyntheticParticipant


class Device(SyntheticParticipant):
    """A participant that presents the resume secret its page would have kept."""

    def __init__(self, server: LiveServer, link: str, label: str, resume: str | None = None):
        super().__init__(server.base_url, link, label)
        self.resume = resume
        self.events: dict[str, list[Any]] = {}
        for event in ("replaced", "e2ee_peer_left"):
            self.sio.on(event, lambda data, event=event: self._record(event, data))

    def _record(self, event: str, data: Any) -> None:
        self.events.setdefault(event, []).append(data)

    async def _on_waiting(self, data: dict[str, Any]) -> None:
        self._record("waiting", data)
        await super()._on_waiting(data)

    async def _on_subscription_closed(self, data: dict[str, Any]) -> None:
        self._record("subscription_closed", data)
        await super()._on_subscription_closed(data)

    async def connect(self, timeout: float = 10.0) -> dict[str, Any]:
        auth = {"token": self.token, "room_id": self.room_id}
        if self.resume is not None:
            auth["resume"] = self.resume
        await self.sio.connect(
            self.base_url, auth=auth, transports=["websocket"], wait_timeout=timeout
        )
        return await asyncio.wait_for(self.session, timeout)

    async def secret(self) -> str:
        value: str = (await self.session)["resume"]
        return value

    def last_place(self) -> dict[str, Any] | None:
        places = self.events.get("waiting") or []
        return places[-1] if places else None


async def device(server: LiveServer, link: str, label: str, resume: str | None = None) -> Device:
    participant = Device(server, link, label, resume)
    await participant.connect()
    return participant


def away_flags(doctor: SyntheticParticipant) -> list[tuple[str, bool]]:
    return [(e["entry_id"], e["away_since"] is not None) for e in doctor.waiting_list]


async def test_a_reload_within_the_grace_keeps_the_place_across_rooms(
    live_server: LiveServer,
) -> None:
    first = await live_server.book(starts_in=timedelta(minutes=5))
    second = await live_server.book(starts_in=timedelta(minutes=12), patient_name="Bruno Petit")
    doctor = await device(live_server, first["links"]["practitioner"], "doctor")
    alice = await device(live_server, first["links"]["patient"], "alice")
    bruno = await device(live_server, second["links"]["patient"], "bruno")
    again: Device | None = None
    try:
        assert (await doctor.session).get("resume") is None  # Practitioners do not resume.
        await doctor.open_consultation()
        assert await alice.check_in() == 1
        assert await bruno.check_in() == 2
        [entry] = await doctor.wait_for_waiting(1)
        secret = await alice.secret()

        await alice.sio.disconnect()  # A reload: the page goes, the tab keeps the secret.
        await eventually(lambda: away_flags(doctor) == [(entry["entry_id"], True)])
        assert bruno.position == 2  # Nobody moved up.

        again = await device(live_server, first["links"]["patient"], "alice again", secret)
        session = await again.session
        assert session["resumed"] == "waiting"
        assert "resume" not in session  # The page keeps the secret it has.
        await eventually(lambda: again.last_place() is not None)
        assert again.last_place()["position"] == 1  # type: ignore[index]
        await eventually(lambda: away_flags(doctor) == [(entry["entry_id"], False)])
        # The same entry: admitting it reaches the new connection.
        await doctor.admit(entry["entry_id"])
        await asyncio.wait_for(again.admitted.wait(), 10)
        await eventually(lambda: bruno.position == 1)
    finally:
        for participant in (again, alice, bruno, doctor):
            if participant is not None:
                await participant.close()


async def test_after_the_grace_the_place_is_gone(live_server: LiveServer) -> None:
    first = await live_server.book(starts_in=timedelta(minutes=5))
    second = await live_server.book(starts_in=timedelta(minutes=12))
    hub = live_server.app[HUB]
    assert hub.away_grace == live_server.app[SETTINGS].resume_grace == timedelta(minutes=2)
    doctor = await device(live_server, first["links"]["practitioner"], "doctor")
    alice = await device(live_server, first["links"]["patient"], "alice")
    bruno = await device(live_server, second["links"]["patient"], "bruno")
    again: Device | None = None
    try:
        await doctor.open_consultation()
        await alice.check_in()
        await bruno.check_in()
        await doctor.wait_for_waiting(1)
        secret = await alice.secret()
        await alice.sio.disconnect()
        await eventually(lambda: bool(away_flags(doctor)) and away_flags(doctor)[0][1])

        await hub.sweep(timedelta(hours=24))
        assert len(doctor.waiting_list) == 1  # Still within the two minutes.
        real = hub.clock
        hub.clock = lambda: real() + hub.away_grace + timedelta(seconds=1)  # Two minutes on.
        await hub.sweep(timedelta(hours=24))

        await eventually(lambda: doctor.waiting_list == [])
        await eventually(lambda: bruno.position == 1)
        again = await device(live_server, first["links"]["patient"], "alice again", secret)
        session = await again.session
        assert session["resumed"] is None
        assert session["resume"] != secret  # A fresh start, with a fresh secret.
        assert await again.check_in() == 1  # Checks in anew, before Bruno's later slot.
    finally:
        for participant in (again, alice, bruno, doctor):
            if participant is not None:
                await participant.close()


async def test_a_wrong_secret_still_takes_the_persons_entry_and_a_malformed_one_is_refused(
    live_server: LiveServer,
) -> None:
    room = await live_server.book()
    doctor = await device(live_server, room["links"]["practitioner"], "doctor")
    alice = await device(live_server, room["links"]["patient"], "alice")
    other: Device | None = None
    try:
        await doctor.open_consultation()
        await alice.check_in()
        [entry] = await doctor.wait_for_waiting(1)
        old_secret = await alice.secret()
        await alice.sio.disconnect()
        await eventually(lambda: away_flags(doctor) == [(entry["entry_id"], True)])

        # The link is the pass for one person: whatever the secret, their one entry is taken over.
        other = await device(live_server, room["links"]["patient"], "guessing", "x" * 43)
        session = await other.session
        assert session["resumed"] == "waiting"
        assert session["resume"] not in (old_secret, "x" * 43)  # The entry's secret is new.
        assert await other.check_in() == 1  # Again: the same place, nothing new.
        await eventually(lambda: away_flags(doctor) == [(entry["entry_id"], False)])

        for bad in ("short", "x" * 43 + "!", 42):
            refused = Device(live_server, room["links"]["patient"], "bad", bad)  # type: ignore[arg-type]
            with pytest.raises(socketio.exceptions.ConnectionError):
                await refused.connect(timeout=5)
            assert refused.connect_error is not None
            assert refused.connect_error["code"] == "invalid_request"
        assert len(doctor.waiting_list) == 1
    finally:
        for participant in (other, alice, doctor):
            if participant is not None:
                await participant.close()


async def test_a_new_connection_takes_over_from_one_not_yet_seen_to_drop(
    live_server: LiveServer,
) -> None:
    room = await live_server.book()
    doctor = await device(live_server, room["links"]["practitioner"], "doctor")
    old = await device(live_server, room["links"]["patient"], "old")
    new: Device | None = None
    try:
        await doctor.open_consultation()
        await old.check_in()
        [entry] = await doctor.wait_for_waiting(1)

        new = await device(live_server, room["links"]["patient"], "new", await old.secret())
        assert (await new.session)["resumed"] == "waiting"
        await eventually(lambda: old.events.get("replaced") == [{}])
        await eventually(lambda: not old.sio.connected)
        # Its disconnect is handled after this: it must not mark the patient away.
        await stays_true(
            lambda: away_flags(doctor) == [(entry["entry_id"], False)], for_seconds=0.3
        )
        await doctor.admit(entry["entry_id"])
        await asyncio.wait_for(new.admitted.wait(), 10)
        assert not old.admitted.is_set()
    finally:
        for participant in (new, old, doctor):
            if participant is not None:
                await participant.close()


async def test_an_admitted_patient_comes_back_into_the_call(live_server: LiveServer) -> None:
    room = await live_server.book()
    doctor = await device(live_server, room["links"]["practitioner"], "doctor")
    alice = await device(live_server, room["links"]["patient"], "alice")
    again: Device | None = None
    try:
        await doctor.open_consultation()
        await alice.check_in()
        [entry] = await doctor.wait_for_waiting(1)
        await doctor.admit(entry["entry_id"])
        await asyncio.wait_for(alice.admitted.wait(), 10)
        await alice.publish()
        await eventually(lambda: any(r.video_frames > 5 for r in doctor.receptions.values()))
        secret = await alice.secret()

        await alice.close()  # The network goes; the server sees the connection drop.
        await eventually(
            lambda: doctor.events.get("e2ee_peer_left") == [{"from": entry["entry_id"]}]
        )
        await eventually(lambda: len(doctor.events.get("subscription_closed") or []) == 1)
        assert doctor.waiting_list == []  # Still in the call, not waiting.

        again = await device(live_server, room["links"]["patient"], "alice again", secret)
        assert (await again.session)["resumed"] == "in_call"
        await again.publish()  # Allowed: they are in the call again.
        [closed] = doctor.events["subscription_closed"]

        def fresh_frames() -> int:
            return sum(
                reception.video_frames
                for subscription, reception in doctor.receptions.items()
                if subscription != closed["subscription_id"]
            )

        # A new subscription to the same entry, and the doctor sees them again.
        await eventually(lambda: fresh_frames() > 5, timeout=20)
        assert len(doctor.receptions) == 2
        assert {r.publisher["entry_id"] for r in doctor.receptions.values()} == {entry["entry_id"]}
        # Leaving for good still takes them out at once.
        await again.call("leave")
        with pytest.raises(SignallingError) as refused:
            await again.call("publish", {"sdp": "v=0", "type": "offer"})
        assert refused.value.code == "not_in_call"
    finally:
        for participant in (again, alice, doctor):
            if participant is not None:
                await participant.close()
