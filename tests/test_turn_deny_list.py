"""The production coturn deny list, proved range by range with CreatePermission.

A TURN permission is what lets a login holder reach an address through the relay;
coturn answers 403 for a denied peer. Nothing is ever sent to the peers probed here:
CreatePermission only asks coturn, and the allocations relay nothing.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.coturn_server import PRODUCTION_CONFIG, CoturnServer
from tests.support.turn_permissions import TurnPermissionClient
from turn.credentials import issue

# Special-purpose ranges a relay must never reach (IANA registries, RFC 6890 and
# successors): a peer address inside any of them is refused.
MUST_DENY = [
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.88.99.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "240.0.0.0/4",
    "::1/128",
    "::/96",  # IPv4-compatible
    "::ffff:0:0/96",  # IPv4-mapped
    "::ffff:0:0:0/96",  # SIIT IPv4-translated
    "64:ff9b::/96",
    "64:ff9b:1::/48",
    "100::/64",
    "2001::/23",
    "2001:db8::/32",
    "2002::/16",
    "5f00::/16",
    "fc00::/7",
    "fe80::/10",
    "fec0::/10",
]
# Public addresses: granted, which shows that the refusals come from the deny list.
MUST_ALLOW = ["9.9.9.9", "2a00:1450:4007::1"]


def probes(network: str) -> list[str]:
    """Addresses across the whole range, including ones whose low bytes are zero.

    coturn compares a peer with a range byte by byte, so a range written with the
    wrong bounds lets through addresses whose trailing bytes are zero: probe those.
    """
    net = ipaddress.ip_network(network)
    first, last = int(net[0]), int(net[-1])
    rng = random.Random(network)
    picked = {first, last, (first + last) // 2}
    for _ in range(12):
        value = rng.randint(first, last)
        zeroed = value & ~((1 << rng.choice((8, 16, 24))) - 1)
        picked.update({value, max(zeroed, first)})
    return [str(type(net[0])(value)) for value in sorted(picked)]


@pytest.fixture(scope="module")
def production_coturn() -> Iterator[CoturnServer]:
    # An IPv6 relay address too, so IPv6 peers are checked against the list, not
    # refused for their address family.
    server = CoturnServer(PRODUCTION_CONFIG, "--relay-ip=::1")
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def clients(production_coturn: CoturnServer) -> Iterator[dict[int, TurnPermissionClient]]:
    login = issue(production_coturn.secret, "entry-deny", datetime.now(UTC), timedelta(minutes=10))
    opened: dict[int, TurnPermissionClient] = {}
    try:
        for version in (4, 6):
            client = TurnPermissionClient(
                ("127.0.0.1", production_coturn.port), login.username, login.password
            )
            opened[version] = client
            allocated = client.allocate(version)
            assert allocated.success, f"IPv{version} allocation refused: {allocated.error_code}"
        yield opened
    finally:
        for client in opened.values():
            client.close()


@pytest.mark.parametrize("network", MUST_DENY)
def test_coturn_refuses_a_permission_anywhere_in_each_special_range(
    network: str, clients: dict[int, TurnPermissionClient]
) -> None:
    version = ipaddress.ip_network(network).version
    for peer in probes(network):
        answer = clients[version].create_permission(peer)
        assert not answer.success, f"{peer} ({network}) was granted"
        assert answer.error_code == 403, (peer, answer.error_code)


@pytest.mark.parametrize("peer", MUST_ALLOW)
def test_coturn_grants_a_permission_to_a_public_address(
    peer: str, clients: dict[int, TurnPermissionClient]
) -> None:
    answer = clients[ipaddress.ip_address(peer).version].create_permission(peer)
    assert answer.success, answer.error_code
