"""The per-user generation limit (`REELGATE_GENERATE_LIMIT`, e.g. "10/15 minutes"): new generations only.

It is separate from the request rate limits, which count every API call: with the generation limit set that
way, a user can still read their balance and poll their jobs. A request is checked before anything is held and
counted once its generation is recorded, so a refused request (invalid, short of credits) and a replay of an
idempotent request count nothing; two requests of one user that race may both pass the check, so a burst can
overshoot the limit by the number of concurrent requests.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse_many

from reelgate.domain.errors import RateLimited
from reelgate.services.rate_window import CounterStore

_NAMESPACE = ("reelgate", "generate")


class GenerateLimit:
    def __init__(self, counters: CounterStore, limits: str) -> None:
        self.items: list[RateLimitItem] = parse_many(limits)
        self.window = counters.window()

    async def check(self, user_id: str) -> None:
        """Raises RateLimited (429, with the wait) when one more generation would break a limit."""
        for item in self.items:
            if not await self.window.test(item, *_NAMESPACE, user_id):
                stats = await self.window.get_window_stats(item, *_NAMESPACE, user_id)
                retry_after = max(1, math.ceil(stats.reset_time - time.time()))
                raise RateLimited(
                    f"Too many generations: the limit is {item}. Retry in {retry_after} s.",
                    retry_after=retry_after,
                    details={"scope": "generate", "limit": str(item)},
                )

    async def count(self, user_id: str) -> None:
        for item in self.items:
            await self.window.hit(item, *_NAMESPACE, user_id)
