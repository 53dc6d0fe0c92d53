"""Token buckets: a burst at once, then a sustained rate, per key. Pure: the clock is injected.

A bucket holds up to `burst` tokens and gains `per_second` of them as time
passes; an action takes one, or is told how long until one is back. Keys are
forgotten least recently used first past `max_keys`, so a flood of new keys
(connections, addresses) costs bounded memory; a forgotten key starts full
again, which only ever errs on the side of letting a person through.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

# Seconds, only ever compared with itself (time.monotonic in production).
Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Budget:
    """`burst` actions at once, then `per_second` on average."""

    burst: int
    per_second: float

    def __post_init__(self) -> None:
        if self.burst < 1 or self.per_second <= 0:
            raise ValueError("a budget allows at least one action and refills")

    def times(self, factor: int) -> Budget:
        return Budget(self.burst * factor, self.per_second * factor)


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class TokenBuckets:
    """One bucket of `budget` per key."""

    def __init__(self, budget: Budget, clock: Clock = time.monotonic, max_keys: int = 10_000):
        self.budget = budget
        self.clock = clock
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def _refilled(self, key: str) -> _Bucket | None:
        bucket = self._buckets.get(key)
        if bucket is None:
            return None
        now = self.clock()
        # A clock that steps back refills nothing rather than draining the bucket.
        elapsed = max(0.0, now - bucket.at)
        bucket.tokens = min(self.budget.burst, bucket.tokens + elapsed * self.budget.per_second)
        bucket.at = now
        self._buckets.move_to_end(key)
        return bucket

    def wait(self, key: str) -> float:
        """Seconds until `key` may act again (0 when it may now); takes nothing."""
        bucket = self._refilled(key)
        if bucket is None or bucket.tokens >= 1:
            return 0.0
        return (1 - bucket.tokens) / self.budget.per_second

    def take(self, key: str) -> float:
        """Take one token: 0 when there was one, else the wait (and nothing is taken)."""
        bucket = self._refilled(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(self.budget.burst), self.clock())
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        if bucket.tokens < 1:
            return (1 - bucket.tokens) / self.budget.per_second
        bucket.tokens -= 1
        return 0.0

    def forget(self, key: str) -> None:
        self._buckets.pop(key, None)


def take_all(buckets: Iterable[tuple[TokenBuckets, str]]) -> float:
    """One token from each `(buckets, key)`, or from none: 0, or the longest wait."""
    pairs = list(buckets)
    wait = max((bucket.wait(key) for bucket, key in pairs), default=0.0)
    if wait > 0:
        return wait
    for bucket, key in pairs:
        bucket.take(key)
    return 0.0


def retry_after(wait: float) -> int:
    """A wait as the whole seconds a client is told (HTTP Retry-After has no fractions)."""
    return max(1, math.ceil(wait))
