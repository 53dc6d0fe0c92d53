"""The production coturn configuration keeps its hardening; the test one stays test-only."""

from __future__ import annotations

import ipaddress

import pytest

from signalling.config import ConfigError, settings_from_env
from tests.support import WEBHOOK_SECRET
from tests.support.coturn_server import PRODUCTION_CONFIG, TEST_CONFIG

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MUST_DENY = [
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "240.0.0.0/4",
    "::1/128",
    "fc00::/7",
    "fe80::/10",
]


def options(text: str) -> list[tuple[str, str]]:
    parsed = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            parsed.append((name.strip(), value.strip()))
    return parsed


def denied_ranges(text: str) -> list[tuple[IpAddress, IpAddress]]:
    ranges = []
    for name, value in options(text):
        if name == "denied-peer-ip":
            low, _, high = value.partition("-")
            ranges.append((ipaddress.ip_address(low), ipaddress.ip_address(high or low)))
    return ranges


@pytest.mark.parametrize("network", MUST_DENY)
def test_production_denies_relaying_to(network: str) -> None:
    net: IpNetwork = ipaddress.ip_network(network)
    covered = any(
        int(low) <= int(net.network_address) and int(net.broadcast_address) <= int(high)
        for low, high in denied_ranges(PRODUCTION_CONFIG.read_text())
        if low.version == net.version
    )
    assert covered, f"turnserver.conf does not deny {network}"


def test_production_hardening_flags() -> None:
    names = {name for name, _ in options(PRODUCTION_CONFIG.read_text())}
    for flag in (
        "fingerprint",
        "use-auth-secret",
        "no-multicast-peers",
        "no-cli",
        "user-quota",
        "total-quota",
        "no-tlsv1",
        "no-tlsv1_1",
    ):
        assert flag in names, flag
    assert "allow-loopback-peers" not in names
    assert "static-auth-secret" not in names, "the shared secret belongs on the command line"
    assert "lt-cred-mech" not in names


def test_the_test_config_is_the_only_one_allowing_loopback() -> None:
    assert "allow-loopback-peers" in {name for name, _ in options(TEST_CONFIG.read_text())}


def test_ice_transport_policy_setting() -> None:
    base = {"TELECONSULT_TOKEN_SECRET": "t" * 48, "TELECONSULT_WEBHOOK_SECRET": WEBHOOK_SECRET}
    turn = {
        "TELECONSULT_TURN_URLS": "turn:turn.example.org:3478",
        "TELECONSULT_TURN_SECRET": "s" * 32,
    }
    assert settings_from_env(base).ice_transport_policy == "all"
    relay = {**base, **turn, "TELECONSULT_ICE_TRANSPORT_POLICY": "relay"}
    assert settings_from_env(relay).ice_transport_policy == "relay"
    with pytest.raises(ConfigError, match="needs TELECONSULT_TURN_URLS"):
        settings_from_env({**base, "TELECONSULT_ICE_TRANSPORT_POLICY": "relay"})
    with pytest.raises(ConfigError, match="`all` or `relay`"):
        settings_from_env({**relay, "TELECONSULT_ICE_TRANSPORT_POLICY": "public"})
