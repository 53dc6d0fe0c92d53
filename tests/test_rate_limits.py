"""Token buckets on a fake clock: the burst, the sustained rate, the waits, the memory bound."""

from __future__ import annotations

import pytest

from signalling.auth_throttle import AuthThrottle
from signalling.errors import RateLimited
from signalling.rate_limits import Budget, TokenBuckets, retry_after, take_all
from signalling.socket_limits import CONNECT, DEFAULT_LIMIT, ROOM_LIMITS, SIGNALLING


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_refused_with_the_wait_until_the_next_token() -> None:
    clock = FakeClock()
    buckets = TokenBuckets(Budget(burst=3, per_second=0.5), clock)
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a") == pytest.approx(2.0)
    clock.now += 1.5
    assert buckets.take("a") == pytest.approx(0.5)
    clock.now += 0.5
    assert buckets.take("a") == 0.0
    assert buckets.take("a") == pytest.approx(2.0)


def test_the_sustained_rate_is_the_refill_and_the_burst_a_ceiling() -> None:
    clock = FakeClock()
    buckets = TokenBuckets(Budget(burst=2, per_second=2), clock)
    taken = 0
    for _ in range(100):  # 10 s, an attempt every 0.1 s
        taken += buckets.take("a") == 0
        clock.now += 0.1
    assert 21 <= taken <= 22
    clock.now += 3600  # idle for an hour: no more than the burst at once
    assert [buckets.take("a") for _ in range(3)].count(0.0) == 2


def test_keys_are_independent() -> None:
    buckets = TokenBuckets(Budget(burst=1, per_second=0.1), FakeClock())
    assert buckets.take("a") == 0
    assert buckets.take("a") > 0
    assert buckets.take("b") == 0


def test_wait_takes_nothing() -> None:
    buckets = TokenBuckets(Budget(burst=1, per_second=1), FakeClock())
    assert buckets.wait("a") == 0
    assert buckets.wait("a") == 0
    assert buckets.take("a") == 0
    assert buckets.wait("a") == pytest.approx(1.0)


def test_a_clock_stepping_back_neither_refills_nor_drains() -> None:
    clock = FakeClock()
    buckets = TokenBuckets(Budget(burst=2, per_second=1), clock)
    buckets.take("a")
    clock.now -= 100
    assert buckets.take("a") == 0
    assert buckets.take("a") == pytest.approx(1.0)


def test_memory_is_bounded_least_recently_used_first() -> None:
    clock = FakeClock()
    buckets = TokenBuckets(Budget(burst=1, per_second=0.01), clock, max_keys=3)
    for key in "abc":
        buckets.take(key)
    buckets.take("a")  # refused, but "a" is now the most recent
    buckets.take("d")
    assert len(buckets) == 3
    assert buckets.take("a") > 0  # kept: still limited
    assert buckets.take("b") == 0  # forgotten: starts full


def test_take_all_takes_from_every_bucket_or_from_none() -> None:
    clock = FakeClock()
    small = TokenBuckets(Budget(burst=1, per_second=1), clock)
    large = TokenBuckets(Budget(burst=5, per_second=1), clock)
    assert take_all([(small, "x"), (large, "y")]) == 0
    assert take_all([(small, "x"), (large, "y")]) == pytest.approx(1.0)
    # The refused attempt took nothing from the large bucket: 4 left.
    assert [large.take("y") for _ in range(5)].count(0.0) == 4


def test_retry_after_is_whole_seconds_rounded_up_never_zero() -> None:
    assert retry_after(0.01) == 1
    assert retry_after(1.0) == 1
    assert retry_after(1.2) == 2


def test_auth_throttle_counts_failures_only_per_source() -> None:
    clock = FakeClock()
    throttle = AuthThrottle(Budget(burst=3, per_second=0.1), clock)
    for _ in range(3):
        throttle.check("198.51.100.7")
        throttle.failed("198.51.100.7")
    with pytest.raises(RateLimited) as refused:
        throttle.check("198.51.100.7")
    assert refused.value.retry_after == 10
    throttle.check("203.0.113.9")  # another source is not affected
    clock.now += 10
    throttle.check("198.51.100.7")


def test_a_real_call_fits_the_budgets_with_room_to_spare() -> None:
    # A five-person call's start on one connection: publish, four subscriptions,
    # a hello to all and one back from each, a key to each; then failover does it again.
    start = 1 + 4 + 1 + 4 + 4
    assert SIGNALLING.budget.burst >= 5 * start
    assert ROOM_LIMITS["publish"] is SIGNALLING
    assert ROOM_LIMITS["subscription_answer"] is SIGNALLING
    # Check-in, admissions and leaving: a consultation's handful, many times over.
    assert DEFAULT_LIMIT.budget.burst >= 10
    assert CONNECT.burst >= 10
