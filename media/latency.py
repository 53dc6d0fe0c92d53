"""A fixed-size latency histogram: recording allocates nothing.

Fine steps where relays live (10 us up to 20 ms), coarser ones up to 2.02 s
so that a congested run still reads as what it is; beyond that the
percentile reports the largest sample seen, never a capped bucket.
"""

from __future__ import annotations

from array import array

FINE_SECONDS = 10e-6
FINE_BUCKETS = 2_000  # 0-20 ms
COARSE_SECONDS = 100e-6
COARSE_BUCKETS = 20_000  # 20 ms - 2.02 s
BUCKETS = FINE_BUCKETS + COARSE_BUCKETS
FINE_SPAN = FINE_SECONDS * FINE_BUCKETS
# The histogram's reach: samples above it land in the overflow count.
SPAN_SECONDS = FINE_SPAN + COARSE_SECONDS * COARSE_BUCKETS


class LatencyHistogram:
    def __init__(self) -> None:
        self._counts = array("Q", bytes(8 * BUCKETS))
        self.samples = 0
        self.overflow = 0
        self.max_seconds = 0.0

    def record(self, seconds: float) -> None:
        if seconds < FINE_SPAN:
            self._counts[int(seconds / FINE_SECONDS) if seconds > 0 else 0] += 1
        elif seconds < SPAN_SECONDS:
            self._counts[FINE_BUCKETS + int((seconds - FINE_SPAN) / COARSE_SECONDS)] += 1
        else:
            self.overflow += 1
        if seconds > self.max_seconds:
            self.max_seconds = seconds
        self.samples += 1

    def percentile_ms(self, fraction: float) -> float | None:
        if not self.samples:
            return None
        rank = max(1, round(fraction * self.samples))
        seen = 0
        for bucket, count in enumerate(self._counts):
            seen += count
            if seen >= rank:
                if bucket < FINE_BUCKETS:
                    middle = (bucket + 0.5) * FINE_SECONDS
                else:
                    middle = FINE_SPAN + (bucket - FINE_BUCKETS + 0.5) * COARSE_SECONDS
                return round(middle * 1000, 3)
        # In the overflow: the largest sample is the only honest figure left.
        return round(self.max_seconds * 1000, 3)

    def merge(self, other: LatencyHistogram) -> None:
        for bucket, count in enumerate(other._counts):
            if count:
                self._counts[bucket] += count
        self.samples += other.samples
        self.overflow += other.overflow
        self.max_seconds = max(self.max_seconds, other.max_seconds)

    def reset(self) -> None:
        self._counts = array("Q", bytes(8 * BUCKETS))
        self.samples = 0
        self.overflow = 0
        self.max_seconds = 0.0
