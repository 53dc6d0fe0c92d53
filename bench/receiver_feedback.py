"""What a browser's receiver keeps per incoming stream, for the benchmark's feedback load.

A browser receiving video NACKs every gap it sees and sends a receiver
report about once a second. The load generator does the same, over packets
it drops on purpose (`drop_every`: one in N video packets never reaches the
counters, as if lost on a home network) and over real gaps: the relay must
then repair them from its retransmission cache. A packet that comes back
after a NACK counts as `repaired`; what never comes back is loss.

Pure bookkeeping (no I/O): the generator sends what `due_nacks` and
`report` return.
"""

from __future__ import annotations

import random
from typing import Any

from media.reception import loss_fields

# Browsers wait about a round trip before asking; on loopback, one feedback tick.
NACK_DELAY = 0.01
NACK_RETRIES = 3
NACK_RETRY_INTERVAL = 0.05
# Older gaps are given up (a browser's jitter buffer would have moved on).
GIVE_UP_AFTER = 1.0


class InboundStream:
    FRESH = 0
    REPAIRED = 1
    DUPLICATE = 2
    DROPPED = 3

    def __init__(self, ssrc: int, kind: str, receiver: Any, drop_every: int, seed: int = 0) -> None:
        self.ssrc = ssrc
        self.kind = kind
        self.receiver = receiver
        self.drop_every = drop_every
        self._random = random.Random(seed)
        self.highest = -1  # extended sequence number
        self.base = -1
        self.received = 0
        self.dropped = 0
        self.repaired = 0
        self.duplicates = 0
        self.gaps = 0
        self.nacked = 0
        # Extended sequence number -> (first seen missing, NACKs sent, next NACK due).
        self._missing: dict[int, tuple[float, int, float]] = {}
        self._expected_prior = 0
        self._received_prior = 0

    def _extend(self, seq: int) -> int:
        if self.highest < 0:
            return seq
        delta = (seq - (self.highest & 0xFFFF)) & 0xFFFF
        if delta < 0x8000:
            return self.highest + delta
        return self.highest - (0x10000 - delta)

    def on_packet(self, seq: int, now: float) -> int:
        """Classify one arriving packet: FRESH, REPAIRED, DUPLICATE or DROPPED (on purpose)."""
        extended = self._extend(seq)
        if self.highest >= 0 and extended <= self.highest:
            if self._missing.pop(extended, None) is not None:
                self.repaired += 1
                self.received += 1
                return self.REPAIRED
            self.duplicates += 1
            return self.DUPLICATE
        if self.highest >= 0:
            for gap in range(self.highest + 1, extended):
                self.gaps += 1
                self._missing[gap] = (now, 0, now + NACK_DELAY)
        else:
            self.base = extended
        self.highest = extended
        if self.drop_every and self._random.randrange(self.drop_every) == 0:
            self.dropped += 1
            self._missing[extended] = (now, 0, now + NACK_DELAY)
            return self.DROPPED
        self.received += 1
        return self.FRESH

    def due_nacks(self, now: float) -> list[int]:
        """16-bit sequence numbers to NACK now (each gap at most NACK_RETRIES times)."""
        due: list[int] = []
        for extended, (since, tries, next_at) in list(self._missing.items()):
            if now - since > GIVE_UP_AFTER or tries >= NACK_RETRIES:
                if now - since > GIVE_UP_AFTER:
                    del self._missing[extended]
                continue
            if now >= next_at:
                due.append(extended & 0xFFFF)
                self._missing[extended] = (since, tries + 1, now + NACK_RETRY_INTERVAL)
        self.nacked += len(due)
        return due

    @property
    def outstanding(self) -> int:
        return len(self._missing)

    def report(self) -> dict[str, int]:
        """The loss fields of an RTCP receiver report block (RFC 3550 6.4.1)."""
        expected = self.highest - self.base + 1 if self.highest >= 0 else 0
        fraction, lost = loss_fields(
            expected, self.received, self._expected_prior, self._received_prior
        )
        self._expected_prior = expected
        self._received_prior = self.received
        return {
            "fraction_lost": fraction,
            "packets_lost": lost,
            "highest_sequence": self.highest & 0xFFFFFFFF if self.highest >= 0 else 0,
        }
