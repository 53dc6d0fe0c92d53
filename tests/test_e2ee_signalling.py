"""The server's side of end-to-end encryption: it forwards opaque key messages
to in-call participants only, refuses malformed ones, and never logs or
stores them (docs/e2ee.md, docs/protocol.md)."""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from signalling.app import HUB, SOCKETS, make_app
from signalling.config import ConfigError, settings_from_env
from tests.conftest import LiveServer
from tests.support import WEBHOOK_SECRET, make_settings
from tests.support.polling import eventually, stays_true
from tests.support.synthetic import SignallingError, SyntheticParticipant

QUIET = 0.2  # s: how long "nothing arrives" is watched for, after a round trip.


def public_key() -> str:
    # Shape of an uncompressed P-256 point; the server cannot and must not check more.
    return base64.b64encode(b"\x04" + secrets.token_bytes(64)).decode()


def wrapped() -> str:
    return base64.b64encode(secrets.token_bytes(64)).decode()


@dataclass
class Person:
    client: SyntheticParticipant
    received: list[tuple[str, Any]] = field(default_factory=list)
    entry_id: str = ""

    async def next(self, event: str, timeout: float = 5.0) -> Any:
        """The first `event` received and not yet taken (taking it)."""
        taken: list[Any] = []

        def take() -> bool:
            for name, data in self.received:
                if name == event:
                    self.received.remove((name, data))
                    taken.append(data)
                    return True
            return False

        await eventually(take, timeout=timeout, what=f"{self.client.label} received {event}")
        return taken[0]

    def e2ee_events(self) -> list[tuple[str, Any]]:
        return [(name, data) for name, data in self.received if name.startswith("e2ee_")]


async def person(server: LiveServer, link: str, label: str) -> Person:
    client = SyntheticParticipant(server.base_url, link, label)
    someone = Person(client)
    client.sio.on("*", lambda event, data: someone.received.append((event, data)))
    await client.connect()
    return someone


@dataclass
class Call:
    doctor: Person
    patient: Person
    intruder: Person


@pytest.fixture
async def call(live_server: LiveServer) -> AsyncIterator[Call]:
    """The practitioner and an admitted patient in the call; someone else (a guest) waiting."""
    room = await live_server.book()
    doctor = await person(live_server, room["links"]["practitioner"], "doctor")
    patient = await person(live_server, room["links"]["patient"], "patient")
    # Not a second device of the patient's: that one would take the patient's place over.
    invited = await doctor.client.call("invite_guest", {"name": "Someone else"})
    intruder = await person(live_server, invited["link"], "intruder")
    try:
        await doctor.client.open_consultation()
        await patient.client.check_in()
        entries = await doctor.client.wait_for_waiting(1)
        patient.entry_id = entries[0]["entry_id"]
        await doctor.client.admit(patient.entry_id)
        await asyncio.wait_for(patient.client.admitted.wait(), 5)
        await intruder.client.check_in()
        intruder.entry_id = (await doctor.client.wait_for_waiting(1))[0]["entry_id"]
        # The doctor's entry id, as the patient learns it.
        await doctor.client.call("e2ee_hello", {"public_key": public_key()})
        doctor.entry_id = (await patient.next("e2ee_hello"))["from"]
        yield Call(doctor, patient, intruder)
    finally:
        for someone in (intruder, patient, doctor):
            await someone.client.close()


async def no_e2ee_message_reaches(*people: Person) -> None:
    """Nothing was forwarded to `people`: checked after a round trip on each one's connection.

    The server forwards before it acknowledges, and a connection delivers in order: a
    message forwarded by what the test just did arrives before this round trip's answer
    (a refused, harmless `e2ee_hello`). The short watch after it covers anything later.
    """
    for someone in people:
        await someone.client.sio.call("e2ee_hello", None, timeout=10)

    def none_arrived() -> None:
        for someone in people:
            assert someone.e2ee_events() == [], someone.client.label

    await stays_true(none_arrived, for_seconds=QUIET)


async def refused(someone: Person, event: str, data: Any) -> str:
    with pytest.raises(SignallingError) as refusal:
        await someone.client.call(event, data)
    return refusal.value.code


async def test_hello_reaches_the_others_in_the_call_and_no_waiting_patient(call: Call) -> None:
    key = public_key()
    await call.patient.client.call("e2ee_hello", {"public_key": key})
    assert await call.doctor.next("e2ee_hello") == {
        "from": call.patient.entry_id,
        "public_key": key,
    }
    # A reply addressed to one participant.
    await call.doctor.client.call("e2ee_hello", {"public_key": key, "to": call.patient.entry_id})
    assert await call.patient.next("e2ee_hello") == {
        "from": call.doctor.entry_id,
        "public_key": key,
    }
    # The patient: not its own hello back.
    await no_e2ee_message_reaches(call.intruder, call.patient)


async def test_a_wrapped_key_reaches_exactly_its_recipient(call: Call) -> None:
    key, blob = public_key(), wrapped()
    await call.doctor.client.call(
        "e2ee_key", {"to": call.patient.entry_id, "public_key": key, "wrapped": blob}
    )
    assert await call.patient.next("e2ee_key") == {
        "from": call.doctor.entry_id,
        "public_key": key,
        "wrapped": blob,
    }
    await no_e2ee_message_reaches(call.intruder, call.doctor)


async def test_waiting_patients_can_neither_send_nor_be_sent_keys(call: Call) -> None:
    intruder, doctor = call.intruder, call.doctor
    assert await refused(intruder, "e2ee_hello", {"public_key": public_key()}) == "not_in_call"
    assert (
        await refused(
            intruder,
            "e2ee_key",
            {"to": doctor.entry_id, "public_key": public_key(), "wrapped": wrapped()},
        )
        == "not_in_call"
    )
    for event, data in [
        ("e2ee_key", {"to": intruder.entry_id, "public_key": public_key(), "wrapped": wrapped()}),
        ("e2ee_hello", {"to": intruder.entry_id, "public_key": public_key()}),
        ("e2ee_key", {"to": doctor.entry_id, "public_key": public_key(), "wrapped": wrapped()}),
    ]:
        assert await refused(doctor, event, data) == "not_in_call", (event, data)
    await no_e2ee_message_reaches(intruder, doctor)


INVALID = "invalid_request"


@pytest.mark.parametrize(
    ("event", "data", "code"),
    [
        ("e2ee_hello", None, INVALID),
        ("e2ee_hello", "text", INVALID),
        ("e2ee_hello", {}, INVALID),
        ("e2ee_hello", {"public_key": 42}, INVALID),
        ("e2ee_hello", {"public_key": "not base64!"}, INVALID),
        ("e2ee_hello", {"public_key": base64.b64encode(b"\x04" + b"k" * 32).decode()}, INVALID),
        ("e2ee_hello", {"public_key": base64.b64encode(b"\x02" + b"k" * 64).decode()}, INVALID),
        ("e2ee_hello", {"public_key": "PK", "extra": 1}, INVALID),
        ("e2ee_hello", {"public_key": "PK", "to": "../../etc"}, INVALID),
        ("e2ee_hello", {"public_key": "PK", "to": "nobody-here"}, "not_in_call"),
        ("e2ee_key", {"to": "PATIENT", "public_key": "PK"}, INVALID),
        ("e2ee_key", {"to": "PATIENT", "public_key": "PK", "wrapped": ""}, INVALID),
        ("e2ee_key", {"to": "PATIENT", "public_key": "PK", "wrapped": "***"}, INVALID),
        ("e2ee_key", {"to": "PATIENT", "public_key": "PK", "wrapped": "A" * 2000}, INVALID),
        ("e2ee_key", {"to": "PATIENT", "public_key": "PK", "wrapped": ["x"]}, INVALID),
        ("e2ee_key", {"to": "PATIENT", "public_key": "bad", "wrapped": "BLOB"}, INVALID),
        ("e2ee_key", {"to": 7, "public_key": "PK", "wrapped": "BLOB"}, INVALID),
        ("e2ee_key", {"public_key": "PK", "wrapped": "BLOB"}, INVALID),
        ("e2ee_key", {"to": "DOCTOR", "public_key": "PK", "wrapped": "BLOB"}, "not_in_call"),
    ],
)
async def test_malformed_messages_are_refused_and_not_forwarded(
    call: Call, event: str, data: Any, code: str
) -> None:
    placeholders = {
        "PK": public_key(),
        "BLOB": wrapped(),
        "PATIENT": call.patient.entry_id,
        "DOCTOR": call.doctor.entry_id,
    }
    if isinstance(data, dict):
        data = {k: placeholders.get(v, v) if isinstance(v, str) else v for k, v in data.items()}
    # The raw client: the helper would turn None into {}.
    ack = await call.doctor.client.sio.call(event, data, timeout=10)
    assert ack["ok"] is False
    assert ack["error"]["code"] == code
    assert ack["error"]["message"]
    await no_e2ee_message_reaches(call.patient, call.intruder)


async def test_leaving_the_call_is_announced_for_key_rotation(call: Call) -> None:
    await call.patient.client.call("leave")
    assert await call.doctor.next("e2ee_peer_left") == {"from": call.patient.entry_id}
    # A waiting patient leaving changes no key.
    await call.intruder.client.call("leave")
    await no_e2ee_message_reaches(call.doctor)


async def test_a_disconnection_is_announced_too(call: Call) -> None:
    await call.patient.client.sio.disconnect()
    assert await call.doctor.next("e2ee_peer_left") == {"from": call.patient.entry_id}


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


async def test_no_key_material_in_logs_or_store(
    live_server: LiveServer, debug_logs: pytest.LogCaptureFixture, call: Call
) -> None:
    """Everything logged at DEBUG, from the first connection to a participant leaving."""
    caplog = debug_logs
    sent: list[str] = []
    for _ in range(3):
        key, blob = public_key(), wrapped()
        sent += [key, blob]
        await call.patient.client.call("e2ee_hello", {"public_key": key})
        await call.doctor.client.call(
            "e2ee_key", {"to": call.patient.entry_id, "public_key": key, "wrapped": blob}
        )
        await call.patient.next("e2ee_key")
        # Refused ones too: an error must not echo what it refused.
        for bad in ({"public_key": key, "wrapped": blob}, {"public_key": key + "=="}):
            ack = await call.intruder.client.sio.call("e2ee_key", bad, timeout=10)
            assert ack["ok"] is False
            assert key not in repr(ack)
            assert blob not in repr(ack)
    await call.patient.client.call("leave")
    await call.doctor.next("e2ee_peer_left")

    hub = live_server.app[HUB]
    stored = repr(await hub.rooms()) + repr(live_server.app[SOCKETS].sessions)
    records = caplog.get_records("setup") + caplog.get_records("call")
    logged = "\n".join(f"{r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in records)
    assert "socket connected" in logged  # The capture works: the server did log.
    for secret in sent:
        for text in (secret, base64.b64decode(secret).hex()):
            assert text not in logged
            assert text not in stored


def test_e2ee_is_required_unless_turned_off() -> None:
    env = {"TELECONSULT_TOKEN_SECRET": "t" * 48, "TELECONSULT_WEBHOOK_SECRET": WEBHOOK_SECRET}
    assert settings_from_env(env).e2ee == "required"
    assert settings_from_env({**env, "TELECONSULT_E2EE": "off"}).e2ee == "off"
    with pytest.raises(ConfigError, match="TELECONSULT_E2EE"):
        settings_from_env({**env, "TELECONSULT_E2EE": "optional"})


@pytest.mark.parametrize("mode", ["required", "off"])
async def test_session_tells_the_browser_the_mode(aiohttp_server: Any, mode: str) -> None:
    server = LiveServer(await aiohttp_server(make_app(make_settings(e2ee=mode)), host="127.0.0.1"))
    room = await server.book()
    patient = SyntheticParticipant(server.base_url, room["links"]["patient"], "patient")
    try:
        session = await patient.connect()
        assert session["e2ee"] == mode
    finally:
        await patient.close()


def test_key_announcements_are_rate_limited_per_participant() -> None:
    from signalling.socket_limits import ROOM_LIMITS, SIGNALLING

    # Key messages are signalling: limited per connection and per link (tests/test_rate_limits.py).
    assert ROOM_LIMITS["e2ee_hello"] is SIGNALLING
    assert ROOM_LIMITS["e2ee_key"] is SIGNALLING
