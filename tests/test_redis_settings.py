"""Choosing the Redis store: the flag wins over TELECONSULT_REDIS_URL; bad URLs are refused."""

from __future__ import annotations

import pytest

from signalling.config import ConfigError, settings_from_env
from tests.support import WEBHOOK_SECRET

BASE = {"TELECONSULT_TOKEN_SECRET": "t" * 48, "TELECONSULT_WEBHOOK_SECRET": WEBHOOK_SECRET}


def test_redis_is_off_unless_configured() -> None:
    assert settings_from_env(BASE).redis_url is None


def test_the_environment_and_the_flag_select_redis() -> None:
    env = {**BASE, "TELECONSULT_REDIS_URL": "redis://redis:6379/0"}
    assert settings_from_env(env).redis_url == "redis://redis:6379/0"
    flagged = settings_from_env(env, redis_url="rediss://other:6380/1")
    assert flagged.redis_url == "rediss://other:6380/1"
    assert flagged.redis_prefix == "teleconsult:"
    prefixed = settings_from_env({**env, "TELECONSULT_REDIS_PREFIX": "clinic-a:"})
    assert prefixed.redis_prefix == "clinic-a:"


def test_a_url_that_is_not_redis_is_refused() -> None:
    with pytest.raises(ConfigError, match="TELECONSULT_REDIS_URL"):
        settings_from_env({**BASE, "TELECONSULT_REDIS_URL": "http://redis:6379"})
