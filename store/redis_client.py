"""The one way the Redis backends connect: a client with short timeouts, and the key prefix."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as redis
from redis.exceptions import RedisError, WatchError

from store.errors import StoreUnavailable

logger = logging.getLogger(__name__)

DEFAULT_PREFIX = "teleconsult:"


def redis_client(url: str, timeout: float = 2.0) -> redis.Redis:
    """A client for the shared store, event log, webhook receipts and relay directory.

    Redis answers in well under a millisecond: a stalled one is unavailable,
    not slow, so calls time out quickly and surface as `StoreUnavailable`
    (or, for the relay directory, as the `RedisError` its callers handle).
    """
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=30,
    )


def reply_text(value: object) -> str:
    """A string reply as text, whether or not the client decodes replies."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, str):
        return value
    raise TypeError(f"unexpected Redis reply {type(value).__name__}")


@asynccontextmanager
async def unavailable_on_failure(what: str) -> AsyncIterator[None]:
    """Turn a failed Redis call into `StoreUnavailable`, with one warning naming `what`.

    A `WatchError` passes through: it is a lost race the caller retries, not an outage.
    """
    try:
        yield
    except (RedisError, OSError) as exc:
        if isinstance(exc, WatchError):
            raise
        # The exception text may carry the Redis URL (and its password): name the type only.
        logger.warning("redis %s unavailable: %s", what, type(exc).__name__)
        raise StoreUnavailable() from None
