"""Sending to a subscriber whose socket is gone: nothing counted as sent, no warning per packet."""

from __future__ import annotations

import asyncio
import logging
import os
import socket

import pytest
from pylibsrtp import Policy, Session

from media.srtp_path import SrtpEgress

KEY = os.urandom(30)
PAYLOAD = b"payload" * 20


async def _egress_on_udp() -> tuple[SrtpEgress, asyncio.DatagramTransport, socket.socket]:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.setblocking(False)
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
    )
    egress = SrtpEgress(lambda: None)
    session = Session(policy=Policy(key=KEY, ssrc_type=Policy.SSRC_ANY_OUTBOUND))
    egress.attach(session, transport.sendto, receiver.getsockname(), transport)
    return egress, transport, receiver


def _send(egress: SrtpEgress, seq: int) -> bool:
    # A new sequence number each time: libsrtp refuses to protect one twice.
    packet = bytes([0x80, 96]) + seq.to_bytes(2, "big") + bytes(8) + PAYLOAD
    assert egress.buffer is not None
    egress.write(packet, len(packet))
    return egress.send(len(packet))


async def test_packets_to_a_live_socket_are_counted() -> None:
    egress, transport, receiver = await _egress_on_udp()
    try:
        assert all(_send(egress, seq) for seq in range(5))
        assert egress.sent == 5
    finally:
        transport.close()
        receiver.close()


async def test_a_closed_socket_stops_the_egress_quietly(caplog: pytest.LogCaptureFixture) -> None:
    egress, transport, receiver = await _egress_on_udp()
    assert _send(egress, 0)
    transport.close()
    caplog.set_level(logging.DEBUG)
    try:
        results = [egress.buffer is not None and _send(egress, seq) for seq in range(1, 51)]
        assert not any(results)
        assert egress.sent == 1
        assert egress.closed
        # asyncio warns "socket.send() raised exception." for each send to a closed transport.
        assert not [r for r in caplog.records if "socket.send()" in r.getMessage()]
    finally:
        receiver.close()


class _Connection:
    """What aioice's Connection is to a socket: where non-STUN datagrams go."""

    def __init__(self) -> None:
        self.datagrams: list[tuple[bytes, int]] = []

        self.requests = 0

    def data_received(self, data: bytes, component: int) -> None:
        self.datagrams.append((data, component))

    def request_received(self, *args: object) -> None:
        self.requests += 1


async def test_feedback_datagrams_skip_aioices_stun_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    from aioice import ice, stun
    from aioice.candidate import Candidate

    from media.srtp_path import bypass_stun_parse

    connection = _Connection()
    protocol = ice.StunProtocol(connection)  # type: ignore[arg-type]
    protocol.local_candidate = Candidate(
        foundation="1",
        component=1,
        transport="udp",
        priority=1,
        host="127.0.0.1",
        port=5000,
        type="host",
    )
    parsed: list[bytes] = []
    real_parse = stun.parse_message

    def counting_parse(data: bytes, *args: object, **kwargs: object) -> stun.Message:
        parsed.append(data)
        return real_parse(data, *args, **kwargs)

    monkeypatch.setattr(stun, "parse_message", counting_parse)
    assert bypass_stun_parse(connection, protocol)

    srtcp = bytes([0x81, 201]) + bytes(30)  # a receiver report (RFC 7983: 128-191)
    dtls = bytes([22, 0xFE, 0xFD]) + bytes(20)  # a DTLS handshake record (20-63)
    for datagram in (srtcp, dtls):
        protocol.datagram_received(datagram, ("127.0.0.1", 6000))
    assert connection.datagrams == [(srtcp, 1), (dtls, 1)]
    assert parsed == []

    # A STUN binding request still goes to aioice's parser.
    request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    protocol.datagram_received(bytes(request), ("127.0.0.1", 6000))
    assert len(parsed) == 1
    assert connection.requests == 1
