"""A moving-window request counter kept in this process: the `memory://` rate-limit storage.

The `limits` library's asyncio in-memory storage hands every hit to a worker thread to expire old entries,
two thread hops per API request for the key and the user limit. A moving window is a few lines over a
deque of timestamps, so the single-process case counts here, on the loop, and only shared storage (Redis)
goes through `limits`.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio
from limits import RateLimitItem
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

_SWEEP_EVERY = 4096  # hits between sweeps of identities whose windows have emptied


@dataclass(frozen=True)
class WindowStats:
    reset_time: float  # when the oldest counted request leaves the window (epoch seconds)
    remaining: int


class LocalMovingWindow:
    """`hit` / `get_window_stats` as `limits.aio.strategies.MovingWindowRateLimiter` offers them."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._windows: dict[tuple[str, ...], deque[float]] = {}
        self._longest_expiry = 0
        self._hits_since_sweep = 0

    async def hit(self, item: RateLimitItem, *identifiers: str) -> bool:
        """Counts one request unless the window is full; True when it was counted."""
        now, expiry = self._clock(), item.get_expiry()
        self._longest_expiry = max(self._longest_expiry, expiry)
        self._maybe_sweep(now)
        key = (item.key_for(*identifiers),)
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = deque()
        while window and window[0] <= now - expiry:
            window.popleft()
        if len(window) >= item.amount:
            return False
        window.append(now)
        return True

    async def test(self, item: RateLimitItem, *identifiers: str) -> bool:
        """Whether one more request would be counted now (counts nothing)."""
        return (await self.get_window_stats(item, *identifiers)).remaining > 0

    async def get_window_stats(self, item: RateLimitItem, *identifiers: str) -> WindowStats:
        now, expiry = self._clock(), item.get_expiry()
        window = self._windows.get((item.key_for(*identifiers),), deque())
        live = [moment for moment in window if moment > now - expiry]
        reset = (live[0] if live else now) + expiry
        return WindowStats(reset_time=reset, remaining=max(0, item.amount - len(live)))

    async def reset(self) -> None:
        self._windows.clear()

    def _maybe_sweep(self, now: float) -> None:
        # Identities that stopped calling would otherwise keep their (empty or stale) windows forever.
        self._hits_since_sweep += 1
        if self._hits_since_sweep < _SWEEP_EVERY:
            return
        self._hits_since_sweep = 0
        horizon = now - self._longest_expiry
        for key in [k for k, w in self._windows.items() if not w or w[-1] <= horizon]:
            del self._windows[key]


# What every key reelgate writes to Redis starts with, unless REELGATE_REDIS_KEY_PREFIX says otherwise.
DEFAULT_KEY_PREFIX = "reelgate"


class CounterStore:
    """Where one process's moving windows count: in its own memory (`memory://`), or in a Redis that every API
    process shares. The Redis windows of a process share one storage and one connection pool, which the
    process owns and `close` lets go (otherwise its connections outlive the event loop that opened them).
    Redis keys start with `key_prefix`, so that deployments sharing one Redis (staging beside production)
    keep their counts apart."""

    def __init__(self, storage_uri: str = "memory://", key_prefix: str = DEFAULT_KEY_PREFIX) -> None:
        self._uri = storage_uri.removeprefix("async+")
        self._key_prefix = key_prefix
        self._pool: redis.asyncio.ConnectionPool | None = None
        self._shared: Any = None  # the limits storage of a shared URI, made on first use

    @property
    def local(self) -> bool:
        return self._uri.startswith("memory://")

    def window(self) -> LocalMovingWindow | MovingWindowRateLimiter:
        """A moving window: counted on the event loop for `memory://`, else in shared storage (Redis) through
        the `limits` library."""
        return LocalMovingWindow() if self.local else MovingWindowRateLimiter(self.storage())

    def limiter(self) -> MovingWindowRateLimiter:
        """A `limits` moving window whatever the storage (for callers that need `clear`), a fresh in-memory
        storage each for `memory://`."""
        return MovingWindowRateLimiter(self.storage())

    def storage(self) -> Any:
        """The `limits` asyncio storage of the URI: the one shared storage of a Redis URI, a new one otherwise."""
        if self.local:
            return storage_from_string(f"async+{self._uri}")
        if self._shared is None:
            scheme = self._uri.split("://", 1)[0]
            options: dict[str, Any] = {}
            if "redis" in scheme:
                options = {"implementation": "redispy", "key_prefix": self._key_prefix}
            if scheme in _POOLED_SCHEMES:  # a cluster or a sentinel keeps connections of its own
                # `limits` documents `connection_pool` for exactly this; its own URI parsing turns
                # "redis+unix" into redis-py's "unix" the same way.
                self._pool = redis.asyncio.ConnectionPool.from_url(self._uri.replace("redis+unix", "unix"))
                options["connection_pool"] = self._pool
            self._shared = storage_from_string(f"async+{self._uri}", **options)
        return self._shared

    async def close(self) -> None:
        """Disconnects the Redis connection pool, if one was opened; the store can open another after this."""
        pool, self._pool, self._shared = self._pool, None, None
        if pool is not None:
            await pool.disconnect()


_POOLED_SCHEMES = frozenset({"redis", "rediss", "redis+unix"})
