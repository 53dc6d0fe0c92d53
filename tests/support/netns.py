"""Network namespaces the tests create: a veth pair into a private network, nothing routed out.

A browser or client that must not see the machine's own network (Firefox,
which gathers no ICE candidates on loopback; a client behind a `tc netem`
link) runs inside a namespace with one veth pair: the host end and the
namespace end each get an address from 198.18.0.0/15 (RFC 2544, benchmarking:
never routed on the Internet), the namespace's default route points at the
host end, and the host forwards nothing that arrives on it. A server the
namespace must reach listens on `host_address`.

    with network_namespace() as ns:
        ns.run(["ip", "addr"])                      # a command inside, waited for
        process = ns.popen(["node", "driver.js"])   # a command inside, left running
        ns.shape("netem delay 150ms loss 5%")       # a tc qdisc on the namespace end

Needs root (the tests run as root on the test machine). Everything created is
removed on exit, also when the test failed; `delete` is safe to call twice.
"""

from __future__ import annotations

import ipaddress
import os
import random
import signal
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from itertools import count
from typing import Any

# The benchmarking range: one /30 per namespace (host end .1, namespace end .2).
POOL = ipaddress.IPv4Network("198.18.0.0/15")
PREFIX = 30
_serial = count()


class NamespaceError(RuntimeError):
    """A namespace could not be made (not root, no `ip`, no free address block)."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise NamespaceError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result


def _used_networks() -> set[ipaddress.IPv4Network]:
    """The /30 blocks of the pool already on this machine (other tests, other runs)."""
    output = _ip("-o", "-4", "addr", "show").stdout
    used = set()
    for line in output.splitlines():
        fields = line.split()
        if "inet" not in fields:
            continue
        address = ipaddress.IPv4Interface(fields[fields.index("inet") + 1])
        if address.ip in POOL:
            used.add(ipaddress.IPv4Network((address.ip, PREFIX), strict=False))
    return used


def _free_network() -> ipaddress.IPv4Network:
    used = _used_networks()
    blocks = list(POOL.subnets(new_prefix=PREFIX))
    # A random start: several test processes on one machine rarely pick the same block.
    start = random.randrange(len(blocks))
    for block in blocks[start:] + blocks[:start]:
        if block not in used:
            return block
    raise NamespaceError("no free /30 left in 198.18.0.0/15")


@dataclass(frozen=True)
class Namespace:
    """One namespace and its veth pair; see the module docstring."""

    name: str
    host_interface: str
    inside_interface: str
    host_address: str
    inside_address: str

    def command(self, argv: Sequence[str]) -> list[str]:
        """`argv` run inside the namespace (for a caller that starts the process itself)."""
        return ["ip", "netns", "exec", self.name, *argv]

    def run(
        self, argv: Sequence[str], check: bool = True, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        """Runs `argv` inside and waits for it; raises on a non-zero exit when `check`."""
        return subprocess.run(
            self.command(argv), capture_output=True, text=True, check=check, timeout=timeout
        )

    def popen(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Starts `argv` inside; the caller stops it (tests/support/processes.py)."""
        return subprocess.Popen(self.command(argv), **kwargs)

    def shape(self, qdisc: str) -> None:
        """Replaces the namespace end's root qdisc (egress: what leaves the namespace).

        E.g. "netem rate 300kbit delay 150ms loss 5%", or "tbf rate 300kbit
        burst 1600 latency 50ms" (this machine's kernel has tbf but no netem:
        check with a test). Shape the host end too (`shape_host`) for both directions.
        """
        argv = ["tc", "qdisc", "replace", "dev", self.inside_interface, "root"]
        self.run([*argv, *qdisc.split()])

    def shape_host(self, qdisc: str) -> None:
        """The same on the host end: shapes what enters the namespace."""
        argv = ["tc", "qdisc", "replace", "dev", self.host_interface, "root"]
        subprocess.run([*argv, *qdisc.split()], capture_output=True, text=True, check=True)

    def unshape(self) -> None:
        """Back to a plain link, both ends."""
        self.run(["tc", "qdisc", "del", "dev", self.inside_interface, "root"], check=False)
        argv = ["tc", "qdisc", "del", "dev", self.host_interface, "root"]
        subprocess.run(argv, capture_output=True, check=False)

    def pids(self) -> list[int]:
        """The processes running inside (all of them started by the test that made it)."""
        result = _ip("netns", "pids", self.name, check=False)
        return [int(pid) for pid in result.stdout.split()]

    def kill_all(self) -> None:
        """SIGKILLs every process still inside: the last resort of a cleanup."""
        for pid in self.pids():
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def create(prefix: str = "tc") -> Namespace:
    """Makes a namespace with its veth pair and addresses; `delete` it (or use the context)."""
    if os.geteuid() != 0:
        raise NamespaceError("network namespaces need root: run the tests as root")
    serial = f"{os.getpid() % 100000:05d}{next(_serial) % 100:02d}"
    name = f"{prefix}-{serial}"
    namespace = None
    for _ in range(5):
        block = _free_network()
        host_ip, inside_ip = list(block.hosts())[:2]
        namespace = Namespace(
            name=name,
            # Interface names are at most 15 characters.
            host_interface=f"{prefix[:3]}h{serial}",
            inside_interface=f"{prefix[:3]}n{serial}",
            host_address=str(host_ip),
            inside_address=str(inside_ip),
        )
        try:
            _build(namespace, block.prefixlen)
        except NamespaceError:
            delete(namespace)
            if block in _used_networks():
                continue  # Another process took the block meanwhile: try another.
            raise
        return namespace
    raise NamespaceError("could not claim a free address block")


def _build(ns: Namespace, prefixlen: int) -> None:
    _ip("netns", "add", ns.name)
    _ip("link", "add", ns.host_interface, "type", "veth", "peer", "name", ns.inside_interface)
    _ip("link", "set", ns.inside_interface, "netns", ns.name)
    _ip("addr", "add", f"{ns.host_address}/{prefixlen}", "dev", ns.host_interface)
    _ip("link", "set", ns.host_interface, "up")
    # Nothing that comes from the namespace is forwarded anywhere else.
    _sysctl(f"net.ipv4.conf.{ns.host_interface}.forwarding", "0")
    _sysctl(f"net.ipv6.conf.{ns.host_interface}.disable_ipv6", "1")
    inside = ["ip", "netns", "exec", ns.name, "ip"]
    for args in (
        ["link", "set", "lo", "up"],
        ["addr", "add", f"{ns.inside_address}/{prefixlen}", "dev", ns.inside_interface],
        ["link", "set", ns.inside_interface, "up"],
        ["route", "add", "default", "via", ns.host_address],
    ):
        result = subprocess.run([*inside, *args], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise NamespaceError(f"ip {' '.join(args)} in {ns.name}: {result.stderr.strip()}")


def _sysctl(key: str, value: str) -> None:
    path = "/proc/sys/" + key.replace(".", "/")
    try:
        with open(path, "w", encoding="ascii") as file:
            file.write(value)
    except OSError as error:
        raise NamespaceError(f"cannot set {key}: {error}") from error


def delete(ns: Namespace) -> None:
    """Kills what still runs inside, removes the namespace and its veth pair (either end goes)."""
    ns.kill_all()
    _ip("link", "del", ns.host_interface, check=False)
    _ip("netns", "del", ns.name, check=False)


@contextmanager
def network_namespace(prefix: str = "tc") -> Iterator[Namespace]:
    """A namespace for the length of the block, removed even when the block raised."""
    ns = create(prefix)
    try:
        yield ns
    finally:
        delete(ns)
