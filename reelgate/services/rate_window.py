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


def limits_storage(storage_uri: str, key_prefix: str = DEFAULT_KEY_PREFIX) -> Any:
    """The `limits` library's asyncio storage for a URI (`memory://`, `redis://...`). Redis keys start with
    `key_prefix`, so that deployments sharing one Redis (staging beside production) keep their counts apart."""
    uri = storage_uri if storage_uri.startswith("async+") else f"async+{storage_uri}"
    options: dict[str, Any] = {}
    if "redis" in uri.split("://", 1)[0]:
        options = {"implementation": "redispy", "key_prefix": key_prefix}
    return storage_from_string(uri, **options)


def moving_window(
    storage_uri: str, key_prefix: str = DEFAULT_KEY_PREFIX
) -> LocalMovingWindow | MovingWindowRateLimiter:
    """Counted in this process for `memory://`, else in shared storage (Redis) through the `limits` library."""
    if storage_uri.removeprefix("async+").startswith("memory://"):
        return LocalMovingWindow()
    return MovingWindowRateLimiter(limits_storage(storage_uri, key_prefix))
