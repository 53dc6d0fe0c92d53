"""What a relay process counts for the operator (`/metrics`): totals since it started.

The forwarding mode counts packets on the media it holds (`counters`), which
goes with the room; `ForwardingTotals` keeps what closed media had counted, so
totals survive the calls they came from. `relay_snapshot` is what the worker
protocol's `metrics` operation answers, read in the process that forwards the
packets: nothing is counted twice, nothing is shared between processes, and
the fast path only bumps integers it already had.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from media.relay import Relay


class ForwardingTotals:
    """Counters of closed publications and subscriptions, added up."""

    def __init__(self) -> None:
        self.closed: dict[str, int] = {}

    def add(self, counters: Mapping[str, object]) -> None:
        for key, value in counters.items():
            if isinstance(value, int):
                self.closed[key] = self.closed.get(key, 0) + value

    def with_live(self, live: Mapping[str, object]) -> dict[str, int]:
        totals = dict(self.closed)
        for key, value in live.items():
            if isinstance(value, int):
                totals[key] = totals.get(key, 0) + value
        return totals


def relay_snapshot(relay: Relay) -> dict[str, float]:
    """Rooms held now, forwarding totals since start, and this process's CPU seconds."""
    return {
        **relay.stats(),
        **relay.forwarding_totals(),
        "cpu_seconds": time.process_time(),
    }
