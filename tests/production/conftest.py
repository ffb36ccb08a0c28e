"""Fixtures for production-mode tests: the real Redis that API processes share their counters through."""

from __future__ import annotations

import os

import pytest
import redis

REDIS_URL = os.environ.get("REELGATE_TEST_REDIS", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The test Redis; skipped where none is reachable (a laptop), a failure in CI, which must run these."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError:
        if os.environ.get("CI"):
            pytest.fail(f"Redis is not reachable at {REDIS_URL} (REELGATE_TEST_REDIS), and CI must run the Redis tests")
        pytest.skip(f"Redis is not reachable at {REDIS_URL} (set REELGATE_TEST_REDIS)")
    finally:
        client.close()
    return REDIS_URL
