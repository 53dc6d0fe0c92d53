"""What the relay received of one published stream, for its receiver reports to the publisher.

A receiver report (RFC 3550, 6.4.1 and A.3) tells the publisher what it lost
on the way to the relay; browsers show it as `remote-inbound-rtp` (packets
lost, fraction lost, round trip), which is how a page measures its own uplink
(`web_client/quality.js`). The fast path takes RTP before aiortc's receiver,
which then has nothing to report: these counters stand in for it. No I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass

# The report's fields, RFC 3550 6.4.1: 8-bit fraction, 24-bit signed cumulative count.
MAX_FRACTION = 255
MAX_PACKETS_LOST = 0x7FFFFF


def loss_fields(
    expected: int, received: int, expected_prior: int, received_prior: int
) -> tuple[int, int]:
    """(fraction lost since the prior report, cumulative packets lost), RFC 3550 A.3."""
    expected_interval = expected - expected_prior
    lost_interval = expected_interval - (received - received_prior)
    fraction = 0
    if expected_interval > 0 and lost_interval > 0:
        fraction = min(MAX_FRACTION, (lost_interval << 8) // expected_interval)
    # Duplicates (retransmissions) can make the count exceed what was expected.
    return fraction, min(MAX_PACKETS_LOST, max(0, expected - received))


@dataclass(frozen=True, slots=True)
class ReceptionReport:
    fraction_lost: int
    packets_lost: int
    highest_sequence: int
    lsr: int
    dlsr: int


@dataclass(slots=True)
class Reception:
    """Counters of one SSRC: the caller updates `base`, `highest` and `count` per packet
    (inline, on the hot path: see `PublishedTrack.on_packet`)."""

    # The first sequence number, and the highest seen, extended past wrap-arounds.
    base: int = -1
    highest: int = -1
    count: int = 0
    expected_prior: int = 0
    received_prior: int = 0
    # The middle 32 bits of the last sender report's NTP time, and when it came.
    lsr: int = 0
    lsr_at: float = 0.0

    def sender_report(self, ntp: int, now: float) -> None:
        self.lsr = (ntp >> 16) & 0xFFFFFFFF
        self.lsr_at = now

    def report(self, now: float) -> ReceptionReport | None:
        """The next report (the interval is since the previous one); None before any packet."""
        if self.base < 0:
            return None
        expected = self.highest - self.base + 1
        fraction, lost = loss_fields(expected, self.count, self.expected_prior, self.received_prior)
        self.expected_prior = expected
        self.received_prior = self.count
        dlsr = min(0xFFFFFFFF, int((now - self.lsr_at) * 65536)) if self.lsr_at else 0
        return ReceptionReport(fraction, lost, self.highest & 0xFFFFFFFF, self.lsr, dlsr)
