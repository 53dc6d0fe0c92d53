"""A weak mobile link between a test namespace (tests/support/netns.py) and the host.

What `tc qdisc ... netem rate 300kbit delay 150ms loss 5%` would do, with
what this machine's kernel has: it is built without sch_netem
(CONFIG_NET_SCH_NETEM is not set; `tc qdisc add ... netem` answers "Specified
qdisc kind is unknown"). So:

- rate: `tc tbf` on both ends of the veth pair (each direction), whose queue
  holds `queue_ms` of traffic: the delay a saturated mobile cell adds
  (bufferbloat) rather than netem's fixed delay;
- loss: an iptables `statistic --mode random` drop where packets *arrive*:
  in the namespace for what enters it, on the host for what comes in on the
  test's own veth end. (A drop on the way out would fail the sender's
  `sendmsg` with EPERM: the sender would know, a radio link never says.)
- and the namespace may only reach addresses of the test's own range: it
  cannot send anything anywhere else, degraded or not.

    with weak_link(ns) as link:
        link.degrade(Impairment(rate_kbit=300, queue_ms=150, loss_percent=5))
        link.restore()                        # `tc change` back to a plain link

The host rule matches only the test's veth end and is removed on exit.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from tests.support.netns import POOL, Namespace

CHAIN = "TEST_LINK"


@dataclass(frozen=True)
class Impairment:
    rate_kbit: int = 300
    queue_ms: int = 150
    loss_percent: float = 5.0


def _host_iptables(*args: str, check: bool = True) -> None:
    subprocess.run(["iptables", "-w", *args], capture_output=True, text=True, check=check)


class Link:
    def __init__(self, ns: Namespace) -> None:
        self.ns = ns
        # One chain per namespace on the host: parallel tests never share one.
        self.host_chain = f"TL-{ns.host_interface}"[:28]

    def _inside(self, *args: str, check: bool = True) -> None:
        self.ns.run(["iptables", "-w", *args], check=check)

    def setup(self) -> None:
        ns = self.ns
        self._inside("-A", "OUTPUT", "-o", ns.inside_interface, "!", "-d", str(POOL), "-j", "DROP")
        self._inside("-N", CHAIN)
        self._inside("-A", "INPUT", "-i", ns.inside_interface, "-j", CHAIN)
        _host_iptables("-N", self.host_chain)
        _host_iptables("-I", "INPUT", "-i", ns.host_interface, "-j", self.host_chain)

    def teardown(self) -> None:
        _host_iptables(
            "-D", "INPUT", "-i", self.ns.host_interface, "-j", self.host_chain, check=False
        )
        _host_iptables("-F", self.host_chain, check=False)
        _host_iptables("-X", self.host_chain, check=False)

    def degrade(self, link: Impairment) -> None:
        """Both directions: `rate_kbit` with a `queue_ms` queue, and `loss_percent` random loss."""
        # burst: one full-size packet at a time, as a thin radio link sends them.
        tbf = f"tbf rate {link.rate_kbit}kbit burst 1600 latency {link.queue_ms}ms"
        self.ns.shape(tbf)
        self.ns.shape_host(tbf)
        drop = ["-m", "statistic", "--mode", "random"]
        drop += ["--probability", f"{link.loss_percent / 100:.4f}", "-j", "DROP"]
        self._inside("-F", CHAIN)
        self._inside("-A", CHAIN, *drop)
        _host_iptables("-F", self.host_chain)
        _host_iptables("-A", self.host_chain, *drop)

    def restore(self) -> None:
        """A plain link again: no rate limit, no queue, no loss (the confinement stays)."""
        self.ns.unshape()
        self._inside("-F", CHAIN, check=False)
        _host_iptables("-F", self.host_chain, check=False)


@contextmanager
def weak_link(ns: Namespace) -> Iterator[Link]:
    """The namespace confined to the test's range, with a link that can be degraded."""
    link = Link(ns)
    try:
        link.setup()
        yield link
    finally:
        link.teardown()
