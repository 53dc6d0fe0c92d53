"""The shared waiting helpers (tests/support/polling.py) wait for what they say, no longer."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.polling import eventually, eventually_blocking, stays_true


async def test_eventually_returns_once_a_predicate_holds() -> None:
    calls: list[int] = []

    def third_time() -> bool:
        calls.append(1)
        return len(calls) >= 3

    await eventually(third_time, interval=0)
    assert len(calls) == 3


async def test_eventually_retries_assertions_and_coroutines() -> None:
    state = {"n": 0}

    async def grows() -> None:
        state["n"] += 1
        await asyncio.sleep(0)
        assert state["n"] >= 2, state

    await eventually(grows, interval=0)
    assert state["n"] == 2


async def test_eventually_fails_with_the_last_assertion() -> None:
    def never() -> None:
        raise AssertionError("still 3 entries")

    with pytest.raises(AssertionError, match=r"did not hold within 0.05 s \(still 3 entries\)"):
        await eventually(never, timeout=0.05)


@pytest.mark.parametrize("falsy", [False, 0, [], ""])
async def test_eventually_treats_any_falsy_result_but_none_as_not_yet(falsy: object) -> None:
    with pytest.raises(AssertionError, match="the queue is empty"):
        await eventually(lambda: falsy, timeout=0.05, what="the queue is empty")  # type: ignore[arg-type, return-value]


async def test_other_errors_propagate_at_once() -> None:
    def broken() -> bool:
        raise KeyError("a bug, not 'not yet'")

    with pytest.raises(KeyError):
        await eventually(broken, timeout=5)


async def test_stays_true_fails_as_soon_as_the_check_stops_holding() -> None:
    seen: list[int] = []
    loop = asyncio.get_running_loop()
    loop.call_later(0.05, seen.append, 1)
    started = loop.time()
    with pytest.raises(AssertionError, match="nothing arrives: stopped holding"):
        await stays_true(lambda: seen == [], for_seconds=5, what="nothing arrives")
    assert loop.time() - started < 1


async def test_stays_true_watches_for_the_stated_time() -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    await stays_true(lambda: True, for_seconds=0.05)
    assert loop.time() - started >= 0.05


def test_the_blocking_twin_waits_without_a_loop() -> None:
    calls: list[int] = []

    def second_time() -> bool:
        calls.append(1)
        return len(calls) == 2

    eventually_blocking(second_time, interval=0)
    assert len(calls) == 2
    with pytest.raises(AssertionError, match="did not hold"):
        eventually_blocking(lambda: False, timeout=0.02)
