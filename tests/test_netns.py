"""tests/support/netns.py: a private network whose only way out is a server on the host end."""

from __future__ import annotations

import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from tests.support.netns import Namespace, network_namespace

# Python inside the namespace: connects to (host, port) and prints what it got.
CONNECT = """
import socket, sys
try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2) as s:
        print(s.recv(16).decode())
except OSError as error:
    print("failed", type(error).__name__)
"""


@contextmanager
def greeter(address: str) -> Iterator[int]:
    """A TCP server on `address` that says hello to whoever connects."""
    server = socket.create_server((address, 0))
    port = server.getsockname()[1]

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.sendall(b"hello")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        server.close()
        thread.join(timeout=2)


def connect_from(ns: Namespace, address: str, port: int) -> str:
    result = ns.run(["python3", "-c", CONNECT, address, str(port)])
    return result.stdout.strip()


def namespaces() -> str:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


def test_namespace_reaches_the_host_end_only_and_is_removed_after() -> None:
    with network_namespace() as ns:
        assert ns.name in namespaces()
        with greeter(ns.host_address) as port:
            assert connect_from(ns, ns.host_address, port) == "hello"
        # The machine's loopback is not the namespace's: a server there is out of reach.
        with greeter("127.0.0.1") as port:
            assert connect_from(ns, "127.0.0.1", port).startswith("failed")
        routes = ns.run(["ip", "-4", "route"]).stdout
        assert f"default via {ns.host_address}" in routes
        addresses = ns.run(["ip", "-4", "-o", "addr"]).stdout
        assert ns.inside_address in addresses
    assert ns.name not in namespaces()
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert ns.host_interface not in links


def test_shaping_replaces_the_qdisc_on_both_ends_and_unshaping_removes_it() -> None:
    # tbf: this machine's kernel has no netem module.
    with network_namespace() as ns:
        ns.shape("tbf rate 300kbit burst 1600 latency 50ms")
        ns.shape_host("tbf rate 300kbit burst 1600 latency 50ms")

        def qdiscs() -> str:
            inside = ns.run(["tc", "qdisc", "show", "dev", ns.inside_interface]).stdout
            host = ["tc", "qdisc", "show", "dev", ns.host_interface]
            return inside + subprocess.run(host, capture_output=True, text=True).stdout

        assert qdiscs().count("qdisc tbf") == 2
        ns.unshape()
        assert "tbf" not in qdiscs()
