"""A fixed-size latency histogram: recording allocates nothing."""

from __future__ import annotations

from array import array

BUCKET_SECONDS = 10e-6
BUCKETS = 20_000  # 10 us steps up to 200 ms; slower samples land in the last one


class LatencyHistogram:
    def __init__(self) -> None:
        self._counts = array("Q", bytes(8 * BUCKETS))
        self.samples = 0

    def record(self, seconds: float) -> None:
        bucket = int(seconds / BUCKET_SECONDS)
        self._counts[bucket if bucket < BUCKETS else BUCKETS - 1] += 1
        self.samples += 1

    def percentile_ms(self, fraction: float) -> float | None:
        if not self.samples:
            return None
        rank = max(1, round(fraction * self.samples))
        seen = 0
        for bucket, count in enumerate(self._counts):
            seen += count
            if seen >= rank:
                return round((bucket + 0.5) * BUCKET_SECONDS * 1000, 3)
        return None

    def merge(self, other: LatencyHistogram) -> None:
        for bucket, count in enumerate(other._counts):
            if count:
                self._counts[bucket] += count
        self.samples += other.samples

    def reset(self) -> None:
        self._counts = array("Q", bytes(8 * BUCKETS))
        self.samples = 0
