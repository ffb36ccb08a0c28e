"""Limits on use: request rates per API key and per user, generations in flight, and daily spend caps."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from datetime import datetime, timedelta

from limits import RateLimitItem, parse
from limits.aio.strategies import MovingWindowRateLimiter

from reelgate.db.queries import limits as limit_queries
from reelgate.db.queries.users import owner_of_key
from reelgate.db.sql import Tx
from reelgate.domain.errors import RateLimited, ReelgateError
from reelgate.services.accounts import API_KEY_PREFIX, hash_api_key
from reelgate.services.context import ServiceContext
from reelgate.services.rate_window import CounterStore, LocalMovingWindow


class SpendCapReached(ReelgateError):
    """A daily spend cap stops new submissions; 402 like insufficient credits, with its own code."""

    status_code = 402
    code = "spend_cap_reached"


class RequestLimiter:
    """Moving-window request limits: counted in this process (`memory://`), or in Redis shared by processes
    (the `limits` library)."""

    def __init__(self, counters: CounterStore, per_key: str, per_user: str) -> None:
        self.limiter: LocalMovingWindow | MovingWindowRateLimiter = counters.window()
        self.per_key: RateLimitItem = parse(per_key)
        self.per_user: RateLimitItem = parse(per_user)
        # API key hash -> user id, so a key's requests also count against its owner without a query each time.
        self._owners: OrderedDict[str, str | None] = OrderedDict()

    @classmethod
    def from_context(cls, ctx: ServiceContext) -> RequestLimiter:
        c = ctx.config
        return cls(ctx.counters, c.rate_limit_per_key, c.rate_limit_per_user)

    async def check(self, *, api_key: str | None, user_id: str | None) -> None:
        """Counts one request against each identity given; raises RateLimited when one is over its limit."""
        if api_key is not None:
            await self._hit(self.per_key, "key", api_key, "API key")
        if user_id is not None:
            await self._hit(self.per_user, "user", user_id, "account")

    async def _hit(self, item: RateLimitItem, scope: str, identity: str, label: str) -> None:
        if await self.limiter.hit(item, "reelgate", scope, identity):
            return
        stats = await self.limiter.get_window_stats(item, "reelgate", scope, identity)
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        raise RateLimited(
            f"Too many requests for this {label}: the limit is {item}. Retry in {retry_after} s.",
            retry_after=retry_after,
            details={"scope": scope, "limit": str(item)},
        )

    async def owner_of_key(self, ctx: ServiceContext, secret: str) -> tuple[str, str | None]:
        """(key identity, owning user id or None); the identity is the key's hash, never the secret."""
        key_hash = hash_api_key(secret)
        if key_hash in self._owners:
            self._owners.move_to_end(key_hash)
            return key_hash, self._owners[key_hash]
        owner: str | None = None
        if secret.startswith(API_KEY_PREFIX):
            owner = await ctx.db.read(lambda tx: owner_of_key(tx, key_hash))
        if owner is not None:  # unknown keys are not cached: a flood of random keys cannot fill the map
            self._owners[key_hash] = owner
            if len(self._owners) > 10_000:
                self._owners.popitem(last=False)
        return key_hash, owner

    async def reset(self) -> None:
        if isinstance(self.limiter, LocalMovingWindow):
            await self.limiter.reset()
        else:
            await self.limiter.storage.reset()


def _day_start(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def _spent_today(tx: Tx, user_id: str | None, now: datetime) -> int:
    start = _day_start(now)
    return limit_queries.spent_between(tx, user_id, start, start + timedelta(days=1))


async def spent_today(ctx: ServiceContext, user_id: str | None) -> int:
    """Credits held or charged by generations created since UTC midnight (one user, or everyone)."""
    now = ctx.clock()
    return await ctx.db.read(lambda tx: _spent_today(tx, user_id, now))


async def in_flight(ctx: ServiceContext, user_id: str) -> int:
    return await ctx.db.read(lambda tx: limit_queries.in_flight(tx, user_id))


def check_spend_caps(ctx: ServiceContext, tx: Tx, user_id: str, total: int, now: datetime) -> None:
    """Inside the submit's transaction, after its hold: refuses a new generation over a daily spend cap (402).

    The count and the insert are one step: the hold's UPDATE has locked the account's balance row (PostgreSQL;
    SQLite's BEGIN IMMEDIATE serializes every writer), and the global cap takes a transaction-scoped lock of
    its own, so a burst cannot all count the same "before" and overshoot."""
    config = ctx.config
    for cap, scope in ((config.daily_spend_cap_user, "user"), (config.daily_spend_cap_global, "global")):
        if cap <= 0:
            continue
        if scope == "global":
            limit_queries.serialize_global_spending(tx)
        # The submit's own generation is in the sum already: it is counted once, as `total`.
        spent = _spent_today(tx, user_id if scope == "user" else None, now) - total
        if spent + total > cap:
            who = "Your account" if scope == "user" else "This service"
            raise SpendCapReached(
                f"{who} has reached its daily spending cap of {cap} credits ({spent} spent today, this needs "
                f"{total}). New generations can start again after midnight UTC.",
                details={"scope": scope, "cap": cap, "spent": spent, "required": total},
            )
