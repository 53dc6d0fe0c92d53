"""A bare TURN client that asks coturn for permissions (RFC 8656), sending nothing to peers.

aioice's TURN client allocates IPv4 relays only and creates permissions implicitly
when data is sent; the deny-list tests need an IPv6 relay (REQUESTED-ADDRESS-FAMILY,
RFC 6156) and the answer to CreatePermission itself, with no datagram ever leaving
for the peer address being tested.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass

COOKIE = 0x2112A442
ALLOCATE = 0x0003
CREATE_PERMISSION = 0x0008
SUCCESS = 0x0100
ERROR = 0x0110

USERNAME = 0x0006
MESSAGE_INTEGRITY = 0x0008
ERROR_CODE = 0x0009
XOR_PEER_ADDRESS = 0x0012
REALM = 0x0014
NONCE = 0x0015
REQUESTED_ADDRESS_FAMILY = 0x0017
REQUESTED_TRANSPORT = 0x0019

UDP = 17
FAMILY = {4: 0x01, 6: 0x02}
# An attribute's value, or how to pack it from the transaction id.
Value = bytes | Callable[[bytes], bytes]


@dataclass(frozen=True)
class Answer:
    success: bool
    error_code: int | None
    attributes: dict[int, bytes]


def _attribute(kind: int, value: bytes) -> bytes:
    padding = b"\x00" * (-len(value) % 4)
    return struct.pack("!HH", kind, len(value)) + value + padding


def _xor_address(address: str, port: int, transaction: bytes) -> bytes:
    ip = ipaddress.ip_address(address)
    raw = ip.packed
    mask = struct.pack("!I", COOKIE) + (transaction if ip.version == 6 else b"")
    xored = bytes(a ^ b for a, b in zip(raw, mask, strict=False))
    return struct.pack("!BBH", 0, FAMILY[ip.version], port ^ (COOKIE >> 16)) + xored


def _parse(data: bytes, transaction: bytes) -> Answer | None:
    if len(data) < 20 or data[8:20] != transaction:
        return None
    kind, length = struct.unpack("!HH", data[:4])
    attributes: dict[int, bytes] = {}
    offset = 20
    while offset + 4 <= 20 + length:
        attr, size = struct.unpack("!HH", data[offset : offset + 4])
        attributes.setdefault(attr, data[offset + 4 : offset + 4 + size])
        offset += 4 + size + (-size % 4)
    error = attributes.get(ERROR_CODE)
    code = error[2] * 100 + error[3] if error and len(error) >= 4 else None
    return Answer(kind & 0x0110 == SUCCESS, code, attributes)


class TurnPermissionClient:
    """One UDP socket to coturn holding one allocation of the requested family."""

    def __init__(self, server: tuple[str, int], username: str, password: str) -> None:
        self.server = server
        self.username = username.encode()
        self.password = password
        self.realm = b""
        self.nonce = b""
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(3)

    def close(self) -> None:
        self.sock.close()

    def _key(self) -> bytes:
        text = f"{self.username.decode()}:{self.realm.decode()}:{self.password}"
        return hashlib.md5(text.encode(), usedforsecurity=False).digest()

    def _exchange(self, method: int, attributes: list[tuple[int, Value]]) -> Answer:
        transaction = secrets.token_bytes(12)
        body = b"".join(
            _attribute(kind, value if isinstance(value, bytes) else value(transaction))
            for kind, value in attributes
        )
        if self.nonce:
            body += _attribute(USERNAME, self.username)
            body += _attribute(REALM, self.realm)
            body += _attribute(NONCE, self.nonce)
            # The length counts MESSAGE-INTEGRITY itself (24 bytes) when it is computed.
            header = struct.pack("!HHI", method, len(body) + 24, COOKIE) + transaction
            digest = hmac.new(self._key(), header + body, hashlib.sha1).digest()
            body += _attribute(MESSAGE_INTEGRITY, digest)
        message = struct.pack("!HHI", method, len(body), COOKIE) + transaction + body
        self.sock.sendto(message, self.server)
        while True:
            answer = _parse(self.sock.recv(4096), transaction)
            if answer is not None:
                return answer

    def _authenticated(self, method: int, attributes: list[tuple[int, Value]]) -> Answer:
        answer = self._exchange(method, attributes)
        if answer.error_code in (401, 438):
            self.realm = answer.attributes.get(REALM, self.realm)
            self.nonce = answer.attributes.get(NONCE, self.nonce)
            answer = self._exchange(method, attributes)
        return answer

    def allocate(self, version: int) -> Answer:
        return self._authenticated(
            ALLOCATE,
            [
                (REQUESTED_TRANSPORT, struct.pack("!B3x", UDP)),
                (REQUESTED_ADDRESS_FAMILY, struct.pack("!B3x", FAMILY[version])),
            ],
        )

    def create_permission(self, peer: str) -> Answer:
        # XOR-PEER-ADDRESS depends on the transaction id, so it is packed per request.
        return self._authenticated(
            CREATE_PERMISSION,
            [(XOR_PEER_ADDRESS, lambda transaction: _xor_address(peer, 9, transaction))],
        )
