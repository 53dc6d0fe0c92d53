"""Waiting on state that changes elsewhere (a socket callback, another process, Redis).

Tests never sleep a fixed time before an assertion: they wait until the
assertion holds (`eventually`), or, to show that something does *not* happen,
watch it for a stated time (`stays_true`). A check is either a predicate
(returns a bool: False means "not yet") or an assertion block (returns None and
raises AssertionError while it does not hold); it may be a coroutine function.
Any other exception is a bug, not "not yet", and propagates at once.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

Check = Callable[[], bool | Awaitable[bool | None] | None]
# What one call of a check gave: its result, or the AssertionError it raised.
Outcome = bool | AssertionError | None
SyncCheck = Callable[[], bool | None]

TIMEOUT = 10.0
INTERVAL = 0.02


def _describe(check: Callable[[], object]) -> str:
    try:
        return inspect.getsource(check).strip()
    except (OSError, TypeError):
        return repr(check)


def _failure(outcome: Outcome) -> str | None:
    """Why the check does not hold, or None when it does."""
    if isinstance(outcome, AssertionError):
        return str(outcome) or "AssertionError"
    # Only None is "an assertion block that passed": 0, [] and "" are not yet, as False is.
    return None if outcome is None or outcome else f"returned {outcome!r}"


async def _run(check: Check) -> Outcome:
    try:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        return result
    except AssertionError as error:
        return error


def _timed_out(
    check: Callable[[], object],
    what: str | None,
    waited: str,
    last: Outcome,
) -> AssertionError:
    error = AssertionError(f"{what or _describe(check)}: {waited} ({_failure(last)})")
    error.__cause__ = last if isinstance(last, AssertionError) else None
    return error


async def eventually(
    check: Check,
    *,
    timeout: float = TIMEOUT,
    interval: float = INTERVAL,
    what: str | None = None,
) -> None:
    """Return as soon as `check` holds; fail with its last failure after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        outcome = await _run(check)
        if _failure(outcome) is None:
            return
        if time.monotonic() >= deadline:
            raise _timed_out(check, what, f"did not hold within {timeout} s", outcome)
        await asyncio.sleep(interval)


async def stays_true(
    check: Check,
    *,
    for_seconds: float,
    interval: float = INTERVAL,
    what: str | None = None,
) -> None:
    """Fail as soon as `check` stops holding; return after it held for `for_seconds`.

    The one legitimate wait on the clock: "nothing arrives within half a second".
    """
    deadline = time.monotonic() + for_seconds
    while True:
        outcome = await _run(check)
        if _failure(outcome) is not None:
            raise _timed_out(check, what, "stopped holding", outcome)
        if time.monotonic() >= deadline:
            return
        await asyncio.sleep(interval)


def eventually_blocking(
    check: SyncCheck,
    *,
    timeout: float = TIMEOUT,
    interval: float = INTERVAL,
    what: str | None = None,
) -> None:
    """`eventually` for code without an event loop (starting a server process)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            outcome: Outcome = check()
        except AssertionError as error:
            outcome = error
        if _failure(outcome) is None:
            return
        if time.monotonic() >= deadline:
            raise _timed_out(check, what, f"did not hold within {timeout} s", outcome)
        time.sleep(interval)
