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
